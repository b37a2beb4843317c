package ipam

import (
	"context"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net/netip"
	"slices"

	"github.com/calyx-net/calyx/internal/datastore"
)

// claim claims a new block for the node in the first of pools that has a
// free one. One keys-only range read per pool finds which blocks exist
// (never a read per block: Calico's walk took 74 s over 1,284 blocks); the
// node starts at a block seeded by its name and takes the first free one
// after it. The block is created with the node's affinity, and the
// affinity written pending, in one transaction guarded by "the block does
// not exist": the create is the arbiter, and a node that loses tries the
// next free block. The next write to the block (normally the allocation
// that asked for it) confirms the affinity.
//
// The same read lists the node's affinities: a block claimed by an
// earlier attempt whose answer was lost (a cut connection) is found there
// and used, rather than claiming another and leaving that one idle.
//
// It returns the claimed block and its pool, or nil with the reason when
// the node may not or cannot claim one, or errReplan when a pool or the
// settings changed.
func (a *Allocator) claim(ctx context.Context, st *nodeState, pools []*pool) (*ownBlock, *pool, string, error) {
	s := st.view.settings
	switch {
	case !s.autoAllocate:
		return nil, nil, "autoAllocateBlocks is false, so the node claims no new block", nil
	case s.maxBlocks > 0 && len(st.blocks) >= s.maxBlocks:
		return nil, nil, fmt.Sprintf("the node's %d blocks are full and maxBlocksPerHost is %d", len(st.blocks), s.maxBlocks), nil
	}
	taken, affs, err := a.existingBlocks(ctx, st.name, pools)
	if err != nil {
		return nil, nil, "", err
	}
	if ob, pl, err := a.recoverClaims(ctx, st, pools, affs); ob != nil || err != nil {
		return ob, pl, "", err
	}
	for i, pl := range pools {
		start := pl.geo.startIndex(st.name)
		for range a.attempts {
			idx, ok := pl.geo.firstFree(taken[i], start)
			if !ok {
				break
			}
			ob, err := a.create(ctx, st, pl, pl.geo.at(idx), hostAffinity(st.name))
			if err != nil {
				return nil, nil, "", err
			}
			if ob != nil {
				return ob, pl, "", nil
			}
			taken[i] = insertSorted(taken[i], idx)
		}
	}
	return nil, nil, "every block of the pool is claimed", nil
}

// existingBlocks lists, per pool, the sorted numbers of its blocks that
// exist (keys only), and the node's affinities, in one round trip.
func (a *Allocator) existingBlocks(ctx context.Context, node string, pools []*pool) ([][]u128, []datastore.RawKV, error) {
	ranges := make([]datastore.RawRange, len(pools), len(pools)+1)
	for i, pl := range pools {
		ranges[i] = datastore.RawRange{Key: blockRangeFor(pl.cidr()), Prefix: true, KeysOnly: true}
	}
	ranges = append(ranges, datastore.RawRange{Key: affinityPrefix + node + "/", Prefix: true})
	res, _, err := a.store.ReadRanges(ctx, ranges)
	if err != nil {
		return nil, nil, fmt.Errorf("listing blocks: %w", err)
	}
	out := make([][]u128, len(pools))
	for i, pl := range pools {
		for _, kv := range res[i] {
			cidr, ok := blockFromKey(kv.Key)
			if !ok || !pl.cidr().Overlaps(cidr) {
				continue
			}
			out[i] = markTaken(out[i], pl.geo, cidr)
		}
		slices.SortFunc(out[i], u128.cmp)
		out[i] = slices.Compact(out[i])
	}
	return out, res[len(pools)], nil
}

// recoverClaims looks at the node's affinities for blocks of pools that
// the cache lacks: a block that is the node's is cached and, if it has a
// free address, returned; an affinity whose block is missing or another
// node's is deleted.
func (a *Allocator) recoverClaims(ctx context.Context, st *nodeState, pools []*pool, affs []datastore.RawKV) (*ownBlock, *pool, error) {
	byBlock := map[netip.Prefix]datastore.RawKV{}
	var unknown []netip.Prefix
	for _, kv := range affs {
		n, cidr, ok := affinityFromKey(kv.Key)
		if !ok || n != st.name || st.blocks[cidr] != nil {
			continue
		}
		if slices.ContainsFunc(pools, func(pl *pool) bool { return pl.geo.isBlock(cidr) }) {
			byBlock[cidr] = kv
			unknown = append(unknown, cidr)
		}
	}
	if len(unknown) == 0 {
		return nil, nil, nil
	}
	slices.SortFunc(unknown, comparePrefix)
	blocks, err := a.readBlocks(ctx, unknown)
	if err != nil {
		return nil, nil, err
	}
	var found *ownBlock
	for _, cidr := range unknown {
		rb, kv := blocks[cidr], byBlock[cidr]
		if rb.b == nil || rb.b.affineNode() != st.name {
			a.removeStaleAffinity(ctx, kv)
			continue
		}
		ob := &ownBlock{b: rb.b, rev: rb.rev, affState: decodeAffinity(kv.Value), affRev: kv.ModRevision}
		a.putOwn(st, ob)
		a.log.Info("recovered a block claimed by an earlier attempt", "node", st.name, "block", cidr.String())
		if found == nil && rb.b.Free() > 0 {
			found = ob
		}
	}
	if found == nil {
		return nil, nil, nil
	}
	for _, pl := range pools {
		if pl.geo.isBlock(found.b.CIDR) {
			return found, pl, nil
		}
	}
	return nil, nil, nil
}

