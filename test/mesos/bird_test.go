package mesos

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/calyx-net/calyx/internal/testnet"
	"github.com/calyx-net/calyx/test/hostnode"
)

// A real BIRD 2 (Debian bird2) beside the Calyx cluster, running in the
// router's namespace where it holds 192.0.2.1 and 198.51.100.1.

// startBIRD runs bird with conf in netns until the test ends and returns
// a birdc for it.
func startBIRD(t *testing.T, netns ns.NetNS, conf string) func(args ...string) string {
	t.Helper()
	if _, err := exec.LookPath("bird"); err != nil {
		t.Skip("bird is not installed (Debian bird2; hack/install-deps.sh installs it)")
	}
	dir := t.TempDir()
	sock, pid := filepath.Join(dir, "bird.ctl"), filepath.Join(dir, "bird.pid")
	if err := os.WriteFile(filepath.Join(dir, "bird.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bird", "-f", "-c", filepath.Join(dir, "bird.conf"), "-s", sock, "-P", pid)
	out := &testnet.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := hostnode.StartIn(netns, cmd); err != nil {
		t.Fatalf("starting bird: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("bird output:\n%s", out)
		}
	})
	birdc := func(args ...string) string {
		o, _ := exec.Command("birdc", append([]string{"-s", sock}, args...)...).CombinedOutput()
		return string(o)
	}
	testnet.WaitFor(t, "bird answers on its socket", func() bool { return strings.Contains(birdc("show", "status"), "Daemon is up") })
	return birdc
}

// BIRD as a top-of-rack router: an eBGP peer of h1 and h2 (AS 64513 to
// their 64512). It learns their blocks with their addresses as next hops,
// and the route it advertises (203.0.113.0/24) is installed on both.
func TestBIRDExternalPeer(t *testing.T) {
	agents, router := newCluster(t, `apiVersion: calyx.dev/v1
kind: BGPPeer
metadata: {name: tor-h1}
spec: {node: h1, peerIP: 192.0.2.1, asNumber: 64513}
---
apiVersion: calyx.dev/v1
kind: BGPPeer
metadata: {name: tor-h2}
spec: {node: h2, peerIP: 192.0.2.1, asNumber: 64513}
`)
	birdc := startBIRD(t, router, `router id 192.0.2.1;
protocol device {}
protocol static outside { ipv4; route 203.0.113.0/24 blackhole; }
template bgp calyx {
  local 192.0.2.1 as 64513;
  ipv4 { import all; export where proto = "outside"; };
}
protocol bgp h1 from calyx { neighbor 192.0.2.11 as 64512; }
protocol bgp h2 from calyx { neighbor 192.0.2.12 as 64512; }
`)
	c1 := agents[0].launch(t, "c1", nil)
	c2 := agents[1].launch(t, "c2", nil)
	for _, c := range []struct {
		task *task
		via  string
	}{{c1, "192.0.2.11"}, {c2, "192.0.2.12"}} {
		block := blockOf(t, c.task.ip)
		testnet.WaitFor(t, "bird learns "+block+" via "+c.via, func() bool {
			out := birdc("show", "route", "for", c.task.ip)
			return strings.Contains(out, block) && strings.Contains(out, "via "+c.via)
		})
	}
	for _, a := range agents[:2] {
		testnet.WaitFor(t, a.node.Name()+" installs the route bird advertises", func() bool {
			return strings.Contains(routeGet(t, a, "203.0.113.9"), "via 192.0.2.1 dev eth0")
		})
		out := ipRoute(t, a, "show", "203.0.113.0/24")
		if !strings.Contains(out, "proto 80") {
			t.Errorf("%s: the learned route is not Calyx's: %q", a.node.Name(), out)
		}
	}
	// h3 has no session to bird: it does not have the route.
	if out := ipRoute(t, agents[2], "show", "203.0.113.0/24"); strings.TrimSpace(out) != "" {
		t.Errorf("h3 installed %q without a session to bird", out)
	}
}

// BIRD as the route reflector of the cluster, with the node-to-node mesh
// off: every host peers only with BIRD (iBGP, AS 64512, rr client), and
// h1 and h2 learn each other's blocks through it (next hop kept), so
// their containers meet.
func TestBIRDRouteReflector(t *testing.T) {
	agents, router := newCluster(t, `apiVersion: calyx.dev/v1
kind: BGPConfiguration
metadata: {name: default}
spec: {nodeToNodeMeshEnabled: false}
---
apiVersion: calyx.dev/v1
kind: BGPPeer
metadata: {name: reflector}
spec: {peerIP: 192.0.2.1, asNumber: 64512}
`)
	birdc := startBIRD(t, router, `router id 192.0.2.1;
protocol device {}
template bgp rrc {
  local 192.0.2.1 as 64512;
  rr client;
  rr cluster id 192.0.2.1;
  ipv4 { import all; export all; };
}
protocol bgp h1 from rrc { neighbor 192.0.2.11 as 64512; }
protocol bgp h2 from rrc { neighbor 192.0.2.12 as 64512; }
protocol bgp h3 from rrc { neighbor 198.51.100.13 as 64512; }
`)
	c1 := agents[0].launch(t, "c1", nil)
	c2 := agents[1].launch(t, "c2", nil)
	b2 := blockOf(t, c2.ip)
	testnet.WaitFor(t, "bird reflects "+b2, func() bool { return strings.Contains(birdc("show", "route", "for", c2.ip), b2) })
	testnet.WaitFor(t, "h1 routes h2's block through the reflector", func() bool {
		return strings.Contains(ipRoute(t, agents[0], "show", b2), "via 192.0.2.12 dev eth0 proto 80")
	})
	eventually(t, "c1 pings c2", func() bool { return pings(t, c1, c2.ip) })
	// No session between the hosts themselves: only to the reflector.
	for _, a := range agents {
		st, _, err := a.node.Ctl(t.Context(), "", "node", "status", "--socket", a.node.Socket())
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(st, "bgppeer/reflector 192.0.2.1") || strings.Contains(st, "mesh:") {
			t.Errorf("%s: sessions should be the reflector's only:\n%s", a.node.Name(), st)
		}
	}
}

// blockOf returns the /26 holding an address of the test pools.
func blockOf(t *testing.T, ip string) string {
	t.Helper()
	parts := strings.Split(ip, ".")
	if len(parts) != 4 {
		t.Fatalf("not an IPv4 address: %q", ip)
	}
	var last int
	if _, err := fmt.Sscan(parts[3], &last); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%s.%s.%s.%d/26", parts[0], parts[1], parts[2], last/64*64)
}

// ipRoute runs `ip route ARGS` in a host's namespace.
func ipRoute(t *testing.T, a *agent, args ...string) string {
	t.Helper()
	cmd := exec.Command("ip", append([]string{"route"}, args...)...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := hostnode.RunIn(a.node.NS(), cmd); err != nil {
		t.Fatalf("ip route %s: %v: %s", strings.Join(args, " "), err, out.String())
	}
	return out.String()
}
