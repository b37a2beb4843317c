package calc

import (
	"crypto/sha256"
	"encoding/hex"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/calyx-net/calyx/internal/api"
	"github.com/calyx-net/calyx/internal/selector"
)

// Rule compilation (calico-design.md §1.1 "Rule", §6.1 RuleScanner):
// every selector, net list and named port becomes a set ID. A rule that
// can never match in the kernel dataplane is left out of its chain, which
// is exactly "never matches" (its Index keeps its place for traces):
//
//   - http (application-layer policy), serviceAccounts and
//     namespaceSelector: Calyx endpoints have no service accounts or
//     namespaces, so as in Calico such a rule selects nothing;
//   - a selector or notSelector that does not parse, an unknown protocol
//     name, an action or ipVersion calc does not know, named ports without
//     a protocol, or nets none of which parse.
//
// A notNets entry that does not parse is skipped.

// compileChain builds the chain of one policy or profile direction, with
// the specs of the sets its rules use (one per use).
func compileChain(kind, name, dir string, rules []api.Rule, missing bool) (*Chain, []setSpec) {
	ch := &Chain{ID: ChainID(kind, name, dir), Kind: kind, Name: name, Dir: dir, Missing: missing}
	if missing {
		ch.Rules = []Rule{{Index: 0, Action: ActionDeny}}
		return ch, nil
	}
	// A compiled chain lives as long as its policy: one allocation of its
	// rules, not append's doublings (a Rule is 208 bytes).
	if len(rules) > 0 {
		ch.Rules = make([]Rule, 0, len(rules))
	}
	var specs []setSpec
	for i := range rules {
		r, rs, ok := compileRule(i, &rules[i])
		if !ok {
			continue
		}
		ch.Rules = append(ch.Rules, r)
		specs = append(specs, rs...)
	}
	return ch, specs
}

func compileRule(idx int, ar *api.Rule) (Rule, []setSpec, bool) {
	r := Rule{Index: idx}
	if ar.HTTP != nil {
		return r, nil, false
	}
	for _, a := range []string{ActionAllow, ActionDeny, ActionLog, ActionPass} {
		if strings.EqualFold(a, ar.Action) {
			r.Action = a
		}
	}
	if r.Action == "" {
		return r, nil, false
	}
	if ar.IPVersion != nil {
		if *ar.IPVersion != 4 && *ar.IPVersion != 6 {
			return r, nil, false
		}
		r.IPVersion = *ar.IPVersion
	}
	var ok bool
	if r.Protocol, ok = protoNumber(ar.Protocol); !ok {
		return r, nil, false
	}
	if r.NotProtocol, ok = protoNumber(ar.NotProtocol); !ok {
		return r, nil, false
	}
	if r.ICMP, ok = icmpMatch(ar.ICMP); !ok {
		return r, nil, false
	}
	if r.NotICMP, ok = icmpMatch(ar.NotICMP); !ok {
		return r, nil, false
	}
	var specs []setSpec
	for _, side := range []struct {
		e   *api.EntityRule
		out *Match
	}{{&ar.Source, &r.Src}, {&ar.Destination, &r.Dst}} {
		m, ss, ok := compileSide(side.e, r.Protocol)
		if !ok {
			return r, nil, false
		}
		*side.out = m
		specs = append(specs, ss...)
	}
	return r, specs, true
}

func protoNumber(p *api.Protocol) (*uint8, bool) {
	if p == nil {
		return nil, true
	}
	n, ok := p.ToNumber()
	if !ok {
		return nil, false
	}
	return &n, true
}

func icmpMatch(f *api.ICMPFields) (*ICMPMatch, bool) {
	if f == nil || f.Type == nil {
		return nil, f == nil || f.Code == nil // a code without a type is invalid
	}
	if *f.Type < 0 || *f.Type > 255 {
		return nil, false
	}
	m := &ICMPMatch{Type: uint8(*f.Type)}
	if f.Code != nil {
		if *f.Code < 0 || *f.Code > 255 {
			return nil, false
		}
		c := uint8(*f.Code)
		m.Code = &c
	}
	return m, true
}

