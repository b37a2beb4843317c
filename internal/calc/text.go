package calc

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Text renders s deterministically, one fact per line, for golden tests and
// diagnostics: endpoints with their tiers, host endpoints, chains with
// their rules, sets with their members, then the host-wide config.
func Text(s *State) string {
	var b strings.Builder
	for _, name := range slices.Sorted(maps.Keys(s.Endpoints)) {
		e := s.Endpoints[name]
		fmt.Fprintf(&b, "endpoint %s if=%s mac=%s addrs=%s\n", e.Name, e.IfName, e.MAC, joinAddrs(e.Addrs))
		writeLabels(&b, e.Labels)
		writeTier(&b, "ingress", e.Ingress)
		writeTier(&b, "egress", e.Egress)
		for _, m := range e.PortMappings {
			fmt.Fprintf(&b, "  portmap %s %d -> %s\n", protoName(m.Protocol), m.HostPort, netip.AddrPortFrom(m.Addr, m.ContainerPort))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(s.HostEndpoints)) {
		h := s.HostEndpoints[name]
		fmt.Fprintf(&b, "hostendpoint %s name=%s addrs=%s\n", h.IfName, h.Name, joinAddrs(h.Addrs))
		writeLabels(&b, h.Labels)
		writeTier(&b, "ingress", h.Ingress)
		writeTier(&b, "egress", h.Egress)
	}
	for _, id := range slices.Sorted(maps.Keys(s.Chains)) {
		c := s.Chains[id]
		fmt.Fprintf(&b, "chain %s (%s %s %s)", c.ID, c.Kind, c.Name, c.Dir)
		if c.Missing {
			b.WriteString(" missing")
		}
		b.WriteString("\n")
		for _, r := range c.Rules {
			fmt.Fprintf(&b, "  %s\n", ruleText(r))
		}
	}
	for _, id := range slices.Sorted(maps.Keys(s.Sets)) {
		set := s.Sets[id]
		fmt.Fprintf(&b, "set %s %s %q\n", set.ID, set.Kind, set.Describe)
		for _, p := range set.Prefixes {
			fmt.Fprintf(&b, "  %s\n", p)
		}
		for _, t := range set.Triples {
			fmt.Fprintf(&b, "  %s %s %d\n", t.Addr, protoName(t.Protocol), t.Port)
		}
	}
	if c := s.Config; c != nil {
		fmt.Fprintf(&b, "config endpointToHost=%s\n", c.EndpointToHostAction)
		fmt.Fprintf(&b, "  failsafeIn %s\n", protoPorts(c.FailsafeInbound))
		fmt.Fprintf(&b, "  failsafeOut %s\n", protoPorts(c.FailsafeOutbound))
		fmt.Fprintf(&b, "  masqPools %s\n", joinPrefixes(c.MasqPools))
		fmt.Fprintf(&b, "  allPools %s\n", joinPrefixes(c.AllPools))
	}
	for _, p := range slices.SortedFunc(maps.Keys(s.Routes), comparePrefix) {
		fmt.Fprintf(&b, "route %s\n", s.Routes[p])
	}
	if g := s.BGP; g != nil {
		fmt.Fprintf(&b, "bgp router-id=%s ipv6=%s as=%d cluster=%q port=%d subnets=%s\n", g.RouterID, g.IPv6, g.ASN, g.ClusterID, g.ListenPort, joinPrefixes(g.Subnets))
		for _, p := range g.Peers {
			fmt.Fprintf(&b, "  peer %s as=%d %s node=%q rr-client=%v\n", p.Addr, p.ASN, p.Name, p.Node, p.RRClient)
		}
		for _, p := range g.Paths {
			fmt.Fprintf(&b, "  advertise %s\n", p)
		}
	}
	for _, fam := range slices.Sorted(maps.Keys(s.VXLAN)) {
		v := s.VXLAN[fam]
		fmt.Fprintf(&b, "vxlan %s vni=%d port=%d mtu=%d mac=%s local=%s addr=%s\n", v.Name, v.VNI, v.Port, v.MTU, v.MAC, v.Local, v.Addr)
		for _, p := range v.Peers {
			fmt.Fprintf(&b, "  peer %s addr=%s mac=%s underlay=%s\n", p.Node, p.Addr, p.MAC, p.Underlay)
		}
	}
	return b.String()
}

func writeLabels(b *strings.Builder, l map[string]string) {
	if len(l) == 0 {
		return
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(l)) {
		parts = append(parts, k+"="+l[k])
	}
	fmt.Fprintf(b, "  labels %s\n", strings.Join(parts, ","))
}

func writeTier(b *strings.Builder, dir string, t Tier) {
	fmt.Fprintf(b, "  %s policies=[%s] profiles=[%s]\n", dir, strings.Join(t.Policies, " "), strings.Join(t.Profiles, " "))
}

func ruleText(r Rule) string {
	parts := []string{strconv.Itoa(r.Index), r.Action}
	if r.IPVersion != 0 {
		parts = append(parts, "ipv"+strconv.Itoa(r.IPVersion))
	}
	if r.Protocol != nil {
		parts = append(parts, "proto="+protoName(*r.Protocol))
	}
	if r.NotProtocol != nil {
		parts = append(parts, "!proto="+protoName(*r.NotProtocol))
	}
	if r.ICMP != nil {
		parts = append(parts, "icmp="+icmpText(r.ICMP))
	}
	if r.NotICMP != nil {
		parts = append(parts, "!icmp="+icmpText(r.NotICMP))
	}
	parts = append(parts, matchText("src", r.Src)...)
	parts = append(parts, matchText("dst", r.Dst)...)
	return strings.Join(parts, " ")
}

func icmpText(m *ICMPMatch) string {
	s := strconv.Itoa(int(m.Type))
	if m.Code != nil {
		s += "/" + strconv.Itoa(int(*m.Code))
	}
	return s
}

func matchText(side string, m Match) []string {
	var out []string
	if len(m.Sets) > 0 {
		out = append(out, side+".sets="+strings.Join(m.Sets, ","))
	}
	if len(m.NotSets()) > 0 {
		out = append(out, side+".!sets="+strings.Join(m.NotSets(), ","))
	}
	if len(m.Ports) > 0 {
		out = append(out, side+".ports="+portRanges(m.Ports))
	}
	if m.NamedPortSet != "" {
		out = append(out, side+".named="+m.NamedPortSet)
	}
	if len(m.NotPorts()) > 0 {
		out = append(out, side+".!ports="+portRanges(m.NotPorts()))
	}
	if m.NotNamedPortSet() != "" {
		out = append(out, side+".!named="+m.NotNamedPortSet())
	}
	return out
}

func portRanges(rs []PortRange) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = strconv.Itoa(int(r.Min))
		if r.Max != r.Min {
			parts[i] += "-" + strconv.Itoa(int(r.Max))
		}
	}
	return strings.Join(parts, ",")
}

func protoPorts(ps []ProtoPort) string {
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = protoName(p.Protocol) + ":" + strconv.Itoa(int(p.Port))
		if p.Net.IsValid() {
			parts[i] += "@" + p.Net.String()
		}
	}
	return strings.Join(parts, ",")
}

func joinAddrs(as []netip.Addr) string {
	parts := make([]string, len(as))
	for i, a := range as {
		parts[i] = a.String()
	}
	return strings.Join(parts, ",")
}

func joinPrefixes(ps []netip.Prefix) string {
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = p.String()
	}
	return strings.Join(parts, ",")
}
