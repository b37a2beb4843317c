package ipam

import (
	"net/netip"
	"slices"
	"strings"

	"github.com/calyx-net/calyx/internal/api"
	"github.com/calyx-net/calyx/internal/datastore"
	"github.com/calyx-net/calyx/internal/selector"
)

// pool is what the allocator needs of an IPPool.
type pool struct {
	name     string
	geo      geometry
	disabled bool
	tunnel   bool               // allowedUses includes Tunnel
	workload bool               // allowedUses includes Workload
	sel      *selector.Selector // nil: every node
	key      string
	rev      int64
}

func (p *pool) cidr() netip.Prefix { return p.geo.pool }

// describe names the pool for messages: name (cidr).
func (p *pool) describe() string { return "IP pool " + quote(p.name) + " (" + p.cidr().String() + ")" }

func quote(s string) string { return `"` + s + `"` }

// settings is the IPAMConfiguration in force, with Calico's defaults when
// none is stored.
type settings struct {
	strictAffinity bool
	autoAllocate   bool
	maxBlocks      int // 0: no limit
	rev            int64
}

// decodePools turns the raw IPPool keys into pools, sorted by name. Pools
// that do not decode or whose CIDR or block size is unusable are left out
// (validation keeps them from being stored).
func decodePools(kvs []datastore.RawKV) []*pool {
	kind := kind(api.KindIPPool)
	prefix := datastore.KindPrefix(kind)
	var out []*pool
	for _, kv := range kvs {
		name, ok := strings.CutPrefix(kv.Key, prefix)
		if !ok || name == "" {
			continue
		}
		r, err := api.UnmarshalStored(kind, kv.Value)
		if err != nil {
			continue
		}
		ip := r.(*api.IPPool)
		ip.SetDefaults()
		cidr, err := netip.ParsePrefix(ip.Spec.CIDR)
		if err != nil {
			continue
		}
		geo, ok := newGeometry(cidr, ip.Spec.BlockSize)
		if !ok {
			continue
		}
		p := &pool{name: name, geo: geo, disabled: ip.Spec.Disabled, key: kv.Key, rev: kv.ModRevision,
			workload: slices.Contains(ip.Spec.AllowedUses, api.IPPoolUseWorkload),
			tunnel:   slices.Contains(ip.Spec.AllowedUses, api.IPPoolUseTunnel)}
		if s := strings.TrimSpace(ip.Spec.NodeSelector); s != "" && s != "all()" {
			if p.sel, err = selector.Parse(s); err != nil {
				continue
			}
		}
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b *pool) int { return strings.Compare(a.name, b.name) })
	return out
}

// decodeSettings reads the IPAMConfiguration key (none stored: defaults).
func decodeSettings(kvs []datastore.RawKV) settings {
	s := settings{autoAllocate: true}
	if len(kvs) == 0 {
		return s
	}
	s.rev = kvs[0].ModRevision
	r, err := api.UnmarshalStored(kind(api.KindIPAMConfiguration), kvs[0].Value)
	if err != nil {
		return s
	}
	c := r.(*api.IPAMConfiguration)
	c.SetDefaults()
	s.strictAffinity = c.Spec.StrictAffinity
	s.autoAllocate = c.Spec.AutoAllocateBlocks == nil || *c.Spec.AutoAllocateBlocks
	s.maxBlocks = max(c.Spec.MaxBlocksPerHost, 0)
	return s
}

// decodeNodeLabels reads a Node's labels (none stored: no labels).
func decodeNodeLabels(kvs []datastore.RawKV) (map[string]string, int64) {
	if len(kvs) == 0 {
		return nil, 0
	}
	r, err := api.UnmarshalStored(kind(api.KindNode), kvs[0].Value)
	if err != nil {
		return nil, kvs[0].ModRevision
	}
	return r.GetObjectMeta().Labels, kvs[0].ModRevision
}

// poolFor returns the pool containing a.
func poolFor(pools []*pool, a netip.Addr) *pool {
	for _, p := range pools {
		if p.cidr().Contains(a) {
			return p
		}
	}
	return nil
}

// selection is the pools one request may allocate from, per family.
type selection struct {
	v4, v6 []*pool
	// byLabels is set when the choice depended on the node's labels, so
	// the write must also be guarded by the Node's revision.
	byLabels bool
}

// allows reports whether the pool's allowedUses include use.
func (p *pool) allows(use string) bool {
	if use == api.IPPoolUseTunnel {
		return p.tunnel
	}
	return p.workload
}

// selectPools chooses the pools of a request for use (Workload or Tunnel):
// the requested ones (by name or exact CIDR; they must exist, be enabled,
// allow the use and be of the right family; a node selector does not
// apply to them, since the caller asked for them by name), or else every
// enabled pool allowing the use whose node selector matches the node's
// labels, in name order.
func selectPools(pools []*pool, labels map[string]string, use string, req4, req6 []string) (selection, error) {
	var sel selection
	var err error
	if sel.v4, err = requested(pools, use, req4, true); err != nil {
		return sel, err
	}
	if sel.v6, err = requested(pools, use, req6, false); err != nil {
		return sel, err
	}
	for _, p := range pools {
		if p.disabled || !p.allows(use) {
			continue
		}
		if p.sel != nil {
			if !p.sel.Evaluate(labels) {
				sel.byLabels = true
				continue
			}
			sel.byLabels = true
		}
		if p.cidr().Addr().Is4() && len(req4) == 0 {
			sel.v4 = append(sel.v4, p)
		}
		if p.cidr().Addr().Is6() && len(req6) == 0 {
			sel.v6 = append(sel.v6, p)
		}
	}
	return sel, nil
}

// requested resolves requested pool names or CIDRs.
func requested(pools []*pool, use string, names []string, v4 bool) ([]*pool, error) {
	var out []*pool
	for _, n := range names {
		n = strings.TrimSpace(n)
		var found *pool
		cidr, cerr := netip.ParsePrefix(n)
		for _, p := range pools {
			if p.name == n || cerr == nil && p.cidr() == cidr {
				found = p
				break
			}
		}
		fam := "IPv6"
		if v4 {
			fam = "IPv4"
		}
		switch {
		case found == nil:
			return nil, poolNotFound(n)
		case found.cidr().Addr().Is4() != v4:
			return nil, invalidf("%s is not an %s pool", found.describe(), fam)
		case found.disabled:
			return nil, poolDisabled(found)
		case !found.allows(use):
			return nil, invalidf("%s does not allow %s addresses (allowedUses lacks %s)", found.describe(), strings.ToLower(use), use)
		}
		if !slices.Contains(out, found) {
			out = append(out, found)
		}
	}
	return out, nil
}
