package ipam

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"

	"github.com/calyx-net/calyx/internal/api"
	"github.com/calyx-net/calyx/internal/datastore"
)

// AutoAssignArgs is a request for addresses from pools.
type AutoAssignArgs struct {
	// Num4 and Num6 are how many IPv4 and IPv6 addresses to assign.
	Num4, Num6 int
	// Handle names the owner: for CNI "<network>.<containerID>.<ifname>",
	// for Docker the endpoint ID. Required; it may not contain '/'.
	Handle string
	// Attrs are stored with the allocation (node, orchestrator, workload,
	// ...); "node" is set to Node when absent.
	Attrs map[string]string
	// Node is the host asking; addresses come from blocks affine to it.
	Node string
	// IPv4Pools and IPv6Pools restrict the request to these pools, by name
	// or exact CIDR. Empty: every enabled pool whose nodeSelector matches
	// the node's labels.
	IPv4Pools, IPv6Pools []string
	// Use is what the addresses are for: api.IPPoolUseWorkload (the
	// default when empty) or api.IPPoolUseTunnel (a VXLAN device's
	// address); only pools whose allowedUses include it are used.
	Use string
	// Also, when set, is called with the addresses planned for the
	// handle (those it already held included) and returns keys to write
	// in the same transaction, with their guards: CNI ADD writes the
	// endpoint that holds the addresses with them, one etcd commit for
	// both. When one of its guards fails, AutoAssign writes nothing and
	// returns an error satisfying IsAlsoConflict. It is not called when
	// the handle already holds every address asked for: nothing is
	// written then.
	Also func(AssignResult) ([]datastore.RawPut, []datastore.Cond, error)
}

// use returns the request's use, defaulted.
func (a AutoAssignArgs) use() string {
	if a.Use == "" {
		return api.IPPoolUseWorkload
	}
	return a.Use
}

// AssignResult is what a handle holds after AutoAssign.
type AssignResult struct {
	IPv4, IPv6 []netip.Addr
	// Revision is the etcd revision of the transaction that wrote them
	// (and Also's keys); 0 when nothing was written.
	Revision int64
}

// AssignIPArgs is a request for one particular address.
type AssignIPArgs struct {
	IP     netip.Addr
	Handle string
	Attrs  map[string]string
	Node   string
}

// errReplan says that the configuration changed under a plan: start over
// with a fresh view.
var errReplan = errors.New("configuration changed, planning again")

// plan is a set of changes to blocks, committed together with the handle
// in one compare-and-swap.
type plan struct {
	blocks map[netip.Prefix]*planBlock
	order  []netip.Prefix
	v4, v6 []netip.Addr
	// cur is the handle take assigns to; counts what each handle was
	// given, per block.
	cur    string
	counts map[string]map[netip.Prefix]int
}

// planBlock is one block to write: a clone of what was read, changed.
type planBlock struct {
	b     *Block
	rev   int64 // guard: the revision it was read at (0: create it)
	pool  *pool
	own   *ownBlock // nil for a block not affine to the node
	added int
}

func newPlan() *plan {
	return &plan{blocks: map[netip.Prefix]*planBlock{}, counts: map[string]map[netip.Prefix]int{}}
}

// add returns the plan's copy of a block, cloning it on first use.
func (p *plan) add(b *Block, rev int64, pl *pool, own *ownBlock) *planBlock {
	if pb := p.blocks[b.CIDR]; pb != nil {
		return pb
	}
	pb := &planBlock{b: b.clone(), rev: rev, pool: pl, own: own}
	p.blocks[b.CIDR] = pb
	p.order = append(p.order, b.CIDR)
	return pb
}

// take assigns up to n addresses of pb to at and returns how many.
func (p *plan) take(pb *planBlock, n int, at Attribute) int {
	n = min(n, pb.b.Free())
	if n <= 0 {
		return 0
	}
	for _, o := range pb.b.assignNext(n, at) {
		p.record(pb.b.Addr(o))
	}
	pb.added += n
	if p.counts[p.cur] == nil {
		p.counts[p.cur] = map[netip.Prefix]int{}
	}
	p.counts[p.cur][pb.b.CIDR] += n
	return n
}

