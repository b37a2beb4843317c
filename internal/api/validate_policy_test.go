package api

import (
	"math"
	"testing"
)

// TestValidateRule covers the rule validator shared by policies and
// profiles; every row edits the single ingress rule of testGNP.
func TestValidateRule(t *testing.T) {
	const r0 = "spec.ingress[0]"
	tcp := &Protocol{Name: ProtocolTCP}
	icmp := func(typ, code *int) *ICMPFields { return &ICMPFields{Type: typ, Code: code} }
	runValidateCases(t, []validateCase{
		{name: "base", r: testRule(func(*Rule) {})},
		// action
		{name: "action lower case normalised", r: testRule(func(r *Rule) { r.Action = "deny" })},
		{name: "action log", r: testRule(func(r *Rule) { r.Action = "Log" })},
		{name: "action pass", r: testRule(func(r *Rule) { r.Action = "pass" })},
		{name: "action missing", r: testRule(func(r *Rule) { r.Action = "" }), path: r0 + ".action", msg: "must be set to one of Allow, Deny, Log, Pass"},
		{name: "action bad", r: testRule(func(r *Rule) { r.Action = "Drop" }), path: r0 + ".action", msg: `"Drop": must be one of Allow, Deny, Log, Pass`},
		// ipVersion
		{name: "ipVersion 6", r: testRule(func(r *Rule) { r.IPVersion = ptr(6) })},
		{name: "ipVersion 5", r: testRule(func(r *Rule) { r.IPVersion = ptr(5) }), path: r0 + ".ipVersion", msg: "must be 4 or 6"},
		// protocol
		{name: "protocol lower case normalised", r: testRule(func(r *Rule) { r.Protocol = &Protocol{Name: "udp"} })},
		{name: "protocol sctp", r: testRule(func(r *Rule) { r.Protocol = &Protocol{Name: "sctp"} })},
		{name: "protocol number", r: testRule(func(r *Rule) { r.Protocol = &Protocol{Number: 17} })},
		{name: "protocol number 0", r: testRule(func(r *Rule) { r.Protocol = &Protocol{}; r.Destination.Ports = nil }),
			path: r0 + ".protocol", msg: "1-255"},
		{name: "protocol unknown", r: testRule(func(r *Rule) { r.Protocol = &Protocol{Name: "GRE"} }), path: r0 + ".protocol",
			msg: `"GRE": must be one of TCP, UDP, ICMP, ICMPv6, SCTP, UDPLite, or a number 1-255`},
		{name: "notProtocol unknown", r: testRule(func(r *Rule) { r.NotProtocol = &Protocol{Name: "esp"} }), path: r0 + ".notProtocol", msg: "must be one of"},
		{name: "notProtocol udplite", r: testRule(func(r *Rule) { r.NotProtocol = &Protocol{Name: "udplite"} })},
		{name: "icmp protocol with ipVersion 6", r: testRule(func(r *Rule) {
			r.Protocol, r.IPVersion, r.Destination.Ports = &Protocol{Name: ProtocolICMP}, ptr(6), nil
		}), path: r0 + ".protocol", msg: "use ICMPv6"},
		{name: "icmpv6 protocol with ipVersion 4", r: testRule(func(r *Rule) {
			r.Protocol, r.IPVersion, r.Destination.Ports = &Protocol{Name: "icmpv6"}, ptr(4), nil
		}), path: r0 + ".protocol", msg: "use ICMP"},
		// icmp / notICMP
		{name: "icmp type and code", r: testRule(func(r *Rule) {
			r.Protocol, r.Destination.Ports, r.ICMP = &Protocol{Name: ProtocolICMP}, nil, icmp(ptr(8), ptr(0))
		})},
		{name: "icmp by number", r: testRule(func(r *Rule) {
			r.Protocol, r.Destination.Ports, r.NotICMP = &Protocol{Number: 58}, nil, icmp(ptr(128), nil)
		})},
		{name: "icmp type 255", r: testRule(func(r *Rule) {
			r.Protocol, r.Destination.Ports, r.ICMP = &Protocol{Name: ProtocolICMP}, nil, icmp(ptr(255), nil)
		}), path: r0 + ".icmp.type", msg: "must be 0-254"},
		{name: "icmp code 256", r: testRule(func(r *Rule) {
			r.Protocol, r.Destination.Ports, r.ICMP = &Protocol{Name: ProtocolICMP}, nil, icmp(ptr(3), ptr(256))
		}), path: r0 + ".icmp.code", msg: "must be 0-255"},
		{name: "icmp code without type", r: testRule(func(r *Rule) {
			r.Protocol, r.Destination.Ports, r.NotICMP = &Protocol{Name: ProtocolICMP}, nil, icmp(nil, ptr(1))
		}), path: r0 + ".notICMP.code", msg: "requires type"},
		{name: "icmp without protocol", r: testRule(func(r *Rule) {
			r.Protocol, r.Destination.Ports, r.ICMP = nil, nil, icmp(ptr(8), nil)
		}), path: r0 + ".icmp", msg: "requires protocol ICMP or ICMPv6"},
		{name: "icmp with tcp", r: testRule(func(r *Rule) { r.ICMP = icmp(ptr(8), nil) }), path: r0 + ".icmp", msg: "requires protocol ICMP or ICMPv6"},
		{name: "icmp number with ipVersion 6", r: testRule(func(r *Rule) {
			r.Protocol, r.IPVersion, r.Destination.Ports, r.ICMP = &Protocol{Number: 1}, ptr(6), nil, icmp(ptr(8), nil)
		}), path: r0 + ".icmp", msg: "use protocol ICMPv6"},
		{name: "icmpv6 with ipVersion 4", r: testRule(func(r *Rule) {
			r.Protocol, r.IPVersion, r.Destination.Ports, r.NotICMP = &Protocol{Number: 58}, ptr(4), nil, icmp(ptr(128), nil)
		}), path: r0 + ".notICMP", msg: "use protocol ICMP"},
		// ports
		{name: "port range and name", r: testRule(func(r *Rule) {
			r.Destination.Ports = []Port{SinglePort(0), SinglePort(65535), {MinPort: 8000, MaxPort: 8080}, {PortName: "http-alt"}}
		})},
		{name: "port range reversed", r: testRule(func(r *Rule) { r.Destination.Ports = []Port{SinglePort(80), {MinPort: 9000, MaxPort: 8000}} }),
			path: r0 + ".destination.ports[1]", msg: "min must not be greater than max"},
		{name: "named port upper case", r: testRule(func(r *Rule) { r.Source.Ports = []Port{{PortName: "HTTP"}} }),
			path: r0 + ".source.ports[0]", msg: "at most 15 lower-case letters"},
		{name: "named port too long", r: testRule(func(r *Rule) { r.Destination.NotPorts = []Port{{PortName: "a-very-long-port-name"}} }),
			path: r0 + ".destination.notPorts[0]", msg: "at most 15"},
		{name: "named port double dash", r: testRule(func(r *Rule) { r.Destination.Ports = []Port{{PortName: "a--b"}} }),
			path: r0 + ".destination.ports[0]", msg: `without "--"`},
		{name: "named port no letter", r: testRule(func(r *Rule) { r.Destination.Ports = []Port{{PortName: "1-2"}} }),
			path: r0 + ".destination.ports[0]", msg: "at least one letter"},
		{name: "ports with udp", r: testRule(func(r *Rule) { r.Protocol = &Protocol{Name: "UDP"} })},
		{name: "ports with sctp number", r: testRule(func(r *Rule) { r.Protocol = &Protocol{Number: 132} })},
		{name: "ports with tcp number", r: testRule(func(r *Rule) { r.Protocol = &Protocol{Number: 6} })},
		{name: "ports without protocol", r: testRule(func(r *Rule) { r.Protocol = nil }), path: r0 + ".destination.ports",
			msg: "ports are only allowed when protocol is TCP, UDP or SCTP (protocol is not set)"},
		{name: "ports with icmp", r: testRule(func(r *Rule) { r.Protocol = &Protocol{Name: "ICMP"} }), path: r0 + ".destination.ports",
			msg: "(protocol is ICMP)"},
		{name: "notPorts with udplite", r: testRule(func(r *Rule) {
			r.Protocol, r.Destination.Ports, r.Source.NotPorts = &Protocol{Name: "UDPLite"}, nil, []Port{SinglePort(5)}
		}), path: r0 + ".source.notPorts", msg: "notPorts are only allowed"},
		// nets
		{name: "nets v4 and v6", r: testRule(func(r *Rule) { r.Source.Nets = []string{"10.0.0.0/8", "fd00::/8", "192.168.0.1"} })},
		{name: "nets bad", r: testRule(func(r *Rule) { r.Source.Nets = []string{"10.0.0.0/8", "10.0.0.0/40"} }),
			path: r0 + ".source.nets[1]", msg: `"10.0.0.0/40" is not a valid CIDR`},
		{name: "nets garbage", r: testRule(func(r *Rule) { r.Destination.NotNets = []string{"example.com"} }),
			path: r0 + ".destination.notNets[0]", msg: "not a valid CIDR or IP address"},
		{name: "nets host bits", r: testRule(func(r *Rule) { r.Destination.Nets = []string{"10.0.0.1/8"} }),
			path: r0 + ".destination.nets[0]", msg: "did you mean 10.0.0.0/8?"},
		{name: "nets family matches ipVersion", r: testRule(func(r *Rule) { r.IPVersion = ptr(6); r.Source.Nets = []string{"fd00::/8"} })},
		{name: "nets family mismatch", r: testRule(func(r *Rule) { r.IPVersion = ptr(4); r.Source.NotNets = []string{"fd00::/8"} }),
			path: r0 + ".source.notNets[0]", msg: "is an IPv6 network but ipVersion is 4"},
		// selectors
		{name: "selectors", r: testRule(func(r *Rule) {
			r.Source.Selector, r.Source.NotSelector, r.Source.NamespaceSelector = "a == 'b'", "has(c)", "global()"
			r.Source.ServiceAccounts = &ServiceAccounts{Names: []string{"sa"}, Selector: "all()"}
		})},
		{name: "selector bad", r: testRule(func(r *Rule) { r.Source.Selector = "a == " }), path: r0 + ".source.selector", msg: `invalid selector "a == "`},
		{name: "notSelector bad", r: testRule(func(r *Rule) { r.Destination.NotSelector = "has(" }), path: r0 + ".destination.notSelector", msg: "invalid selector"},
		{name: "namespaceSelector bad", r: testRule(func(r *Rule) { r.Source.NamespaceSelector = "a in b" }), path: r0 + ".source.namespaceSelector", msg: "invalid selector"},
		{name: "serviceAccounts selector bad", r: testRule(func(r *Rule) { r.Source.ServiceAccounts = &ServiceAccounts{Selector: "!"} }),
			path: r0 + ".source.serviceAccounts.selector", msg: "invalid selector"},
		{name: "rule annotations bad key", r: testRule(func(r *Rule) { r.Metadata = &RuleMetadata{Annotations: map[string]string{"bad key": ""}} }),
			path: r0 + `.metadata.annotations["bad key"]`, msg: "letters, digits"},
		{name: "egress rule path", r: testGNP(func(g *GlobalNetworkPolicy) {
			g.Spec.Egress = []Rule{{Action: ActionAllow}, {Action: ActionAllow, Protocol: tcp, Destination: EntityRule{Ports: []Port{{PortName: "X"}}}}}
		}), path: "spec.egress[1].destination.ports[0]", msg: "named port"},
	})
}

