package docker

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/calyx-net/calyx/internal/testnet"
)

// TestNetworkAndContainers: network create, two containers pinging each
// other, their endpoints, and network rm.
func TestNetworkAndContainers(t *testing.T) {
	h := newHost(t, "docker-1", hostOptions{noDefaultRoute: true})
	h.ctl(pools, "apply", "-f", "-")
	h.mustDocker("network", "create", "-d", "calyx", "--ipam-driver", "calyx-ipam", "frontend")
	a := h.run("--network", "frontend", "--name", "web-a", "--label", "calyx.label/role=web")
	b := h.run("--network", "frontend", "--name", "web-b")
	ipA, ipB := h.ip(a, "frontend"), h.ip(b, "frontend")
	t.Logf("a %s, b %s", ipA, ipB)
	if !strings.HasPrefix(ipA, "10.68.") || !strings.HasPrefix(ipB, "10.68.") {
		t.Fatalf("addresses %s and %s are not from the pool 10.68.0.0/16", ipA, ipB)
	}
	if !h.ping(a, ipB) || !h.ping(b, ipA) {
		t.Errorf("a and b on one Calyx network cannot ping each other")
	}
	w := h.endpointOf(a)
	if w == nil {
		t.Fatalf("no endpoint has container ID %s:\n%v", a, h.endpoints())
	}
	labels := w["metadata"].(map[string]any)["labels"].(map[string]any)
	if labels["role"] != "web" || labels["calyx.dev/network"] != "frontend" {
		t.Errorf("endpoint labels %v: want role=web and calyx.dev/network=frontend", labels)
	}
	h.mustDocker("rm", "-f", a, b)
	h.mustDocker("network", "rm", "frontend")
	h.checkClean()
}

// TestSubnetIPAndIPv6: --subnet picks a pool (and is refused, clearly,
// when none matches), --ip requests an address, and a dual-stack network
// carries IPv6 between containers.
func TestSubnetIPAndIPv6(t *testing.T) {
	h := newHost(t, "docker-2", hostOptions{})
	h.ctl(pools, "apply", "-f", "-")

	out, err := h.docker("network", "create", "-d", "calyx", "--ipam-driver", "calyx-ipam", "--subnet", "10.99.0.0/16", "nopool")
	if err == nil || !strings.Contains(out+err.Error(), "no Calyx IP pool has this CIDR") || !strings.Contains(err.Error(), "docker-ipv4 10.68.0.0/16") {
		t.Errorf("--subnet with no matching pool: got %v, want a refusal that lists the pools", err)
	}
	if _, err := h.docker("network", "inspect", "nopool"); err == nil {
		t.Errorf("the refused network exists")
	}
	_, err = h.docker("network", "create", "-d", "calyx", "--ipam-driver", "calyx-ipam", "--subnet", "10.68.0.0/16", "--ip-range", "10.68.1.0/24", "ranged")
	if err == nil || !strings.Contains(err.Error(), "--ip-range") {
		t.Errorf("--ip-range: got %v, want a refusal naming --ip-range", err)
	}
	_, err = h.docker("network", "create", "-d", "calyx", "frontend-default-ipam")
	if err == nil || !strings.Contains(err.Error(), "needs the IPAM driver calyx-ipam") {
		t.Errorf("the calyx driver with Docker's default IPAM: got %v, want a refusal naming calyx-ipam", err)
	}

	h.mustDocker("network", "create", "-d", "calyx", "--ipam-driver", "calyx-ipam", "--ipv6",
		"--subnet", "10.68.0.0/16", "--subnet", "fd00:68::/48", "dual")
	a := h.run("--network", "dual", "--name", "fixed", "--ip", "10.68.200.5")
	b := h.run("--network", "dual", "--name", "auto")
	if ip := h.ip(a, "dual"); ip != "10.68.200.5" {
		t.Errorf("docker run --ip 10.68.200.5 got %s", ip)
	}
	w := h.endpointOf(a)
	if w == nil {
		t.Fatalf("no endpoint for container %s", a)
	}
	nets := w["spec"].(map[string]any)["ipNetworks"].([]any)
	if len(nets) != 2 || nets[0] != "10.68.200.5/32" || !strings.HasPrefix(nets[1].(string), "fd00:68:") {
		t.Errorf("endpoint ipNetworks %v: want 10.68.200.5/32 and an address of fd00:68::/48", nets)
	}
	v6 := h.mustDocker("inspect", "-f", `{{(index .NetworkSettings.Networks "dual").GlobalIPv6Address}}`, b)
	if !strings.HasPrefix(v6, "fd00:68:") {
		t.Fatalf("container auto has IPv6 address %q, want one of fd00:68::/48", v6)
	}
	if !h.ping(a, h.ip(b, "dual")) {
		t.Errorf("IPv4 ping between containers on the dual-stack network failed")
	}
	if _, err := h.docker("exec", a, "ping", "-6", "-c", "1", "-W", "2", v6); err != nil {
		t.Errorf("IPv6 ping from fixed to auto (%s): %v", v6, err)
		for _, c := range [][]string{{"exec", a, "ip", "-6", "addr"}, {"exec", a, "ip", "-6", "route"}, {"exec", a, "ip", "-6", "neigh"}, {"exec", b, "ip", "-6", "addr"}} {
			out, _ := h.docker(c...)
			t.Logf("%v:\n%s", c, out)
		}
		out, _ := h.d.Command(context.Background(), "sh", "-c", "ip -6 addr; ip -6 route; ip -6 neigh; sysctl net.ipv6.conf.all.forwarding").CombinedOutput()
		t.Logf("host:\n%s", out)
	}
	// --ip of an address in use is refused and leaves nothing behind.
	if _, err := h.docker("run", "--rm", "--network", "dual", "--ip", "10.68.200.5", "calyx-test/busybox", "true"); err == nil {
		t.Errorf("a second container got the address 10.68.200.5 in use")
	}
	h.mustDocker("rm", "-f", a, b)
	h.mustDocker("network", "rm", "dual")
	h.checkClean()
}

