package api

import "testing"

func TestValidateNode(t *testing.T) {
	node := testNode
	bgp := func(mut func(b *NodeBGPSpec)) *Node { return node(func(n *Node) { mut(n.Spec.BGP) }) }
	runValidateCases(t, []validateCase{
		{name: "base", r: node(nil)},
		{name: "no bgp", r: node(func(n *Node) { n.Spec.BGP = nil })},
		{name: "full", r: bgp(func(b *NodeBGPSpec) {
			b.IPv6Address, b.ASNumber, b.IPv4IPIPTunnelAddr, b.RouteReflectorClusterID = "fd00::1/64", ptr(ASNumber(4294967295)), "10.1.0.1", "224.0.0.1"
		})},
		{name: "ipv4Address without prefix", r: bgp(func(b *NodeBGPSpec) { b.IPv4Address = "10.0.0.1" }),
			path: "spec.bgp.ipv4Address", msg: "not an IPv4 address with prefix length"},
		{name: "ipv4Address is v6", r: bgp(func(b *NodeBGPSpec) { b.IPv4Address = "fd00::1/64" }), path: "spec.bgp.ipv4Address", msg: "not an IPv4 address"},
		{name: "ipv6Address is v4", r: bgp(func(b *NodeBGPSpec) { b.IPv6Address = "10.0.0.1/24" }), path: "spec.bgp.ipv6Address", msg: "not an IPv6 address"},
		{name: "ipv6Address bad", r: bgp(func(b *NodeBGPSpec) { b.IPv6Address = "fd00::1/129" }), path: "spec.bgp.ipv6Address", msg: "fd00::1/64"},
		{name: "asNumber 1", r: bgp(func(b *NodeBGPSpec) { b.ASNumber = ptr(ASNumber(1)) })},
		{name: "asNumber 0", r: bgp(func(b *NodeBGPSpec) { b.ASNumber = ptr(ASNumber(0)) }), path: "spec.bgp.asNumber", msg: "must be 1-4294967295"},
		{name: "ipip tunnel addr v6", r: bgp(func(b *NodeBGPSpec) { b.IPv4IPIPTunnelAddr = "fd00::1" }), path: "spec.bgp.ipv4IPIPTunnelAddr", msg: "not an IPv4 address"},
		{name: "rr cluster id bad", r: bgp(func(b *NodeBGPSpec) { b.RouteReflectorClusterID = "cluster-1" }),
			path: "spec.bgp.routeReflectorClusterID", msg: "IPv4 address"},
		{name: "vxlan tunnel addrs", r: node(func(n *Node) { n.Spec.IPv4VXLANTunnelAddr, n.Spec.IPv6VXLANTunnelAddr = "10.0.0.65", "fd00::65" })},
		{name: "vxlan v4 addr is v6", r: node(func(n *Node) { n.Spec.IPv4VXLANTunnelAddr = "fd00::65" }), path: "spec.ipv4VXLANTunnelAddr", msg: "not an IPv4 address"},
		{name: "vxlan v6 addr is v4", r: node(func(n *Node) { n.Spec.IPv6VXLANTunnelAddr = "10.0.0.65" }), path: "spec.ipv6VXLANTunnelAddr", msg: "not an IPv6 address"},
		{name: "vxlan mac", r: node(func(n *Node) { n.Spec.VXLANTunnelMACAddr = "66:f3:9a:01:02:03" })},
		{name: "vxlan mac bad", r: node(func(n *Node) { n.Spec.VXLANTunnelMACAddr = "66:f3:9a:01:02" }), path: "spec.vxlanTunnelMACAddr", msg: "not a valid MAC"},
		{name: "orchRefs", r: node(func(n *Node) { n.Spec.OrchRefs = []OrchRef{{Orchestrator: "mesos", NodeName: "agent-1"}} })},
		{name: "orchRefs empty orchestrator", r: node(func(n *Node) { n.Spec.OrchRefs = []OrchRef{{Orchestrator: "mesos"}, {NodeName: "x"}} }),
			path: "spec.orchRefs[1].orchestrator", msg: "must be set"},
	})
}