func TestValidateGlobalNetworkPolicy(t *testing.T) {
	gnp := testGNP
	runValidateCases(t, []validateCase{
		{name: "base", r: gnp(nil)},
		{name: "order", r: gnp(func(g *GlobalNetworkPolicy) { g.Spec.Order = ptr(-10.5) })},
		{name: "order NaN", r: gnp(func(g *GlobalNetworkPolicy) { g.Spec.Order = ptr(math.NaN()) }), path: "spec.order", msg: "finite"},
		{name: "order Inf", r: gnp(func(g *GlobalNetworkPolicy) { g.Spec.Order = ptr(math.Inf(1)) }), path: "spec.order", msg: "finite"},
		{name: "empty selector means all", r: gnp(func(g *GlobalNetworkPolicy) { g.Spec.Selector = "" })},
		{name: "selector bad", r: gnp(func(g *GlobalNetworkPolicy) { g.Spec.Selector = "role == web" }), path: "spec.selector", msg: "invalid selector"},
		{name: "namespaceSelector bad", r: gnp(func(g *GlobalNetworkPolicy) { g.Spec.NamespaceSelector = "((" }), path: "spec.namespaceSelector", msg: "invalid selector"},
		{name: "serviceAccountSelector bad", r: gnp(func(g *GlobalNetworkPolicy) { g.Spec.ServiceAccountSelector = "x ==" }), path: "spec.serviceAccountSelector", msg: "invalid selector"},
		{name: "types both", r: gnp(func(g *GlobalNetworkPolicy) { g.Spec.Types = []string{"Ingress", "Egress"} })},
		{name: "types lower case", r: gnp(func(g *GlobalNetworkPolicy) { g.Spec.Types = []string{"ingress"} })},
		{name: "types egress only, no rules", r: gnp(func(g *GlobalNetworkPolicy) { g.Spec.Ingress = nil; g.Spec.Types = []string{"Egress"} })},
		{name: "types bad", r: gnp(func(g *GlobalNetworkPolicy) { g.Spec.Types = []string{"Ingress", "Forward"} }), path: "spec.types[1]", msg: "must be one of Ingress, Egress"},
		{name: "types duplicate", r: gnp(func(g *GlobalNetworkPolicy) { g.Spec.Types = []string{"Ingress", "Ingress"} }), path: "spec.types[1]", msg: "listed twice"},
		{name: "ingress rules need Ingress", r: gnp(func(g *GlobalNetworkPolicy) { g.Spec.Types = []string{"Egress"} }), path: "spec.types", msg: "must include Ingress"},
		{name: "egress rules need Egress", r: gnp(func(g *GlobalNetworkPolicy) {
			g.Spec.Types = []string{"Ingress"}
			g.Spec.Egress = []Rule{{Action: ActionDeny}}
		}), path: "spec.types", msg: "must include Egress"},
		{name: "doNotTrack", r: gnp(func(g *GlobalNetworkPolicy) { g.Spec.DoNotTrack, g.Spec.ApplyOnForward = true, true })},
		{name: "preDNAT", r: gnp(func(g *GlobalNetworkPolicy) { g.Spec.PreDNAT, g.Spec.ApplyOnForward = true, true })},
		{name: "doNotTrack and preDNAT", r: gnp(func(g *GlobalNetworkPolicy) {
			g.Spec.DoNotTrack, g.Spec.PreDNAT, g.Spec.ApplyOnForward = true, true, true
		}), path: "spec.preDNAT", msg: "cannot both be true"},
		{name: "preDNAT with egress", r: gnp(func(g *GlobalNetworkPolicy) {
			g.Spec.PreDNAT, g.Spec.ApplyOnForward = true, true
			g.Spec.Egress = []Rule{{Action: ActionAllow}}
		}), path: "spec.egress", msg: "preDNAT policy may not have egress rules"},
		{name: "preDNAT with Egress type", r: gnp(func(g *GlobalNetworkPolicy) {
			g.Spec.PreDNAT, g.Spec.ApplyOnForward = true, true
			g.Spec.Types = []string{"Ingress", "Egress"}
		}), path: "spec.types", msg: "may not have type Egress"},
		{name: "doNotTrack without applyOnForward", r: gnp(func(g *GlobalNetworkPolicy) { g.Spec.DoNotTrack = true }),
			path: "spec.applyOnForward", msg: "must be true when doNotTrack is true"},
		{name: "preDNAT without applyOnForward", r: gnp(func(g *GlobalNetworkPolicy) { g.Spec.PreDNAT = true }),
			path: "spec.applyOnForward", msg: "must be true when preDNAT is true"},
	})
}