// markTaken adds the numbers of the pool's blocks that an existing block
// overlaps (normally exactly its own number; more if the pool's block size
// was changed after blocks were made).
func markTaken(taken []u128, g geometry, cidr netip.Prefix) []u128 {
	if cidr.Bits() >= g.blockBits {
		return append(taken, g.index(g.blockOf(cidr.Addr())))
	}
	first := g.index(g.blockOf(cidr.Addr()))
	if !g.pool.Contains(cidr.Addr()) {
		first = u128{}
	}
	span := min(g.blockBits-cidr.Bits(), 16)
	for j := range uint64(1) << span {
		if idx := first.add(u128{0, j}); idx.cmp(g.count()) < 0 {
			taken = append(taken, idx)
		}
	}
	return taken
}

// create makes block cidr of pl with the given affinity, and for a node's
// claim its pending affinity, in one transaction that succeeds only if the
// block does not exist. It returns the new block (cached when it is the
// node's), or nil if the block exists; if that existing block is the
// node's (an earlier claim whose answer was lost) it is cached and
// returned. errReplan: the pool or the settings changed.
func (a *Allocator) create(ctx context.Context, st *nodeState, pl *pool, cidr netip.Prefix, affinity string) (*ownBlock, error) {
	b := newBlock(cidr, affinity, a.now())
	val, err := b.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("encoding block %s: %w", cidr, err)
	}
	t := newTxn()
	t.guard(BlockKey(cidr), 0)
	t.guard(pl.key, pl.rev)
	t.guard(settingsKey(), st.view.settings.rev)
	t.put(BlockKey(cidr), val)
	if affinity != "" {
		t.put(AffinityKey(st.name, cidr), affinityValue(statePending))
	}
	ok, rev, changed, err := a.commit(ctx, t)
	if err != nil {
		return nil, fmt.Errorf("claiming block %s of %s: %w", cidr, pl.describe(), err)
	}
	if ok {
		ob := &ownBlock{b: b, rev: rev, affState: statePending, affRev: rev}
		if affinity != "" {
			a.putOwn(st, ob)
			a.stats.claims.Add(1)
		}
		return ob, nil
	}
	kv, lost := changed[BlockKey(cidr)]
	if len(changed) > 1 || !lost {
		a.absorb(st, changed)
		return nil, errReplan
	}
	if eb, err := decodeBlock(kv.Value); err == nil && affinity != "" && eb.affineNode() == st.name {
		a.absorbRead(st, readBlock{b: eb, rev: kv.ModRevision})
		return st.blocks[cidr], nil
	}
	return nil, nil
}

// borrow plans up to need addresses from blocks of pools not affine to the
// node (other nodes' blocks, and blocks no node owns), visited in an order
// seeded by the node's name so that borrowers spread out. It reads the
// pools' blocks with their values (one round trip); this is the rare path
// of a node that can claim nothing. It returns how many are still needed.
func (a *Allocator) borrow(ctx context.Context, st *nodeState, p *plan, pools []*pool, need int, at Attribute) (int, error) {
	ranges := make([]datastore.RawRange, len(pools))
	for i, pl := range pools {
		ranges[i] = datastore.RawRange{Key: blockRangeFor(pl.cidr()), Prefix: true}
	}
	res, _, err := a.store.ReadRanges(ctx, ranges)
	if err != nil {
		return need, fmt.Errorf("reading blocks to borrow from: %w", err)
	}
	for i, pl := range pools {
		var cands []readBlock
		for _, kv := range res[i] {
			cidr, ok := blockFromKey(kv.Key)
			if !ok || !pl.geo.isBlock(cidr) || st.blocks[cidr] != nil {
				continue
			}
			if pb := p.blocks[cidr]; pb != nil {
				cands = append(cands, readBlock{b: pb.b, rev: pb.rev})
				continue
			}
			b, err := decodeBlock(kv.Value)
			if err != nil || b.affineNode() == st.name || b.Free() == 0 {
				continue
			}
			cands = append(cands, readBlock{b: b, rev: kv.ModRevision})
		}
		h := fnv.New64a()
		_, _ = h.Write([]byte(st.name))
		r := rand.New(rand.NewPCG(h.Sum64(), uint64(a.now().UnixNano())))
		r.Shuffle(len(cands), func(x, y int) { cands[x], cands[y] = cands[y], cands[x] })
		for _, c := range cands {
			need -= p.take(p.add(c.b, c.rev, pl, nil), need, at)
			if need == 0 {
				return 0, nil
			}
		}
	}
	return need, nil
}