func (p *plan) record(a netip.Addr) {
	if a.Is4() {
		p.v4 = append(p.v4, a)
	} else {
		p.v6 = append(p.v6, a)
	}
}

// writeContext is what a plan's transaction is guarded by besides its
// blocks.
type writeContext struct {
	node     string
	handle   string
	h        *handleState
	settings settings
	nodeRev  int64
	byLabels bool // guard the Node too: pool choice depended on its labels
	// consulted are the blocks read to find what the handle already
	// holds, with their revisions: guarded, so that a stale read cannot
	// hide an address the handle has.
	consulted map[netip.Prefix]int64
}

// txn builds the plan's compare-and-swap: every changed block guarded by
// its revision and its pool's, a pending affinity confirmed, the handle's
// counts updated; borrowing is guarded by the IPAM settings (strictAffinity
// may have been turned on).
func (p *plan) txn(w writeContext) (*txn, error) {
	t := newTxn()
	rec := handleRecord{Blocks: maps.Clone(w.h.rec.Blocks)}
	if rec.Blocks == nil {
		rec.Blocks = map[string]int{}
	}
	if err := p.writeBlocks(t, w.node, w.settings); err != nil {
		return nil, err
	}
	for cidr, pb := range p.blocks {
		if pb.added > 0 {
			rec.Blocks[cidr.String()] += pb.added
		}
	}
	for cidr, rev := range w.consulted {
		t.guard(BlockKey(cidr), rev)
	}
	hv, err := json.Marshal(rec)
	if err != nil {
		return nil, fmt.Errorf("encoding handle %q: %w", w.handle, err)
	}
	t.guard(HandleKey(w.handle), w.h.rev)
	t.put(HandleKey(w.handle), hv)
	if w.byLabels {
		t.guard(nodeKey(w.node), w.nodeRev)
	}
	return t, nil
}

// writeBlocks adds the plan's changed blocks to t: each written, guarded
// by its revision and its pool's; a pending affinity confirmed; borrowing
// guarded by the IPAM settings (strictAffinity may have been turned on).
func (p *plan) writeBlocks(t *txn, node string, set settings) error {
	for _, cidr := range p.order {
		pb := p.blocks[cidr]
		if pb.added == 0 {
			continue
		}
		val, err := pb.b.MarshalJSON()
		if err != nil {
			return fmt.Errorf("encoding block %s: %w", cidr, err)
		}
		t.guard(BlockKey(cidr), pb.rev)
		t.put(BlockKey(cidr), val)
		t.guard(pb.pool.key, pb.pool.rev)
		switch {
		case pb.own != nil && pb.own.affState != stateConfirmed:
			t.guard(AffinityKey(node, cidr), pb.own.affRev)
			t.put(AffinityKey(node, cidr), affinityValue(stateConfirmed))
		case pb.own == nil:
			t.guard(settingsKey(), set.rev)
		}
	}
	return nil
}

// apply records a committed plan's own blocks in the node's cache.
func (a *Allocator) apply(st *nodeState, p *plan, rev int64) {
	for _, cidr := range p.order {
		pb := p.blocks[cidr]
		if pb.added == 0 {
			continue
		}
		a.stats.allocated.Add(uint64(pb.added))
		if pb.own == nil {
			if pb.b.affineNode() != st.name {
				a.stats.borrowed.Add(uint64(pb.added))
			}
			continue
		}
		a.putOwn(st, &ownBlock{b: pb.b, rev: rev, affState: stateConfirmed, affRev: affRevAfter(pb.own, rev)})
	}
}

func affRevAfter(ob *ownBlock, rev int64) int64 {
	if ob.affState != stateConfirmed {
		return rev
	}
	return ob.affRev
}

