package agent

import (
	"strings"
	"testing"

	"github.com/calyx-net/calyx/internal/dataplane/route"
	"github.com/calyx-net/calyx/internal/localapi"
)

func TestEndpointName(t *testing.T) {
	for _, tc := range []struct {
		node, orch, cid, ifname string
		want                    string
	}{
		{"host-1", "mesos", "0f7c3d2e-2b1e-4c8a-9d1f-5e6a7b8c9d0e", "eth0", "host--1-mesos-0f7c3d2e--2b1e--4c8a--9d1f--5e6a7b8c9d0e-eth0"},
		{"node.example.com", "cni", "cnitool-1a2b3c", "eth1", "node.example.com-cni-cnitool--1a2b3c-eth1"},
		// Nested Mesos container IDs keep their dot.
		{"n1", "mesos", "parent.child", "eth0", "n1-mesos-parent.child-eth0"},
		// Capitals and '_' would be lost: hashed, with a readable prefix.
		{"n1", "cni", "Container_A", "eth0", "n1-cni-container-a-eth0-" + hashedName("n1-cni-Container_A-eth0")[len("n1-cni-container-a-eth0-"):]},
	} {
		got := endpointName(tc.node, tc.orch, tc.cid, tc.ifname)
		if got != tc.want {
			t.Errorf("endpointName(%q, %q, %q, %q) = %q, want %q", tc.node, tc.orch, tc.cid, tc.ifname, got, tc.want)
		}
		if !isDNSSubdomain(got) {
			t.Errorf("%q is not a valid name", got)
		}
	}
	// Distinct attachments that differ only in case get distinct names.
	if endpointName("n", "cni", "abc", "eth0") == endpointName("n", "cni", "ABC", "eth0") {
		t.Error("container IDs differing in case map to one name")
	}
	// A doubled dash keeps segments apart: ("a-b","c") vs ("a","b-c").
	if endpointName("n", "cni", "a-b", "c") == endpointName("n", "cni", "a", "b-c") {
		t.Error("dash escaping is ambiguous")
	}
	long := endpointName("n", "cni", strings.Repeat("a", 300), "eth0")
	if !isDNSSubdomain(long) || len(long) > 63 {
		t.Errorf("a long container ID gives %q", long)
	}
}

func TestProfileAndLabelMapping(t *testing.T) {
	for _, tc := range []struct {
		network                string
		profileKept, labelKept bool
	}{
		{network: "calyx", profileKept: true, labelKept: true},
		{network: "net1.prod", profileKept: true, labelKept: true},
		{network: "My_Net", labelKept: true},
		{network: "-weird-", profileKept: false, labelKept: false},
		{network: strings.Repeat("n", 70), profileKept: false, labelKept: false},
	} {
		p, l := profileName(tc.network), networkLabelValue(tc.network)
		if (p == tc.network) != tc.profileKept || !isDNSSubdomain(p) {
			t.Errorf("profileName(%q) = %q", tc.network, p)
		}
		if (l == tc.network) != tc.labelKept || !isLabelValue(l) {
			t.Errorf("networkLabelValue(%q) = %q", tc.network, l)
		}
	}
	if got := profileName("My_Net"); !strings.HasPrefix(got, "my-net-") || len(got) != len("my-net-")+16 {
		t.Errorf("profileName(My_Net) = %q, want my-net-<16 hex>", got)
	}
	if profileName("My_Net") == profileName("my-net") {
		t.Error("My_Net and my-net share a profile")
	}
}

func TestVethName(t *testing.T) {
	a := vethName("calyx.0f7c.eth0")
	if len(a) != 15 || !strings.HasPrefix(a, "calyx") {
		t.Errorf("vethName = %q, want calyx + 10 hex", a)
	}
	if a != vethName("calyx.0f7c.eth0") || a == vethName("calyx.0f7c.eth1") {
		t.Error("vethName is not a function of the handle")
	}
}

func TestContainerMAC(t *testing.T) {
	a, b := containerMAC("net1.c1.eth0"), containerMAC("net1.c1.eth1")
	if len(a) != 6 || a[0] != 0x02 {
		t.Errorf("containerMAC = %s, want 6 bytes starting 02 (locally administered, unicast)", a)
	}
	if a.String() != containerMAC("net1.c1.eth0").String() {
		t.Error("containerMAC is not stable")
	}
	if a.String() == b.String() {
		t.Errorf("distinct handles share MAC %s", a)
	}
}

// The plugin derives host veth names with localapi.HostIfPrefix; the
// dataplane owns the links that start with route.InterfacePrefix: one
// prefix.
func TestHostIfPrefix(t *testing.T) {
	if localapi.HostIfPrefix != route.InterfacePrefix {
		t.Errorf("localapi.HostIfPrefix %q, route.InterfacePrefix %q: the plugin's veths would not be the dataplane's", localapi.HostIfPrefix, route.InterfacePrefix)
	}
	if got := vethName("net.ctr.eth0"); !strings.HasPrefix(got, route.InterfacePrefix) || len(got) != 15 {
		t.Errorf("vethName = %q", got)
	}
}
