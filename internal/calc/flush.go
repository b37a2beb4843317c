package calc

import (
	"cmp"
	"net"
	"net/netip"
	"reflect"
	"slices"

	"github.com/calyx-net/calyx/internal/api"
)

// chainInfo is one chain in use: how many tier entries refer to it and the
// sets its compiled rules acquired.
type chainInfo struct {
	refs   int
	active bool     // compiled and published
	sets   []string // acquired set IDs, with repeats
}

type chainIndex struct {
	byID map[string]*chainInfo
}

func (c *Calc) acquireChain(id string) {
	ci := c.chs.byID[id]
	if ci == nil {
		ci = &chainInfo{}
		c.chs.byID[id] = ci
	}
	ci.refs++
	c.markChainRefs(id)
}

func (c *Calc) releaseChain(id string) {
	if ci := c.chs.byID[id]; ci != nil {
		ci.refs--
		c.markChainRefs(id)
	}
}

// markChainRefs marks id dirty for a reference change, keeping a mark
// that its resource changed.
func (c *Calc) markChainRefs(id string) {
	if _, ok := c.dirty.chains[id]; !ok {
		c.dirty.chains[id] = false
	}
}

// flush turns the dirty marks into a new State.
func (c *Calc) flush() {
	if c.dirty.config {
		c.dirty.config = false
		if cfg := c.computeConfig(); !reflect.DeepEqual(cfg, c.state.Config) {
			c.track.noteConfig(c.state.Config)
			c.state.Config = cfg
		}
	}
	for name := range c.dirty.weps {
		c.flushWEP(name)
	}
	clear(c.dirty.weps)
	for ifName := range c.dirty.hepIfs {
		c.flushHEP(ifName)
	}
	clear(c.dirty.hepIfs)
	c.flushChains()
	c.flushSets()
	c.flushRoutes()
	c.flushBGP()
}

func (c *Calc) flushWEP(name string) {
	old := c.state.Endpoints[name]
	var ep *Endpoint
	if l := c.locs.weps[name]; l != nil {
		ep = c.buildEndpoint(name, l)
	}
	c.moveChainRefs(old.tiers(), ep.tiers())
	if reflect.DeepEqual(old, ep) {
		return
	}
	if ep != nil {
		for _, t := range []*Tier{&ep.Ingress, &ep.Egress} {
			t.Policies, t.Profiles = c.lists.acquire(t.Policies), c.lists.acquire(t.Profiles)
		}
	}
	if old != nil {
		for _, t := range old.tiers() {
			c.lists.release(t.Policies)
			c.lists.release(t.Profiles)
		}
	}
	c.track.noteEndpoint(name, old)
	if ep == nil {
		delete(c.state.Endpoints, name)
	} else {
		c.state.Endpoints[name] = ep
	}
}

func (e *Endpoint) tiers() []Tier {
	if e == nil {
		return nil
	}
	return []Tier{e.Ingress, e.Egress}
}

func (h *HostEndpoint) tiers() []Tier {
	if h == nil {
		return nil
	}
	return []Tier{h.Ingress, h.Egress}
}

// moveChainRefs acquires the new tiers' chains before releasing the old
// ones, so a chain in both never drops to zero.
func (c *Calc) moveChainRefs(old, next []Tier) {
	for _, id := range chainIDs(next...) {
		c.acquireChain(id)
	}
	for _, id := range chainIDs(old...) {
		c.releaseChain(id)
	}
}

func (c *Calc) buildEndpoint(name string, l *local) *Endpoint {
	w := c.res.weps[name]
	e := c.ents.byKey[entityKey{kind: entWEP, name: name}]
	if w == nil || e == nil {
		return nil
	}
	ep := &Endpoint{
		Name:   name,
		IfName: w.Spec.InterfaceName,
		Addrs:  e.addrs,
		Labels: e.labels,
	}
	if w.Spec.MAC != "" {
		if mac, err := net.ParseMAC(w.Spec.MAC); err == nil {
			ep.MAC = mac
		}
	}
	ep.Ingress, ep.Egress = c.tiers(l, w.Spec.Profiles)
	ep.PortMappings = portMappings(w.Spec.Ports, e.addrs)
	return ep
}

