package nft

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/calyx-net/calyx/internal/calc"
	"github.com/google/nftables/expr"
)

// A fragment is what one object of the State (an endpoint, a host
// endpoint, a chain, a set, or the host-wide config) puts in the table:
// the chains and sets it owns and the elements it adds to shared maps.
type fragment struct {
	chains []*chainDef
	sets   []*setDef
	elems  []sharedElem
	// tiers are the shared tier chains the object's map elements go to:
	// one chain per distinct calc.Tier and direction, whatever number of
	// endpoints use it, created with its first user and deleted with its
	// last.
	tiers []*chainDef
}

type chainDef struct {
	spec  ChainSpec
	rules []*Rule
	// Once programmed (slim), a chain keeps only the digest of its rules'
	// comments (sum), all the reconciler compares it by; rules is nil.
	slim bool
	sum  [sha256.Size]byte
}

// digest stands for the chain's rules: equal digests, equal comments in
// the same order.
func (c *chainDef) digest() [sha256.Size]byte {
	if c.slim {
		return c.sum
	}
	return commentsDigest(c.rules)
}

// commentsDigest hashes the rules' comments. Each comment ends in a digest
// of its rule's text (see ruleBuilder.rule), so two lists of rules with
// the same comments are the same rules. SHA-256, because a policy's author
// chooses much of what is hashed.
func commentsDigest(rules []*Rule) [sha256.Size]byte {
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	for _, r := range rules {
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(r.Comment)))])
		h.Write([]byte(r.Comment))
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}

type setDef struct {
	spec SetSpec
	// An address set (addr) is kept as calc's members (raw, both
	// families, which calc never modifies), its family's members (v6),
	// masked and sorted (prefixes, a sub-slice of raw when raw is sorted
	// and masked, as calc hands it; see family), and their merged
	// intervals, computed on first use (merged), or by edit from an older
	// version's (see planEdit).
	addr     bool
	raw      []netip.Prefix
	v6       bool
	prefixes []netip.Prefix
	famDone  bool
	ranges   []addrRange
	merged   bool
	edit     *rangeEdit
	// elems are the set's kernel elements; an address set's are derived
	// from its intervals on first use (see elements).
	elems []Elem
}

// intervals returns an address set's merged intervals.
func (d *setDef) intervals() []addrRange {
	if !d.merged {
		if d.edit != nil {
			d.ranges, d.edit = d.edit.apply(false), nil
		} else {
			d.ranges = mergeSorted(d.family())
		}
		d.merged = true
	}
	return d.ranges
}

// family returns an address set's members of its family, masked and
// sorted.
func (d *setDef) family() []netip.Prefix {
	if !d.famDone {
		v4, v6 := familyPrefixes(d.raw)
		d.prefixes, d.famDone = v4, true
		if d.v6 {
			d.prefixes = v6
		}
	}
	return d.prefixes
}

// settle applies a pending edit to the older version's intervals in
// place: called once the transaction it was planned for succeeded and the
// older version is gone.
func (d *setDef) settle() {
	if d.edit != nil && !d.merged {
		d.ranges, d.edit, d.merged = d.edit.apply(true), nil, true
	}
}

// elements returns the set's kernel elements.
func (d *setDef) elements() []Elem {
	if d.addr && d.elems == nil {
		d.elems = intervalElems(d.intervals())
	}
	return d.elems
}

type sharedElem struct {
	set  string
	elem Elem
}

// Object keys.
const (
	keyConfig = "config"
	prefixEp  = "ep/"
	prefixHep = "hep/"
	prefixCh  = "chain/"
	prefixSet = "set/"
)

// renderer renders State objects.
type renderer struct {
	markAccept, markPass uint32
}

// render returns the fragment of the object key in s, nil when s has no
// such object.
func (rd *renderer) render(s *calc.State, key string) *fragment {
	switch {
	case key == keyConfig:
		return rd.config(s.Config)
	case len(key) > len(prefixEp) && key[:len(prefixEp)] == prefixEp:
		if ep, ok := s.Endpoints[key[len(prefixEp):]]; ok {
			return rd.endpoint(s, ep)
		}
	case len(key) > len(prefixHep) && key[:len(prefixHep)] == prefixHep:
		if hep, ok := s.HostEndpoints[key[len(prefixHep):]]; ok {
			return rd.hostEndpoint(s, hep)
		}
	case len(key) > len(prefixCh) && key[:len(prefixCh)] == prefixCh:
		if c, ok := s.Chains[key[len(prefixCh):]]; ok {
			return &fragment{chains: []*chainDef{rd.policyChain(s, c)}}
		}
	case len(key) > len(prefixSet) && key[:len(prefixSet)] == prefixSet:
		if set, ok := s.Sets[key[len(prefixSet):]]; ok {
			return &fragment{sets: renderSet(set)}
		}
	}
	return nil
}

