package localapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// Client calls calyx-node's local API over its unix socket.
type Client struct {
	socket string
	http   *http.Client
}

// NewClient returns a client for the socket at path ("" = DefaultSocket).
func NewClient(path string) *Client {
	if path == "" {
		path = DefaultSocket
	}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
		MaxIdleConns:    1,
		IdleConnTimeout: 30 * time.Second,
	}
	return &Client{socket: path, http: &http.Client{Transport: tr}}
}

// Socket returns the socket path the client dials.
func (c *Client) Socket() string { return c.socket }

// UnreachableError says calyx-node could not be reached at all, as opposed
// to calyx-node answering with an error.
type UnreachableError struct {
	Socket string
	Err    error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("cannot reach calyx-node at %s: %v (is calyx-node running on this host? start it with `systemctl start calyx-node` or `calyx-node --name $(hostname)`, and check agent_socket in the CNI config)", e.Socket, e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// IsUnreachable reports whether err is an *UnreachableError.
func IsUnreachable(err error) bool {
	var u *UnreachableError
	return errors.As(err, &u)
}

// APIError is an error answered by calyx-node.
type APIError struct {
	Status int
	Body   Error
}

func (e *APIError) Error() string { return "calyx-node: " + e.Body.Message }

// Do posts req to path and decodes the answer into resp (which may be nil).
func (c *Client) Do(ctx context.Context, path string, req, resp any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("encoding request for %s: %w", path, err)
	}
	if len(body) > MaxRequestBytes {
		// calyx-node would refuse it; say so without sending it.
		return &APIError{Status: http.StatusRequestEntityTooLarge, Body: Error{Code: CodeInvalidNetworkConfig, Message: fmt.Sprintf(
			"the %s request is %d bytes, more than calyx-node accepts (%d): the network config makes it so (Mesos labels, pool lists or the GC's list of valid attachments); shorten it",
			path, len(body), MaxRequestBytes)}}
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://calyx-node"+path, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("building request for %s: %w", path, err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	hresp, err := c.http.Do(hreq)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("calling calyx-node %s: %w", path, ctx.Err())
		}
		return &UnreachableError{Socket: c.socket, Err: err}
	}
	defer hresp.Body.Close()
	dec := json.NewDecoder(hresp.Body)
	if hresp.StatusCode != http.StatusOK {
		var e Error
		if err := dec.Decode(&e); err != nil || e.Message == "" {
			e.Message = fmt.Sprintf("%s answered HTTP %d", path, hresp.StatusCode)
		}
		return &APIError{Status: hresp.StatusCode, Body: e}
	}
	if resp == nil {
		return nil
	}
	if err := dec.Decode(resp); err != nil {
		return fmt.Errorf("decoding calyx-node's answer to %s: %w", path, err)
	}
	return nil
}