func TestValidateProfile(t *testing.T) {
	runValidateCases(t, []validateCase{
		{name: "base", r: testProfile(nil)},
		{name: "labelsToApply", r: testProfile(func(p *Profile) { p.Spec.LabelsToApply = map[string]string{"calyx.dev/net": "a", "tag": ""} })},
		{name: "labelsToApply bad", r: testProfile(func(p *Profile) { p.Spec.LabelsToApply = map[string]string{"net": "a b"} }),
			path: "spec.labelsToApply.net", msg: "must be empty or letters"},
		{name: "ingress rule bad", r: testProfile(func(p *Profile) { p.Spec.Ingress[0].Source.Selector = "&&" }),
			path: "spec.ingress[0].source.selector", msg: "invalid selector"},
		{name: "egress rule bad", r: testProfile(func(p *Profile) { p.Spec.Egress[0].Action = "accept" }),
			path: "spec.egress[0].action", msg: "must be one of"},
	})
}

func TestValidateGlobalNetworkSet(t *testing.T) {
	runValidateCases(t, []validateCase{
		{name: "base", r: testGNS(nil)},
		{name: "mixed families and bare ip", r: testGNS(func(g *GlobalNetworkSet) { g.Spec.Nets = []string{"10.0.0.0/8", "fd00::/8", "1.2.3.4", "::1"} })},
		{name: "empty", r: testGNS(func(g *GlobalNetworkSet) { g.Spec.Nets = nil })},
		{name: "bad net", r: testGNS(func(g *GlobalNetworkSet) { g.Spec.Nets = []string{"10.0.0.0/8", "10.0.0/8"} }),
			path: "spec.nets[1]", msg: "not a valid CIDR"},
		{name: "host bits", r: testGNS(func(g *GlobalNetworkSet) { g.Spec.Nets = []string{"198.51.100.7/28"} }),
			path: "spec.nets[0]", msg: "did you mean 198.51.100.0/28?"},
		{name: "label bad", r: testGNS(func(g *GlobalNetworkSet) { g.Metadata.Labels = map[string]string{"role": "-x"} }),
			path: "metadata.labels.role", msg: "must be empty or letters"},
	})
}