func TestValidateBGPPeer(t *testing.T) {
	peer := testPeer
	runValidateCases(t, []validateCase{
		{name: "base", r: peer(nil)},
		{name: "v6", r: peer(func(b *BGPPeer) { b.Spec.PeerIP = "fd00::1" })},
		{name: "ip:port", r: peer(func(b *BGPPeer) { b.Spec.PeerIP = "192.168.1.1:1790" })},
		{name: "[v6]:port", r: peer(func(b *BGPPeer) { b.Spec.PeerIP = "[fd00::1]:1790" })},
		{name: "v6 port without brackets", r: peer(func(b *BGPPeer) { b.Spec.PeerIP = "fd00::1:1790:x" }), path: "spec.peerIP", msg: "not an IP address or ip:port"},
		{name: "port 0", r: peer(func(b *BGPPeer) { b.Spec.PeerIP = "192.168.1.1:0" }), path: "spec.peerIP", msg: "port must be 1-65535"},
		{name: "peerIP bad", r: peer(func(b *BGPPeer) { b.Spec.PeerIP = "tor.example.com" }), path: "spec.peerIP", msg: "not an IP address"},
		{name: "asNumber 0", r: peer(func(b *BGPPeer) { b.Spec.ASNumber = 0 }), path: "spec.asNumber", msg: "must be set"},
		{name: "no peer", r: peer(func(b *BGPPeer) { b.Spec.PeerIP, b.Spec.ASNumber = "", 0 }), path: "spec.peerIP", msg: "peerIP or peerSelector must be set"},
		{name: "peerSelector", r: peer(func(b *BGPPeer) { b.Spec.PeerIP, b.Spec.ASNumber, b.Spec.PeerSelector = "", 0, "has(rr)" })},
		{name: "peerSelector with asNumber", r: peer(func(b *BGPPeer) { b.Spec.PeerIP, b.Spec.PeerSelector = "", "has(rr)" }),
			path: "spec.asNumber", msg: "must not be set with peerSelector"},
		{name: "peerSelector and peerIP", r: peer(func(b *BGPPeer) { b.Spec.PeerSelector = "has(rr)" }), path: "spec.peerSelector", msg: "cannot both be set"},
		{name: "peerSelector bad", r: peer(func(b *BGPPeer) { b.Spec.PeerIP, b.Spec.ASNumber, b.Spec.PeerSelector = "", 0, "rr ==" }),
			path: "spec.peerSelector", msg: "invalid selector"},
		{name: "node", r: peer(func(b *BGPPeer) { b.Spec.Node = "host-1" })},
		{name: "nodeSelector", r: peer(func(b *BGPPeer) { b.Spec.NodeSelector = "rack == 'r1'" })},
		{name: "node and nodeSelector", r: peer(func(b *BGPPeer) { b.Spec.Node, b.Spec.NodeSelector = "host-1", "all()" }),
			path: "spec.nodeSelector", msg: "node and nodeSelector cannot both be set"},
		{name: "nodeSelector bad", r: peer(func(b *BGPPeer) { b.Spec.NodeSelector = "rack in r1" }), path: "spec.nodeSelector", msg: "invalid selector"},
		{name: "sourceAddress", r: peer(func(b *BGPPeer) { b.Spec.SourceAddress = "usenodeip" })},
		{name: "sourceAddress None", r: peer(func(b *BGPPeer) { b.Spec.SourceAddress = "None" })},
		{name: "sourceAddress bad", r: peer(func(b *BGPPeer) { b.Spec.SourceAddress = "10.0.0.1" }), path: "spec.sourceAddress", msg: "must be one of UseNodeIP, None"},
	})
}

