package calc

import (
	"net/netip"
	"slices"

	"github.com/calyx-net/calyx/internal/selector"
)

// Sets (calico-design.md §6.1, RuleScanner and MemberCalculator): every
// selector, net list and named port a rule uses becomes one set, named
// from what it stands for, shared by every rule that uses the same thing
// and reference counted by those uses. Members are reference counted too,
// since two endpoints (or an endpoint and a network set) may contribute
// the same address.

// setSpec is what a set stands for; equal specs have equal IDs.
type setSpec struct {
	id, kind, describe string
	sel                *selector.Selector // selector and named-port sets
	nets               []netip.Prefix     // net-list sets
	proto              uint8              // named-port sets
	names              []string           // named-port sets, sorted
}

// contrib is what one entity puts in one set.
type contrib struct {
	prefixes []netip.Prefix
	triples  []AddrPort
}

func (a contrib) equal(b contrib) bool {
	return slices.Equal(a.prefixes, b.prefixes) && slices.Equal(a.triples, b.triples)
}

type setInfo struct {
	spec     setSpec
	refs     int  // rule uses by active chains
	active   bool // members computed and published
	prefixes map[netip.Prefix]int
	triples  map[AddrPort]int
	contrib  map[entityKey]contrib
	pendP    map[netip.Prefix]struct{} // members touched since publishing
	pendT    map[AddrPort]struct{}
}

type setIndex struct {
	byID map[string]*setInfo
	// dynamic are the active sets whose members come from entities.
	dynamic map[string]*setInfo
}

func newSetIndex() setIndex {
	return setIndex{byID: map[string]*setInfo{}, dynamic: map[string]*setInfo{}}
}

// acquire counts one more use of spec's set.
func (x *setIndex) acquire(spec setSpec, dirty map[string]struct{}) {
	si := x.byID[spec.id]
	if si == nil {
		si = &setInfo{spec: spec}
		x.byID[spec.id] = si
	}
	si.refs++
	dirty[spec.id] = struct{}{}
}

// release counts one use fewer.
func (x *setIndex) release(id string, dirty map[string]struct{}) {
	if si := x.byID[id]; si != nil {
		si.refs--
		dirty[id] = struct{}{}
	}
}

// contribution is what entity e (nil: gone) puts in the set.
func (si *setInfo) contribution(k entityKey, e *entity) contrib {
	if e == nil || si.spec.sel == nil || !si.spec.sel.Evaluate(e.labels) {
		return contrib{}
	}
	if si.spec.kind == AddrSet {
		return contrib{prefixes: e.prefixes}
	}
	if k.kind == entNetSet {
		return contrib{}
	}
	var out []AddrPort
	for _, p := range e.ports {
		if p.proto != si.spec.proto {
			continue
		}
		if _, found := slices.BinarySearch(si.spec.names, p.name); !found {
			continue
		}
		for _, a := range e.addrs {
			out = append(out, AddrPort{Addr: a, Protocol: p.proto, Port: p.port})
		}
	}
	slices.SortFunc(out, compareAddrPort)
	return contrib{triples: slices.Compact(out)}
}

// setContrib replaces k's contribution, counting members in and out.
func (si *setInfo) setContrib(k entityKey, nc contrib) bool {
	oc := si.contrib[k]
	if oc.equal(nc) {
		return false
	}
	for _, p := range oc.prefixes {
		si.prefixes[p]--
		if si.prefixes[p] <= 0 {
			delete(si.prefixes, p)
		}
		si.pendP[p] = struct{}{}
	}
	for _, t := range oc.triples {
		si.triples[t]--
		if si.triples[t] <= 0 {
			delete(si.triples, t)
		}
		si.pendT[t] = struct{}{}
	}
	for _, p := range nc.prefixes {
		si.prefixes[p]++
		si.pendP[p] = struct{}{}
	}
	for _, t := range nc.triples {
		si.triples[t]++
		si.pendT[t] = struct{}{}
	}
	if len(nc.prefixes) == 0 && len(nc.triples) == 0 {
		delete(si.contrib, k)
	} else {
		si.contrib[k] = nc
	}
	return true
}