// portMappings makes one PortMapping per (port with a hostPort, address
// family of the endpoint), to the endpoint's first address of that family.
func portMappings(ports []api.EndpointPort, addrs []netip.Addr) []PortMapping {
	var v4, v6 netip.Addr
	for _, a := range addrs {
		if a.Is4() && !v4.IsValid() {
			v4 = a
		}
		if a.Is6() && !v6.IsValid() {
			v6 = a
		}
	}
	var out []PortMapping
	for _, p := range ports {
		if p.HostPort == 0 {
			continue
		}
		proto, ok := p.Protocol.ToNumber()
		if !ok {
			continue
		}
		for _, a := range []netip.Addr{v4, v6} {
			if a.IsValid() {
				out = append(out, PortMapping{Protocol: proto, HostPort: p.HostPort, ContainerPort: p.Port, Addr: a})
			}
		}
	}
	slices.SortFunc(out, func(a, b PortMapping) int {
		return cmp.Or(cmp.Compare(a.Protocol, b.Protocol), cmp.Compare(a.HostPort, b.HostPort),
			cmp.Compare(a.ContainerPort, b.ContainerPort), a.Addr.Compare(b.Addr))
	})
	return slices.CompactFunc(out, func(a, b PortMapping) bool { return a == b })
}

// flushHEP recomputes the host endpoint on one interface: the local
// HostEndpoint with the smallest name among those naming it.
func (c *Calc) flushHEP(ifName string) {
	old := c.state.HostEndpoints[ifName]
	var winner string
	for name := range c.locs.heps {
		if h := c.res.heps[name]; h != nil && h.Spec.InterfaceName == ifName && (winner == "" || name < winner) {
			winner = name
		}
	}
	var he *HostEndpoint
	if winner != "" {
		h := c.res.heps[winner]
		e := c.ents.byKey[entityKey{kind: entHEP, name: winner}]
		he = &HostEndpoint{Name: winner, IfName: ifName, Addrs: e.addrs, Labels: e.labels}
		he.Ingress, he.Egress = c.tiers(c.locs.heps[winner], h.Spec.Profiles)
	}
	c.moveChainRefs(old.tiers(), he.tiers())
	if reflect.DeepEqual(old, he) {
		return
	}
	c.track.noteHostEndpoint(ifName, old)
	if he == nil {
		delete(c.state.HostEndpoints, ifName)
	} else {
		c.state.HostEndpoints[ifName] = he
	}
}

// flushChains compiles chains that came into use or whose resource
// changed, and drops chains no longer used.
func (c *Calc) flushChains() {
	for id, resChanged := range c.dirty.chains {
		ci := c.chs.byID[id]
		if ci == nil {
			continue
		}
		if ci.refs <= 0 {
			for _, s := range ci.sets {
				c.sets.release(s, c.dirty.sets)
			}
			delete(c.chs.byID, id)
			if c.state.Chains[id] != nil {
				c.track.noteChain(id, c.state.Chains[id])
				delete(c.state.Chains, id)
			}
			continue
		}
		if ci.active && !resChanged {
			continue
		}
		ch, specs := c.compile(id)
		ids := make([]string, len(specs))
		for i, s := range specs {
			c.sets.acquire(s, c.dirty.sets)
			ids[i] = s.id
		}
		for _, s := range ci.sets {
			c.sets.release(s, c.dirty.sets)
		}
		ci.sets, ci.active = ids, true
		if old := c.state.Chains[id]; !reflect.DeepEqual(old, ch) {
			c.track.noteChain(id, old)
			c.state.Chains[id] = ch
		}
	}
	clear(c.dirty.chains)
}

// compile builds chain id from its resource as stored now.
func (c *Calc) compile(id string) (*Chain, []setSpec) {
	kind, name, dir, _ := parseChainID(id)
	var rules []api.Rule
	missing := false
	if kind == KindProfile {
		p := c.res.profiles[name]
		switch {
		case p == nil:
			missing = true
		case dir == Ingress:
			rules = p.Spec.Ingress
		default:
			rules = p.Spec.Egress
		}
	} else if p := c.pols.byName[name]; p != nil {
		if dir == Ingress {
			rules = p.gnp.Spec.Ingress
		} else {
			rules = p.gnp.Spec.Egress
		}
	}
	return compileChain(kind, name, dir, rules, missing)
}