// TestLabelsAndPolicy: calyx.label/ labels are on the endpoint before
// the container's first packet, so a policy by label decides that packet.
func TestLabelsAndPolicy(t *testing.T) {
	h := newHost(t, "docker-3", hostOptions{noDefaultRoute: true})
	h.ctl(pools, "apply", "-f", "-")
	h.ctl(`apiVersion: calyx.dev/v1
kind: GlobalNetworkPolicy
metadata: {name: db-from-web}
spec:
  order: 100
  selector: role == "db"
  ingress:
  - action: Allow
    source: {selector: role == "web"}
`, "apply", "-f", "-")
	h.mustDocker("network", "create", "-d", "calyx", "--ipam-driver", "calyx-ipam", "shop")
	db := h.run("--network", "shop", "--name", "db", "--label", "calyx.label/role=db")
	dbIP := h.ip(db, "shop")
	// Each container's first and only packet is the probe: it passes only
	// if the container's label was in force when it was sent.
	probe := func(labels ...string) error {
		args := []string{"run", "--rm", "--network", "shop"}
		for _, l := range labels {
			args = append(args, "--label", l)
		}
		args = append(args, "calyx-test/busybox", "ping", "-c", "1", "-W", "2", dbIP)
		_, err := h.docker(args...)
		return err
	}
	for i := range 3 {
		if err := probe("calyx.label/role=web"); err != nil {
			t.Errorf("run %d: the first packet of a container labelled role=web did not reach db: %v", i, err)
		}
		if err := probe("calyx.label/role=batch"); err == nil {
			t.Errorf("run %d: the first packet of a container labelled role=batch reached db", i)
		}
	}
	// Labels without the prefix are not Calyx's.
	if err := probe("role=web"); err == nil {
		t.Errorf("a container labelled role=web without the calyx.label/ prefix reached db")
	}
	w := h.endpointOf(db)
	if w == nil {
		t.Fatalf("no endpoint for db")
	}
	meta := w["metadata"].(map[string]any)
	if l := meta["labels"].(map[string]any); l["role"] != "db" || l["calyx.dev/orchestrator"] != "libnetwork" {
		t.Errorf("db's endpoint labels %v", l)
	}
	if spec := w["spec"].(map[string]any); spec["workload"] != "db" {
		t.Errorf("db's endpoint spec.workload %v, want the container name db", spec["workload"])
	}
	h.mustDocker("rm", "-f", db)
	h.checkClean()
}

