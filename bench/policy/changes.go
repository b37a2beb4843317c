package main

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"

	"github.com/calyx-net/calyx/internal/api"
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

// change is one incremental change: the datastore event, the state after
// it with the delta calc reported, and the same change for each peer,
// derived from the two states.
type change struct {
	kind      string
	event     event       // the datastore change calc was given
	state     *calc.State // a copy of calc's state after the event
	delta     calc.Delta  // calc's TakeDelta after the event
	ipset     string      // `ipset restore` input before the rules; "" if none
	iptables  string      // `iptables-restore --noflush` input; "" if no rule changes
	ipsetPost string      // `ipset restore` input after the rules (destroys); "" if none
	nft       string      // `nft -f` input
}

// event is one datastore change: the resource kind/name's new value, nil
// when deleted.
type event struct {
	kind, name string
	r          api.Resource
}

// changer produces a sequence of changes through calc: each cycle adds a
// local endpoint, adds a remote endpoint to the big set, edits a policy's
// first rule and deletes the endpoint it added.
type changer struct {
	p        params
	rng      *rand.Rand
	calc     *calc.Calc
	policies map[int]*api.GlobalNetworkPolicy
	n        int // changes made
}

// newChanger starts from rs, loaded into c (compute(rs)); c's pending
// delta is taken.
func newChanger(p params, rs []api.Resource, c *calc.Calc) *changer {
	ch := &changer{p: p, rng: rand.New(rand.NewPCG(p.Seed+1, 7)), calc: c, policies: map[int]*api.GlobalNetworkPolicy{}}
	for _, r := range rs {
		if g, ok := r.(*api.GlobalNetworkPolicy); ok {
			var j int
			if _, err := fmt.Sscanf(g.Metadata.Name, "p%d", &j); err == nil {
				ch.policies[j] = g
			}
		}
	}
	c.TakeDelta()
	return ch
}

// next makes the next change.
func (c *changer) next() (change, error) {
	kind := changeKinds[c.n%len(changeKinds)]
	cycle := c.n / len(changeKinds)
	c.n++
	groups := c.p.Policies / c.p.PerEndpoint
	var rk, name string
	var r api.Resource
	switch kind {
	case addEndpoint:
		ep := localEndpoint(c.p.Endpoints, groups)
		rk, name, r = api.KindWorkloadEndpoint, ep.Metadata.Name, ep
	case delEndpoint:
		rk, name = api.KindWorkloadEndpoint, localName(c.p.Endpoints)
	case addMember:
		ep := remoteEndpoint(1<<20+cycle, netip.AddrFrom4([4]byte{10, 127, byte(cycle >> 8), byte(cycle)}), "client")
		rk, name, r = api.KindWorkloadEndpoint, ep.Metadata.Name, ep
	case editPolicy:
		j := c.rng.IntN(c.p.Policies)
		g := c.policies[j].DeepCopyResource().(*api.GlobalNetworkPolicy)
		port := uint16(1024 + c.rng.IntN(7000))
		g.Spec.Ingress[0].Destination.Ports = []api.Port{api.SinglePort(port), {MinPort: 8000, MaxPort: 8100}}
		c.policies[j] = g
		rk, name, r = api.KindGlobalNetworkPolicy, g.Metadata.Name, g
	}
	old := shallowClone(c.calc.State())
	c.calc.Update(rk, name, r)
	d := c.calc.TakeDelta()
	ch := change{kind: kind, event: event{rk, name, r}, state: shallowClone(c.calc.State()), delta: d}
	if d.Empty() {
		return ch, fmt.Errorf("change %d (%s of %s %s): calc reported no delta", c.n, kind, rk, name)
	}
	var err error
	if ch.ipset, ch.iptables, ch.ipsetPost, err = iptDiff(old, ch.state, d); err != nil {
		return ch, err
	}
	if ch.nft, err = nftDiff(old, ch.state, d); err != nil {
		return ch, err
	}
	return ch, nil
}

// shallowClone copies s's maps; the values are immutable and shared.
func shallowClone(s *calc.State) *calc.State {
	return &calc.State{Endpoints: maps.Clone(s.Endpoints), HostEndpoints: maps.Clone(s.HostEndpoints),
		Chains: maps.Clone(s.Chains), Sets: maps.Clone(s.Sets), Config: s.Config}
}

// memberDiff is what to add to old to reach new, and what to delete.
func memberDiff(old, new *calc.Set) (add, del []netip.Prefix) {
	var o, n []netip.Prefix
	if old != nil {
		o = old.Prefixes
	}
	if new != nil {
		n = new.Prefixes
	}
	for _, p := range n {
		if !slices.Contains(o, p) {
			add = append(add, p)
		}
	}
	for _, p := range o {
		if !slices.Contains(n, p) {
			del = append(del, p)
		}
	}
	return add, del
}

