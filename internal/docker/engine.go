package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// DefaultHost is where dockerd serves its API unless told otherwise.
const DefaultHost = "unix:///var/run/docker.sock"

// EngineClient reads dockerd's API (the few calls the driver and
// garbage collection need), over its unix socket or TCP.
type EngineClient struct {
	host string
	base string
	hc   *http.Client
}

var _ Engine = (*EngineClient)(nil)

// NewEngineClient returns a client of the dockerd at host: unix:///path
// or tcp://host:port.
func NewEngineClient(host string) (*EngineClient, error) {
	u, err := url.Parse(host)
	if err != nil {
		return nil, fmt.Errorf("--docker-host %q: %w", host, err)
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 4, IdleConnTimeout: 30 * time.Second}
	c := &EngineClient{host: host, hc: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
	switch u.Scheme {
	case "unix":
		path := u.Path
		if path == "" {
			return nil, fmt.Errorf("--docker-host %q: expected unix:///path/to/docker.sock", host)
		}
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}
		c.base = "http://docker"
	case "tcp", "http":
		if u.Host == "" {
			return nil, fmt.Errorf("--docker-host %q: expected tcp://HOST:PORT", host)
		}
		c.base = "http://" + u.Host
	default:
		return nil, fmt.Errorf("--docker-host %q: expected unix:///path or tcp://host:port", host)
	}
	return c, nil
}

// Host is the address the client talks to.
func (c *EngineClient) Host() string { return c.host }

// get decodes the JSON answer of GET path into out.
func (c *EngineClient) get(ctx context.Context, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("dockerd at %s: %w", c.host, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("dockerd at %s: reading GET %s: %w", c.host, path, err)
	}
	if resp.StatusCode == http.StatusNotFound {
		return &notFoundError{what: path}
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Message string }
		_ = json.Unmarshal(body, &e)
		return fmt.Errorf("dockerd at %s: GET %s: %s: %s", c.host, path, resp.Status, e.Message)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("dockerd at %s: decoding GET %s: %w", c.host, path, err)
	}
	return nil
}

type notFoundError struct{ what string }

func (e *notFoundError) Error() string { return "dockerd has no " + e.what }

// IsNotFound reports whether dockerd answered that the object is gone.
func IsNotFound(err error) bool {
	var nf *notFoundError
	return errors.As(err, &nf)
}

// networkJSON is the part of GET /networks/{id} the driver reads.
type networkJSON struct {
	ID         string `json:"Id"`
	Name       string
	Driver     string
	Options    map[string]string
	Containers map[string]struct {
		Name       string
		EndpointID string
	}
}

// NetworkName returns the Calyx name of the network with this ID: its
// calyx.network option, else its Docker name.
func (c *EngineClient) NetworkName(ctx context.Context, networkID string) (string, error) {
	var n networkJSON
	if err := c.get(ctx, "/networks/"+url.PathEscape(networkID), &n); err != nil {
		return "", err
	}
	if name := n.Options[OptionNetworkName]; name != "" {
		return name, nil
	}
	if n.Name == "" {
		return "", fmt.Errorf("dockerd at %s: network %s has no name", c.host, shortID(networkID))
	}
	return n.Name, nil
}

// containerJSON is the part of GET /containers/json the driver reads.
type containerJSON struct {
	ID     string `json:"Id"`
	Names  []string
	Labels map[string]string
}

// EndpointContainer finds the container of an endpoint while it joins:
// the network lists the endpoint under the container's name (the
// endpoint's name), and the container list, a snapshot that takes no
// container lock, gives its ID and labels. Inspecting the container
// instead would wait for the start that is waiting for Join.
func (c *EngineClient) EndpointContainer(ctx context.Context, networkID, endpointID string) (Container, error) {
	var n networkJSON
	if err := c.get(ctx, "/networks/"+url.PathEscape(networkID), &n); err != nil {
		return Container{}, err
	}
	name, id := "", ""
	for key, ep := range n.Containers {
		if ep.EndpointID == endpointID {
			name = ep.Name
			if !strings.HasPrefix(key, "ep-") {
				id = key
			}
			break
		}
	}
	if name == "" {
		return Container{}, fmt.Errorf("dockerd at %s lists no endpoint %s in network %s", c.host, shortID(endpointID), n.Name)
	}
	filter, _ := json.Marshal(map[string][]string{"name": {"^/" + regexp.QuoteMeta(name) + "$"}})
	var list []containerJSON
	if err := c.get(ctx, "/containers/json?all=1&filters="+url.QueryEscape(string(filter)), &list); err != nil {
		return Container{}, err
	}
	for _, ct := range list {
		for _, nm := range ct.Names {
			if nm == "/"+name && (id == "" || ct.ID == id) {
				return Container{ID: ct.ID, Name: name, Labels: ct.Labels}, nil
			}
		}
	}
	return Container{}, fmt.Errorf("dockerd at %s lists no container named %s", c.host, name)
}

// NetworkEndpoints returns the endpoint IDs dockerd knows in every
// network of the calyx driver, and whether each such network was read.
func (c *EngineClient) NetworkEndpoints(ctx context.Context) (map[string]bool, error) {
	filter, _ := json.Marshal(map[string][]string{"driver": {NetworkDriverName}})
	var list []networkJSON
	if err := c.get(ctx, "/networks?filters="+url.QueryEscape(string(filter)), &list); err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, sum := range list {
		var n networkJSON
		err := c.get(ctx, "/networks/"+url.PathEscape(sum.ID), &n)
		if IsNotFound(err) {
			continue // removed since the list
		}
		if err != nil {
			return nil, err
		}
		for _, ep := range n.Containers {
			out[ep.EndpointID] = true
		}
	}
	return out, nil
}
