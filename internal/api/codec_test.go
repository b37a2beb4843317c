package api

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// loadTestdata decodes every testdata/calico-*.yaml file.
func loadTestdata(t *testing.T) []Resource {
	t.Helper()
	files, err := filepath.Glob("testdata/calico-*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata: %v", err)
	}
	var out []Resource
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		rs, err := DecodeFile(filepath.Base(f), b)
		if err != nil {
			t.Fatalf("decoding %s: %v", f, err)
		}
		out = append(out, rs...)
	}
	return out
}

// fullExamples returns one valid, richly populated resource of every kind.
func fullExamples() []Resource {
	return []Resource{
		testPool(func(p *IPPool) {
			p.Metadata.Labels = map[string]string{"zone": "a"}
			p.Metadata.ResourceVersion = "42"
			p.Spec = IPPoolSpec{CIDR: "10.0.0.0/16", VXLANMode: EncapCrossSubnet, NATOutgoing: true, Disabled: true,
				DisableBGPExport: true, BlockSize: 24, NodeSelector: "zone == 'a'", AllowedUses: []string{"Workload"}}
		}),
		testIPAMConfig(func(c *IPAMConfiguration) {
			c.Spec = IPAMConfigurationSpec{StrictAffinity: true, AutoAllocateBlocks: ptr(false), MaxBlocksPerHost: 8}
		}),
		testNode(func(n *Node) {
			n.Spec.BGP = &NodeBGPSpec{IPv4Address: "10.0.0.1/24", IPv6Address: "fd00::1/64", ASNumber: ptr(ASNumber(4200000000)),
				IPv4IPIPTunnelAddr: "10.1.0.1", RouteReflectorClusterID: "224.0.0.1"}
			n.Spec.IPv4VXLANTunnelAddr, n.Spec.IPv6VXLANTunnelAddr, n.Spec.VXLANTunnelMACAddr = "10.1.0.65", "fd00:1::65", "66:f3:9a:01:02:03"
			n.Spec.OrchRefs = []OrchRef{{Orchestrator: "mesos", NodeName: "agent-1"}}
		}),
		testProfile(func(p *Profile) { p.Spec.LabelsToApply = map[string]string{"calyx.dev/network": "net-a", "tag": ""} }),
		testGNP(func(g *GlobalNetworkPolicy) {
			g.Metadata.Annotations = map[string]string{"calyx.dev/owner": "team net: ops"}
			g.Spec.Order = ptr(12.5)
			g.Spec.NamespaceSelector, g.Spec.ServiceAccountSelector = "all()", "has(sa)"
			g.Spec.Ingress = append(g.Spec.Ingress, Rule{
				Action: ActionDeny, IPVersion: ptr(4), Protocol: &Protocol{Name: ProtocolICMP}, NotProtocol: &Protocol{Number: 58},
				ICMP: &ICMPFields{Type: ptr(8), Code: ptr(0)}, NotICMP: &ICMPFields{Type: ptr(0)},
				Source: EntityRule{Nets: []string{"10.0.0.0/8"}, NotNets: []string{"10.1.0.0/16"}, Selector: "a == 'b'", NotSelector: "has(c)",
					NamespaceSelector: "global()", ServiceAccounts: &ServiceAccounts{Names: []string{"x"}, Selector: "y == 'z'"}},
				HTTP:     &HTTPMatch{Methods: []string{"GET"}, Paths: []map[string]string{{"prefix": "/api"}}},
				Metadata: &RuleMetadata{Annotations: map[string]string{"why": "no pings from outside"}},
			}, Rule{Action: ActionAllow, Protocol: &Protocol{Name: ProtocolUDP},
				Destination: EntityRule{Ports: []Port{SinglePort(53), {MinPort: 1000, MaxPort: 2000}, {PortName: "dns"}}, NotPorts: []Port{SinglePort(0)}}})
			g.Spec.Egress = []Rule{{Action: ActionPass}}
			g.Spec.ApplyOnForward, g.Spec.DoNotTrack = true, true
		}),
		testGNS(func(g *GlobalNetworkSet) { g.Spec.Nets = []string{"198.51.100.0/28", "2001:db8::/32"} }),
		testWEP(func(w *WorkloadEndpoint) {
			w.Spec.ContainerID, w.Spec.Pod, w.Spec.IPv6Gateway = "abc123", "pod-1", "fe80::1"
			w.Spec.IPNATs = []IPNAT{{InternalIP: "10.0.0.5", ExternalIP: "203.0.113.5"}}
			w.Spec.Ports = []EndpointPort{{Name: "http", Protocol: Protocol{Name: ProtocolTCP}, Port: 80, HostPort: 8080, HostIP: "0.0.0.0"}}
		}),
		testHEP(func(h *HostEndpoint) {
			h.Spec.InterfaceName = "*"
			h.Spec.Profiles = []string{"hosts"}
			h.Spec.Ports = []EndpointPort{{Name: "ssh", Protocol: Protocol{Name: ProtocolSCTP}, Port: 22}}
		}),
		testPeer(func(b *BGPPeer) {
			b.Spec = BGPPeerSpec{NodeSelector: "rack == 'r1'", PeerIP: "[fd00::1]:1790", ASNumber: 65001, KeepOriginalNextHop: true, SourceAddress: "None"}
		}),
		testBGPConfig(func(b *BGPConfiguration) {
			b.Spec = BGPConfigurationSpec{LogSeverityScreen: "Error", NodeToNodeMeshEnabled: ptr(false), ASNumber: ptr(ASNumber(65000)), ListenPort: 1790,
				ServiceClusterIPs: []ServiceCIDR{{CIDR: "10.96.0.0/12"}}, ServiceExternalIPs: []ServiceCIDR{{CIDR: "fd00:96::/112"}},
				Communities:          []Community{{Name: "c1", Value: "65000:100"}},
				PrefixAdvertisements: []PrefixAdvertise{{CIDR: "10.96.0.0/12", Communities: []string{"c1", "1:2:3"}}}}
		}),
		testNodeConfig(func(n *NodeConfiguration) {
			n.Metadata.Name = "node.host-1"
			n.Spec = NodeConfigurationSpec{LogSeverityScreen: "Fatal", InterfacePrefix: "calyx", DefaultEndpointToHostAction: "Return",
				IPv6Support: ptr(true), VXLANEnabled: ptr(true), VXLANVNI: ptr(4096), VXLANPort: ptr(4789), VXLANMTU: ptr(1450),
				RouteRefreshInterval: "90s", NftablesRefreshInterval: "3m", EndpointGCGracePeriod: "10m", ReportingInterval: "30s",
				FailsafeInboundHostPorts: &[]ProtoPort{{Protocol: "tcp", Port: 22, Net: "10.0.0.0/8"}}, FailsafeOutboundHostPorts: &[]ProtoPort{},
				PrometheusMetricsEnabled: ptr(true), PrometheusMetricsPort: ptr(9091), HealthEnabled: ptr(false), HealthPort: ptr(9099)}
		}),
	}
}

