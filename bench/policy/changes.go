package main

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"

	"github.com/calyx-net/calyx/internal/calc"
)

// Kinds of incremental change B3 times.
const (
	addEndpoint = "add_endpoint"
	addMember   = "add_member"
	editPolicy  = "edit_policy"
	delEndpoint = "del_endpoint"
)

var changeKinds = []string{addEndpoint, addMember, editPolicy, delEndpoint}

// change is one incremental change: the state after it, the delta that
// names what changed, and the same change for each peer.
type change struct {
	kind  string
	state *calc.State
	delta calc.Delta
	// ipset is `ipset restore` input ("" if the sets do not change),
	// iptables `iptables-restore --noflush` input ("" if no rule
	// changes), nft `nft -f` input.
	ipset, iptables, nft string
}

// changer produces a sequence of changes from a generated state: each
// cycle adds an endpoint, adds a member to the big set, edits a policy and
// deletes the endpoint it added, so the state's size stays the same.
type changer struct {
	p     params
	rng   *rand.Rand
	state *calc.State
	n     int // changes made
}

func newChanger(p params, s *calc.State) *changer {
	return &changer{p: p, rng: rand.New(rand.NewPCG(p.Seed+1, 7)), state: s}
}

// next makes the next change and returns it; the changer's state is the
// state after it.
func (c *changer) next() (change, error) {
	kind := changeKinds[c.n%len(changeKinds)]
	cycle := c.n / len(changeKinds)
	c.n++
	s := shallowClone(c.state)
	ch := change{kind: kind, state: s}
	groups := c.p.Policies / c.p.PerEndpoint
	switch kind {
	case addEndpoint, delEndpoint:
		// The added endpoint is the next index after the generated ones;
		// delEndpoint removes it again.
		ep := endpoint(c.p.Endpoints, groups, c.p.Policies)
		ch.delta.Endpoints = []string{ep.Name}
		if kind == addEndpoint {
			s.Endpoints[ep.Name] = ep
			ch.iptables, ch.nft = iptAddEndpoint(ep), nftAddEndpoint(ep)
		} else {
			delete(s.Endpoints, ep.Name)
			ch.iptables, ch.nft = iptDelEndpoint(ep), nftDelEndpoint(ep)
		}
	case addMember:
		old := s.Sets[bigSetID]
		// A fresh address in 10.127.0.0/16 (outside the generated ones).
		a := netip.AddrFrom4([4]byte{10, 127, byte(cycle >> 8), byte(cycle)})
		set := *old
		set.Prefixes = append(slices.Clone(old.Prefixes), netip.PrefixFrom(a, 32))
		slices.SortFunc(set.Prefixes, func(x, y netip.Prefix) int { return x.Addr().Compare(y.Addr()) })
		s.Sets[bigSetID] = &set
		ch.delta.Sets = []string{bigSetID}
		ch.ipset = fmt.Sprintf("add %s %s/32\n", ipsetName(bigSetID), a)
		ch.nft = fmt.Sprintf("add element %s %s %s { %s }\n", nftFamily, ipTable, bigSetID, a)
	case editPolicy:
		j := c.rng.IntN(c.p.Policies)
		id := chainID(calc.KindPolicy, policyName(j), calc.Ingress)
		old := s.Chains[id]
		edited := *old
		edited.Rules = slices.Clone(old.Rules)
		// A new port in the first rule.
		r := edited.Rules[0]
		port := uint16(1024 + c.rng.IntN(7000))
		r.Dst.Ports = []calc.PortRange{{Min: port, Max: port}, {Min: 8000, Max: 8100}}
		edited.Rules[0] = r
		s.Chains[id] = &edited
		ch.delta.Chains = []string{id}
		lines, err := iptPolicyChain(&edited)
		if err != nil {
			return ch, err
		}
		// In --noflush mode, declaring an existing chain flushes it.
		ch.iptables = "*filter\n:" + iptChain(id) + " - [0:0]\n" + strings.Join(lines, "\n") + "\nCOMMIT\n"
		rules, err := nftPolicyRules(&edited)
		if err != nil {
			return ch, err
		}
		ch.nft = fmt.Sprintf("flush chain %s %s %s\ntable %s %s {\n\tchain %s {\n%s\t}\n}\n",
			nftFamily, ipTable, id, nftFamily, ipTable, id, indent(rules))
	}
	c.state = s
	return ch, nil
}

