package ipam

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"

	"github.com/calyx-net/calyx/internal/datastore"
)

// HostRelease says what ReleaseHostAffinities did.
type HostRelease struct {
	// Blocks is how many blocks the node gave up.
	Blocks int
	// Deleted is how many of them were deleted (empty, or emptied);
	// the others keep their addresses and now belong to no node.
	Deleted int
	// Addresses is how many addresses were released.
	Addresses int
}

// ReleaseHostAffinities gives up every block affine to node, for a node
// that is leaving (calyxctl delete node). Each block is handled in one
// transaction with its affinity: an empty block is deleted; a block in use
// keeps its addresses and loses its affinity (other nodes may then borrow
// from it), unless releaseIPs, when its addresses are released too
// (handles decremented) and the block is deleted. Affinities whose block
// is missing or another node's are deleted.
func (a *Allocator) ReleaseHostAffinities(ctx context.Context, node string, releaseIPs bool) (HostRelease, error) {
	what := fmt.Sprintf("releasing the blocks of node %q", node)
	var out HostRelease
	if err := checkName("node", node); err != nil {
		return out, fmt.Errorf("%s: %w", what, err)
	}
	defer a.forgetNode(node)
	res, _, err := a.store.ReadRanges(ctx, []datastore.RawRange{
		{Key: affinityPrefix + node + "/", Prefix: true},
		{Key: blockPrefix, Prefix: true},
	})
	if err != nil {
		return out, fmt.Errorf("%s: %w", what, err)
	}
	affs := map[netip.Prefix]datastore.RawKV{}
	for _, kv := range res[0] {
		if n, c, ok := affinityFromKey(kv.Key); ok && n == node {
			affs[c] = kv
		}
	}
	var mine []readBlock
	for _, kv := range res[1] {
		b, err := decodeBlock(kv.Value)
		if err != nil || b.affineNode() != node {
			continue
		}
		mine = append(mine, readBlock{b: b, rev: kv.ModRevision})
		delete(affs, b.CIDR)
	}
	for _, rb := range mine {
		deleted, n, err := a.releaseHostBlock(ctx, node, rb, releaseIPs)
		if err != nil {
			return out, fmt.Errorf("%s: block %s: %w", what, rb.b.CIDR, err)
		}
		out.Blocks++
		out.Addresses += n
		if deleted {
			out.Deleted++
		}
	}
	for _, c := range slices.SortedFunc(maps.Keys(affs), comparePrefix) {
		a.removeStaleAffinity(ctx, affs[c])
	}
	return out, nil
}

// releaseHostBlock releases one block of a leaving node. It reports
// whether the block was deleted and how many addresses were released.
func (a *Allocator) releaseHostBlock(ctx context.Context, node string, rb readBlock, releaseIPs bool) (bool, int, error) {
	for range a.attempts {
		if rb.b == nil || rb.b.affineNode() != node {
			return false, 0, nil // deleted or taken over meanwhile
		}
		t := newTxn()
		t.del(AffinityKey(node, rb.b.CIDR))
		var released int
		switch {
		case rb.b.Empty() || releaseIPs:
			t.guard(BlockKey(rb.b.CIDR), rb.rev)
			t.del(BlockKey(rb.b.CIDR))
			counts := rb.b.handleCounts()
			handles, err := a.readHandles(ctx, slices.Sorted(maps.Keys(counts)))
			if err != nil {
				return false, 0, err
			}
			for hd, n := range counts {
				released += n
				h := handles[hd]
				if h.rev == 0 {
					continue
				}
				rec := handleRecord{Blocks: maps.Clone(h.rec.Blocks)}
				rec.Blocks[rb.b.CIDR.String()] -= n
				if err := writeHandle(t, hd, h, rec); err != nil {
					return false, 0, err
				}
			}
		default:
			nb := rb.b.clone()
			nb.Affinity = ""
			if err := writeBlock(t, nb, rb.rev); err != nil {
				return false, 0, err
			}
		}
		ok, _, changed, err := a.commit(ctx, t)
		if err != nil {
			return false, 0, err
		}
		if ok {
			a.stats.released.Add(uint64(released))
			return rb.b.Empty() || releaseIPs, released, nil
		}
		if kv, found := changed[BlockKey(rb.b.CIDR)]; found {
			rb = readBlock{rev: kv.ModRevision}
			if kv.Value != nil {
				if rb.b, err = decodeBlock(kv.Value); err != nil {
					return false, 0, err
				}
			}
		}
	}
	return false, 0, contention("releasing the block", a.attempts)
}

// ReleasePoolAffinities deletes every empty block of a pool's CIDR with
// its affinity, after the pool itself was deleted, and returns how many it
// deleted and how many (still holding addresses) it kept.
func (a *Allocator) ReleasePoolAffinities(ctx context.Context, cidr netip.Prefix) (deleted, kept int, err error) {
	what := fmt.Sprintf("releasing the empty blocks of %s", cidr)
	res, _, err := a.store.ReadRanges(ctx, []datastore.RawRange{{Key: blockRangeFor(cidr.Masked()), Prefix: true}})
	if err != nil {
		return 0, 0, fmt.Errorf("%s: %w", what, err)
	}
	for _, kv := range res[0] {
		b, err := decodeBlock(kv.Value)
		if err != nil || !cidr.Masked().Overlaps(b.CIDR) {
			continue
		}
		if !b.Empty() {
			kept++
			continue
		}
		t := newTxn()
		t.guard(kv.Key, kv.ModRevision)
		t.del(kv.Key)
		if n := b.affineNode(); n != "" {
			t.del(AffinityKey(n, b.CIDR))
		}
		ok, rev, _, err := a.commit(ctx, t)
		if err != nil {
			return deleted, kept, fmt.Errorf("%s: block %s: %w", what, b.CIDR, err)
		}
		if ok {
			deleted++
			a.learn(b.CIDR, nil, rev)
		} else {
			kept++
		}
	}
	return deleted, kept, nil
}