// TestRoundTrip encodes every kind, decodes it, and expects the same
// resource and the same text again, in YAML and JSON, singly and as a List.
func TestRoundTrip(t *testing.T) {
	all := append(fullExamples(), loadTestdata(t)...)
	kinds := map[string]bool{}
	for _, r := range all {
		r.SetDefaults()
		if err := r.Validate(); err != nil {
			t.Fatalf("example is invalid: %v", err)
		}
		kinds[r.GetKind()] = true
	}
	if len(kinds) != len(Kinds()) {
		t.Fatalf("examples cover %d kinds, want all %d", len(kinds), len(Kinds()))
	}
	encoders := map[string]func([]Resource) ([]byte, error){"yaml": EncodeYAML, "json": EncodeJSON}
	for format, encode := range encoders {
		check := func(t *testing.T, rs []Resource) {
			t.Helper()
			first, err := encode(rs)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Decode(first)
			if err != nil {
				t.Fatalf("decoding:\n%s\nerror: %v", first, err)
			}
			if diff := cmp.Diff(rs, got); diff != "" {
				t.Errorf("decode(encode(r)) != r (-want +got):\n%s\nencoded:\n%s", diff, first)
			}
			second, err := encode(got)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(first), string(second)); diff != "" {
				t.Errorf("re-encoding changed the text (-first +second):\n%s", diff)
			}
		}
		for _, r := range all {
			t.Run(format+"/"+r.GetKind()+"/"+r.GetObjectMeta().Name, func(t *testing.T) { check(t, []Resource{r}) })
		}
		t.Run(format+"/list", func(t *testing.T) { check(t, all) })
	}
}

func TestEncodeShape(t *testing.T) {
	p := testPool(nil)
	p.SetDefaults()
	p.Metadata.ResourceVersion = "7"
	p.TypeMeta = TypeMeta{}
	y, err := EncodeYAML([]Resource{p})
	if err != nil {
		t.Fatal(err)
	}
	want := `apiVersion: calyx.dev/v1
kind: IPPool
metadata:
  name: pool-a
  resourceVersion: "7"
spec:
  allowedUses:
  - Workload
  - Tunnel
  blockSize: 26
  cidr: 10.0.0.0/16
  ipipMode: Never
  vxlanMode: Never
`
	if diff := cmp.Diff(want, string(y)); diff != "" {
		t.Errorf("EncodeYAML (-want +got):\n%s", diff)
	}
	if p.TypeMeta != (TypeMeta{}) {
		t.Errorf("EncodeYAML modified its argument")
	}
	l, err := EncodeYAML([]Resource{p, testProfile(nil)})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(l), "apiVersion: calyx.dev/v1\nitems:\n") || !strings.HasSuffix(string(l), "kind: List\n") {
		t.Errorf("several resources should print as a List, got:\n%s", l)
	}
	empty, err := EncodeJSON(nil)
	if err != nil {
		t.Fatal(err)
	}
	if rs, err := Decode(empty); err != nil || len(rs) != 0 {
		t.Errorf("empty list %s decodes to %v, %v", empty, rs, err)
	}
	if _, err := EncodeYAML([]Resource{nil}); err == nil {
		t.Errorf("encoding a nil resource: want an error")
	}
}
