package nft

import (
	"fmt"
	"net/netip"

	"github.com/calyx-net/calyx/internal/calc"
)

func u8(v uint8) *uint8 { return &v }

func pfx(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func chainID(kind, name, dir string) string { return kind + "/" + name + "/" + dir }

// baseState is two endpoints, a policy allowing role=frontend to reach
// role=backend on tcp 8080, a profile allowing everything in its own
// namespace, a network set, natOutgoing and a port mapping.
func baseState() *calc.State {
	s := &calc.State{
		Endpoints:     map[string]*calc.Endpoint{},
		HostEndpoints: map[string]*calc.HostEndpoint{},
		Chains:        map[string]*calc.Chain{},
		Sets:          map[string]*calc.Set{},
		Config: &calc.Config{
			EndpointToHostAction: "Accept",
			FailsafeInbound:      []calc.ProtoPort{{Protocol: 6, Port: 22}, {Protocol: 17, Port: 68}},
			FailsafeOutbound:     []calc.ProtoPort{{Protocol: 6, Port: 2379, Net: netip.MustParsePrefix("10.0.0.0/8")}},
			MasqPools:            pfx("10.65.0.0/16"),
			AllPools:             pfx("10.65.0.0/16", "10.66.0.0/16", "fd00:65::/48"),
		},
	}
	s.Sets["frontend"] = &calc.Set{ID: "frontend", Kind: calc.AddrSet, Describe: `selector role == "frontend"`, Prefixes: pfx("10.65.0.2/32", "fd00:65::2/128")}
	s.Sets["backend"] = &calc.Set{ID: "backend", Kind: calc.AddrSet, Describe: `selector role == "backend"`, Prefixes: pfx("10.65.0.3/32")}
	s.Sets["blocked"] = &calc.Set{ID: "blocked", Kind: calc.AddrSet, Describe: "nets 192.168.0.0/16,192.168.1.0/24,172.16.0.0/12", Prefixes: pfx("172.16.0.0/12", "192.168.0.0/16", "192.168.1.0/24")}
	s.Sets["http"] = &calc.Set{ID: "http", Kind: calc.AddrPortSet, Describe: "named port http", Triples: []calc.AddrPort{{Addr: netip.MustParseAddr("10.65.0.3"), Protocol: 6, Port: 8080}}}
	allow := calc.Chain{ID: chainID("policy", "allow-frontend", "ingress"), Kind: calc.KindPolicy, Name: "allow-frontend", Dir: calc.Ingress, Rules: []calc.Rule{
		{Index: 0, Action: calc.ActionDeny, Src: calc.Match{Sets: []string{"blocked"}}},
		{Index: 1, Action: calc.ActionAllow, Protocol: u8(6), Src: calc.Match{Sets: []string{"frontend"}}, Dst: calc.Match{Ports: []calc.PortRange{{Min: 8080, Max: 8080}, {Min: 9000, Max: 9100}}, NamedPortSet: "http"}},
		{Index: 2, Action: calc.ActionAllow, Protocol: u8(1), ICMP: &calc.ICMPMatch{Type: 8, Code: u8(0)}},
		{Index: 3, Action: calc.ActionPass, Src: calc.Match{Not: &calc.NotMatch{Sets: []string{"frontend"}}}},
	}}
	egress := calc.Chain{ID: chainID("policy", "egress-dns", "egress"), Kind: calc.KindPolicy, Name: "egress-dns", Dir: calc.Egress, Rules: []calc.Rule{
		{Index: 0, Action: calc.ActionLog, Protocol: u8(17), Dst: calc.Match{Ports: []calc.PortRange{{Min: 53, Max: 53}}}},
		{Index: 1, Action: calc.ActionAllow, Protocol: u8(17), Dst: calc.Match{Ports: []calc.PortRange{{Min: 53, Max: 53}}, Not: &calc.NotMatch{Ports: []calc.PortRange{{Min: 1, Max: 52}}}}},
		{Index: 2, Action: calc.ActionDeny, NotProtocol: u8(6)},
	}}
	prof := calc.Chain{ID: chainID("profile", "ns-default", "ingress"), Kind: calc.KindProfile, Name: "ns-default", Dir: calc.Ingress, Rules: []calc.Rule{
		{Index: 0, Action: calc.ActionAllow},
	}}
	profOut := calc.Chain{ID: chainID("profile", "ns-default", "egress"), Kind: calc.KindProfile, Name: "ns-default", Dir: calc.Egress, Rules: []calc.Rule{
		{Index: 0, Action: calc.ActionAllow},
	}}
	for _, c := range []calc.Chain{allow, egress, prof, profOut} {
		s.Chains[c.ID] = &c
	}
	s.Endpoints["frontend"] = &calc.Endpoint{Name: "frontend", IfName: "calyx0000000002", Addrs: []netip.Addr{netip.MustParseAddr("10.65.0.2")},
		Ingress: calc.Tier{Profiles: []string{prof.ID}},
		Egress:  calc.Tier{Policies: []string{egress.ID}, Profiles: []string{profOut.ID}}}
	s.Endpoints["backend"] = &calc.Endpoint{Name: "backend", IfName: "calyx0000000003", Addrs: []netip.Addr{netip.MustParseAddr("10.65.0.3")},
		Ingress:      calc.Tier{Policies: []string{allow.ID}, Profiles: []string{prof.ID}},
		Egress:       calc.Tier{Profiles: []string{profOut.ID}},
		PortMappings: []calc.PortMapping{{Protocol: 6, HostPort: 18080, ContainerPort: 8080, Addr: netip.MustParseAddr("10.65.0.3")}}}
	return s
}

// clone copies the State's maps (values are immutable, as calc promises).
func clone(s *calc.State) *calc.State {
	c := *s
	c.Endpoints = map[string]*calc.Endpoint{}
	for k, v := range s.Endpoints {
		c.Endpoints[k] = v
	}
	c.HostEndpoints = map[string]*calc.HostEndpoint{}
	for k, v := range s.HostEndpoints {
		c.HostEndpoints[k] = v
	}
	c.Chains = map[string]*calc.Chain{}
	for k, v := range s.Chains {
		c.Chains[k] = v
	}
	c.Sets = map[string]*calc.Set{}
	for k, v := range s.Sets {
		c.Sets[k] = v
	}
	return &c
}

// bigState is n endpoints, n policies (each endpoint's ingress uses one,
// all select through one set of members addresses) and a profile.
func bigState(n, members int) *calc.State {
	s := &calc.State{Endpoints: map[string]*calc.Endpoint{}, Chains: map[string]*calc.Chain{}, Sets: map[string]*calc.Set{}, Config: &calc.Config{}}
	var ps []netip.Prefix
	for i := range members {
		ps = append(ps, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(100 + i/65536), byte(i / 256), byte(i)}), 32))
	}
	// every other address, so intervals do not merge
	big := &calc.Set{ID: "big", Kind: calc.AddrSet, Describe: "big selector"}
	for i, p := range ps {
		a := p.Addr().As4()
		a[3] = byte(2 * (i % 128))
		a[2] = byte(i / 128)
		a[1] = byte(100 + i/(128*256))
		big.Prefixes = append(big.Prefixes, netip.PrefixFrom(netip.AddrFrom4(a), 32))
	}
	s.Sets["big"] = big
	prof := &calc.Chain{ID: "profile/p/ingress", Kind: calc.KindProfile, Name: "p", Dir: calc.Ingress, Rules: []calc.Rule{{Action: calc.ActionAllow}}}
	s.Chains[prof.ID] = prof
	for i := range n {
		c := &calc.Chain{ID: fmt.Sprintf("policy/pol%d/ingress", i), Kind: calc.KindPolicy, Name: fmt.Sprintf("pol%d", i), Dir: calc.Ingress, Rules: []calc.Rule{
			{Index: 0, Action: calc.ActionAllow, Protocol: u8(6), Src: calc.Match{Sets: []string{"big"}}, Dst: calc.Match{Ports: []calc.PortRange{{Min: uint16(1000 + i), Max: uint16(1000 + i)}}}},
		}}
		s.Chains[c.ID] = c
		name := fmt.Sprintf("ep%d", i)
		s.Endpoints[name] = &calc.Endpoint{Name: name, IfName: fmt.Sprintf("calyx%010x", i), Addrs: []netip.Addr{netip.AddrFrom4([4]byte{10, 65, byte(i / 256), byte(i)})},
			Ingress: calc.Tier{Policies: []string{c.ID}, Profiles: []string{prof.ID}}}
	}
	return s
}