// entityChanged re-evaluates the active dynamic sets against one entity.
func (x *setIndex) entityChanged(k entityKey, e *entity, dirty map[string]struct{}) {
	for id, si := range x.dynamic {
		if si.setContrib(k, si.contribution(k, e)) {
			dirty[id] = struct{}{}
		}
	}
}

// flushSets activates, drops and republishes the dirty sets.
func (c *Calc) flushSets() {
	for id := range c.dirty.sets {
		si := c.sets.byID[id]
		if si == nil {
			continue
		}
		if si.refs <= 0 {
			delete(c.sets.byID, id)
			delete(c.sets.dynamic, id)
			c.setSet(id, nil)
			continue
		}
		if !si.active {
			c.activateSet(si)
			continue
		}
		if len(si.pendP) > 0 || len(si.pendT) > 0 {
			c.publishSet(si)
		}
	}
	clear(c.dirty.sets)
}

// activateSet computes a newly used set's members with one scan.
func (c *Calc) activateSet(si *setInfo) {
	si.active = true
	si.prefixes = map[netip.Prefix]int{}
	si.triples = map[AddrPort]int{}
	si.contrib = map[entityKey]contrib{}
	si.pendP = map[netip.Prefix]struct{}{}
	si.pendT = map[AddrPort]struct{}{}
	s := &Set{ID: si.spec.id, Kind: si.spec.kind, Describe: si.spec.describe}
	if si.spec.sel == nil {
		s.Prefixes = slices.Clone(si.spec.nets)
		c.setSet(si.spec.id, s)
		return
	}
	c.sets.dynamic[si.spec.id] = si
	for k, e := range c.ents.byKey {
		si.setContrib(k, si.contribution(k, e))
	}
	clear(si.pendP)
	clear(si.pendT)
	for p := range si.prefixes {
		s.Prefixes = append(s.Prefixes, p)
	}
	for t := range si.triples {
		s.Triples = append(s.Triples, t)
	}
	slices.SortFunc(s.Prefixes, comparePrefix)
	slices.SortFunc(s.Triples, compareAddrPort)
	c.setSet(si.spec.id, s)
}

// publishSet merges the touched members into a new copy of the published
// set: O(members) with no sort of the whole set.
func (c *Calc) publishSet(si *setInfo) {
	old := c.state.Sets[si.spec.id]
	s := &Set{ID: si.spec.id, Kind: si.spec.kind, Describe: si.spec.describe}
	var oldP []netip.Prefix
	var oldT []AddrPort
	if old != nil {
		oldP, oldT = old.Prefixes, old.Triples
	}
	s.Prefixes = mergeTouched(oldP, si.pendP, si.prefixes, comparePrefix)
	s.Triples = mergeTouched(oldT, si.pendT, si.triples, compareAddrPort)
	clear(si.pendP)
	clear(si.pendT)
	if old != nil && slices.Equal(old.Prefixes, s.Prefixes) && slices.Equal(old.Triples, s.Triples) {
		return
	}
	c.setSet(si.spec.id, s)
}

// mergeTouched returns old (sorted) with each touched key present exactly
// when its count is positive.
func mergeTouched[T comparable](old []T, touched map[T]struct{}, count map[T]int, cmp func(a, b T) int) []T {
	if len(touched) == 0 {
		return old
	}
	tk := make([]T, 0, len(touched))
	for k := range touched {
		tk = append(tk, k)
	}
	slices.SortFunc(tk, cmp)
	out := make([]T, 0, len(old)+len(tk))
	i, j := 0, 0
	for i < len(old) || j < len(tk) {
		switch {
		case j == len(tk) || i < len(old) && cmp(old[i], tk[j]) < 0:
			out = append(out, old[i])
			i++
		case i == len(old) || cmp(tk[j], old[i]) < 0:
			if count[tk[j]] > 0 {
				out = append(out, tk[j])
			}
			j++
		default: // equal
			if count[tk[j]] > 0 {
				out = append(out, tk[j])
			}
			i++
			j++
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// setSet publishes s (nil: removes the set) and notes the change.
func (c *Calc) setSet(id string, s *Set) {
	c.track.noteSet(id, c.state.Sets[id])
	if s == nil {
		delete(c.state.Sets, id)
		return
	}
	c.state.Sets[id] = s
}