func TestValidateBGPConfiguration(t *testing.T) {
	conf := testBGPConfig
	runValidateCases(t, []validateCase{
		{name: "base", r: conf(nil)},
		{name: "severity case-insensitive", r: conf(func(b *BGPConfiguration) { b.Spec.LogSeverityScreen = "WARNING" })},
		{name: "severity bad", r: conf(func(b *BGPConfiguration) { b.Spec.LogSeverityScreen = "Verbose" }), path: "spec.logSeverityScreen",
			msg: "must be one of Debug, Info, Warning, Error, Fatal"},
		{name: "asNumber 0", r: conf(func(b *BGPConfiguration) { b.Spec.ASNumber = ptr(ASNumber(0)) }), path: "spec.asNumber", msg: "1-4294967295"},
		{name: "listenPort", r: conf(func(b *BGPConfiguration) { b.Spec.ListenPort = 179 })},
		{name: "listenPort too big", r: conf(func(b *BGPConfiguration) { b.Spec.ListenPort = 65536 }), path: "spec.listenPort", msg: "must be 1-65535"},
		{name: "listenPort negative", r: conf(func(b *BGPConfiguration) { b.Spec.ListenPort = -1 }), path: "spec.listenPort", msg: "must be 1-65535"},
		{name: "service cidrs", r: conf(func(b *BGPConfiguration) {
			b.Spec.ServiceClusterIPs = []ServiceCIDR{{CIDR: "10.96.0.0/12"}, {CIDR: "fd00:96::/112"}}
			b.Spec.ServiceExternalIPs = []ServiceCIDR{{CIDR: "203.0.113.1/32"}}
		})},
		{name: "serviceClusterIPs bad", r: conf(func(b *BGPConfiguration) {
			b.Spec.ServiceClusterIPs = []ServiceCIDR{{CIDR: "10.96.0.0/12"}, {CIDR: "10.96.0.0/33"}}
		}),
			path: "spec.serviceClusterIPs[1].cidr", msg: "not a valid CIDR"},
		{name: "serviceExternalIPs host bits", r: conf(func(b *BGPConfiguration) { b.Spec.ServiceExternalIPs = []ServiceCIDR{{CIDR: "172.217.3.5/24"}} }),
			path: "spec.serviceExternalIPs[0].cidr", msg: "did you mean 172.217.3.0/24?"},
		{name: "serviceExternalIPs empty", r: conf(func(b *BGPConfiguration) { b.Spec.ServiceExternalIPs = []ServiceCIDR{{}} }),
			path: "spec.serviceExternalIPs[0].cidr", msg: "must be set"},
		{name: "communities", r: conf(func(b *BGPConfiguration) {
			b.Spec.Communities = []Community{{Name: "std", Value: "65535:65535"}, {Name: "large", Value: "4294967295:0:1"}}
			b.Spec.PrefixAdvertisements = []PrefixAdvertise{{CIDR: "10.0.0.0/24", Communities: []string{"std", "large", "64512:1", "1:2:3"}}}
		})},
		{name: "community value too big", r: conf(func(b *BGPConfiguration) { b.Spec.Communities = []Community{{Name: "c", Value: "65536:1"}} }),
			path: "spec.communities[0].value", msg: "numbers 0-65535"},
		{name: "large community value too big", r: conf(func(b *BGPConfiguration) { b.Spec.Communities = []Community{{Name: "c", Value: "1:2:4294967296"}} }),
			path: "spec.communities[0].value", msg: "numbers 0-4294967295"},
		{name: "community value shape", r: conf(func(b *BGPConfiguration) { b.Spec.Communities = []Community{{Name: "c", Value: "100"}} }),
			path: "spec.communities[0].value", msg: `expected "aa:nn"`},
		{name: "community name missing", r: conf(func(b *BGPConfiguration) { b.Spec.Communities = []Community{{Value: "1:1"}} }),
			path: "spec.communities[0].name", msg: "must be set"},
		{name: "community name twice", r: conf(func(b *BGPConfiguration) {
			b.Spec.Communities = []Community{{Name: "a", Value: "1:1"}, {Name: "a", Value: "1:2"}}
		}),
			path: "spec.communities[1].name", msg: "defined twice"},
		{name: "prefix advertisement undefined community", r: conf(func(b *BGPConfiguration) {
			b.Spec.Communities = []Community{{Name: "std", Value: "1:1"}}
			b.Spec.PrefixAdvertisements = []PrefixAdvertise{{CIDR: "10.0.0.0/24", Communities: []string{"std", "nope"}}}
		}), path: "spec.prefixAdvertisements[0].communities[1]", msg: `"nope" is neither a community defined in spec.communities nor a community value`},
		{name: "prefix advertisement bad cidr", r: conf(func(b *BGPConfiguration) { b.Spec.PrefixAdvertisements = []PrefixAdvertise{{CIDR: "10.0.0.0"}} }),
			path: "spec.prefixAdvertisements[0].cidr", msg: "not a valid CIDR"},
	})
}

