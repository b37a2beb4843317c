package docker

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/calyx-net/calyx/internal/testnet"
	"github.com/calyx-net/calyx/test/dockerd"
	"github.com/calyx-net/calyx/test/hostnode"
)

const pools = `apiVersion: calyx.dev/v1
kind: IPPool
metadata: {name: docker-ipv4}
spec: {cidr: 10.68.0.0/16, blockSize: 26}
---
apiVersion: calyx.dev/v1
kind: IPPool
metadata: {name: docker-ipv6}
spec: {cidr: "fd00:68::/48", blockSize: 122}
`

// host is a Docker host: a private dockerd and calyx-node in one network
// namespace, calyx-node in dockerd's mount namespace too (where the
// plugin directory and the containers' sandboxes are).
type host struct {
	t    *testing.T
	ns   ns.NetNS
	d    *dockerd.Daemon
	node *hostnode.Node
	cfg  hostnode.Config
}

// hostOptions vary a host.
type hostOptions struct {
	// noDefaultRoute gives the host an address and no default route.
	noDefaultRoute bool
	args           []string
}

func newHost(t *testing.T, name string, o hostOptions) *host {
	t.Helper()
	testnet.RequireRoot(t)
	netns := testnet.NewNS(t)
	d := dockerd.Start(t, dockerd.Options{NS: netns})
	work, err := os.MkdirTemp("", "calyx-") //nolint:usetesting // a unix socket goes here: paths are limited to 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(work) })
	h := &host{t: t, ns: netns, d: d}
	h.cfg = hostnode.Config{
		BinDir: binDir, NS: netns, Name: name, WorkDir: work, DockerHost: d.Host(), Args: o.args,
		Command: func(name string, args ...string) *exec.Cmd { return d.Command(context.Background(), name, args...) },
	}
	if o.noDefaultRoute {
		h.cfg.NoUplink = true
		h.cfg.IP = "192.0.2.10/24"
		addUplinkNoRoute(t, netns, h.cfg.IP)
	}
	h.start()
	t.Cleanup(func() {
		if h.node != nil {
			if err := h.node.Stop(); err != nil {
				t.Error(err)
			}
			if t.Failed() {
				t.Logf("calyx-node log:\n%s", h.node.Log())
			}
		}
		if t.Failed() {
			t.Logf("dockerd log:\n%s", d.Log())
		}
	})
	return h
}

func (h *host) start() {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	n, err := hostnode.Start(ctx, h.cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	h.node = n
}

// docker runs the docker CLI against this host's dockerd.
func (h *host) docker(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return h.d.Docker(ctx, args...)
}

func (h *host) mustDocker(args ...string) string {
	h.t.Helper()
	out, err := h.docker(args...)
	if err != nil {
		h.t.Fatalf("docker %s: %v", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(out)
}

func (h *host) ctl(stdin string, args ...string) string {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, stderr, err := h.node.Ctl(ctx, stdin, args...)
	if err != nil {
		h.t.Fatalf("calyxctl %s: %v: %s", strings.Join(args, " "), err, stderr)
	}
	return out
}

// endpoints returns the WorkloadEndpoints as JSON objects.
func (h *host) endpoints() []map[string]any {
	h.t.Helper()
	out := h.ctl("", "get", "wep", "-o", "json")
	if strings.TrimSpace(out) == "" {
		return nil
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		h.t.Fatalf("get wep -o json: %v\n%s", err, out)
	}
	if items, ok := doc["items"].([]any); ok {
		var ws []map[string]any
		for _, it := range items {
			ws = append(ws, it.(map[string]any))
		}
		return ws
	}
	if doc["kind"] == "WorkloadEndpoint" {
		return []map[string]any{doc}
	}
	return nil
}

// endpointOf finds the endpoint of a container (by its full ID).
func (h *host) endpointOf(containerID string) map[string]any {
	h.t.Helper()
	for _, w := range h.endpoints() {
		if w["spec"].(map[string]any)["containerID"] == containerID {
			return w
		}
	}
	return nil
}

// run starts a detached container that sleeps, and returns its ID.
func (h *host) run(args ...string) string {
	h.t.Helper()
	full := append([]string{"run", "-d"}, args...)
	full = append(full, dockerd.BusyboxImage, "sleep", "3600")
	return h.mustDocker(full...)
}

// ip is a container's address on a network.
func (h *host) ip(id, network string) string {
	h.t.Helper()
	return h.mustDocker("inspect", "-f", "{{(index .NetworkSettings.Networks \""+network+"\").IPAddress}}", id)
}

// ping pings from a container, with one probe and a short timeout, and
// reports whether it was answered.
func (h *host) ping(from, to string) bool {
	h.t.Helper()
	_, err := h.docker("exec", from, "ping", "-c", "1", "-W", "2", to)
	return err == nil
}

// addUplinkNoRoute gives netns an interface with the host's address (one
// end of a veth pair whose other end stays there too) and no default
// route.
func addUplinkNoRoute(t *testing.T, netns ns.NetNS, cidr string) {
	t.Helper()
	err := netns.Do(func(ns.NetNS) error {
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "uplink0"}, PeerName: "uplink0-peer"}
		if err := netlink.LinkAdd(veth); err != nil {
			return err
		}
		addr, err := netlink.ParseAddr(cidr)
		if err != nil {
			return err
		}
		for _, name := range []string{"uplink0", "uplink0-peer", "lo"} {
			l, err := netlink.LinkByName(name)
			if err != nil {
				return err
			}
			if name == "uplink0" {
				if err := netlink.AddrAdd(l, addr); err != nil {
					return err
				}
			}
			if err := netlink.LinkSetUp(l); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// checkClean says no endpoint is left and calyxctl ipam check finds
// nothing wrong.
func (h *host) checkClean() {
	h.t.Helper()
	if eps := h.endpoints(); len(eps) != 0 {
		h.t.Errorf("%d endpoints are left: %v", len(eps), eps)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, stderr, err := h.node.Ctl(ctx, "", "ipam", "check")
	if err != nil {
		h.t.Errorf("calyxctl ipam check: %v\n%s%s", err, out, stderr)
	}
}

// plugin posts a plugin API call straight to calyx-node's socket, as
// dockerd would, and decodes the answer into out (nil: ignored).
func (h *host) plugin(sock, method string, body, out any) {
	h.t.Helper()
	b, _ := json.Marshal(body)
	path := filepath.Join(h.d.PluginDir(), sock+".sock")
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}, Timeout: 30 * time.Second}
	defer c.CloseIdleConnections()
	resp, err := c.Post("http://plugin/"+method, "application/json", bytes.NewReader(b))
	if err != nil {
		h.t.Fatalf("%s: %v", method, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		h.t.Fatalf("%s: %s: %s", method, resp.Status, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			h.t.Fatalf("%s: %v: %s", method, err, raw)
		}
	}
}
