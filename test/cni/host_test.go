package cni

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/calyx-net/calyx/internal/testnet"
	"github.com/calyx-net/calyx/test/hostnode"
)

var allVersions = []string{"0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"}

// refPlugins is where Debian's containernetworking-plugins puts bridge,
// host-local and loopback.
const refPlugins = "/usr/lib/cni"

const pools = `apiVersion: calyx.dev/v1
kind: IPPool
metadata: {name: test-ipv4}
spec: {cidr: 10.66.0.0/16, blockSize: 26}
---
apiVersion: calyx.dev/v1
kind: IPPool
metadata: {name: test-ipv6}
spec: {cidr: "fd66:cafe::/48", blockSize: 122}
`

// host is a network namespace standing for a host, with calyx-node
// running in it and the test pools applied.
type host struct {
	ns   ns.NetNS
	node *hostnode.Node
}

func newHost(t *testing.T) *host {
	t.Helper()
	testnet.RequireRoot(t)
	h := &host{ns: testnet.NewNS(t)}
	// Not t.TempDir(): calyx-node's socket goes here, and unix socket
	// paths are limited to 108 bytes.
	work, err := os.MkdirTemp("", "calyx-") //nolint:usetesting // see above
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(work) })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	h.node, err = hostnode.Start(ctx, hostnode.Config{BinDir: binDir, NS: h.ns, Name: "host-a", WorkDir: work})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := h.node.Stop(); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("calyx-node log:\n%s", h.node.Log())
		}
	})
	h.ctl(t, pools, "apply", "-f", "-")
	return h
}

// ctl runs calyxctl in the host and returns its stdout.
func (h *host) ctl(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, _, err := h.node.Ctl(ctx, stdin, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// weps returns `calyxctl get wep -o yaml`.
func (h *host) weps(t *testing.T) string {
	t.Helper()
	return h.ctl(t, "", "get", "wep", "-o", "yaml")
}

// cniPath is CNI_PATH: Calyx's binaries, then Debian's.
func cniPath() string { return binDir + string(os.PathListSeparator) + refPlugins }

// calyxConf is a calyx network config for this host's calyx-node.
func (h *host) calyxConf(version, name string, v6 bool) map[string]any {
	ipam := map[string]any{"type": "calyx-ipam"}
	if v6 {
		ipam["assign_ipv6"] = "true"
	}
	return map[string]any{"cniVersion": version, "name": name, "type": "calyx", "mtu": 1450,
		"log_level": "debug", "agent_socket": h.node.Socket(), "ipam": ipam}
}

// writeConf writes conf into dir as NAME.conf, or as NAME.conflist with
// conf as its only plugin.
func writeConf(t *testing.T, dir string, conf map[string]any, list bool) string {
	t.Helper()
	var b []byte
	var err error
	name := conf["name"].(string)
	path := filepath.Join(dir, name+".conf")
	if list {
		path += "list"
		plugin := map[string]any{}
		for k, v := range conf {
			if k != "cniVersion" && k != "name" {
				plugin[k] = v
			}
		}
		b, err = json.Marshal(map[string]any{"cniVersion": conf["cniVersion"], "name": name, "plugins": []any{plugin}})
	} else {
		b, err = json.Marshal(conf)
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// cnitool finds cnitool in PATH or $(go env GOPATH)/bin.
func cnitool(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("cnitool"); err == nil {
		return p
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		p := filepath.Join(strings.TrimSpace(string(out)), "bin", "cnitool")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Skip("cnitool not found in PATH or $(go env GOPATH)/bin: go install github.com/containernetworking/cni/cnitool@v1.3.0")
	return ""
}

// runCnitool runs cnitool in the host namespace and returns its stdout.
func (h *host) runCnitool(t *testing.T, tool, confDir string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, tool, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "NETCONFPATH=" + confDir, "CNI_PATH=" + cniPath()}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := hostnode.RunIn(h.ns, cmd); err != nil {
		return out.String(), fmt.Errorf("cnitool %s: %w\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String(), nil
}

// parseResult parses a plugin's stdout as a result of version v.
func parseResult(t *testing.T, v string, out []byte) *types100.Result {
	t.Helper()
	r, err := version.NewResult(v, out)
	if err != nil {
		t.Fatalf("result does not parse as %s: %v\n%s", v, err, out)
	}
	r100, err := types100.NewResultFromResult(r)
	if err != nil {
		t.Fatal(err)
	}
	return r100
}

// firstIP returns the result's first address of the family.
func firstIP(t *testing.T, r types.Result, v4 bool) string {
	t.Helper()
	r100, err := types100.NewResultFromResult(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, ip := range r100.IPs {
		if (ip.Address.IP.To4() != nil) == v4 {
			return ip.Address.IP.String()
		}
	}
	t.Fatalf("result has no IPv%s address: %+v", map[bool]string{true: "4", false: "6"}[v4], r100.IPs)
	return ""
}

// addrs lists the global addresses of eth0 in netns ("" if it is gone).
func addrs(t *testing.T, netns ns.NetNS) []string {
	t.Helper()
	var out []string
	err := netns.Do(func(ns.NetNS) error {
		l, err := netlink.LinkByName("eth0")
		if err != nil {
			return nil
		}
		as, err := netlink.AddrList(l, netlink.FAMILY_ALL)
		for _, a := range as {
			if !a.IP.IsLinkLocalUnicast() {
				out = append(out, a.IPNet.String())
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// ping sends one echo request from netns to ip and fails the test if no
// reply comes back.
func ping(t *testing.T, from ns.NetNS, ip string) {
	t.Helper()
	cmd := exec.Command("ping", "-c", "1", "-W", "3", ip)
	out, err := func() ([]byte, error) {
		var b bytes.Buffer
		cmd.Stdout, cmd.Stderr = &b, &b
		err := hostnode.RunIn(from, cmd)
		return b.Bytes(), err
	}()
	if err != nil {
		if _, lerr := exec.LookPath("ping"); lerr != nil {
			t.Skip("ping not installed: apt-get install iputils-ping")
		}
		t.Errorf("ping %s from %s: %v\n%s", ip, from.Path(), err, out)
	}
}

// atLeast reports whether spec version v is at least min.
func atLeast(v, min string) bool {
	ok, err := version.GreaterThanOrEqualTo(v, min)
	return err == nil && ok
}
