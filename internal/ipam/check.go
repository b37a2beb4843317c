package ipam

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"github.com/calyx-net/calyx/internal/api"
	"github.com/calyx-net/calyx/internal/datastore"
)

// Endpoint is a user of addresses that Check should count as in use
// besides the stored WorkloadEndpoints and the Nodes' tunnel addresses,
// which it reads itself.
type Endpoint struct {
	Name string
	Node string
	// Handle is the IPAM handle the endpoint's addresses were assigned
	// to, when known; a different owner is then reported as a conflict.
	Handle string
	IPs    []netip.Addr
}

// Report is what Check found, one list per problem class. Every entry
// carries the revision it was read at, so that Fix repairs only what has
// not changed since.
type Report struct {
	// Leaked: addresses allocated that no endpoint uses. Allocations
	// marked AttrIPAMOnly are not counted: no endpoint ever holds them.
	Leaked []Allocation
	// PluginHeld: addresses of calyx-ipam running under another CNI plugin
	// (AttrIPAMOnly). No endpoint holds them by design; they are listed
	// for information and for CNI GC, never counted as problems or fixed.
	PluginHeld []Allocation
	// Unallocated: addresses endpoints use that are not allocated (Pool
	// is empty for an address outside every pool).
	Unallocated []EndpointIP
	// Conflicts: addresses with more than one owner.
	Conflicts []Conflict
	// Handles: handle records that disagree with the blocks, including
	// handles that hold no address at all and allocations whose handle
	// has no record.
	Handles []HandleProblem
	// Orphans: blocks affine to a node that no longer exists.
	Orphans []OrphanBlock
	// Affinities: affinity records out of step with their blocks.
	Affinities []AffinityProblem
}

// Allocation is one allocated address.
type Allocation struct {
	IP       netip.Addr
	Handle   string
	Node     string // the "node" attribute
	Block    netip.Prefix
	Revision int64 // of the block
	// Attrs are the allocation's attributes and Borrowed says that its
	// block is not affine to Node; only NodeAllocations sets them.
	Attrs    map[string]string
	Borrowed bool
}

// EndpointIP is an address an endpoint uses.
type EndpointIP struct {
	IP       netip.Addr
	Endpoint string
	Node     string
	Handle   string
	Pool     string
}

// Conflict is an address claimed by several owners.
type Conflict struct {
	IP     netip.Addr
	Owners []string // e.g. `endpoint "web-1"`, `handle "h" in block 10.65.0.0/26`
}

// HandleProblem is a handle record that disagrees with the blocks.
type HandleProblem struct {
	Handle   string
	Recorded map[string]int // block -> count, as stored (nil: no record)
	Actual   map[string]int // block -> count, as the blocks say
	Revision int64          // of the handle key (0: missing)
}

// OrphanBlock is a block whose node no longer exists.
type OrphanBlock struct {
	Block    netip.Prefix
	Node     string
	InUse    int
	Revision int64
}

// Affinity problem kinds.
const (
	AffinityStale   = "stale"   // its block is missing or affine to another node
	AffinityMissing = "missing" // a block is affine to the node but has no affinity record
	AffinityPending = "pending" // the claim was never confirmed (or a release was cut short)
)

// AffinityProblem is an affinity record out of step with its block.
type AffinityProblem struct {
	Node     string
	Block    netip.Prefix
	Problem  string // AffinityStale, AffinityMissing or AffinityPending
	Revision int64  // of the affinity key (0: missing)
	BlockRev int64  // of the block key (0: missing)
}

// Problems counts the entries of every class.
func (r Report) Problems() int {
	return len(r.Leaked) + len(r.Unallocated) + len(r.Conflicts) + len(r.Handles) + len(r.Orphans) + len(r.Affinities)
}