func TestValidateNodeConfiguration(t *testing.T) {
	conf := testNodeConfig
	runValidateCases(t, []validateCase{
		{name: "base", r: conf(nil)},
		{name: "everything", r: conf(func(n *NodeConfiguration) {
			n.Spec = NodeConfigurationSpec{
				LogSeverityScreen: "debug", InterfacePrefix: "calyx", DefaultEndpointToHostAction: "ACCEPT",
				VXLANVNI: ptr(16777215), VXLANPort: ptr(4789), VXLANMTU: ptr(68), RouteRefreshInterval: "90s",
				NftablesRefreshInterval: "1m30s", EndpointGCGracePeriod: "0s", ReportingInterval: "30s",
				FailsafeInboundHostPorts:  &[]ProtoPort{{Protocol: "TCP", Port: 22}, {Protocol: "udp", Port: 68, Net: "0.0.0.0/0"}},
				FailsafeOutboundHostPorts: &[]ProtoPort{},
				PrometheusMetricsPort:     ptr(9091), HealthPort: ptr(9099),
			}
		})},
		{name: "severity bad", r: conf(func(n *NodeConfiguration) { n.Spec.LogSeverityScreen = "Trace" }), path: "spec.logSeverityScreen", msg: "must be one of"},
		{name: "host action bad", r: conf(func(n *NodeConfiguration) { n.Spec.DefaultEndpointToHostAction = "Reject" }),
			path: "spec.defaultEndpointToHostAction", msg: "must be one of Drop, Accept, Return"},
		{name: "duration bad", r: conf(func(n *NodeConfiguration) { n.Spec.RouteRefreshInterval = "90" }), path: "spec.routeRefreshInterval", msg: `expected e.g. "90s"`},
		{name: "duration negative", r: conf(func(n *NodeConfiguration) { n.Spec.NftablesRefreshInterval = "-1s" }), path: "spec.nftablesRefreshInterval", msg: "must not be negative"},
		{name: "gc grace bad", r: conf(func(n *NodeConfiguration) { n.Spec.EndpointGCGracePeriod = "soon" }), path: "spec.endpointGCGracePeriod", msg: "not a duration"},
		{name: "reporting bad", r: conf(func(n *NodeConfiguration) { n.Spec.ReportingInterval = "1 minute" }), path: "spec.reportingInterval", msg: "not a duration"},
		{name: "vxlanVNI 0", r: conf(func(n *NodeConfiguration) { n.Spec.VXLANVNI = ptr(0) }), path: "spec.vxlanVNI", msg: "must be 1-16777215"},
		{name: "vxlanVNI too big", r: conf(func(n *NodeConfiguration) { n.Spec.VXLANVNI = ptr(16777216) }), path: "spec.vxlanVNI", msg: "must be 1-16777215"},
		{name: "vxlanMTU small", r: conf(func(n *NodeConfiguration) { n.Spec.VXLANMTU = ptr(67) }), path: "spec.vxlanMTU", msg: "must be 68-9000"},
		{name: "vxlanMTU big", r: conf(func(n *NodeConfiguration) { n.Spec.VXLANMTU = ptr(9001) }), path: "spec.vxlanMTU", msg: "must be 68-9000"},
		{name: "vxlanPort", r: conf(func(n *NodeConfiguration) { n.Spec.VXLANPort = ptr(0) }), path: "spec.vxlanPort", msg: "must be 1-65535"},
		{name: "metrics port", r: conf(func(n *NodeConfiguration) { n.Spec.PrometheusMetricsPort = ptr(70000) }), path: "spec.prometheusMetricsPort", msg: "must be 1-65535"},
		{name: "health port", r: conf(func(n *NodeConfiguration) { n.Spec.HealthPort = ptr(-1) }), path: "spec.healthPort", msg: "must be 1-65535"},
		{name: "interfacePrefix long", r: conf(func(n *NodeConfiguration) { n.Spec.InterfacePrefix = "calyxx" }), path: "spec.interfacePrefix", msg: "1-5 lower-case"},
		{name: "interfacePrefix chars", r: conf(func(n *NodeConfiguration) { n.Spec.InterfacePrefix = "ca-" }), path: "spec.interfacePrefix", msg: "1-5 lower-case"},
		{name: "failsafe protocol", r: conf(func(n *NodeConfiguration) {
			n.Spec.FailsafeInboundHostPorts = &[]ProtoPort{{Protocol: "icmp", Port: 1}}
		}),
			path: "spec.failsafeInboundHostPorts[0].protocol", msg: "must be one of tcp, udp, sctp"},
		{name: "failsafe port 0", r: conf(func(n *NodeConfiguration) { n.Spec.FailsafeOutboundHostPorts = &[]ProtoPort{{Protocol: "tcp"}} }),
			path: "spec.failsafeOutboundHostPorts[0].port", msg: "1-65535"},
		{name: "failsafe net", r: conf(func(n *NodeConfiguration) {
			n.Spec.FailsafeOutboundHostPorts = &[]ProtoPort{{Protocol: "tcp", Port: 2379, Net: "10.0.0.1/8"}}
		}),
			path: "spec.failsafeOutboundHostPorts[0].net", msg: "did you mean"},
	})
}