// allKeys lists every object key of s, sorted (config first).
func allKeys(s *calc.State) []string {
	var keys []string
	for n := range s.Endpoints {
		keys = append(keys, prefixEp+n)
	}
	for n := range s.HostEndpoints {
		keys = append(keys, prefixHep+n)
	}
	for n := range s.Chains {
		keys = append(keys, prefixCh+n)
	}
	for n := range s.Sets {
		keys = append(keys, prefixSet+n)
	}
	sort.Strings(keys)
	return append([]string{keyConfig}, keys...)
}

// deltaKeys lists the object keys d names.
func deltaKeys(d calc.Delta) []string {
	var keys []string
	if d.Config {
		keys = append(keys, keyConfig)
	}
	for _, n := range d.Sets {
		keys = append(keys, prefixSet+n)
	}
	for _, n := range d.Chains {
		keys = append(keys, prefixCh+n)
	}
	for _, n := range d.Endpoints {
		keys = append(keys, prefixEp+n)
	}
	for _, n := range d.HostEndpoints {
		keys = append(keys, prefixHep+n)
	}
	return keys
}

func renderSet(s *calc.Set) []*setDef {
	if s.Kind == calc.AddrPortSet {
		d4 := &setDef{spec: SetSpec{Name: setName(s, false), Type: SetAddrPort4, Comment: s.Describe}}
		d6 := &setDef{spec: SetSpec{Name: setName(s, true), Type: SetAddrPort6, Comment: s.Describe}}
		for _, t := range s.Triples {
			d := d4
			if t.Addr.Is6() && !t.Addr.Is4In6() {
				d = d6
			}
			d.elems = append(d.elems, Elem{Key: addrPortKey(t.Addr.Unmap(), t.Protocol, t.Port)})
		}
		return []*setDef{d4, d6}
	}
	return []*setDef{
		addrSet(setName(s, false), SetAddr4, s.Describe, s.Prefixes),
		addrSet(setName(s, true), SetAddr6, s.Describe, s.Prefixes),
	}
}

// addrSet renders the prefixes of one family as an interval set.
func addrSet(name string, typ SetType, comment string, prefixes []netip.Prefix) *setDef {
	return &setDef{spec: SetSpec{Name: name, Type: typ, Comment: comment}, addr: true, raw: prefixes, v6: typ == SetAddr6}
}

// endpoint renders a workload endpoint: its interface's elements in the
// dispatch maps, going to the shared chains of its tiers, and its port
// mappings. Endpoints with the same policies and profiles (the replicas
// of one application, typically) share their chains, so the table grows
// with the number of distinct tiers, not of endpoints.
func (rd *renderer) endpoint(s *calc.State, ep *calc.Endpoint) *fragment {
	in, out := rd.sharedTier(s, true, ep.Ingress), rd.sharedTier(s, false, ep.Egress)
	f := &fragment{
		tiers: []*chainDef{in, out},
		elems: []sharedElem{
			{mapWlIn, Elem{Key: ifnameKey(ep.IfName), Verdict: "goto", Chain: in.spec.Name}},
			{mapWlOut, Elem{Key: ifnameKey(ep.IfName), Verdict: "goto", Chain: out.spec.Name}},
		},
	}
	for _, pm := range ep.PortMappings {
		m := mapDNAT4
		if pm.Addr.Is6() && !pm.Addr.Is4In6() {
			m = mapDNAT6
		}
		f.elems = append(f.elems, sharedElem{m, Elem{Key: dnatKey(pm.Protocol, pm.HostPort), Val: dnatVal(pm.Addr.Unmap(), pm.ContainerPort)}})
	}
	return f
}

func (rd *renderer) hostEndpoint(s *calc.State, hep *calc.HostEndpoint) *fragment {
	in, out := hostEndpointChain(true, hep.IfName), hostEndpointChain(false, hep.IfName)
	var failIn, failOut []calc.ProtoPort
	if s.Config != nil {
		failIn, failOut = s.Config.FailsafeInbound, s.Config.FailsafeOutbound
	}
	return &fragment{
		chains: []*chainDef{
			rd.tierChain(s, in, "ingress of host endpoint "+hep.Name, hep.Ingress, failsafeRules(in, failIn, false)),
			rd.tierChain(s, out, "egress of host endpoint "+hep.Name, hep.Egress, failsafeRules(out, failOut, true)),
		},
		elems: []sharedElem{
			{mapHepIn, Elem{Key: ifnameKey(hep.IfName), Verdict: "jump", Chain: in}},
			{mapHepOut, Elem{Key: ifnameKey(hep.IfName), Verdict: "jump", Chain: out}},
		},
	}
}

