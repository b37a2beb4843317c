package calc

import (
	"maps"
	"net/netip"
	"reflect"

	"github.com/calyx-net/calyx/internal/api"
)

// How the calculator is incremental (calico-design.md §6.1, Felix's
// calculation graph, folded into one value):
//
//   - An Update first *applies* the change to the indexes: the stored
//     resource, the entity it contributes to rule selectors (an endpoint's
//     effective labels and addresses, a network set's nets), the members
//     of every active set that entity can be in, and which policies match
//     each local endpoint. Everything that may now differ is marked dirty.
//   - It then *flushes*: dirty local endpoints get their tiers recomputed
//     and their chain references moved; chains whose reference count left
//     zero are compiled (acquiring their sets), chains whose count reached
//     zero are dropped (releasing theirs); sets whose count left zero are
//     filled by one scan of the entities, sets whose count reached zero
//     leave the State, and sets whose members changed are republished.
//
// Replace applies a whole snapshot and flushes once, so loading N policies
// and M endpoints costs O(N·M) selector evaluations rather than a flush per
// resource. The result depends only on the resources held, never on the
// order they came in: every derived value is recomputed from the indexes
// when something it depends on is dirty.

// Calc computes the desired State of one host. It is not safe for
// concurrent use; the reconcile loop owns it.
type Calc struct {
	node string
	res  resources
	ents entityIndex
	pols policyIndex
	locs localIndex
	// lists shares the equal lists of the local endpoints' matches and
	// tiers.
	lists stringLists
	chs   chainIndex
	sets  setIndex
	// routes is routing's index (routes.go).
	routes routeIndex
	dirty  dirtyMarks
	state  State
	track  tracker
}

// resources holds the datastore's resources calc reads, by name. Calc keeps
// the values it is given: the caller must not modify a resource after
// handing it over.
type resources struct {
	weps      map[string]*api.WorkloadEndpoint
	heps      map[string]*api.HostEndpoint
	profiles  map[string]*api.Profile
	netsets   map[string]*api.GlobalNetworkSet
	pools     map[string]*api.IPPool
	nodeConfs map[string]*api.NodeConfiguration
	nodes     map[string]*api.Node // for routing; unused by policy
	bgpConfs  map[string]*api.BGPConfiguration
	bgpPeers  map[string]*api.BGPPeer
	// policies are held in policyIndex.
}

// dirtyMarks is what the apply phase leaves for the flush.
type dirtyMarks struct {
	weps   map[string]struct{} // local (or formerly local) WEP names
	hepIfs map[string]struct{} // host interface names
	chains map[string]bool     // chain IDs whose refs moved; true: its resource changed too
	sets   map[string]struct{} // set IDs whose refs or members changed
	config bool
	// routes are destinations to recompute; routesAll says every route
	// and the VXLAN devices.
	routes    map[netip.Prefix]struct{}
	routesAll bool
	// bgp says the BGP speaker's desired state may have changed.
	bgp bool
}

// New returns a calculator for the node named node ("" = no local
// endpoints; used by trace).
func New(node string, opts ...Option) *Calc {
	c := &Calc{
		node: node,
		res: resources{
			weps:      map[string]*api.WorkloadEndpoint{},
			heps:      map[string]*api.HostEndpoint{},
			profiles:  map[string]*api.Profile{},
			netsets:   map[string]*api.GlobalNetworkSet{},
			pools:     map[string]*api.IPPool{},
			nodeConfs: map[string]*api.NodeConfiguration{},
			nodes:     map[string]*api.Node{},
			bgpConfs:  map[string]*api.BGPConfiguration{},
			bgpPeers:  map[string]*api.BGPPeer{},
		},
		ents:   newEntityIndex(),
		pols:   policyIndex{byName: map[string]*policyInfo{}},
		locs:   newLocalIndex(),
		lists:  newStringLists(),
		chs:    chainIndex{byID: map[string]*chainInfo{}},
		sets:   newSetIndex(),
		routes: newRouteIndex(),
		dirty:  newDirtyMarks(),
		state: State{
			Endpoints:     map[string]*Endpoint{},
			HostEndpoints: map[string]*HostEndpoint{},
			Chains:        map[string]*Chain{},
			Sets:          map[string]*Set{},
			Routes:        map[netip.Prefix]*Route{},
			VXLAN:         map[int]*VXLAN{},
		},
		track: newTracker(),
	}
	for _, o := range opts {
		o(c)
	}
	c.state.Config = c.computeConfig()
	return c
}

