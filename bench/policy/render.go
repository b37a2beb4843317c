package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/calyx-net/calyx/internal/calc"
)

// The reference renderers: the same desired state, with the same
// semantics (the calc.Tier doc), written as the peers' input. The
// iptables rendering follows Felix's layout (calico-design.md §6.2): a
// forward chain that sends workload traffic to from-wl and to-wl dispatch
// chains, one chain per endpoint and direction, one per policy and
// direction, an accept mark bit set by Allow and tested after each policy
// jump, and one ipset per address set, loaded with `ipset restore` as
// Felix does. Felix splits its dispatch chains into a tree by interface
// name prefix; this one is linear, which costs the peer nothing at load
// time (the same number of rules) and only matters per packet, which B3
// does not measure. The nft rendering is what a person would write for
// the same layout with nftables' own tools: named interval sets and
// verdict maps keyed by interface name.
//
// Only what the generator produces is supported (IPv4, Allow, Deny, Pass,
// protocol, ports, address sets); anything else is an error naming it.

const (
	ipTable   = "calyxref" // nft table of the nft peer
	markAllow = "0x10000"  // accept mark bit
	markPass  = "0x20000"  // pass mark bit
	markMask  = "0x30000"  // bits cleared on entry to an endpoint chain
	ipsetPfx  = "calyx-"   // ipset names
	chainPfx  = "calyx-"   // iptables chain names
	nftFamily = "inet"     // nft table family
	maxIPTLen = 28         // iptables chain name limit
	ipsetMax  = 31         // ipset name limit
	hashsize  = "hashsize 1024 maxelem 1048576"
)

func ipsetName(id string) string { return ipsetPfx + id }

func iptChain(id string) string { return chainPfx + id }

func epChain(dir, ifName string) string {
	if dir == calc.Ingress {
		return chainPfx + "tw-" + ifName // to workload
	}
	return chainPfx + "fw-" + ifName // from workload
}

// ruleset is a rendered state, as the peers load it.
type ruleset struct {
	ipset    string // `ipset restore` input
	iptables string // `iptables-restore` input
	nft      string // `nft -f` input
	// rules is the number of iptables rules (-A lines), the state's size
	// in rule-equivalents.
	rules int
}

