package api

import (
	"encoding/json"
	"testing"
)

func TestValidateWorkloadEndpoint(t *testing.T) {
	wep := testWEP
	runValidateCases(t, []validateCase{
		{name: "base", r: wep(nil)},
		{name: "containerID instead of workload", r: wep(func(w *WorkloadEndpoint) {
			w.Spec.Orchestrator, w.Spec.Workload, w.Spec.ContainerID = OrchestratorCNI, "", "0123abcd"
		})},
		{name: "node missing", r: wep(func(w *WorkloadEndpoint) { w.Spec.Node = "" }), path: "spec.node", msg: "must be set"},
		{name: "orchestrator missing", r: wep(func(w *WorkloadEndpoint) { w.Spec.Orchestrator = "" }), path: "spec.orchestrator", msg: "must be set"},
		{name: "workload and containerID missing", r: wep(func(w *WorkloadEndpoint) { w.Spec.Workload = "" }), path: "spec.workload", msg: "workload or containerID"},
		{name: "endpoint missing", r: wep(func(w *WorkloadEndpoint) { w.Spec.Endpoint = "" }), path: "spec.endpoint", msg: "must be set"},
		{name: "ifname 15", r: wep(func(w *WorkloadEndpoint) { w.Spec.InterfaceName = "calyx0123456789" })},
		{name: "ifname too long", r: wep(func(w *WorkloadEndpoint) { w.Spec.InterfaceName = "calyx0123456789a" }), path: "spec.interfaceName", msg: "at most 15"},
		{name: "ifname slash", r: wep(func(w *WorkloadEndpoint) { w.Spec.InterfaceName = "veth/1" }), path: "spec.interfaceName", msg: "'/'"},
		{name: "ifname space", r: wep(func(w *WorkloadEndpoint) { w.Spec.InterfaceName = "veth 1" }), path: "spec.interfaceName", msg: "whitespace"},
		{name: "ifname dot", r: wep(func(w *WorkloadEndpoint) { w.Spec.InterfaceName = "." }), path: "spec.interfaceName", msg: "not a valid Linux interface name"},
		{name: "mac bad", r: wep(func(w *WorkloadEndpoint) { w.Spec.MAC = "ee:ee:ee" }), path: "spec.mac", msg: "not a valid MAC address"},
		{name: "ipNetworks bare ip normalised", r: wep(func(w *WorkloadEndpoint) { w.Spec.IPNetworks = []string{"10.0.0.5"} })},
		{name: "ipNetworks not host", r: wep(func(w *WorkloadEndpoint) { w.Spec.IPNetworks = []string{"10.0.0.5/32", "10.0.0.0/24"} }),
			path: "spec.ipNetworks[1]", msg: "must be a single address (/32)"},
		{name: "ipNetworks v6 not host", r: wep(func(w *WorkloadEndpoint) { w.Spec.IPNetworks = []string{"fd00::5/64"} }),
			path: "spec.ipNetworks[0]", msg: "(/128)"},
		{name: "ipNetworks bad", r: wep(func(w *WorkloadEndpoint) { w.Spec.IPNetworks = []string{"10.0.0.256/32"} }),
			path: "spec.ipNetworks[0]", msg: "not a valid CIDR"},
		{name: "ipNATs", r: wep(func(w *WorkloadEndpoint) {
			w.Spec.IPNATs = []IPNAT{{InternalIP: "10.0.0.5", ExternalIP: "203.0.113.1"}}
		})},
		{name: "ipNATs internal not ours", r: wep(func(w *WorkloadEndpoint) {
			w.Spec.IPNATs = []IPNAT{{InternalIP: "10.0.0.6", ExternalIP: "203.0.113.1"}}
		}),
			path: "spec.ipNATs[0].internalIP", msg: "not one of the endpoint's ipNetworks"},
		{name: "ipNATs external bad", r: wep(func(w *WorkloadEndpoint) { w.Spec.IPNATs = []IPNAT{{InternalIP: "10.0.0.5", ExternalIP: "x"}} }),
			path: "spec.ipNATs[0].externalIP", msg: "not a valid IP address"},
		{name: "ipNATs internal bad", r: wep(func(w *WorkloadEndpoint) { w.Spec.IPNATs = []IPNAT{{InternalIP: "", ExternalIP: "203.0.113.1"}} }),
			path: "spec.ipNATs[0].internalIP", msg: "not a valid IP address"},
		{name: "ipv4Gateway bad", r: wep(func(w *WorkloadEndpoint) { w.Spec.IPv4Gateway = "fe80::1" }), path: "spec.ipv4Gateway", msg: "not an IPv4 address"},
		{name: "ipv6Gateway", r: wep(func(w *WorkloadEndpoint) { w.Spec.IPv6Gateway = "fe80::1" })},
		{name: "ipv6Gateway bad", r: wep(func(w *WorkloadEndpoint) { w.Spec.IPv6Gateway = "gateway" }), path: "spec.ipv6Gateway", msg: "not a valid IP address"},
		{name: "profiles empty name", r: wep(func(w *WorkloadEndpoint) { w.Spec.Profiles = []string{"net-a", ""} }), path: "spec.profiles[1]", msg: "must not be empty"},
		{name: "profiles bad name", r: wep(func(w *WorkloadEndpoint) { w.Spec.Profiles = []string{"Net A"} }), path: "spec.profiles[0]", msg: "lower-case"},
		{name: "ports", r: wep(func(w *WorkloadEndpoint) {
			w.Spec.Ports = []EndpointPort{{Name: "http", Protocol: Protocol{Name: "tcp"}, Port: 80}, {Name: "http", Protocol: Protocol{Name: "UDP"}, Port: 80}}
		})},
		{name: "port name bad", r: wep(func(w *WorkloadEndpoint) {
			w.Spec.Ports = []EndpointPort{{Name: "HTTP", Protocol: Protocol{Name: "TCP"}, Port: 80}}
		}), path: "spec.ports[0].name", msg: "named port"},
		{name: "port name missing", r: wep(func(w *WorkloadEndpoint) {
			w.Spec.Ports = []EndpointPort{{Protocol: Protocol{Name: "TCP"}, Port: 80}}
		}), path: "spec.ports[0].name", msg: "must be set (only a port mapping"},
		{name: "port mappings without names", r: wep(func(w *WorkloadEndpoint) {
			w.Spec.Ports = []EndpointPort{
				{Protocol: Protocol{Name: "TCP"}, Port: 80, HostPort: 31001},
				{Protocol: Protocol{Name: "UDP"}, Port: 80, HostPort: 31001},
				{Protocol: Protocol{Name: "TCP"}, Port: 80, HostPort: 31002},
				{Name: "http", Protocol: Protocol{Name: "TCP"}, Port: 80, HostPort: 31003},
			}
		})},
		{name: "port mapping host port twice", r: wep(func(w *WorkloadEndpoint) {
			w.Spec.Ports = []EndpointPort{
				{Protocol: Protocol{Name: "TCP"}, Port: 80, HostPort: 31001},
				{Protocol: Protocol{Name: "UDP"}, Port: 53, HostPort: 31001},
				{Name: "web", Protocol: Protocol{Name: "tcp"}, Port: 8080, HostPort: 31001},
			}
		}), path: "spec.ports[2].hostPort", msg: "31001 with protocol TCP is already mapped by spec.ports[0]"},
		{name: "port mapping container port missing", r: wep(func(w *WorkloadEndpoint) {
			w.Spec.Ports = []EndpointPort{{Protocol: Protocol{Name: "TCP"}, HostPort: 31001}}
		}), path: "spec.ports[0].port", msg: "1-65535"},
		{name: "port protocol bad", r: wep(func(w *WorkloadEndpoint) {
			w.Spec.Ports = []EndpointPort{{Name: "ping", Protocol: Protocol{Name: "ICMP"}, Port: 1}}
		}), path: "spec.ports[0].protocol", msg: "must be one of TCP, UDP, SCTP"},
		{name: "port protocol number", r: wep(func(w *WorkloadEndpoint) {
			w.Spec.Ports = []EndpointPort{{Name: "web", Protocol: Protocol{Number: 6}, Port: 1}}
		}), path: "spec.ports[0].protocol", msg: `"6": must be one of`},
		{name: "port zero", r: wep(func(w *WorkloadEndpoint) {
			w.Spec.Ports = []EndpointPort{{Name: "web", Protocol: Protocol{Name: "TCP"}}}
		}), path: "spec.ports[0].port", msg: "1-65535"},
		{name: "port duplicate", r: wep(func(w *WorkloadEndpoint) {
			w.Spec.Ports = []EndpointPort{{Name: "web", Protocol: Protocol{Name: "TCP"}, Port: 80}, {Name: "web", Protocol: Protocol{Name: "tcp"}, Port: 81}}
		}), path: "spec.ports[1].name", msg: "listed twice"},
		{name: "port hostIP bad", r: wep(func(w *WorkloadEndpoint) {
			w.Spec.Ports = []EndpointPort{{Name: "web", Protocol: Protocol{Name: "TCP"}, Port: 80, HostPort: 8080, HostIP: "0.0.0"}}
		}), path: "spec.ports[0].hostIP", msg: "not a valid IP"},
	})
}

