package calc

import (
	"fmt"
	"testing"

	"github.com/calyx-net/calyx/internal/api"
)

// Builders for the datastore states the tests use. Every resource goes
// through SetDefaults and, unless built with raw, Validate, as the
// datastore would have done.

type stateCase struct {
	name string // also the golden file's name
	node string
	bgp  bool // WithBGP
	rs   []api.Resource
}

func valid(t *testing.T, r api.Resource) api.Resource {
	t.Helper()
	r.SetDefaults()
	if err := r.Validate(); err != nil {
		t.Fatalf("fixture %s %s: %v", r.GetKind(), r.GetObjectMeta().Name, err)
	}
	return r
}

// raw defaults r without validating it: for inputs the datastore would
// refuse today, which calc must still survive.
func raw(r api.Resource) api.Resource {
	r.SetDefaults()
	return r
}

func lbl(kv ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

// wep is a workload endpoint on node with host veth ifName (empty: not
// yet plumbed) and addresses ips.
func wep(name, node, ifName string, labels map[string]string, profiles []string, ips ...string) *api.WorkloadEndpoint {
	return &api.WorkloadEndpoint{
		Metadata: api.ObjectMeta{Name: name, Labels: labels},
		Spec: api.WorkloadEndpointSpec{
			Orchestrator: api.OrchestratorMesos, Workload: name, Node: node, Endpoint: "eth0",
			InterfaceName: ifName, IPNetworks: ips, Profiles: profiles,
		},
	}
}

func withPorts(w *api.WorkloadEndpoint, ports ...api.EndpointPort) *api.WorkloadEndpoint {
	w.Spec.Ports = ports
	return w
}

func port(name, proto string, p, hostPort uint16) api.EndpointPort {
	return api.EndpointPort{Name: name, Protocol: api.Protocol{Name: proto}, Port: p, HostPort: hostPort}
}

func hep(name, node, ifName string, labels map[string]string, profiles []string, ips ...string) *api.HostEndpoint {
	return &api.HostEndpoint{
		Metadata: api.ObjectMeta{Name: name, Labels: labels},
		Spec:     api.HostEndpointSpec{Node: node, InterfaceName: ifName, ExpectedIPs: ips, Profiles: profiles},
	}
}

func profile(name string, labelsToApply map[string]string, ingress, egress []api.Rule) *api.Profile {
	return &api.Profile{
		Metadata: api.ObjectMeta{Name: name},
		Spec:     api.ProfileSpec{Ingress: ingress, Egress: egress, LabelsToApply: labelsToApply},
	}
}

func gnp(name string, order *float64, sel string, types []string, ingress, egress []api.Rule) *api.GlobalNetworkPolicy {
	return &api.GlobalNetworkPolicy{
		Metadata: api.ObjectMeta{Name: name},
		Spec:     api.GlobalNetworkPolicySpec{Order: order, Selector: sel, Types: types, Ingress: ingress, Egress: egress},
	}
}

func netset(name string, labels map[string]string, nets ...string) *api.GlobalNetworkSet {
	return &api.GlobalNetworkSet{Metadata: api.ObjectMeta{Name: name, Labels: labels}, Spec: api.GlobalNetworkSetSpec{Nets: nets}}
}

func pool(name, cidr string, nat, disabled bool) *api.IPPool {
	return &api.IPPool{Metadata: api.ObjectMeta{Name: name}, Spec: api.IPPoolSpec{CIDR: cidr, NATOutgoing: nat, Disabled: disabled}}
}

func ord(f float64) *float64 { return &f }

func proto(s string) *api.Protocol { p := api.ProtocolFromString(s); return &p }

func ptr[T any](v T) *T { return &v }

func ports(ss ...string) []api.Port {
	var out []api.Port
	for _, s := range ss {
		p, err := api.PortFromString(s)
		if err != nil {
			panic(err)
		}
		out = append(out, p)
	}
	return out
}

func allow() api.Rule { return api.Rule{Action: api.ActionAllow} }
func deny() api.Rule  { return api.Rule{Action: api.ActionDeny} }

// allowFrom allows traffic whose source matches sel.
func allowFrom(sel string) api.Rule {
	return api.Rule{Action: api.ActionAllow, Source: api.EntityRule{Selector: sel}}
}

func rules(rs ...api.Rule) []api.Rule { return rs }

// stateCases are the datastore states of the table tests, one per point of
// calico-design.md §6.1-6.2 semantics. Node "h1" is local.
func stateCases(t *testing.T) []stateCase {
	t.Helper()
	fe := func() *api.WorkloadEndpoint {
		return wep("h1-fe", "h1", "calyx0000000001", lbl("role", "frontend"), []string{"net1"}, "10.65.0.1/32")
	}
	be := func() *api.WorkloadEndpoint {
		return wep("h1-be", "h1", "calyx0000000002", lbl("role", "backend"), []string{"net1"}, "10.65.0.2/32")
	}
	remoteFE := func() *api.WorkloadEndpoint {
		return wep("h2-fe", "h2", "calyx0000000003", lbl("role", "frontend"), []string{"net1"}, "10.65.1.1/32")
	}
	net1 := func() *api.Profile {
		return profile("net1", lbl("net", "net1"), rules(allowFrom("net == 'net1'")), rules(allow()))
	}
	return []stateCase{{
		// §6.2 "Endpoint chain": with no policy and no profile, step 4
		// drops everything.
		name: "default-deny",
		node: "h1",
		rs: []api.Resource{
			valid(t, wep("h1-lonely", "h1", "calyx00000000aa", nil, nil, "10.65.0.9/32")),
		},
	}, {
		// §2 "Effective labels" and §1.1 Profile: a profile's labels are
		// inherited, the endpoint's own win; the profile's rules decide
		// when no policy applies.
		name: "profile-inheritance",
		node: "h1",
		rs: []api.Resource{
			valid(t, fe()), valid(t, be()), valid(t, remoteFE()), valid(t, net1()),
			valid(t, wep("h1-own", "h1", "calyx0000000004", lbl("net", "mine"), []string{"net1"}, "10.65.0.4/32")),
		},
	}, {
		// §6.1 PolicySorter: order ascending, unset last, ties by name;
		// split by types (an ingress-only policy is absent from egress).
		name: "policy-order",
		node: "h1",
		rs: []api.Resource{
			valid(t, be()), valid(t, net1()),
			valid(t, gnp("zeta", ord(10), "role == 'backend'", nil, rules(deny()), nil)),
			valid(t, gnp("alpha", ord(10), "role == 'backend'", nil, rules(allowFrom("role == 'frontend'")), nil)),
			valid(t, gnp("first", ord(1), "all()", []string{"Egress"}, nil, rules(allow()))),
			valid(t, gnp("unordered", nil, "has(role)", []string{"Ingress", "Egress"}, rules(deny()), rules(deny()))),
			valid(t, gnp("other", ord(1), "role == 'db'", nil, rules(deny()), nil)),
		},
	}, {
		// §6.2 "Endpoint chain" step 2: Pass skips the remaining policies
		// and goes to the profiles; a policy with type Ingress and no
		// rules still applies and so drops at the end of the tier.
		name: "pass-and-empty-policy",
		node: "h1",
		rs: []api.Resource{
			valid(t, fe()), valid(t, be()), valid(t, net1()),
			valid(t, gnp("pass-fe", ord(1), "role == 'frontend'", nil,
				rules(api.Rule{Action: api.ActionLog}, api.Rule{Action: api.ActionPass, Protocol: proto("TCP")}), nil)),
			valid(t, gnp("deny-later", ord(2), "role == 'frontend'", nil, rules(deny()), nil)),
			valid(t, gnp("empty", ord(3), "role == 'backend'", []string{"Ingress"}, nil, nil)),
		},
	}, {
		// §6.1 ActiveRulesCalculator: a profile that does not exist
		// resolves to deny-all.
		name: "missing-profile",
		node: "h1",
		rs: []api.Resource{
			valid(t, wep("h1-orphan", "h1", "calyx0000000005", nil, []string{"net1", "gone"}, "10.65.0.5/32")),
			valid(t, net1()),
		},
	}, {
		// §1.1 EntityRule ports and §6.1 RuleScanner: named ports resolve
		// per endpoint into (address, protocol, port) sets, keyed by
		// selector, protocol and names.
		name: "named-ports",
		node: "h1",
		rs: []api.Resource{
			valid(t, withPorts(be(), port("http", "TCP", 8080, 0), port("dns", "UDP", 53, 0))),
			valid(t, withPorts(wep("h2-be", "h2", "calyx0000000006", lbl("role", "backend"), nil, "10.65.1.2/32", "fd65::2/128"),
				port("http", "TCP", 80, 0), port("http", "UDP", 80, 0))),
			valid(t, withPorts(wep("h2-web", "h2", "calyx0000000007", lbl("role", "web"), nil, "10.65.1.3/32"),
				port("http", "TCP", 8000, 0))),
			valid(t, fe()),
			valid(t, gnp("to-http", ord(1), "role == 'frontend'", []string{"Egress"}, nil, rules(
				api.Rule{Action: api.ActionAllow, Protocol: proto("TCP"),
					Destination: api.EntityRule{Selector: "role == 'backend'", Ports: ports("http", "443")}},
				api.Rule{Action: api.ActionAllow, Protocol: proto("TCP"),
					Destination: api.EntityRule{Ports: ports("http")}},
			))),
			valid(t, gnp("in-http", ord(1), "role == 'backend'", []string{"Ingress"}, rules(
				api.Rule{Action: api.ActionAllow, Protocol: proto("TCP"), Destination: api.EntityRule{Ports: ports("http")}},
			), nil)),
		},
	}, {
		// §1.1 GlobalNetworkSet and §6.1 InheritIndex: rule selectors
		// match network sets by label, through their nets, beside
		// endpoints anywhere in the cluster; one set per selector, shared.
		name: "netsets",
		node: "h1",
		rs: []api.Resource{
			valid(t, fe()), valid(t, remoteFE()),
			valid(t, wep("h3-ext", "h3", "calyx0000000008", lbl("zone", "external"), nil, "10.65.2.1/32")),
			valid(t, netset("internet", lbl("zone", "external"), "0.0.0.0/0", "::/0")),
			valid(t, netset("partners", lbl("zone", "external", "kind", "partner"), "192.0.2.0/24", "198.51.100.7")),
			valid(t, netset("other", lbl("zone", "internal"), "172.16.0.0/12")),
			valid(t, gnp("fe-out", ord(1), "role == 'frontend'", []string{"Ingress", "Egress"},
				rules(api.Rule{Action: api.ActionAllow, Source: api.EntityRule{Selector: "zone == 'external'"}}),
				rules(
					api.Rule{Action: api.ActionDeny, Destination: api.EntityRule{Selector: "kind == 'partner'"}},
					api.Rule{Action: api.ActionAllow, Destination: api.EntityRule{Selector: "zone == 'external'"}},
				))),
		},
	}, {
		// §1.1 "selector vs notSelector", notNets, ICMP, port ranges and
		// ipVersion.
		name: "negations",
		node: "h1",
		rs: []api.Resource{
			valid(t, fe()), valid(t, be()), valid(t, remoteFE()),
			valid(t, gnp("neg", ord(1), "role == 'backend'", nil, rules(
				api.Rule{Action: api.ActionDeny, Source: api.EntityRule{NotSelector: "role == 'frontend'", NotNets: []string{"192.168.0.0/16"}}},
				api.Rule{Action: api.ActionAllow, Protocol: proto("ICMP"), ICMP: &api.ICMPFields{Type: ptr(8), Code: ptr(0)}},
				api.Rule{Action: api.ActionAllow, Protocol: proto("TCP"), Destination: api.EntityRule{Ports: ports("8000:8100", "9000"), NotPorts: ports("8050")}},
				api.Rule{Action: api.ActionAllow, IPVersion: ptr(6), Protocol: proto("17"), NotICMP: nil,
					Source: api.EntityRule{Nets: []string{"fd00::/8", "fc00::/8"}}},
			), nil)),
		},
	}, {
		// §6.2 host endpoints (cali-th/fh), failsafes, NAT pools and
		// defaultEndpointToHostAction; NodeConfiguration "node.<name>"
		// wins field by field over "default".
		name: "host-and-config",
		node: "h1",
		rs: []api.Resource{
			valid(t, hep("h1-eth0", "h1", "eth0", lbl("host", "h1"), []string{"hostprof"}, "192.168.1.1")),
			valid(t, hep("h2-eth0", "h2", "eth0", lbl("host", "h2"), nil, "192.168.1.2")),
			valid(t, profile("hostprof", lbl("role", "host"), nil, nil)),
			valid(t, gnp("hosts", ord(5), "has(host)", nil, rules(allowFrom("role == 'host'")), nil)),
			valid(t, pool("p1", "10.65.0.0/16", true, false)),
			valid(t, pool("p2", "10.66.0.0/16", false, false)),
			valid(t, pool("p3", "10.67.0.0/16", true, true)),
			valid(t, &api.NodeConfiguration{Metadata: api.ObjectMeta{Name: "default"}, Spec: api.NodeConfigurationSpec{
				DefaultEndpointToHostAction: "drop",
				FailsafeInboundHostPorts:    &[]api.ProtoPort{{Protocol: "tcp", Port: 22, Net: "10.0.0.0/8"}, {Protocol: "udp", Port: 68}},
			}}),
			valid(t, &api.NodeConfiguration{Metadata: api.ObjectMeta{Name: "node.h1"}, Spec: api.NodeConfigurationSpec{
				DefaultEndpointToHostAction: "Return",
				FailsafeOutboundHostPorts:   &[]api.ProtoPort{},
			}}),
			valid(t, &api.NodeConfiguration{Metadata: api.ObjectMeta{Name: "node.h2"}, Spec: api.NodeConfigurationSpec{
				DefaultEndpointToHostAction: "Accept",
			}}),
		},
	}, {
		// Port mappings (issue 8, Mesos port_mappings): one DNAT per
		// port with a hostPort and address family; MAC and IPv6.
		name: "port-mappings",
		node: "h1",
		rs: []api.Resource{
			raw(withPorts(wep("h1-web", "h1", "calyx0000000009", nil, nil, "10.65.0.7/32", "fd65::7/128", "10.65.0.8/32"),
				port("http", "TCP", 80, 8080), port("", "UDP", 5000, 5000))),
			valid(t, func() api.Resource {
				w := wep("h1-mac", "h1", "calyx000000000a", nil, nil, "10.65.0.10")
				w.Spec.MAC = "EE:EE:EE:EE:EE:01"
				return w
			}()),
		},
	}, {
		// Fail closed: unsupported rule fields and a policy-level
		// namespaceSelector select nothing; endpoints not local or not
		// plumbed yet are not programmed; kinds calc does not use are
		// ignored.
		name: "fail-closed",
		node: "h1",
		rs: []api.Resource{
			valid(t, be()),
			valid(t, wep("h1-unplumbed", "h1", "", lbl("role", "backend"), nil, "10.65.0.30/32")),
			valid(t, gnp("alb", ord(1), "role == 'backend'", nil, rules(
				api.Rule{Action: api.ActionAllow, HTTP: &api.HTTPMatch{Methods: []string{"GET"}}},
				api.Rule{Action: api.ActionAllow, Source: api.EntityRule{ServiceAccounts: &api.ServiceAccounts{Names: []string{"x"}}}},
				api.Rule{Action: api.ActionAllow, Source: api.EntityRule{NamespaceSelector: "all()"}},
				api.Rule{Action: api.ActionDeny, Protocol: proto("TCP")},
			), nil)),
			valid(t, func() api.Resource {
				g := gnp("namespaced", ord(0), "all()", nil, rules(allow()), nil)
				g.Spec.NamespaceSelector = "all()"
				return g
			}()),
			valid(t, &api.BGPPeer{Metadata: api.ObjectMeta{Name: "peer"}, Spec: api.BGPPeerSpec{PeerIP: "192.0.2.1", ASNumber: 64512}}),
			valid(t, &api.Node{Metadata: api.ObjectMeta{Name: "h1"}}),
		},
	}, {
		// Input the datastore would refuse never panics and fails
		// closed: a policy selector that does not parse selects nothing;
		// a rule whose selector, protocol, ICMP type, nets or named ports
		// cannot be programmed is left out; bad addresses, CIDRs and
		// config values are skipped or fall back to Drop.
		name: "bad-input",
		node: "h1",
		rs: []api.Resource{
			raw(func() api.Resource {
				w := wep("h1-bad", "h1", "calyx00000000bb", lbl("role", "backend"), nil, "junk", "10.65.0.40", "10.65.0.41/24")
				w.Spec.MAC = "zz:zz"
				return w
			}()),
			raw(gnp("unparseable", ord(1), "role == ", nil, rules(deny()), nil)),
			raw(gnp("bad-rules", ord(2), "role == 'backend'", nil, rules(
				allowFrom("(("),
				api.Rule{Action: api.ActionAllow, Source: api.EntityRule{NotSelector: "has("}},
				api.Rule{Action: api.ActionAllow, Source: api.EntityRule{Nets: []string{"bogus"}}},
				api.Rule{Action: api.ActionAllow, Protocol: proto("FOO")},
				api.Rule{Action: api.ActionAllow, Protocol: proto("ICMP"), ICMP: &api.ICMPFields{Type: ptr(300)}},
				api.Rule{Action: api.ActionAllow, Destination: api.EntityRule{Ports: ports("http")}},
				api.Rule{Action: "Sideways"},
				api.Rule{Action: api.ActionAllow, IPVersion: ptr(5)},
				api.Rule{Action: api.ActionAllow, Source: api.EntityRule{Nets: []string{"bogus", "10.0.0.1/8"}, NotNets: []string{"nope"}}},
			), nil)),
			raw(pool("bad-pool", "10.0.0.0/33", true, false)),
			raw(&api.NodeConfiguration{Metadata: api.ObjectMeta{Name: "default"}, Spec: api.NodeConfigurationSpec{
				DefaultEndpointToHostAction: "Sideways",
				FailsafeInboundHostPorts:    &[]api.ProtoPort{{Protocol: "icmp", Port: 1}, {Protocol: "tcp", Port: 22, Net: "bad"}, {Protocol: "TCP", Port: 2222}},
			}}),
		},
	}, {
		// §4.5, §5: routes between hosts from block affinities. The pool
		// is CrossSubnet: h2 shares h1's subnet (native route via its
		// address), h3 does not (VXLAN via its tunnel address, onlink);
		// h4 has no address and gets no route. h1's own block is a
		// blackhole. h2 borrowed 10.65.2.5 from h3's block and h3
		// 10.65.0.7 from h1's: each gets a /32 to where it lives. The
		// IPv6 pool is VXLAN Always over the nodes' IPv6 addresses.
		name: "routes-crosssubnet",
		node: "h1",
		rs: []api.Resource{
			valid(t, vxlanPool("p4", "10.65.0.0/16", api.EncapCrossSubnet)),
			valid(t, vxlanPool("p6", "fd65::/48", api.EncapAlways)),
			valid(t, calcNode("h1", "192.0.2.1/24", "2001:db8::1/64", "10.65.0.1", "fd65::1")),
			valid(t, calcNode("h2", "192.0.2.2/24", "", "10.65.1.1", "")),
			valid(t, calcNode("h3", "198.51.100.3/24", "2001:db8:3::3/64", "10.65.2.1", "fd65::41")),
			valid(t, calcNode("h4", "", "", "", "")),
			affinity("h1", "10.65.0.0/26"), affinity("h1", "fd65::/122"),
			affinity("h2", "10.65.1.0/26"),
			affinity("h3", "10.65.2.0/26"), affinity("h3", "fd65::40/122"),
			affinity("h4", "10.65.3.0/26"),
			valid(t, wep("h2-b", "h2", "calyx0000000021", nil, nil, "10.65.2.5/32")),
			valid(t, wep("h3-b", "h3", "calyx0000000031", nil, nil, "10.65.0.7/32")),
			valid(t, wep("h3-own", "h3", "calyx0000000032", nil, nil, "10.65.2.6/32", "fd65::42/128")),
			valid(t, &api.NodeConfiguration{Metadata: api.ObjectMeta{Name: "default"}, Spec: api.NodeConfigurationSpec{VXLANMTU: ptr(1410)}}),
		},
	}, {
		// Without encapsulation and without BGP, only nodes on this
		// host's subnet are reachable: h2 natively, h3 not at all; no
		// VXLAN device.
		name: "routes-native",
		node: "h1",
		rs: []api.Resource{
			valid(t, vxlanPool("p4", "10.65.0.0/16", api.EncapNever)),
			valid(t, calcNode("h1", "192.0.2.1/24", "", "", "")),
			valid(t, calcNode("h2", "192.0.2.2/24", "", "", "")),
			valid(t, calcNode("h3", "198.51.100.3/24", "", "", "")),
			affinity("h1", "10.65.0.0/26"),
			affinity("h2", "10.65.1.0/26"), affinity("h2", "10.65.1.64/26"),
			affinity("h3", "10.65.2.0/26"),
		},
	}, {
		// §5 BGP: the mesh to every other node (IPv4 and IPv6 where both
		// have addresses), a global BGPPeer to a ToR, a BGPPeer for h1
		// only that selects route reflectors, h1 in its own AS; h1
		// advertises its blocks except the pool that disables export,
		// and the address its endpoint borrowed from h2's block. With
		// BGP, native routes are BGP's: calc keeps only the VXLAN ones
		// and the blackholes.
		name: "bgp",
		node: "h1",
		bgp:  true,
		rs: []api.Resource{
			valid(t, vxlanPool("p4", "10.65.0.0/16", api.EncapCrossSubnet)),
			valid(t, func() *api.IPPool {
				p := vxlanPool("quiet", "10.80.0.0/16", api.EncapNever)
				p.Spec.DisableBGPExport = true
				return p
			}()),
			valid(t, func() *api.Node {
				n := calcNode("h1", "192.0.2.1/24", "2001:db8::1/64", "10.65.0.1", "")
				asn := api.ASNumber(64600)
				n.Spec.BGP.ASNumber = &asn
				n.Spec.BGP.RouteReflectorClusterID = "224.0.0.1"
				return n
			}()),
			valid(t, calcNode("h2", "192.0.2.2/24", "2001:db8::2/64", "10.65.1.1", "")),
			valid(t, func() *api.Node {
				n := calcNode("h3", "198.51.100.3/24", "", "10.65.2.1", "")
				n.Metadata.Labels = lbl("rr", "true")
				n.Spec.BGP.RouteReflectorClusterID = "224.0.0.1"
				return n
			}()),
			valid(t, &api.BGPConfiguration{Metadata: api.ObjectMeta{Name: "default"}, Spec: api.BGPConfigurationSpec{ASNumber: ptr(api.ASNumber(64512))}}),
			valid(t, &api.BGPPeer{Metadata: api.ObjectMeta{Name: "tor"}, Spec: api.BGPPeerSpec{PeerIP: "192.0.2.254", ASNumber: 65001}}),
			valid(t, &api.BGPPeer{Metadata: api.ObjectMeta{Name: "to-rrs"}, Spec: api.BGPPeerSpec{Node: "h1", PeerSelector: "has(rr)"}}),
			valid(t, &api.BGPPeer{Metadata: api.ObjectMeta{Name: "elsewhere"}, Spec: api.BGPPeerSpec{Node: "h2", PeerIP: "192.0.2.253", ASNumber: 65002}}),
			affinity("h1", "10.65.0.0/26"), affinity("h1", "10.80.0.0/26"),
			affinity("h2", "10.65.1.0/26"), affinity("h3", "10.65.2.0/26"),
			valid(t, wep("h1-b", "h1", "calyx0000000011", nil, nil, "10.65.1.7/32")),
		},
	}, {
		// §5 route reflectors: the mesh is off; h3 carries a cluster ID
		// and a label; one BGPPeer makes the other nodes peer with the
		// labelled ones, another makes the labelled ones peer with all:
		// h3 reflects for h1 and h2, and h4 (same cluster) is a plain
		// iBGP peer.
		name: "bgp-reflector",
		node: "h3",
		bgp:  true,
		rs: []api.Resource{
			valid(t, vxlanPool("p4", "10.65.0.0/16", api.EncapNever)),
			valid(t, calcNode("h1", "192.0.2.1/24", "", "", "")),
			valid(t, calcNode("h2", "192.0.2.2/24", "", "", "")),
			valid(t, func() *api.Node {
				n := calcNode("h3", "192.0.2.3/24", "", "", "")
				n.Metadata.Labels = lbl("rr", "true")
				n.Spec.BGP.RouteReflectorClusterID = "224.0.0.1"
				return n
			}()),
			valid(t, func() *api.Node {
				n := calcNode("h4", "192.0.2.4/24", "", "", "")
				n.Metadata.Labels = lbl("rr", "true")
				n.Spec.BGP.RouteReflectorClusterID = "224.0.0.1"
				return n
			}()),
			valid(t, &api.BGPConfiguration{Metadata: api.ObjectMeta{Name: "default"}, Spec: api.BGPConfigurationSpec{NodeToNodeMeshEnabled: ptr(false)}}),
			valid(t, &api.BGPPeer{Metadata: api.ObjectMeta{Name: "to-rrs"}, Spec: api.BGPPeerSpec{NodeSelector: "!has(rr)", PeerSelector: "has(rr)"}}),
			valid(t, &api.BGPPeer{Metadata: api.ObjectMeta{Name: "rrs-to-all"}, Spec: api.BGPPeerSpec{NodeSelector: "has(rr)", PeerSelector: "all()"}}),
			affinity("h3", "10.65.3.0/26"),
		},
	}}
}

func vxlanPool(name, cidr, mode string) *api.IPPool {
	return &api.IPPool{Metadata: api.ObjectMeta{Name: name}, Spec: api.IPPoolSpec{CIDR: cidr, VXLANMode: mode}}
}

// calcNode is a Node with underlay addresses and VXLAN tunnel addresses
// ("" for none); its VTEP MAC derives from its name.
func calcNode(name, v4, v6, tun4, tun6 string) *api.Node {
	n := &api.Node{Metadata: api.ObjectMeta{Name: name}, Spec: api.NodeSpec{IPv4VXLANTunnelAddr: tun4, IPv6VXLANTunnelAddr: tun6}}
	if v4 != "" || v6 != "" {
		n.Spec.BGP = &api.NodeBGPSpec{IPv4Address: v4, IPv6Address: v6}
	}
	if tun4 != "" || tun6 != "" {
		n.Spec.VXLANTunnelMACAddr = fmt.Sprintf("66:00:00:00:00:%02x", name[len(name)-1])
	}
	return n
}

func affinity(node, cidr string) *api.BlockAffinity {
	return &api.BlockAffinity{
		TypeMeta: api.TypeMeta{Kind: api.KindBlockAffinity, APIVersion: api.APIVersion},
		Metadata: api.ObjectMeta{Name: node + "/" + cidr},
		Spec:     api.BlockAffinitySpec{Node: node, CIDR: cidr, State: api.AffinityConfirmed},
	}
}