// failsafeRules accept traffic to the failsafe ports (from, or to for
// outbound, the failsafe's net).
func failsafeRules(chain string, ports []calc.ProtoPort, outbound bool) []*Rule {
	var rules []*Rule
	for _, p := range ports {
		b := &ruleBuilder{}
		if p.Net.IsValid() {
			b.family(p.Net.Addr().Is6())
			off, n, word := addrOffset(p.Net.Addr().Is6(), outbound)
			start, last := p.Net.Masked().Addr(), lastAddr(p.Net)
			b.add(fmt.Sprintf("%s %s", word, p.Net.Masked()),
				&expr.Payload{OperationType: expr.PayloadLoad, DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n},
				&expr.Range{Op: expr.CmpOpEq, Register: reg1, FromData: start.AsSlice(), ToData: last.AsSlice()})
		}
		b.l4proto(p.Protocol, false).portRange(true, false, p.Port, p.Port).verdict(expr.VerdictAccept)
		rules = append(rules, b.rule(chain, "failsafe"))
	}
	return rules
}

// sharedTier renders the chain of a workload tier in one direction. Its
// name is derived from what it calls (the policy and profile chains, in
// order, and which of them exist), so equal tiers get one chain and a
// changed tier is a new chain.
func (rd *renderer) sharedTier(s *calc.State, ingress bool, t calc.Tier) *chainDef {
	var b strings.Builder
	dir, what := "out", "egress tier"
	if ingress {
		dir, what = "in", "ingress tier"
	}
	b.WriteString(dir)
	for i, ids := range [][]string{t.Policies, t.Profiles} {
		b.WriteString([]string{"|policies", "|profiles"}[i])
		for _, id := range ids {
			b.WriteByte('|')
			if ch, ok := s.Chains[id]; ok {
				b.WriteString(policyChainName(ch))
			} else {
				b.WriteString("!" + id)
			}
		}
	}
	return rd.tierChain(s, tierChainName(dir, b.String()), what, t, nil)
}

// tierChain renders an endpoint's policy in one direction (calc.Tier).
func (rd *renderer) tierChain(s *calc.State, name, what string, t calc.Tier, first []*Rule) *chainDef {
	c := &chainDef{spec: ChainSpec{Name: name}}
	add := func(b *ruleBuilder, label string) { c.rules = append(c.rules, b.rule(name, label)) }
	c.rules = append(c.rules, first...)
	add((&ruleBuilder{}).ctState("established,related", ctEstablished|ctRelated).verdict(expr.VerdictAccept), "established")
	add((&ruleBuilder{}).ctState("invalid", ctInvalid).verdict(expr.VerdictDrop), "invalid")
	add((&ruleBuilder{}).markClear(rd.markAccept|rd.markPass), what)
	jump := func(id string, guardPass bool) {
		b := &ruleBuilder{}
		if guardPass {
			b.markIs(rd.markPass, false)
		}
		ch, ok := s.Chains[id]
		if !ok {
			// calc names a chain it did not produce: fail closed.
			add(b.verdict(expr.VerdictDrop), "missing chain "+id)
			return
		}
		add(b.jump(policyChainName(ch)), ch.Kind+" "+ch.Name)
		add((&ruleBuilder{}).markIs(rd.markAccept, true).verdict(expr.VerdictReturn), "allowed")
	}
	for i, id := range t.Policies {
		jump(id, i > 0)
	}
	if len(t.Policies) > 0 {
		add((&ruleBuilder{}).markIs(rd.markPass, false).verdict(expr.VerdictDrop), "end of tier")
	}
	for _, id := range t.Profiles {
		jump(id, false)
	}
	add((&ruleBuilder{}).verdict(expr.VerdictDrop), "no profile matched")
	return c
}

// policyChain renders a policy's or profile's rules in one direction.
func (rd *renderer) policyChain(s *calc.State, c *calc.Chain) *chainDef {
	name := policyChainName(c)
	d := &chainDef{spec: ChainSpec{Name: name}}
	for _, r := range c.Rules {
		label := fmt.Sprintf("%s %s rule %d", c.Kind, c.Name, r.Index)
		for _, b := range rd.ruleVariants(s, r) {
			d.rules = append(d.rules, b.rule(name, label))
		}
	}
	return d
}