// shallowClone copies s's maps; the values are immutable and shared.
func shallowClone(s *calc.State) *calc.State {
	return &calc.State{Endpoints: maps.Clone(s.Endpoints), HostEndpoints: maps.Clone(s.HostEndpoints),
		Chains: maps.Clone(s.Chains), Sets: maps.Clone(s.Sets), Config: s.Config}
}

// iptAddEndpoint declares the endpoint's chains and inserts its dispatch
// rules ahead of the dispatch chains' final drop.
func iptAddEndpoint(ep *calc.Endpoint) string {
	lines := []string{"*filter"}
	for _, dir := range []string{calc.Ingress, calc.Egress} {
		lines = append(lines, ":"+epChain(dir, ep.IfName)+" - [0:0]")
	}
	for _, dir := range []string{calc.Ingress, calc.Egress} {
		lines = append(lines, iptEndpointChain(ep, dir)...)
	}
	for _, dir := range []string{calc.Ingress, calc.Egress} {
		lines = append(lines, "-I"+insertDispatch(ep, dir))
	}
	return strings.Join(append(lines, "COMMIT"), "\n") + "\n"
}

func insertDispatch(ep *calc.Endpoint, dir string) string {
	rest := strings.TrimPrefix(iptDispatch(ep, dir), "-A ")
	chain, spec, _ := strings.Cut(rest, " ")
	return " " + chain + " 1 " + spec
}

// iptDelEndpoint deletes the dispatch rules, then flushes and deletes
// the endpoint's chains.
func iptDelEndpoint(ep *calc.Endpoint) string {
	lines := []string{"*filter"}
	for _, dir := range []string{calc.Ingress, calc.Egress} {
		lines = append(lines, "-D"+strings.TrimPrefix(iptDispatch(ep, dir), "-A"))
	}
	for _, dir := range []string{calc.Ingress, calc.Egress} {
		lines = append(lines, "-F "+epChain(dir, ep.IfName), "-X "+epChain(dir, ep.IfName))
	}
	return strings.Join(append(lines, "COMMIT"), "\n") + "\n"
}

func nftAddEndpoint(ep *calc.Endpoint) string {
	var b strings.Builder
	fmt.Fprintf(&b, "table %s %s {\n", nftFamily, ipTable)
	for _, dir := range []string{calc.Ingress, calc.Egress} {
		b.WriteString(nftEndpointChain(ep, dir))
	}
	b.WriteString("}\n")
	fmt.Fprintf(&b, "add element %s %s wl-to { %s }\n", nftFamily, ipTable, nftMapElem(ep, calc.Ingress))
	fmt.Fprintf(&b, "add element %s %s wl-from { %s }\n", nftFamily, ipTable, nftMapElem(ep, calc.Egress))
	return b.String()
}

func nftDelEndpoint(ep *calc.Endpoint) string {
	var b strings.Builder
	fmt.Fprintf(&b, "delete element %s %s wl-to { %q }\n", nftFamily, ipTable, ep.IfName)
	fmt.Fprintf(&b, "delete element %s %s wl-from { %q }\n", nftFamily, ipTable, ep.IfName)
	for _, dir := range []string{calc.Ingress, calc.Egress} {
		fmt.Fprintf(&b, "delete chain %s %s %s\n", nftFamily, ipTable, nftEpChain(dir, ep.IfName))
	}
	return b.String()
}
