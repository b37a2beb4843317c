package nft

import (
	"github.com/calyx-net/calyx/internal/calc"
	"github.com/google/nftables/expr"
)

// A calc.Rule becomes one nftables rule per variant. Variants exist
// because one nftables rule matches one address family and one positive
// port alternative:
//   - a rule that matches addresses (sets, named ports) or ICMP has an
//     IPv4 and an IPv6 variant (each family has its own kernel sets);
//   - each positive port alternative (each entry of Ports, and the
//     NamedPortSet) is a variant, since Ports OR NamedPortSet cannot be
//     one lookup; port lists are short, so this stays small, and
//     consecutive variants with one action are the OR of the rule;
//   - a port match without a protocol has a tcp, udp and sctp variant
//     (ports exist only there).
// Negative matches (NotSets, NotPorts, NotNamedPortSet) are a conjunction
// and stay within each variant.

type famChoice struct {
	specific, v6 bool
}

type portAlt struct {
	rng   *calc.PortRange
	named string
}

func matchUsesAddrs(m calc.Match) bool {
	return len(m.Sets) > 0 || len(m.NotSets()) > 0 || m.NamedPortSet != "" || m.NotNamedPortSet() != ""
}

func matchUsesPorts(m calc.Match) bool {
	return len(m.Ports) > 0 || m.NamedPortSet != "" || len(m.NotPorts()) > 0 || m.NotNamedPortSet() != ""
}

func ruleFamilies(r calc.Rule) []famChoice {
	var fams []famChoice
	switch {
	case r.IPVersion == 4:
		fams = []famChoice{{true, false}}
	case r.IPVersion == 6:
		fams = []famChoice{{true, true}}
	case matchUsesAddrs(r.Src) || matchUsesAddrs(r.Dst) || r.ICMP != nil || r.NotICMP != nil ||
		r.Protocol != nil && (*r.Protocol == 1 || *r.Protocol == 58):
		fams = []famChoice{{true, false}, {true, true}}
	default:
		return []famChoice{{}}
	}
	var out []famChoice
	for _, f := range fams {
		if r.Protocol != nil && (*r.Protocol == 1 && f.v6 || *r.Protocol == 58 && !f.v6) {
			continue // ICMP is IPv4's, ICMPv6 IPv6's
		}
		out = append(out, f)
	}
	return out
}

func ruleProtocols(r calc.Rule, f famChoice) []*uint8 {
	u := func(p uint8) *uint8 { return &p }
	switch {
	case r.Protocol != nil:
		return []*uint8{r.Protocol}
	case r.ICMP != nil || r.NotICMP != nil:
		if f.v6 {
			return []*uint8{u(58)}
		}
		return []*uint8{u(1)}
	case matchUsesPorts(r.Src) || matchUsesPorts(r.Dst):
		return []*uint8{u(6), u(17), u(132)}
	}
	return []*uint8{nil}
}

func portAlts(m calc.Match) []portAlt {
	var alts []portAlt
	for i := range m.Ports {
		alts = append(alts, portAlt{rng: &m.Ports[i]})
	}
	if m.NamedPortSet != "" {
		alts = append(alts, portAlt{named: m.NamedPortSet})
	}
	if len(alts) == 0 {
		return []portAlt{{}}
	}
	return alts
}

func (rd *renderer) ruleVariants(s *calc.State, r calc.Rule) []*ruleBuilder {
	var out []*ruleBuilder
	for _, f := range ruleFamilies(r) {
		for _, p := range ruleProtocols(r, f) {
			for _, sa := range portAlts(r.Src) {
				for _, da := range portAlts(r.Dst) {
					if b := rd.variant(s, r, f, p, sa, da); b != nil {
						out = append(out, b)
					}
				}
			}
		}
	}
	return out
}

// variant builds one variant, or nil when it can never match (it needs a
// member of a set calc did not provide).
func (rd *renderer) variant(s *calc.State, r calc.Rule, f famChoice, proto *uint8, sa, da portAlt) *ruleBuilder {
	b := &ruleBuilder{}
	if f.specific {
		b.family(f.v6)
	}
	if proto != nil {
		b.l4proto(*proto, false)
	}
	if r.NotProtocol != nil {
		b.l4proto(*r.NotProtocol, true)
	}
	for _, side := range []struct {
		dst bool
		m   calc.Match
		alt portAlt
	}{{false, r.Src, sa}, {true, r.Dst, da}} {
		for _, id := range side.m.Sets {
			set, ok := s.Sets[id]
			if !ok || set.Kind != calc.AddrSet {
				return nil // an absent set is empty: nothing is in it
			}
			b.addrInSet(f.v6, side.dst, false, setName(set, f.v6))
		}
		for _, id := range side.m.NotSets() {
			if set, ok := s.Sets[id]; ok && set.Kind == calc.AddrSet {
				b.addrInSet(f.v6, side.dst, true, setName(set, f.v6))
			}
		}
		switch {
		case side.alt.rng != nil:
			b.portRange(side.dst, false, side.alt.rng.Min, side.alt.rng.Max)
		case side.alt.named != "":
			set, ok := s.Sets[side.alt.named]
			if !ok || set.Kind != calc.AddrPortSet {
				return nil
			}
			b.addrPortInSet(f.v6, side.dst, false, setName(set, f.v6))
		}
		for _, pr := range side.m.NotPorts() {
			b.portRange(side.dst, true, pr.Min, pr.Max)
		}
		if id := side.m.NotNamedPortSet(); id != "" {
			if set, ok := s.Sets[id]; ok && set.Kind == calc.AddrPortSet {
				b.addrPortInSet(f.v6, side.dst, true, setName(set, f.v6))
			}
		}
	}
	if r.ICMP != nil {
		b.icmp(f.v6, false, r.ICMP.Type, r.ICMP.Code)
	}
	if r.NotICMP != nil {
		b.icmp(f.v6, true, r.NotICMP.Type, r.NotICMP.Code)
	}
	switch r.Action {
	case calc.ActionAllow:
		b.markOr(rd.markAccept).verdict(expr.VerdictReturn)
	case calc.ActionPass:
		b.markOr(rd.markPass).verdict(expr.VerdictReturn)
	case calc.ActionLog:
		b.log()
	default: // Deny, and anything calc did not expect: fail closed
		b.verdict(expr.VerdictDrop)
	}
	return b
}