// Check reads every block, affinity, handle, pool, node and workload
// endpoint in one consistent read and reports what is out of step; extra
// endpoints (users of addresses that are not stored as WorkloadEndpoints)
// count as in use too. It changes nothing.
func (a *Allocator) Check(ctx context.Context, endpoints ...Endpoint) (Report, error) {
	res, _, err := a.store.ReadRanges(ctx, []datastore.RawRange{
		{Key: datastore.IPAMPrefix, Prefix: true},
		{Key: poolsPrefix(), Prefix: true},
		{Key: datastore.KindPrefix(kind(api.KindNode)), Prefix: true},
		{Key: datastore.KindPrefix(kind(api.KindWorkloadEndpoint)), Prefix: true},
	})
	if err != nil {
		return Report{}, fmt.Errorf("checking IPAM: %w", err)
	}
	in := checkInput{pools: decodePools(res[1]), nodes: map[string]bool{}, handles: map[string]handleState{}}
	for _, kv := range res[0] {
		switch {
		case strings.HasPrefix(kv.Key, blockPrefix):
			if b, err := decodeBlock(kv.Value); err == nil {
				in.blocks = append(in.blocks, readBlock{b: b, rev: kv.ModRevision})
			} else {
				a.log.Warn("checking IPAM: skipping undecodable block", "key", kv.Key, "err", err)
			}
		case strings.HasPrefix(kv.Key, affinityPrefix):
			if n, c, ok := affinityFromKey(kv.Key); ok {
				in.affinities = append(in.affinities, AffinityProblem{Node: n, Block: c, Problem: decodeAffinity(kv.Value), Revision: kv.ModRevision})
			}
		case strings.HasPrefix(kv.Key, handlePrefix):
			var h handleState
			if err := h.fromKV(kv); err == nil {
				in.handles[kv.Key[len(handlePrefix):]] = h
			}
		}
	}
	nodePrefix := datastore.KindPrefix(kind(api.KindNode))
	for _, kv := range res[2] {
		name := kv.Key[len(nodePrefix):]
		in.nodes[name] = true
		if r, err := api.UnmarshalStored(kind(api.KindNode), kv.Value); err == nil {
			in.endpoints = append(in.endpoints, tunnelEndpoint(name, r.(*api.Node)))
		}
	}
	wepPrefix := datastore.KindPrefix(kind(api.KindWorkloadEndpoint))
	for _, kv := range res[3] {
		if r, err := api.UnmarshalStored(kind(api.KindWorkloadEndpoint), kv.Value); err == nil {
			r.GetObjectMeta().Name = kv.Key[len(wepPrefix):]
			in.endpoints = append(in.endpoints, EndpointFromWorkload(r.(*api.WorkloadEndpoint)))
		}
	}
	in.endpoints = append(in.endpoints, endpoints...)
	return buildReport(in), nil
}

// EndpointFromWorkload returns the addresses a WorkloadEndpoint uses.
func EndpointFromWorkload(w *api.WorkloadEndpoint) Endpoint {
	ep := Endpoint{Name: w.Metadata.Name, Node: w.Spec.Node}
	for _, s := range w.Spec.IPNetworks {
		if ip, ok := parseAddr(s); ok {
			ep.IPs = append(ep.IPs, ip)
		}
	}
	return ep
}

// tunnelEndpoint returns a node's tunnel addresses, which come from pools
// too.
func tunnelEndpoint(name string, n *api.Node) Endpoint {
	ep := Endpoint{Name: "node " + name + " tunnel", Node: name}
	addrs := []string{n.Spec.IPv4VXLANTunnelAddr, n.Spec.IPv6VXLANTunnelAddr}
	if n.Spec.BGP != nil {
		addrs = append(addrs, n.Spec.BGP.IPv4IPIPTunnelAddr)
	}
	for _, s := range addrs {
		if ip, ok := parseAddr(s); ok {
			ep.IPs = append(ep.IPs, ip)
		}
	}
	return ep
}

// parseAddr reads "10.0.0.1" or "10.0.0.1/32".
func parseAddr(s string) (netip.Addr, bool) {
	if ip, err := netip.ParseAddr(s); err == nil {
		return ip.Unmap(), true
	}
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Addr().Unmap(), true
	}
	return netip.Addr{}, false
}

// checkInput is everything Check read.
type checkInput struct {
	pools      []*pool
	blocks     []readBlock
	affinities []AffinityProblem // Problem holds the stored state here
	handles    map[string]handleState
	nodes      map[string]bool
	endpoints  []Endpoint
}