// TestRestarts: a calyx-node restart with containers running keeps them
// connected, and a dockerd restart (which stops its containers) leaks no
// endpoint and no address.
func TestRestarts(t *testing.T) {
	h := newHost(t, "docker-4", hostOptions{})
	h.ctl(pools, "apply", "-f", "-")
	h.mustDocker("network", "create", "-d", "calyx", "--ipam-driver", "calyx-ipam", "web")
	a := h.run("--network", "web", "--name", "web-1")
	b := h.run("--network", "web", "--name", "web-2")
	ipB := h.ip(b, "web")
	if !h.ping(a, ipB) {
		t.Fatalf("web-1 cannot ping web-2 before any restart")
	}

	h.node.Kill()
	if !h.ping(a, ipB) {
		t.Errorf("web-1 cannot ping web-2 while calyx-node is down")
	}
	h.start()
	if !h.ping(a, ipB) {
		t.Errorf("web-1 cannot ping web-2 after calyx-node restarted")
	}
	c := h.run("--network", "web", "--name", "web-3")
	if !h.ping(c, ipB) {
		t.Errorf("a container started after the restart cannot ping web-2")
	}
	if n := len(h.endpoints()); n != 3 {
		t.Errorf("%d endpoints after calyx-node restarted, want 3", n)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := h.d.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if eps := h.endpoints(); len(eps) != 0 {
		t.Errorf("dockerd restarted, its containers stopped, and %d endpoints are left", len(eps))
	}
	h.checkClean()
	// The network survives the restart and serves new containers.
	d := h.run("--network", "web", "--name", "web-4")
	e := h.run("--network", "web", "--name", "web-5")
	if !h.ping(d, h.ip(e, "web")) {
		t.Errorf("containers started after dockerd restarted cannot ping each other")
	}
	h.mustDocker("rm", "-f", d, e, a, b, c)
	h.checkClean()
}

// TestDockerdCrash: dockerd killed with containers running calls no
// plugin; started again, it stops them and releases their endpoints and
// addresses through the plugin, leaving nothing behind.
func TestDockerdCrash(t *testing.T) {
	// A short grace: dockerd may release the addresses before the kernel
	// has taken the sandboxes' veths away, and garbage collection then
	// releases the endpoints it no longer lists.
	h := newHost(t, "docker-5", hostOptions{args: []string{"--gc-grace", "2s"}})
	h.ctl(pools, "apply", "-f", "-")
	h.mustDocker("network", "create", "-d", "calyx", "--ipam-driver", "calyx-ipam", "web")
	// Stopped at once when dockerd comes back (sleep, as PID 1, ignores
	// SIGTERM).
	a := h.run("--network", "web", "--name", "web-1", "--stop-timeout", "1")
	b := h.run("--network", "web", "--name", "web-2", "--stop-timeout", "1")
	if !h.ping(a, h.ip(b, "web")) {
		t.Fatalf("web-1 cannot ping web-2")
	}
	if err := h.d.Crash(); err != nil {
		t.Fatal(err)
	}
	if n := len(h.endpoints()); n != 2 {
		t.Errorf("%d endpoints after dockerd crashed, want its 2 containers' (nothing told calyx-node)", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := h.d.StartAgain(ctx); err != nil {
		t.Fatal(err)
	}
	testnet.WaitFor(t, "dockerd to release its stopped containers' endpoints", func() bool { return len(h.endpoints()) == 0 })
	t.Logf("calyx-node on dockerd's cleanup:\n%s", grepLines(h.node.Log(), "releas"))
	h.checkClean()
	c := h.run("--network", "web", "--name", "web-3")
	d := h.run("--network", "web", "--name", "web-4")
	if !h.ping(c, h.ip(d, "web")) {
		t.Errorf("containers started after the crash cannot ping each other")
	}
}

// TestGarbageCollection: an endpoint dockerd no longer has (created, and
// then forgotten by a dockerd that died before Join) is released with its
// address after the grace period; a running container's endpoint is not.
func TestGarbageCollection(t *testing.T) {
	h := newHost(t, "docker-6", hostOptions{args: []string{"--gc-grace", "2s"}})
	h.ctl(pools, "apply", "-f", "-")
	h.mustDocker("network", "create", "-d", "calyx", "--ipam-driver", "calyx-ipam", "web")
	a := h.run("--network", "web", "--name", "web-1")
	b := h.run("--network", "web", "--name", "web-2")
	netID := h.mustDocker("network", "inspect", "-f", "{{.Id}}", "web")

	// libnetwork's first two calls for an endpoint dockerd then forgets.
	var addr struct{ Address string }
	h.plugin("calyx-ipam", "IpamDriver.RequestAddress", map[string]any{"PoolID": "calyx-ipv4"}, &addr)
	h.plugin("calyx", "NetworkDriver.CreateEndpoint", map[string]any{"NetworkID": netID, "EndpointID": strings.Repeat("ab", 32),
		"Interface": map[string]any{"Address": addr.Address}}, nil)
	if n := len(h.endpoints()); n != 3 {
		t.Fatalf("%d endpoints, want 3", n)
	}
	testnet.WaitFor(t, "the forgotten endpoint to be collected", func() bool { return len(h.endpoints()) == 2 })
	for _, w := range h.endpoints() {
		if id := w["spec"].(map[string]any)["containerID"]; id != a && id != b {
			t.Errorf("endpoint %v is left, not a running container's", w["metadata"].(map[string]any)["name"])
		}
	}
	testnet.WaitFor(t, "calyxctl ipam check to find nothing (the address released)", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, _, err := h.node.Ctl(ctx, "", "ipam", "check")
		return err == nil
	})
	// Well past the grace period, the running containers still talk.
	time.Sleep(3 * time.Second)
	if !h.ping(a, h.ip(b, "web")) {
		t.Errorf("web-1 cannot ping web-2 after garbage collection ran")
	}
	h.mustDocker("rm", "-f", a, b)
	h.checkClean()
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestNetworkNameOption: -o calyx.network=NAME makes a Docker network of
// another name one Calyx network with NAME, also after calyx-node
// restarts (when the name comes from dockerd).
func TestNetworkNameOption(t *testing.T) {
	h := newHost(t, "docker-7", hostOptions{})
	h.ctl(pools, "apply", "-f", "-")
	h.mustDocker("network", "create", "-d", "calyx", "--ipam-driver", "calyx-ipam", "-o", "calyx.network=shared", "local-name")
	a := h.run("--network", "local-name", "--name", "before")
	h.node.Kill()
	h.start()
	b := h.run("--network", "local-name", "--name", "after")
	for _, id := range []string{a, b} {
		w := h.endpointOf(id)
		if w == nil {
			t.Fatalf("no endpoint for container %s", id)
		}
		labels := w["metadata"].(map[string]any)["labels"].(map[string]any)
		profiles := w["spec"].(map[string]any)["profiles"].([]any)
		if labels["calyx.dev/network"] != "shared" || len(profiles) != 1 || profiles[0] != "shared" {
			t.Errorf("endpoint of %s: network label %v, profiles %v; want shared", id, labels["calyx.dev/network"], profiles)
		}
	}
	if !h.ping(b, h.ip(a, "local-name")) {
		t.Errorf("the containers on the network cannot ping each other")
	}
	_, err := h.docker("network", "create", "-d", "calyx", "--ipam-driver", "calyx-ipam", "-o", "mtu=1400", "bad-option")
	if err == nil || !strings.Contains(err.Error(), "option -o mtu") {
		t.Errorf("an unknown -o option: got %v, want a refusal naming it", err)
	}
	h.mustDocker("rm", "-f", a, b)
	h.checkClean()
}