// render writes s for the peers.
func render(s *calc.State) (ruleset, error) {
	var rs ruleset
	if err := checkNames(s); err != nil {
		return rs, err
	}
	// ipset.
	var ipset strings.Builder
	for _, id := range sortedKeys(s.Sets) {
		set := s.Sets[id]
		fmt.Fprintf(&ipset, "create %s hash:net family inet %s\n", ipsetName(id), hashsize)
		for _, p := range set.Prefixes {
			fmt.Fprintf(&ipset, "add %s %s\n", ipsetName(id), p)
		}
	}
	rs.ipset = ipset.String()

	// iptables.
	var decl, body []string
	decl = append(decl, "*filter", ":"+chainPfx+"FORWARD - [0:0]", ":"+chainPfx+"from-wl-dispatch - [0:0]", ":"+chainPfx+"to-wl-dispatch - [0:0]")
	body = append(body,
		"-A FORWARD -j "+chainPfx+"FORWARD",
		"-A "+chainPfx+"FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
		"-A "+chainPfx+"FORWARD -m conntrack --ctstate INVALID -j DROP",
		"-A "+chainPfx+"FORWARD -i calyx+ -j "+chainPfx+"from-wl-dispatch",
		"-A "+chainPfx+"FORWARD -o calyx+ -j "+chainPfx+"to-wl-dispatch",
		"-A "+chainPfx+"FORWARD -i calyx+ -j ACCEPT",
		"-A "+chainPfx+"FORWARD -o calyx+ -j ACCEPT")
	for _, id := range sortedKeys(s.Chains) {
		lines, err := iptPolicyChain(s.Chains[id])
		if err != nil {
			return rs, err
		}
		decl = append(decl, ":"+iptChain(id)+" - [0:0]")
		body = append(body, lines...)
	}
	var from, to []string
	for _, name := range sortedKeys(s.Endpoints) {
		ep := s.Endpoints[name]
		for _, dir := range []string{calc.Ingress, calc.Egress} {
			decl = append(decl, ":"+epChain(dir, ep.IfName)+" - [0:0]")
			body = append(body, iptEndpointChain(ep, dir)...)
		}
		from = append(from, iptDispatch(ep, calc.Egress))
		to = append(to, iptDispatch(ep, calc.Ingress))
	}
	body = append(body, from...)
	body = append(body, "-A "+chainPfx+"from-wl-dispatch -j DROP")
	body = append(body, to...)
	body = append(body, "-A "+chainPfx+"to-wl-dispatch -j DROP")
	rs.rules = len(body)
	rs.iptables = strings.Join(decl, "\n") + "\n" + strings.Join(body, "\n") + "\nCOMMIT\n"

	// nft.
	var b strings.Builder
	fmt.Fprintf(&b, "table %s %s {\n", nftFamily, ipTable)
	for _, id := range sortedKeys(s.Sets) {
		b.WriteString(nftSet(s.Sets[id]))
	}
	var fromEl, toEl []string
	for _, name := range sortedKeys(s.Endpoints) {
		ep := s.Endpoints[name]
		fromEl = append(fromEl, nftMapElem(ep, calc.Egress))
		toEl = append(toEl, nftMapElem(ep, calc.Ingress))
	}
	fmt.Fprintf(&b, "\tmap wl-from {\n\t\ttype ifname : verdict\n%s\t}\n", nftElements(fromEl))
	fmt.Fprintf(&b, "\tmap wl-to {\n\t\ttype ifname : verdict\n%s\t}\n", nftElements(toEl))
	b.WriteString("\tchain from-wl {\n\t\tiifname vmap @wl-from\n\t\tdrop\n\t}\n")
	b.WriteString("\tchain to-wl {\n\t\toifname vmap @wl-to\n\t\tdrop\n\t}\n")
	for _, id := range sortedKeys(s.Chains) {
		lines, err := nftPolicyRules(s.Chains[id])
		if err != nil {
			return rs, err
		}
		fmt.Fprintf(&b, "\tchain %s {\n%s\t}\n", id, indent(lines))
	}
	for _, name := range sortedKeys(s.Endpoints) {
		for _, dir := range []string{calc.Ingress, calc.Egress} {
			b.WriteString(nftEndpointChain(s.Endpoints[name], dir))
		}
	}
	b.WriteString("\tchain forward {\n\t\ttype filter hook forward priority filter; policy accept;\n" +
		"\t\tct state established,related accept\n\t\tct state invalid drop\n" +
		"\t\tiifname \"calyx*\" jump from-wl\n\t\toifname \"calyx*\" jump to-wl\n" +
		"\t\tiifname \"calyx*\" accept\n\t\toifname \"calyx*\" accept\n\t}\n")
	b.WriteString("}\n")
	rs.nft = b.String()
	return rs, nil
}

// checkNames reports an ID that would not fit the peers' name limits.
func checkNames(s *calc.State) error {
	for id := range s.Sets {
		if len(ipsetName(id)) > ipsetMax {
			return fmt.Errorf("set %q: ipset name %q is longer than %d characters", id, ipsetName(id), ipsetMax)
		}
	}
	for id := range s.Chains {
		if len(iptChain(id)) > maxIPTLen {
			return fmt.Errorf("chain %q: iptables chain name %q is longer than %d characters", id, iptChain(id), maxIPTLen)
		}
	}
	for _, ep := range s.Endpoints {
		if len(epChain(calc.Ingress, ep.IfName)) > maxIPTLen {
			return fmt.Errorf("endpoint %q: interface %q makes an iptables chain name longer than %d characters", ep.Name, ep.IfName, maxIPTLen)
		}
	}
	return nil
}

// iptPolicyChain is the -A lines of a policy or profile chain.
func iptPolicyChain(c *calc.Chain) ([]string, error) {
	var out []string
	for _, r := range c.Rules {
		m, err := iptMatch(r)
		if err != nil {
			return nil, fmt.Errorf("chain %s rule %d: %w", c.ID, r.Index, err)
		}
		head := "-A " + iptChain(c.ID) + m
		switch r.Action {
		case calc.ActionAllow:
			out = append(out, head+" -j MARK --set-xmark "+markAllow+"/"+markAllow,
				"-A "+iptChain(c.ID)+" -m mark --mark "+markAllow+"/"+markAllow+" -j RETURN")
		case calc.ActionPass:
			out = append(out, head+" -j MARK --set-xmark "+markPass+"/"+markPass,
				"-A "+iptChain(c.ID)+" -m mark --mark "+markPass+"/"+markPass+" -j RETURN")
		case calc.ActionDeny:
			out = append(out, head+" -j DROP")
		default:
			return nil, fmt.Errorf("chain %s rule %d: action %q: the reference renderer supports Allow, Deny and Pass", c.ID, r.Index, r.Action)
		}
	}
	return out, nil
}