func newDirtyMarks() dirtyMarks {
	return dirtyMarks{
		weps:   map[string]struct{}{},
		hepIfs: map[string]struct{}{},
		chains: map[string]bool{},
		sets:   map[string]struct{}{},
		routes: map[netip.Prefix]struct{}{},
	}
}

// State returns the desired state. The caller must not modify it; it stays
// valid (and is updated in place, map entries replaced by new values)
// across later calls.
func (c *Calc) State() *State { return &c.state }

// TakeDelta returns what changed since the last TakeDelta and clears it
// (sorted name lists). A key whose value went away and came back equal is
// not reported.
func (c *Calc) TakeDelta() Delta { return c.track.take(&c.state) }

// Update applies one change: r is the new value, or nil when kind/name was
// deleted. Kinds calc does not use are ignored, as is an r whose Go type
// does not match kind.
func (c *Calc) Update(kind, name string, r api.Resource) {
	c.apply(kind, name, r)
	c.flush()
}

// Replace loads a full snapshot (every resource of every kind). Afterwards
// State equals what a sequence of Updates reaching the same resources would
// give; the delta accumulates every key that differs from before.
func (c *Calc) Replace(rs []api.Resource) {
	type key struct{ kind, name string }
	next := make(map[key]api.Resource, len(rs))
	for _, r := range rs {
		if r == nil {
			continue
		}
		next[key{r.GetKind(), r.GetObjectMeta().Name}] = r
	}
	for _, k := range c.keys() {
		if _, ok := next[key{k[0], k[1]}]; !ok {
			c.apply(k[0], k[1], nil)
		}
	}
	for k, r := range next {
		c.apply(k.kind, k.name, r)
	}
	c.flush()
}

// keys lists every (kind, name) calc holds.
func (c *Calc) keys() [][2]string {
	var out [][2]string
	add := func(kind string, names func(func(string))) {
		names(func(n string) { out = append(out, [2]string{kind, n}) })
	}
	add(api.KindWorkloadEndpoint, eachKey(c.res.weps))
	add(api.KindHostEndpoint, eachKey(c.res.heps))
	add(api.KindProfile, eachKey(c.res.profiles))
	add(api.KindGlobalNetworkSet, eachKey(c.res.netsets))
	add(api.KindIPPool, eachKey(c.res.pools))
	add(api.KindNodeConfiguration, eachKey(c.res.nodeConfs))
	add(api.KindNode, eachKey(c.res.nodes))
	add(api.KindGlobalNetworkPolicy, eachKey(c.pols.byName))
	add(api.KindBlockAffinity, eachKey(c.routes.affinities))
	add(api.KindBGPConfiguration, eachKey(c.res.bgpConfs))
	add(api.KindBGPPeer, eachKey(c.res.bgpPeers))
	return out
}

func eachKey[V any](m map[string]V) func(func(string)) {
	return func(f func(string)) {
		for k := range m {
			f(k)
		}
	}
}

// apply dispatches one change to its kind's handler.
func (c *Calc) apply(kind, name string, r api.Resource) {
	switch kind {
	case api.KindWorkloadEndpoint:
		w, ok := asKind[*api.WorkloadEndpoint](r)
		if ok {
			c.applyWEP(name, w)
		}
	case api.KindHostEndpoint:
		h, ok := asKind[*api.HostEndpoint](r)
		if ok {
			c.applyHEP(name, h)
		}
	case api.KindProfile:
		p, ok := asKind[*api.Profile](r)
		if ok {
			c.applyProfile(name, p)
		}
	case api.KindGlobalNetworkPolicy:
		g, ok := asKind[*api.GlobalNetworkPolicy](r)
		if ok {
			c.applyPolicy(name, g)
		}
	case api.KindGlobalNetworkSet:
		n, ok := asKind[*api.GlobalNetworkSet](r)
		if ok {
			c.applyNetSet(name, n)
		}
	case api.KindIPPool:
		p, ok := asKind[*api.IPPool](r)
		if ok && store(c.res.pools, name, p) {
			c.dirty.config, c.dirty.routesAll = true, true
		}
	case api.KindNodeConfiguration:
		n, ok := asKind[*api.NodeConfiguration](r)
		if ok && store(c.res.nodeConfs, name, n) {
			c.dirty.config, c.dirty.routesAll = true, true
		}
	case api.KindNode:
		n, ok := asKind[*api.Node](r)
		if ok && store(c.res.nodes, name, n) {
			c.dirty.routesAll = true
		}
	case api.KindBGPConfiguration, api.KindBGPPeer:
		c.applyBGP(kind, name, r)
	case api.KindBlockAffinity:
		a, ok := asKind[*api.BlockAffinity](r)
		if ok {
			c.applyAffinity(name, a)
		}
	}
}

