package api

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSetDefaults(t *testing.T) {
	tm := func(kind string) TypeMeta { return TypeMeta{Kind: kind, APIVersion: APIVersion} }
	for _, tc := range []struct {
		name string
		in   Resource
		want Resource
	}{
		{
			name: "ippool v4",
			in:   &IPPool{Spec: IPPoolSpec{CIDR: "10.0.0.0/16"}},
			want: &IPPool{TypeMeta: tm(KindIPPool), Spec: IPPoolSpec{
				CIDR: "10.0.0.0/16", BlockSize: 26, VXLANMode: "Never", IPIPMode: "Never", AllowedUses: []string{"Workload", "Tunnel"},
			}},
		},
		{
			name: "ippool v6 keeps given values, normalises case",
			in:   &IPPool{Spec: IPPoolSpec{CIDR: "fd00::/48", VXLANMode: "always", AllowedUses: []string{"workload"}}},
			want: &IPPool{TypeMeta: tm(KindIPPool), Spec: IPPoolSpec{
				CIDR: "fd00::/48", BlockSize: 122, VXLANMode: "Always", IPIPMode: "Never", AllowedUses: []string{"Workload"},
			}},
		},
		{
			name: "ippool host bits not masked",
			in:   &IPPool{Spec: IPPoolSpec{CIDR: "10.0.0.1/16", BlockSize: 24}},
			want: &IPPool{TypeMeta: tm(KindIPPool), Spec: IPPoolSpec{
				CIDR: "10.0.0.1/16", BlockSize: 24, VXLANMode: "Never", IPIPMode: "Never", AllowedUses: []string{"Workload", "Tunnel"},
			}},
		},
		{
			name: "ipamconfig",
			in:   &IPAMConfiguration{Metadata: ObjectMeta{Name: "default"}},
			want: &IPAMConfiguration{TypeMeta: tm(KindIPAMConfiguration), Metadata: ObjectMeta{Name: "default"},
				Spec: IPAMConfigurationSpec{AutoAllocateBlocks: ptr(true)}},
		},
		{
			name: "ipamconfig keeps false",
			in:   &IPAMConfiguration{Spec: IPAMConfigurationSpec{AutoAllocateBlocks: ptr(false), StrictAffinity: true}},
			want: &IPAMConfiguration{TypeMeta: tm(KindIPAMConfiguration), Spec: IPAMConfigurationSpec{AutoAllocateBlocks: ptr(false), StrictAffinity: true}},
		},
		{
			name: "bgpconfig default",
			in:   &BGPConfiguration{Metadata: ObjectMeta{Name: "default"}, Spec: BGPConfigurationSpec{LogSeverityScreen: "info"}},
			want: &BGPConfiguration{TypeMeta: tm(KindBGPConfiguration), Metadata: ObjectMeta{Name: "default"}, Spec: BGPConfigurationSpec{
				LogSeverityScreen: "Info", NodeToNodeMeshEnabled: ptr(true), ASNumber: ptr(ASNumber(64512)),
			}},
		},
		{
			name: "bgpconfig default keeps mesh off",
			in:   &BGPConfiguration{Metadata: ObjectMeta{Name: "default"}, Spec: BGPConfigurationSpec{NodeToNodeMeshEnabled: ptr(false), ASNumber: ptr(ASNumber(65000))}},
			want: &BGPConfiguration{TypeMeta: tm(KindBGPConfiguration), Metadata: ObjectMeta{Name: "default"}, Spec: BGPConfigurationSpec{
				NodeToNodeMeshEnabled: ptr(false), ASNumber: ptr(ASNumber(65000)),
			}},
		},
		{
			name: "bgpconfig per node gets no defaults",
			in:   &BGPConfiguration{Metadata: ObjectMeta{Name: "node.host-1"}},
			want: &BGPConfiguration{TypeMeta: tm(KindBGPConfiguration), Metadata: ObjectMeta{Name: "node.host-1"}},
		},
		{
			name: "nodeconfig only typemeta and case",
			in: &NodeConfiguration{Spec: NodeConfigurationSpec{LogSeverityScreen: "WARNING", DefaultEndpointToHostAction: "DROP",
				FailsafeInboundHostPorts: &[]ProtoPort{{Protocol: "TCP", Port: 22}}}},
			want: &NodeConfiguration{TypeMeta: tm(KindNodeConfiguration), Spec: NodeConfigurationSpec{LogSeverityScreen: "Warning",
				DefaultEndpointToHostAction: "Drop", FailsafeInboundHostPorts: &[]ProtoPort{{Protocol: "tcp", Port: 22}}}},
		},
		{
			name: "node",
			in:   &Node{Metadata: ObjectMeta{Name: "h"}},
			want: &Node{TypeMeta: tm(KindNode), Metadata: ObjectMeta{Name: "h"}},
		},
		{
			name: "policy rules normalised, types inferred, selector kept empty",
			in: &GlobalNetworkPolicy{Spec: GlobalNetworkPolicySpec{
				Ingress: []Rule{{Action: "allow", Protocol: &Protocol{Name: "tcp"}, NotProtocol: &Protocol{Name: "icmpv6"},
					Source: EntityRule{Nets: []string{"10.0.0.1", "fd00::1", "10.0.0.0/8"}, NotNets: []string{"192.168.0.1"}}}},
				Egress: []Rule{{Action: "DENY", Protocol: &Protocol{Name: "udplite"}, Destination: EntityRule{Nets: []string{"1.2.3.4"}, NotNets: []string{"::ffff:1.2.3.4"}}},
					{Action: "pass", Protocol: &Protocol{Name: "Sctp"}}, {Action: "log", Protocol: &Protocol{Number: 47}}},
			}},
			want: &GlobalNetworkPolicy{TypeMeta: tm(KindGlobalNetworkPolicy), Spec: GlobalNetworkPolicySpec{
				Types: []string{"Ingress", "Egress"},
				Ingress: []Rule{{Action: "Allow", Protocol: &Protocol{Name: "TCP"}, NotProtocol: &Protocol{Name: "ICMPv6"},
					Source: EntityRule{Nets: []string{"10.0.0.1/32", "fd00::1/128", "10.0.0.0/8"}, NotNets: []string{"192.168.0.1/32"}}}},
				Egress: []Rule{{Action: "Deny", Protocol: &Protocol{Name: "UDPLite"}, Destination: EntityRule{Nets: []string{"1.2.3.4/32"}, NotNets: []string{"1.2.3.4/32"}}},
					{Action: "Pass", Protocol: &Protocol{Name: "SCTP"}}, {Action: "Log", Protocol: &Protocol{Number: 47}}},
			}},
		},
		{
			name: "policy unknown action and protocol left for validation",
			in:   &GlobalNetworkPolicy{Spec: GlobalNetworkPolicySpec{Types: []string{"ingress"}, Ingress: []Rule{{Action: "drop", Protocol: &Protocol{Name: "gre"}}}}},
			want: &GlobalNetworkPolicy{TypeMeta: tm(KindGlobalNetworkPolicy), Spec: GlobalNetworkPolicySpec{
				Types: []string{"Ingress"}, Ingress: []Rule{{Action: "drop", Protocol: &Protocol{Name: "gre"}}},
			}},
		},
		{
			name: "profile rules normalised",
			in:   &Profile{Spec: ProfileSpec{Ingress: []Rule{{Action: "allow", Protocol: &Protocol{Name: "icmp"}}}}},
			want: &Profile{TypeMeta: tm(KindProfile), Spec: ProfileSpec{Ingress: []Rule{{Action: "Allow", Protocol: &Protocol{Name: "ICMP"}}}}},
		},
		{
			name: "networkset bare ips",
			in:   &GlobalNetworkSet{Spec: GlobalNetworkSetSpec{Nets: []string{"10.1.2.3", "fd00::/8", "bogus"}}},
			want: &GlobalNetworkSet{TypeMeta: tm(KindGlobalNetworkSet), Spec: GlobalNetworkSetSpec{Nets: []string{"10.1.2.3/32", "fd00::/8", "bogus"}}},
		},
		{
			name: "workload endpoint",
			in: &WorkloadEndpoint{Spec: WorkloadEndpointSpec{IPNetworks: []string{"10.0.0.5", "fd00::5/128"},
				Ports: []EndpointPort{{Name: "http", Protocol: Protocol{Name: "tcp"}, Port: 80}}}},
			want: &WorkloadEndpoint{TypeMeta: tm(KindWorkloadEndpoint), Spec: WorkloadEndpointSpec{IPNetworks: []string{"10.0.0.5/32", "fd00::5/128"},
				Ports: []EndpointPort{{Name: "http", Protocol: Protocol{Name: "TCP"}, Port: 80}}}},
		},
		{
			name: "host endpoint",
			in:   &HostEndpoint{Spec: HostEndpointSpec{Ports: []EndpointPort{{Name: "dns", Protocol: Protocol{Name: "udp"}, Port: 53}}}},
			want: &HostEndpoint{TypeMeta: tm(KindHostEndpoint), Spec: HostEndpointSpec{Ports: []EndpointPort{{Name: "dns", Protocol: Protocol{Name: "UDP"}, Port: 53}}}},
		},
		{
			name: "bgp peer",
			in:   &BGPPeer{Spec: BGPPeerSpec{SourceAddress: "none"}},
			want: &BGPPeer{TypeMeta: tm(KindBGPPeer), Spec: BGPPeerSpec{SourceAddress: "None"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.in.SetDefaults()
			if diff := cmp.Diff(tc.want, tc.in); diff != "" {
				t.Errorf("SetDefaults (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPolicyTypesInference(t *testing.T) {
	in, eg := []Rule{{Action: ActionAllow}}, []Rule{{Action: ActionDeny}}
	for _, tc := range []struct {
		name            string
		ingress, egress []Rule
		types           []string
		want            []string
	}{
		{name: "no rules", want: []string{"Ingress"}},
		{name: "ingress only", ingress: in, want: []string{"Ingress"}},
		{name: "egress only", egress: eg, want: []string{"Egress"}},
		{name: "both", ingress: in, egress: eg, want: []string{"Ingress", "Egress"}},
		{name: "explicit kept", ingress: in, types: []string{"Ingress", "Egress"}, want: []string{"Ingress", "Egress"}},
		{name: "explicit egress with no rules kept", types: []string{"Egress"}, want: []string{"Egress"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := &GlobalNetworkPolicy{Spec: GlobalNetworkPolicySpec{Ingress: tc.ingress, Egress: tc.egress, Types: tc.types}}
			g.SetDefaults()
			if diff := cmp.Diff(tc.want, g.Spec.Types); diff != "" {
				t.Errorf("types (-want +got):\n%s", diff)
			}
		})
	}
}

// TestSetDefaultsIdempotent applies SetDefaults twice to one example of
// every kind (the decoded Calico examples plus the test bases) and expects
// no change the second time.
func TestSetDefaultsIdempotent(t *testing.T) {
	rs := []Resource{
		testPool(nil), testPool6(nil), testIPAMConfig(nil), testNode(nil), testProfile(nil), testGNP(nil),
		testGNS(func(g *GlobalNetworkSet) { g.Spec.Nets = []string{"10.0.0.1"} }), testWEP(nil), testHEP(nil), testPeer(nil),
		testBGPConfig(nil), testNodeConfig(func(n *NodeConfiguration) { n.Spec.LogSeverityScreen = "info" }),
	}
	rs = append(rs, loadTestdata(t)...)
	for _, r := range rs {
		t.Run(r.GetKind()+"/"+r.GetObjectMeta().Name, func(t *testing.T) {
			r.SetDefaults()
			once := r.DeepCopyResource()
			r.SetDefaults()
			if diff := cmp.Diff(once, r); diff != "" {
				t.Errorf("second SetDefaults changed the resource (-once +twice):\n%s", diff)
			}
		})
	}
}
