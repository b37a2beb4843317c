package calc

import (
	"cmp"
	"math"
	"reflect"
	"slices"
	"strings"

	"github.com/calyx-net/calyx/internal/api"
	"github.com/calyx-net/calyx/internal/selector"
)

// Policies and local endpoints (calico-design.md §6.1,
// ActiveRulesCalculator and PolicyResolver): each policy's selector is
// matched against the local endpoints' effective labels only; each local
// endpoint keeps the names of the policies that match it.

type policyInfo struct {
	gnp *api.GlobalNetworkPolicy
	// sel is nil when the policy selects nothing: its selector does not
	// parse, or it has a namespaceSelector or serviceAccountSelector
	// (Calyx endpoints have neither namespaces nor service accounts).
	sel             *selector.Selector
	ingress, egress bool
	order           float64 // +Inf when unset
	// inChain and egChain are its chains' IDs, made once: every endpoint
	// the policy selects names them in its tiers.
	inChain, egChain string
}

type policyIndex struct {
	byName map[string]*policyInfo
}

func newPolicyInfo(g *api.GlobalNetworkPolicy) *policyInfo {
	p := &policyInfo{gnp: g, order: math.Inf(1),
		inChain: ChainID(KindPolicy, g.Metadata.Name, Ingress), egChain: ChainID(KindPolicy, g.Metadata.Name, Egress)}
	if o := g.Spec.Order; o != nil && !math.IsNaN(*o) {
		p.order = *o
	}
	if g.Spec.NamespaceSelector == "" && g.Spec.ServiceAccountSelector == "" {
		if s, err := selector.Parse(g.Spec.Selector); err == nil {
			p.sel = s
		}
	}
	types := g.Spec.Types
	if len(types) == 0 {
		types = api.InferPolicyTypes(len(g.Spec.Ingress) > 0, len(g.Spec.Egress) > 0)
	}
	for _, t := range types {
		p.ingress = p.ingress || strings.EqualFold(t, api.PolicyTypeIngress)
		p.egress = p.egress || strings.EqualFold(t, api.PolicyTypeEgress)
	}
	return p
}

func (p *policyInfo) matches(labels map[string]string) bool {
	return p != nil && p.sel != nil && p.sel.Evaluate(labels)
}

// comparePolicies orders by order ascending (unset last), then name
// (calico-design.md §6.1 PolicySorter).
func comparePolicies(a, b *policyInfo) int {
	if c := cmp.Compare(a.order, b.order); c != 0 {
		return c
	}
	return strings.Compare(a.gnp.Metadata.Name, b.gnp.Metadata.Name)
}

// local is a local endpoint's policy matches.
type local struct {
	// matched are the names of the policies selecting it, sorted: a slice
	// costs a third of a set's memory, and every local endpoint has one.
	// It is shared (stringLists): never modified, only replaced.
	matched []string
}

// setMatched records whether policy name selects l, and reports whether
// it did.
func (l *local) setMatched(name string, is bool, lists *stringLists) (was bool) {
	i, was := slices.BinarySearch(l.matched, name)
	if is == was {
		return was
	}
	var next []string
	if is {
		next = slices.Concat(l.matched[:i], []string{name}, l.matched[i:])
	} else {
		next = slices.Concat(l.matched[:i], l.matched[i+1:])
	}
	lists.release(l.matched)
	l.matched = lists.acquire(next)
	return was
}

type localIndex struct {
	weps map[string]*local // by WorkloadEndpoint name
	heps map[string]*local // by HostEndpoint name
}

func newLocalIndex() localIndex {
	return localIndex{weps: map[string]*local{}, heps: map[string]*local{}}
}

// update records whether name is local and, if so, re-matches every
// policy against its entity's labels.
func (x *localIndex) update(m map[string]*local, name string, isLocal bool, e *entity, pols *policyIndex, lists *stringLists) {
	if old := m[name]; old != nil {
		lists.release(old.matched)
	}
	if !isLocal || e == nil {
		delete(m, name)
		return
	}
	var matched []string
	for pn, p := range pols.byName {
		if p.matches(e.labels) {
			matched = append(matched, pn)
		}
	}
	slices.Sort(matched)
	m[name] = &local{matched: lists.acquire(matched)}
}

func (c *Calc) applyPolicy(name string, g *api.GlobalNetworkPolicy) {
	old := c.pols.byName[name]
	if old != nil && g != nil && (old.gnp == g || reflect.DeepEqual(old.gnp, g)) {
		old.gnp = g
		return
	}
	var p *policyInfo
	if g != nil {
		p = newPolicyInfo(g)
		c.pols.byName[name] = p
	} else {
		delete(c.pols.byName, name)
	}
	placeChanged := old == nil || p == nil || old.order != p.order || old.ingress != p.ingress || old.egress != p.egress
	rematch := func(m map[string]*local, labelsOf func(string) (map[string]string, bool), markDirty func(string)) {
		for ln, l := range m {
			labels, ok := labelsOf(ln)
			if !ok {
				continue
			}
			is := p.matches(labels)
			was := l.setMatched(name, is, &c.lists)
			if was != is || is && placeChanged {
				markDirty(ln)
			}
		}
	}
	rematch(c.locs.weps, c.entityLabels(entWEP), func(n string) { c.dirty.weps[n] = struct{}{} })
	rematch(c.locs.heps, c.entityLabels(entHEP), func(n string) {
		if h := c.res.heps[n]; h != nil {
			c.dirty.hepIfs[h.Spec.InterfaceName] = struct{}{}
		}
	})
	c.dirty.chains[ChainID(KindPolicy, name, Ingress)] = true
	c.dirty.chains[ChainID(KindPolicy, name, Egress)] = true
}

func (c *Calc) entityLabels(kind entKind) func(string) (map[string]string, bool) {
	return func(name string) (map[string]string, bool) {
		e := c.ents.byKey[entityKey{kind: kind, name: name}]
		if e == nil {
			return nil, false
		}
		return e.labels, true
	}
}

// tiers computes a local endpoint's ingress and egress tiers.
func (c *Calc) tiers(l *local, profiles []string) (in, eg Tier) {
	ps := make([]*policyInfo, 0, len(l.matched))
	nIn, nEg := 0, 0
	for _, n := range l.matched {
		if p := c.pols.byName[n]; p != nil {
			ps = append(ps, p)
			nIn, nEg = nIn+b2i(p.ingress), nEg+b2i(p.egress)
		}
	}
	slices.SortFunc(ps, comparePolicies)
	// Sized once: an endpoint keeps its tiers (flushWEP shares them among
	// the endpoints that have the same, stringLists) for its life.
	if nIn > 0 {
		in.Policies = make([]string, 0, nIn)
	}
	if nEg > 0 {
		eg.Policies = make([]string, 0, nEg)
	}
	for _, p := range ps {
		if p.ingress {
			in.Policies = append(in.Policies, p.inChain)
		}
		if p.egress {
			eg.Policies = append(eg.Policies, p.egChain)
		}
	}
	if len(profiles) > 0 {
		in.Profiles, eg.Profiles = make([]string, 0, len(profiles)), make([]string, 0, len(profiles))
	}
	for _, pr := range profiles {
		in.Profiles = append(in.Profiles, ChainID(KindProfile, pr, Ingress))
		eg.Profiles = append(eg.Profiles, ChainID(KindProfile, pr, Egress))
	}
	return in, eg
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// chainIDs lists every chain a pair of tiers uses, with repeats.
func chainIDs(ts ...Tier) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.Policies...)
		out = append(out, t.Profiles...)
	}
	return out
}