// asKind converts r to T; a nil r gives the zero T (a delete) and ok.
func asKind[T api.Resource](r api.Resource) (T, bool) {
	var zero T
	if r == nil {
		return zero, true
	}
	t, ok := r.(T)
	if !ok {
		return zero, false
	}
	return t, true // a typed nil is a delete too: store treats it so
}

// store sets m[name] = v, or deletes it when v is nil, and reports whether
// anything changed: the same pointer again, or an equal value (as a
// resync after a watch compaction brings), is no change, and the value
// held stays (the indexes share parts of it, such as labels: replacing it
// would keep both in memory).
func store[T comparable](m map[string]T, name string, v T) bool {
	var zero T
	old, had := m[name]
	if v == zero {
		delete(m, name)
		return had
	}
	if had && (old == v || reflect.DeepEqual(old, v)) {
		return false
	}
	m[name] = v
	return true
}

func (c *Calc) applyWEP(name string, w *api.WorkloadEndpoint) {
	old := c.res.weps[name]
	if !store(c.res.weps, name, w) {
		return
	}
	c.wepRouteAddrs(name, old, w)
	if old != nil && old.Spec.Node == c.node || w != nil && w.Spec.Node == c.node {
		c.dirty.bgp = true // its borrowed addresses may be advertised
	}
	c.refreshEntity(entityKey{kind: entWEP, name: name})
}

func (c *Calc) applyHEP(name string, h *api.HostEndpoint) {
	old := c.res.heps[name]
	if !store(c.res.heps, name, h) {
		return
	}
	if old != nil {
		c.dirty.hepIfs[old.Spec.InterfaceName] = struct{}{}
	}
	if h != nil {
		c.dirty.hepIfs[h.Spec.InterfaceName] = struct{}{}
	}
	c.refreshEntity(entityKey{kind: entHEP, name: name})
}

func (c *Calc) applyNetSet(name string, n *api.GlobalNetworkSet) {
	if !store(c.res.netsets, name, n) {
		return
	}
	c.refreshEntity(entityKey{kind: entNetSet, name: name})
}

func (c *Calc) applyProfile(name string, p *api.Profile) {
	old := c.res.profiles[name]
	if !store(c.res.profiles, name, p) {
		return
	}
	// Labels it applies feed its users' effective labels (only a change
	// of labelsToApply costs a pass over its users); its rules feed its
	// chains.
	if !maps.Equal(labelsToApply(old), labelsToApply(p)) {
		for k := range c.ents.profileUsers[name] {
			c.refreshEntity(k)
		}
	}
	c.dirty.chains[ChainID(KindProfile, name, Ingress)] = true
	c.dirty.chains[ChainID(KindProfile, name, Egress)] = true
}

func labelsToApply(p *api.Profile) map[string]string {
	if p == nil {
		return nil
	}
	return p.Spec.LabelsToApply
}

// ChainID names the chain of a policy or profile in a direction,
// Calico-style: "pi-"+name, "po-"+name (policy ingress/egress), "pri-"+name,
// "pro-"+name (profile).
func ChainID(kind, name, dir string) string {
	p := "p"
	if kind == KindProfile {
		p = "pr"
	}
	if dir == Egress {
		return p + "o-" + name
	}
	return p + "i-" + name
}

// parseChainID inverts ChainID.
func parseChainID(id string) (kind, name, dir string, ok bool) {
	for _, c := range []struct{ prefix, kind, dir string }{
		{"pi-", KindPolicy, Ingress}, {"po-", KindPolicy, Egress},
		{"pri-", KindProfile, Ingress}, {"pro-", KindProfile, Egress},
	} {
		if len(id) > len(c.prefix) && id[:len(c.prefix)] == c.prefix {
			return c.kind, id[len(c.prefix):], c.dir, true
		}
	}
	return "", "", "", false
}