// handleAddrs returns the addresses h (the handle as last read) holds, its
// record corrected to what the blocks say, and the blocks consulted with
// their revisions. This is the rare path (a retried request for a handle
// that exists), so the blocks are read from etcd rather than trusted from
// the cache, and the node's own blocks read refresh the cache.
func (a *Allocator) handleAddrs(ctx context.Context, st *nodeState, handle string, h *handleState) ([]netip.Addr, handleRecord, map[netip.Prefix]int64, error) {
	rec := handleRecord{Blocks: map[string]int{}}
	if h.rev == 0 {
		return nil, rec, nil, nil
	}
	var read []netip.Prefix
	for s := range h.rec.Blocks {
		if cidr, err := netip.ParsePrefix(s); err == nil {
			read = append(read, cidr)
		}
	}
	blocks, err := a.readBlocks(ctx, read)
	if err != nil {
		return nil, rec, nil, err
	}
	var out []netip.Addr
	consulted := map[netip.Prefix]int64{}
	for cidr, rb := range blocks {
		consulted[cidr] = rb.rev
		if rb.b == nil {
			if st.blocks[cidr] != nil {
				a.dropOwn(st, cidr)
			}
			continue
		}
		if rb.b.affineNode() == st.name {
			a.absorbRead(st, rb)
		}
		out = appendHeld(out, &rec, rb.b, handle)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out, rec, consulted, nil
}

func appendHeld(out []netip.Addr, rec *handleRecord, b *Block, handle string) []netip.Addr {
	ords := b.ordinalsOf(handle)
	if len(ords) > 0 {
		rec.Blocks[b.CIDR.String()] = len(ords)
	}
	for _, o := range ords {
		out = append(out, b.Addr(o))
	}
	return out
}

// fill plans need addresses of one family from pools: first from the
// node's blocks, then from blocks it claims, then, unless strictAffinity,
// from other nodes' blocks.
func (a *Allocator) fill(ctx context.Context, st *nodeState, p *plan, pools []*pool, need int, at Attribute, fam string) error {
	if need == 0 {
		return nil
	}
	if len(pools) == 0 {
		return exhaustedf("no enabled %s pool with the right allowedUses selects node %q", fam, st.name)
	}
	for _, pl := range pools {
		for _, ob := range a.ownBlocksIn(st, pl) {
			if need -= p.take(p.add(ob.b, ob.rev, pl, ob), need, at); need == 0 {
				return nil
			}
		}
	}
	var why string
	for need > 0 {
		ob, pl, reason, err := a.claim(ctx, st, pools)
		if err != nil {
			return err
		}
		if ob == nil {
			why = reason
			break
		}
		need -= p.take(p.add(ob.b, ob.rev, pl, ob), need, at)
	}
	if need == 0 {
		return nil
	}
	if st.view.settings.strictAffinity {
		return exhaustedf("no free %s address for node %q in %s: %s, and strictAffinity forbids borrowing from other nodes' blocks",
			fam, st.name, describePools(pools), why)
	}
	left, err := a.borrow(ctx, st, p, pools, need, at)
	if err != nil {
		return err
	}
	if left > 0 {
		return exhaustedf("no free %s address for node %q in %s: %s, and no other node's block has a free address",
			fam, st.name, describePools(pools), why)
	}
	return nil
}

// ownBlocksIn returns the node's cached blocks of a pool in address order.
func (a *Allocator) ownBlocksIn(st *nodeState, pl *pool) []*ownBlock {
	var out []*ownBlock
	for cidr, ob := range st.blocks {
		if pl.geo.isBlock(cidr) {
			out = append(out, ob)
		}
	}
	slices.SortFunc(out, func(x, y *ownBlock) int { return comparePrefix(x.b.CIDR, y.b.CIDR) })
	return out
}

func describePools(pools []*pool) string {
	if len(pools) == 1 {
		return pools[0].describe()
	}
	s := "IP pools"
	for i, p := range pools {
		if i > 0 {
			s += ","
		}
		s += " " + quote(p.name) + " (" + p.cidr().String() + ")"
	}
	return s
}

func checkArgs(handle, node string) error {
	if err := checkName("handle", handle); err != nil {
		return err
	}
	return checkName("node", node)
}

// attribute builds an allocation's owner entry; "node" defaults to node.
func attribute(handle, node string, attrs map[string]string) Attribute {
	m := maps.Clone(attrs)
	if m == nil {
		m = map[string]string{}
	}
	if _, ok := m["node"]; !ok {
		m["node"] = node
	}
	return Attribute{Handle: handle, Attrs: m}
}