func compileSide(e *api.EntityRule, proto *uint8) (Match, []setSpec, bool) {
	var m Match
	var not NotMatch
	var specs []setSpec
	if e.NamespaceSelector != "" || e.ServiceAccounts != nil {
		return m, nil, false
	}
	if len(e.Nets) > 0 {
		nets := parseNets(e.Nets)
		if len(nets) == 0 {
			return m, nil, false
		}
		s := netsSpec(nets)
		m.Sets = append(m.Sets, s.id)
		specs = append(specs, s)
	}
	if nets := parseNets(e.NotNets); len(nets) > 0 {
		s := netsSpec(nets)
		not.Sets = append(not.Sets, s.id)
		specs = append(specs, s)
	}
	var sel *selector.Selector
	if e.Selector != "" {
		var err error
		if sel, err = selector.Parse(e.Selector); err != nil {
			return m, nil, false
		}
		s := selectorSpec(sel)
		m.Sets = append(m.Sets, s.id)
		specs = append(specs, s)
	}
	if e.NotSelector != "" {
		ns, err := selector.Parse(e.NotSelector)
		if err != nil {
			return m, nil, false
		}
		s := selectorSpec(ns)
		not.Sets = append(not.Sets, s.id)
		specs = append(specs, s)
	}
	portSel := sel
	if portSel == nil {
		portSel = selector.MustParse("all()")
	}
	var ok bool
	var ps []setSpec
	if m.Ports, m.NamedPortSet, ps, ok = compilePorts(e.Ports, proto, portSel); !ok {
		return m, nil, false
	}
	specs = append(specs, ps...)
	if not.Ports, not.NamedPortSet, ps, ok = compilePorts(e.NotPorts, proto, portSel); !ok {
		return m, nil, false
	}
	specs = append(specs, ps...)
	if len(not.Sets) > 0 || len(not.Ports) > 0 || not.NamedPortSet != "" {
		m.Not = &not
	}
	return m, specs, true
}

// compilePorts splits ports into numeric ranges and one named-port set.
func compilePorts(ports []api.Port, proto *uint8, sel *selector.Selector) ([]PortRange, string, []setSpec, bool) {
	var ranges []PortRange
	var names []string
	for _, p := range ports {
		if p.PortName != "" {
			names = append(names, p.PortName)
			continue
		}
		lo, hi := p.MinPort, p.MaxPort
		if lo > hi {
			lo, hi = hi, lo
		}
		ranges = append(ranges, PortRange{Min: lo, Max: hi})
	}
	if len(names) == 0 {
		return ranges, "", nil, true
	}
	if proto == nil {
		return nil, "", nil, false
	}
	slices.Sort(names)
	names = slices.Compact(names)
	s := namedPortSpec(sel, *proto, names)
	return ranges, s.id, []setSpec{s}, true
}

func shortHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:6])
}

func selectorSpec(sel *selector.Selector) setSpec {
	return setSpec{id: "s-" + sel.Hash(), kind: AddrSet, describe: "selector " + sel.String(), sel: sel}
}

func netsSpec(nets []netip.Prefix) setSpec {
	strs := make([]string, len(nets))
	for i, n := range nets {
		strs[i] = n.String()
	}
	list := strings.Join(strs, ",")
	return setSpec{id: "n-" + shortHash(list), kind: AddrSet, describe: "nets " + list, nets: nets}
}

func namedPortSpec(sel *selector.Selector, proto uint8, names []string) setSpec {
	key := strconv.Itoa(int(proto)) + " " + strings.Join(names, ",") + " of " + sel.String()
	return setSpec{
		id: "p-" + shortHash(key), kind: AddrPortSet,
		describe: "named ports " + protoName(proto) + " " + strings.Join(names, ",") + " of " + sel.String(),
		sel:      sel, proto: proto, names: names,
	}
}

func protoName(p uint8) string {
	switch p {
	case 1:
		return "icmp"
	case 6:
		return "tcp"
	case 17:
		return "udp"
	case 58:
		return "icmpv6"
	case 132:
		return "sctp"
	case 136:
		return "udplite"
	}
	return strconv.Itoa(int(p))
}