func TestValidateHostEndpoint(t *testing.T) {
	hep := testHEP
	runValidateCases(t, []validateCase{
		{name: "base", r: hep(nil)},
		{name: "interface only", r: hep(func(h *HostEndpoint) { h.Spec.ExpectedIPs = nil })},
		{name: "expectedIPs only", r: hep(func(h *HostEndpoint) { h.Spec.InterfaceName = "" })},
		{name: "all interfaces", r: hep(func(h *HostEndpoint) { h.Spec.InterfaceName = "*" })},
		{name: "node missing", r: hep(func(h *HostEndpoint) { h.Spec.Node = "" }), path: "spec.node", msg: "must be set"},
		{name: "neither interface nor IPs", r: hep(func(h *HostEndpoint) { h.Spec.InterfaceName, h.Spec.ExpectedIPs = "", nil }),
			path: "spec.interfaceName", msg: "interfaceName or expectedIPs must be set"},
		{name: "interface bad", r: hep(func(h *HostEndpoint) { h.Spec.InterfaceName = "eth0:1" }), path: "spec.interfaceName", msg: "':'"},
		{name: "expectedIPs bad", r: hep(func(h *HostEndpoint) { h.Spec.ExpectedIPs = []string{"192.168.0.1", "192.168.0.0/24"} }),
			path: "spec.expectedIPs[1]", msg: "not a valid IP address"},
		{name: "expectedIPs v6", r: hep(func(h *HostEndpoint) { h.Spec.ExpectedIPs = []string{"fd00::1"} })},
		{name: "profiles bad", r: hep(func(h *HostEndpoint) { h.Spec.Profiles = []string{"ok", "not_ok"} }), path: "spec.profiles[1]", msg: "profile name"},
		{name: "ports bad", r: hep(func(h *HostEndpoint) {
			h.Spec.Ports = []EndpointPort{{Name: "ssh", Protocol: Protocol{Name: "TCP"}, Port: 22}, {Name: "dns", Protocol: Protocol{Name: "DNS"}, Port: 53}}
		}), path: "spec.ports[1].protocol", msg: "must be one of TCP, UDP, SCTP"},
	})
}

// TestPortMappingJSON checks that a port mapping without a name is written
// without one, so that `calyxctl get wep -o yaml` shows no empty name.
func TestPortMappingJSON(t *testing.T) {
	b, err := json.Marshal(EndpointPort{Protocol: Protocol{Name: ProtocolTCP}, Port: 80, HostPort: 31001})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"protocol":"TCP","port":80,"hostPort":31001}`; string(b) != want {
		t.Errorf("got %s, want %s", b, want)
	}
}
