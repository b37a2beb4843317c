package calc

import (
	"maps"
	"net/netip"
	"slices"

	"github.com/calyx-net/calyx/internal/api"
)

// Entities are what rule selectors match (calico-design.md §6.1,
// InheritIndex): every workload endpoint in the cluster and every host
// endpoint (through their addresses), and every GlobalNetworkSet (through
// its nets), each with its effective labels.

type entKind uint8

const (
	entWEP entKind = iota + 1
	entHEP
	entNetSet
)

type entityKey struct {
	kind entKind
	name string
}

// entity is one selectable thing, derived from its resource and the
// profiles it names.
type entity struct {
	labels   map[string]string // effective labels
	prefixes []netip.Prefix    // set members: host prefixes, or a network set's nets
	addrs    []netip.Addr      // an endpoint's addresses, sorted
	ports    []namedPort       // an endpoint's named ports (entries with a name)
	profiles []string
}

type namedPort struct {
	name  string
	proto uint8
	port  uint16
}

type entityIndex struct {
	byKey map[entityKey]*entity
	// profileUsers are the entities naming each profile, whose effective
	// labels change with its labelsToApply.
	profileUsers map[string]map[entityKey]struct{}
}

func newEntityIndex() entityIndex {
	return entityIndex{byKey: map[entityKey]*entity{}, profileUsers: map[string]map[entityKey]struct{}{}}
}

// buildEntity derives k's entity from the stored resources; nil when the
// resource is gone.
func (c *Calc) buildEntity(k entityKey) *entity {
	switch k.kind {
	case entWEP:
		w := c.res.weps[k.name]
		if w == nil {
			return nil
		}
		e := &entity{profiles: w.Spec.Profiles, ports: namedPorts(w.Spec.Ports)}
		e.labels = c.effectiveLabels(w.Spec.Profiles, w.Metadata.Labels)
		e.addrs = parseAddrs(w.Spec.IPNetworks)
		e.prefixes = hostPrefixes(e.addrs)
		return e
	case entHEP:
		h := c.res.heps[k.name]
		if h == nil {
			return nil
		}
		e := &entity{profiles: h.Spec.Profiles, ports: namedPorts(h.Spec.Ports)}
		e.labels = c.effectiveLabels(h.Spec.Profiles, h.Metadata.Labels)
		e.addrs = parseAddrs(h.Spec.ExpectedIPs)
		e.prefixes = hostPrefixes(e.addrs)
		return e
	case entNetSet:
		n := c.res.netsets[k.name]
		if n == nil {
			return nil
		}
		return &entity{labels: n.Metadata.Labels, prefixes: parseNets(n.Spec.Nets)}
	}
	return nil
}

// effectiveLabels are each profile's labelsToApply in profile order, then
// the endpoint's own labels, which win (calico-design.md §2 "Effective
// labels").
//
// When no profile applies labels, as is usual, they are own itself, not a
// copy: calc never modifies a resource, nor an entity's labels.
func (c *Calc) effectiveLabels(profiles []string, own map[string]string) map[string]string {
	var out map[string]string
	for _, name := range profiles {
		if p := c.res.profiles[name]; p != nil && len(p.Spec.LabelsToApply) > 0 {
			if out == nil {
				out = make(map[string]string, len(p.Spec.LabelsToApply)+len(own))
			}
			maps.Copy(out, p.Spec.LabelsToApply)
		}
	}
	switch {
	case out != nil:
		maps.Copy(out, own)
		return out
	case own == nil:
		return map[string]string{}
	}
	return own
}

// refreshEntity rebuilds k's entity after its resource or one of its
// profiles changed, moves its contributions to active sets, and, for a
// local endpoint, re-matches the policies and marks it dirty.
func (c *Calc) refreshEntity(k entityKey) {
	old := c.ents.byKey[k]
	e := c.buildEntity(k)
	if old != nil {
		for _, p := range old.profiles {
			if u := c.ents.profileUsers[p]; u != nil {
				delete(u, k)
				if len(u) == 0 {
					delete(c.ents.profileUsers, p)
				}
			}
		}
	}
	if e == nil {
		delete(c.ents.byKey, k)
	} else {
		c.ents.byKey[k] = e
		for _, p := range e.profiles {
			u := c.ents.profileUsers[p]
			if u == nil {
				u = map[entityKey]struct{}{}
				c.ents.profileUsers[p] = u
			}
			u[k] = struct{}{}
		}
	}
	c.sets.entityChanged(k, e, c.dirty.sets)

	switch k.kind {
	case entWEP:
		w := c.res.weps[k.name]
		isLocal := w != nil && c.node != "" && w.Spec.Node == c.node && w.Spec.InterfaceName != ""
		c.locs.update(c.locs.weps, k.name, isLocal, e, &c.pols, &c.lists)
		if isLocal || c.state.Endpoints[k.name] != nil {
			c.dirty.weps[k.name] = struct{}{}
		}
	case entHEP:
		h := c.res.heps[k.name]
		isLocal := h != nil && c.node != "" && h.Spec.Node == c.node && h.Spec.InterfaceName != ""
		c.locs.update(c.locs.heps, k.name, isLocal, e, &c.pols, &c.lists)
		if h != nil {
			c.dirty.hepIfs[h.Spec.InterfaceName] = struct{}{}
		}
	}
}

// parseAddrs turns ipNetworks or expectedIPs ("10.0.0.1/32" or
// "10.0.0.1") into sorted, distinct addresses, skipping what does not
// parse.
func parseAddrs(ss []string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Addr().Unmap())
		} else if a, err := netip.ParseAddr(s); err == nil {
			out = append(out, a.Unmap().WithZone(""))
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out)
}

func hostPrefixes(addrs []netip.Addr) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(addrs))
	for _, a := range addrs {
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out
}

// parseNets turns a list of CIDRs (or bare addresses) into sorted,
// distinct, masked prefixes, skipping what does not parse.
func parseNets(ss []string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		if p, err := netip.ParsePrefix(s); err == nil {
			if p.Addr().Is4In6() && p.Bits() >= 96 {
				p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
			}
			out = append(out, p.Masked())
		} else if a, err := netip.ParseAddr(s); err == nil {
			a = a.Unmap().WithZone("")
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
		}
	}
	slices.SortFunc(out, comparePrefix)
	return slices.Compact(out)
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}

func compareAddrPort(a, b AddrPort) int {
	if c := a.Addr.Compare(b.Addr); c != 0 {
		return c
	}
	if a.Protocol != b.Protocol {
		return int(a.Protocol) - int(b.Protocol)
	}
	return int(a.Port) - int(b.Port)
}

// namedPorts keeps the endpoint ports that have a name and a known
// protocol (a port with only a hostPort has no name).
func namedPorts(ps []api.EndpointPort) []namedPort {
	var out []namedPort
	for _, p := range ps {
		if p.Name == "" {
			continue
		}
		n, ok := p.Protocol.ToNumber()
		if !ok {
			continue
		}
		out = append(out, namedPort{name: p.Name, proto: n, port: p.Port})
	}
	return out
}