// iptDiff renders the delta from old to new as Felix would apply it:
// ipset changes, then one `iptables-restore --noflush` (declaring a chain
// that exists flushes it), then ipset destroys of sets no rule uses.
func iptDiff(old, new *calc.State, d calc.Delta) (ipset, ipt, ipsetPost string, err error) {
	var pre, post, decl, rules, drop []string
	for _, id := range d.Sets {
		o, n := old.Sets[id], new.Sets[id]
		if n != nil && o == nil {
			pre = append(pre, fmt.Sprintf("create %s hash:net family inet %s", ipsetName(id), hashsize))
		}
		add, del := memberDiff(o, n)
		for _, p := range add {
			pre = append(pre, fmt.Sprintf("add %s %s", ipsetName(id), p))
		}
		if n == nil {
			post = append(post, "destroy "+ipsetName(id))
			continue
		}
		for _, p := range del {
			pre = append(pre, fmt.Sprintf("del %s %s", ipsetName(id), p))
		}
	}
	for _, id := range d.Chains {
		c := new.Chains[id]
		if c == nil {
			if old.Chains[id] != nil {
				drop = append(drop, "-F "+iptChain(id), "-X "+iptChain(id))
			}
			continue
		}
		lines, err := iptPolicyChain(c)
		if err != nil {
			return "", "", "", err
		}
		decl = append(decl, ":"+iptChain(id)+" - [0:0]")
		rules = append(rules, lines...)
	}
	for _, name := range d.Endpoints {
		o, n := old.Endpoints[name], new.Endpoints[name]
		if o != nil && (n == nil || n.IfName != o.IfName) {
			for _, dir := range []string{calc.Ingress, calc.Egress} {
				rules = append(rules, "-D"+strings.TrimPrefix(iptDispatch(o, dir), "-A"))
				drop = append(drop, "-F "+epChain(dir, o.IfName), "-X "+epChain(dir, o.IfName))
			}
		}
		if n == nil {
			continue
		}
		for _, dir := range []string{calc.Ingress, calc.Egress} {
			decl = append(decl, ":"+epChain(dir, n.IfName)+" - [0:0]")
			rules = append(rules, iptEndpointChain(n, dir)...)
		}
		if o == nil || n.IfName != o.IfName {
			for _, dir := range []string{calc.Ingress, calc.Egress} {
				rules = append(rules, "-I"+insertDispatch(n, dir))
			}
		}
	}
	if len(decl)+len(rules)+len(drop) > 0 {
		ipt = "*filter\n" + strings.Join(slices.Concat(decl, rules, drop), "\n") + "\nCOMMIT\n"
	}
	return lines(pre), ipt, lines(post), nil
}

func lines(ls []string) string {
	if len(ls) == 0 {
		return ""
	}
	return strings.Join(ls, "\n") + "\n"
}

// insertDispatch is " <dispatch chain> 1 <spec>": the dispatch rule
// inserted ahead of the chain's final drop.
func insertDispatch(ep *calc.Endpoint, dir string) string {
	chain, spec, _ := strings.Cut(strings.TrimPrefix(iptDispatch(ep, dir), "-A "), " ")
	return " " + chain + " 1 " + spec
}

// nftDiff renders the delta from old to new as `nft -f` input: new sets
// and member changes, new and replaced chains, verdict map elements, then
// deletions of what no longer exists.
func nftDiff(old, new *calc.State, d calc.Delta) (string, error) {
	var b, tail strings.Builder
	table := nftFamily + " " + ipTable
	var block strings.Builder // definitions inside `table inet calyxref { }`
	for _, id := range d.Sets {
		o, n := old.Sets[id], new.Sets[id]
		switch {
		case n == nil:
			fmt.Fprintf(&tail, "delete set %s %s\n", table, id)
		case o == nil:
			block.WriteString(nftSet(n))
		default:
			add, del := memberDiff(o, n)
			if len(add) > 0 {
				fmt.Fprintf(&b, "add element %s %s { %s }\n", table, id, prefixList(add))
			}
			if len(del) > 0 {
				fmt.Fprintf(&b, "delete element %s %s { %s }\n", table, id, prefixList(del))
			}
		}
	}
	for _, id := range d.Chains {
		c := new.Chains[id]
		if c == nil {
			if old.Chains[id] != nil {
				fmt.Fprintf(&tail, "delete chain %s %s\n", table, id)
			}
			continue
		}
		rules, err := nftPolicyRules(c)
		if err != nil {
			return "", err
		}
		if old.Chains[id] != nil {
			fmt.Fprintf(&b, "flush chain %s %s\n", table, id)
		}
		fmt.Fprintf(&block, "\tchain %s {\n%s\t}\n", id, indent(rules))
	}
	var elems strings.Builder
	for _, name := range d.Endpoints {
		o, n := old.Endpoints[name], new.Endpoints[name]
		if o != nil && (n == nil || n.IfName != o.IfName) {
			fmt.Fprintf(&elems, "delete element %s wl-to { %q }\n", table, o.IfName)
			fmt.Fprintf(&elems, "delete element %s wl-from { %q }\n", table, o.IfName)
			for _, dir := range []string{calc.Ingress, calc.Egress} {
				fmt.Fprintf(&tail, "delete chain %s %s\n", table, nftEpChain(dir, o.IfName))
			}
		}
		if n == nil {
			continue
		}
		for _, dir := range []string{calc.Ingress, calc.Egress} {
			if o != nil && o.IfName == n.IfName {
				fmt.Fprintf(&b, "flush chain %s %s\n", table, nftEpChain(dir, n.IfName))
			}
			block.WriteString(nftEndpointChain(n, dir))
		}
		if o == nil || n.IfName != o.IfName {
			fmt.Fprintf(&elems, "add element %s wl-to { %s }\n", table, nftMapElem(n, calc.Ingress))
			fmt.Fprintf(&elems, "add element %s wl-from { %s }\n", table, nftMapElem(n, calc.Egress))
		}
	}
	if block.Len() > 0 {
		fmt.Fprintf(&b, "table %s {\n%s}\n", table, block.String())
	}
	return b.String() + elems.String() + tail.String(), nil
}

func prefixList(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		if p.IsSingleIP() {
			s[i] = p.Addr().String()
		} else {
			s[i] = p.String()
		}
	}
	return strings.Join(s, ", ")
}