// buildReport compares the blocks with the endpoints, handles, nodes and
// affinities. It does no I/O.
func buildReport(in checkInput) Report {
	var r Report
	type owner struct {
		what   string
		handle string
	}
	allocated := map[netip.Addr][]owner{}
	actual := map[string]map[string]int{}
	blockRev := map[netip.Prefix]int64{}
	slices.SortFunc(in.blocks, func(x, y readBlock) int { return comparePrefix(x.b.CIDR, y.b.CIDR) })
	for _, rb := range in.blocks {
		b := rb.b
		blockRev[b.CIDR] = rb.rev
		for _, o := range b.Allocated() {
			at, _ := b.Owner(o)
			ip := b.Addr(o)
			allocated[ip] = append(allocated[ip], owner{what: fmt.Sprintf("handle %q in block %s", at.Handle, b.CIDR), handle: at.Handle})
			if actual[at.Handle] == nil {
				actual[at.Handle] = map[string]int{}
			}
			actual[at.Handle][b.CIDR.String()]++
		}
	}
	used := map[netip.Addr][]Endpoint{}
	for _, ep := range in.endpoints {
		for _, ip := range ep.IPs {
			ip = ip.Unmap()
			if !slices.ContainsFunc(used[ip], func(e Endpoint) bool { return e.Name == ep.Name }) {
				used[ip] = append(used[ip], ep)
			}
		}
	}
	for _, rb := range in.blocks {
		for _, o := range rb.b.Allocated() {
			ip := rb.b.Addr(o)
			at, _ := rb.b.Owner(o)
			if len(used[ip]) == 0 && at.Attrs[AttrIPAMOnly] == "true" {
				r.PluginHeld = append(r.PluginHeld, Allocation{IP: ip, Handle: at.Handle, Node: at.Attrs["node"], Block: rb.b.CIDR, Revision: rb.rev})
			} else if len(used[ip]) == 0 {
				r.Leaked = append(r.Leaked, Allocation{IP: ip, Handle: at.Handle, Node: at.Attrs["node"], Block: rb.b.CIDR, Revision: rb.rev})
			}
		}
	}
	for _, ip := range slices.SortedFunc(maps.Keys(used), netip.Addr.Compare) {
		eps := used[ip]
		owners := allocated[ip]
		if len(owners) == 0 {
			for _, ep := range eps {
				e := EndpointIP{IP: ip, Endpoint: ep.Name, Node: ep.Node, Handle: ep.Handle}
				if p := poolFor(in.pools, ip); p != nil {
					e.Pool = p.name
				}
				r.Unallocated = append(r.Unallocated, e)
			}
			continue
		}
		var names []string
		for _, ep := range eps {
			names = append(names, fmt.Sprintf("endpoint %q", ep.Name))
		}
		mismatch := slices.ContainsFunc(eps, func(ep Endpoint) bool { return ep.Handle != "" && ep.Handle != owners[0].handle })
		if len(eps) > 1 || len(owners) > 1 || mismatch {
			c := Conflict{IP: ip, Owners: names}
			for _, o := range owners {
				c.Owners = append(c.Owners, o.what)
			}
			r.Conflicts = append(r.Conflicts, c)
		}
	}
	for ip, owners := range allocated {
		if len(owners) > 1 && len(used[ip]) == 0 {
			c := Conflict{IP: ip}
			for _, o := range owners {
				c.Owners = append(c.Owners, o.what)
			}
			r.Conflicts = append(r.Conflicts, c)
		}
	}
	slices.SortFunc(r.Conflicts, func(x, y Conflict) int { return x.IP.Compare(y.IP) })
	r.Handles = handleProblems(in.handles, actual)
	r.Orphans, r.Affinities = affinityProblems(in, blockRev)
	return r
}

// handleProblems compares each handle's record with what the blocks hold.
func handleProblems(handles map[string]handleState, actual map[string]map[string]int) []HandleProblem {
	var out []HandleProblem
	names := slices.Collect(maps.Keys(handles))
	for n := range actual {
		if _, ok := handles[n]; !ok {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	for _, n := range names {
		h, stored := handles[n]
		act := actual[n]
		if act == nil {
			act = map[string]int{}
		}
		var rec map[string]int
		if stored {
			rec = h.rec.Blocks
		}
		if stored && maps.Equal(rec, act) {
			continue
		}
		out = append(out, HandleProblem{Handle: n, Recorded: rec, Actual: act, Revision: h.rev})
	}
	return out
}

// affinityProblems finds blocks of vanished nodes and affinity records
// out of step with their blocks.
func affinityProblems(in checkInput, blockRev map[netip.Prefix]int64) ([]OrphanBlock, []AffinityProblem) {
	var orphans []OrphanBlock
	var probs []AffinityProblem
	owner := map[netip.Prefix]string{}
	for _, rb := range in.blocks {
		n := rb.b.affineNode()
		if n == "" {
			continue
		}
		owner[rb.b.CIDR] = n
		if !in.nodes[n] {
			orphans = append(orphans, OrphanBlock{Block: rb.b.CIDR, Node: n, InUse: rb.b.InUse(), Revision: rb.rev})
		}
	}
	recorded := map[string]bool{}
	for _, af := range in.affinities {
		recorded[af.Node+"/"+af.Block.String()] = true
		p := AffinityProblem{Node: af.Node, Block: af.Block, Revision: af.Revision, BlockRev: blockRev[af.Block]}
		switch {
		case owner[af.Block] != af.Node || af.Problem == statePendingDeletion:
			p.Problem = AffinityStale
		case af.Problem != stateConfirmed:
			p.Problem = AffinityPending
		default:
			continue
		}
		probs = append(probs, p)
	}
	for c, n := range owner {
		if !recorded[n+"/"+c.String()] && in.nodes[n] {
			probs = append(probs, AffinityProblem{Node: n, Block: c, Problem: AffinityMissing, BlockRev: blockRev[c]})
		}
	}
	slices.SortFunc(probs, func(x, y AffinityProblem) int {
		return cmp.Or(strings.Compare(x.Node, y.Node), comparePrefix(x.Block, y.Block))
	})
	return orphans, probs
}

// AttrIPAMOnly is the allocation attribute (value "true") that marks
// addresses handed out to calyx-ipam running as the IPAM plugin of another
// CNI plugin (e.g. bridge). No WorkloadEndpoint ever holds them, so Check
// must not call them leaked and Fix must not release them: only their DEL
// or a CNI GC does.
const AttrIPAMOnly = "ipamOnly"