// iptMatch is the match part of a rule, with a leading space.
func iptMatch(r calc.Rule) (string, error) {
	if r.IPVersion == 6 || r.NotProtocol != nil || r.ICMP != nil || r.NotICMP != nil {
		return "", fmt.Errorf("IPv6, notProtocol and ICMP matches are not supported by the reference renderer")
	}
	var b strings.Builder
	if r.Protocol != nil {
		fmt.Fprintf(&b, " -p %d", *r.Protocol)
	}
	for _, h := range []struct {
		m   calc.Match
		dir string
	}{{r.Src, "src"}, {r.Dst, "dst"}} {
		if h.m.NamedPortSet != "" || h.m.NotNamedPortSet() != "" || len(h.m.NotPorts()) > 0 {
			return "", fmt.Errorf("named ports and notPorts are not supported by the reference renderer")
		}
		for _, id := range h.m.Sets {
			fmt.Fprintf(&b, " -m set --match-set %s %s", ipsetName(id), h.dir)
		}
		for _, id := range h.m.NotSets() {
			fmt.Fprintf(&b, " -m set ! --match-set %s %s", ipsetName(id), h.dir)
		}
		if len(h.m.Ports) > 0 {
			if r.Protocol == nil {
				return "", fmt.Errorf("ports without a protocol")
			}
			flag := " --sports "
			if h.dir == "dst" {
				flag = " --dports "
			}
			b.WriteString(" -m multiport" + flag + portList(h.m.Ports, ":"))
		}
	}
	return b.String(), nil
}

func portList(ps []calc.PortRange, sep string) string {
	var s []string
	for _, p := range ps {
		if p.Min == p.Max {
			s = append(s, strconv.Itoa(int(p.Min)))
		} else {
			s = append(s, fmt.Sprintf("%d%s%d", p.Min, sep, p.Max))
		}
	}
	return strings.Join(s, ",")
}

// iptEndpointChain is the -A lines of one endpoint's chain in one
// direction, as Felix writes it: clear the marks; each policy, jumped to
// only while no policy has passed, returning when one allowed; end of
// tier (drop unless a policy passed) when there are policies; each
// profile, returning when one allowed; drop.
func iptEndpointChain(ep *calc.Endpoint, dir string) []string {
	t, c := ep.Ingress, epChain(dir, ep.IfName)
	if dir == calc.Egress {
		t = ep.Egress
	}
	out := []string{"-A " + c + " -j MARK --set-xmark 0x0/" + markMask}
	ret := "-A " + c + " -m mark --mark " + markAllow + "/" + markAllow + " -j RETURN"
	for _, id := range t.Policies {
		out = append(out, "-A "+c+" -m mark --mark 0x0/"+markPass+" -j "+iptChain(id), ret)
	}
	if len(t.Policies) > 0 {
		out = append(out, "-A "+c+" -m mark --mark 0x0/"+markPass+" -j DROP")
	}
	for _, id := range t.Profiles {
		out = append(out, "-A "+c+" -j "+iptChain(id), ret)
	}
	return append(out, "-A "+c+" -j DROP")
}

// iptDispatch is an endpoint's dispatch rule in one direction.
func iptDispatch(ep *calc.Endpoint, dir string) string {
	if dir == calc.Ingress {
		return "-A " + chainPfx + "to-wl-dispatch -o " + ep.IfName + " -g " + epChain(dir, ep.IfName)
	}
	return "-A " + chainPfx + "from-wl-dispatch -i " + ep.IfName + " -g " + epChain(dir, ep.IfName)
}

