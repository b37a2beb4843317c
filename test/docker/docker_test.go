package docker

import (
	"strings"
	"testing"
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
	if eps := h.endpoints(); len(eps) != 0 {
		t.Errorf("endpoints left after the containers were removed: %v", eps)
	}
}