func nftSet(s *calc.Set) string {
	var el []string
	for _, p := range s.Prefixes {
		if p.IsSingleIP() {
			el = append(el, p.Addr().String())
		} else {
			el = append(el, p.String())
		}
	}
	return fmt.Sprintf("\tset %s {\n\t\ttype ipv4_addr\n\t\tflags interval\n%s\t}\n", s.ID, nftElements(el))
}

// nftElements is an elements line, or nothing for no elements.
func nftElements(el []string) string {
	if len(el) == 0 {
		return ""
	}
	return "\t\telements = { " + strings.Join(el, ", ") + " }\n"
}

func nftMapElem(ep *calc.Endpoint, dir string) string {
	return fmt.Sprintf("%q : goto %s", ep.IfName, nftEpChain(dir, ep.IfName))
}

func nftEpChain(dir, ifName string) string {
	if dir == calc.Ingress {
		return "tw-" + ifName
	}
	return "fw-" + ifName
}

// nftPolicyRules is the rules of a policy or profile chain.
func nftPolicyRules(c *calc.Chain) ([]string, error) {
	var out []string
	for _, r := range c.Rules {
		m, err := nftMatch(r)
		if err != nil {
			return nil, fmt.Errorf("chain %s rule %d: %w", c.ID, r.Index, err)
		}
		switch r.Action {
		case calc.ActionAllow:
			out = append(out, m+"meta mark set meta mark | "+markAllow+" return")
		case calc.ActionPass:
			out = append(out, m+"meta mark set meta mark | "+markPass+" return")
		case calc.ActionDeny:
			out = append(out, m+"drop")
		default:
			return nil, fmt.Errorf("chain %s rule %d: action %q: the reference renderer supports Allow, Deny and Pass", c.ID, r.Index, r.Action)
		}
	}
	return out, nil
}

// nftMatch is the match part of a rule, with a trailing space.
func nftMatch(r calc.Rule) (string, error) {
	if r.IPVersion == 6 || r.NotProtocol != nil || r.ICMP != nil || r.NotICMP != nil {
		return "", fmt.Errorf("IPv6, notProtocol and ICMP matches are not supported by the reference renderer")
	}
	var b strings.Builder
	if r.Protocol != nil {
		fmt.Fprintf(&b, "meta l4proto %d ", *r.Protocol)
	}
	for _, h := range []struct {
		m   calc.Match
		dir string
	}{{r.Src, "saddr"}, {r.Dst, "daddr"}} {
		if h.m.NamedPortSet != "" || h.m.NotNamedPortSet() != "" || len(h.m.NotPorts()) > 0 {
			return "", fmt.Errorf("named ports and notPorts are not supported by the reference renderer")
		}
		for _, id := range h.m.Sets {
			fmt.Fprintf(&b, "ip %s @%s ", h.dir, id)
		}
		for _, id := range h.m.NotSets() {
			fmt.Fprintf(&b, "ip %s != @%s ", h.dir, id)
		}
		if len(h.m.Ports) > 0 {
			if r.Protocol == nil {
				return "", fmt.Errorf("ports without a protocol")
			}
			port := "th sport"
			if h.dir == "daddr" {
				port = "th dport"
			}
			fmt.Fprintf(&b, "%s { %s } ", port, portList(h.m.Ports, "-"))
		}
	}
	return b.String(), nil
}

// nftEndpointChain is one endpoint's chain in one direction.
func nftEndpointChain(ep *calc.Endpoint, dir string) string {
	return fmt.Sprintf("\tchain %s {\n%s\t}\n", nftEpChain(dir, ep.IfName), indent(nftEndpointRules(ep, dir)))
}

func nftEndpointRules(ep *calc.Endpoint, dir string) []string {
	t := ep.Ingress
	if dir == calc.Egress {
		t = ep.Egress
	}
	out := []string{"meta mark set meta mark & 0xfffcffff"}
	ret := "meta mark & " + markAllow + " == " + markAllow + " return"
	for _, id := range t.Policies {
		out = append(out, "meta mark & "+markPass+" == 0 jump "+id, ret)
	}
	if len(t.Policies) > 0 {
		out = append(out, "meta mark & "+markPass+" == 0 drop")
	}
	for _, id := range t.Profiles {
		out = append(out, "jump "+id, ret)
	}
	return append(out, "drop")
}

func indent(lines []string) string {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString("\t\t" + l + "\n")
	}
	return b.String()
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
