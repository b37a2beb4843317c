package ipam

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"time"

	"github.com/calyx-net/calyx/internal/datastore"
)

// writeBlock adds a changed block to t, guarded by the revision it was
// read at. A block left empty with no affinity is deleted: no node will
// allocate from it, and borrowers can re-create it.
func writeBlock(t *txn, b *Block, rev int64) error {
	t.guard(BlockKey(b.CIDR), rev)
	if b.Empty() && b.Affinity == "" {
		t.del(BlockKey(b.CIDR))
		return nil
	}
	val, err := b.MarshalJSON()
	if err != nil {
		return fmt.Errorf("encoding block %s: %w", b.CIDR, err)
	}
	t.put(BlockKey(b.CIDR), val)
	return nil
}

// writeHandle adds a handle's new counts to t (deleting it when it holds
// nothing), guarded by the revision it was read at.
func writeHandle(t *txn, handle string, h handleState, rec handleRecord) error {
	t.guard(HandleKey(handle), h.rev)
	for k, n := range rec.Blocks {
		if n <= 0 {
			delete(rec.Blocks, k)
		}
	}
	if len(rec.Blocks) == 0 {
		t.del(HandleKey(handle))
		return nil
	}
	val, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encoding handle %q: %w", handle, err)
	}
	t.put(HandleKey(handle), val)
	return nil
}

// learnChanged records the blocks a failed compare-and-swap returned in
// the local caches.
func (a *Allocator) learnChanged(changed map[string]datastore.RawKV) {
	for key, kv := range changed {
		if cidr, ok := blockFromKey(key); ok {
			var b *Block
			if kv.Value != nil {
				if b, _ = decodeBlock(kv.Value); b == nil {
					continue
				}
			}
			a.learn(cidr, b, kv.ModRevision)
		}
	}
}

// readHandles reads handles by name in one round trip per readChunk.
func (a *Allocator) readHandles(ctx context.Context, names []string) (map[string]handleState, error) {
	out := make(map[string]handleState, len(names))
	for chunk := range slices.Chunk(names, readChunk) {
		ranges := make([]datastore.RawRange, len(chunk))
		for i, n := range chunk {
			ranges[i] = datastore.RawRange{Key: HandleKey(n)}
		}
		res, _, err := a.store.ReadRanges(ctx, ranges)
		if err != nil {
			return nil, fmt.Errorf("reading %d handles: %w", len(chunk), err)
		}
		for i, n := range chunk {
			var h handleState
			kv := datastore.RawKV{Key: HandleKey(n)}
			if len(res[i]) > 0 {
				kv = res[i][0]
			}
			if err := h.fromKV(kv); err != nil {
				return nil, fmt.Errorf("reading handle %q: %w", n, err)
			}
			out[n] = h
		}
	}
	return out, nil
}

// ReleaseByHandle releases every address a handle holds, in every block,
// in one transaction with the deletion of the handle. A handle that does
// not exist is already released: no error.
func (a *Allocator) ReleaseByHandle(ctx context.Context, handle string) error {
	what := fmt.Sprintf("releasing handle %q", handle)
	if err := checkName("handle", handle); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	hs, err := a.readHandles(ctx, []string{handle})
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	h := hs[handle]
	for range a.attempts {
		if h.rev == 0 {
			return nil
		}
		var cidrs []netip.Prefix
		for s := range h.rec.Blocks {
			if c, err := netip.ParsePrefix(s); err == nil {
				cidrs = append(cidrs, c)
			}
		}
		blocks, err := a.readBlocksCached(ctx, cidrs)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		t := newTxn()
		written := map[netip.Prefix]*Block{}
		released := 0
		for _, c := range cidrs {
			rb := blocks[c]
			if rb.b == nil {
				continue // a missing block holds nothing
			}
			ords := rb.b.ordinalsOf(handle)
			if len(ords) == 0 {
				continue
			}
			nb := rb.b.clone()
			nb.release(ords, a.now())
			released += len(ords)
			if err := writeBlock(t, nb, rb.rev); err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
			written[c] = nb
		}
		if err := writeHandle(t, handle, h, handleRecord{}); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		ok, rev, changed, err := a.commit(ctx, t)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if ok {
			a.stats.released.Add(uint64(released))
			for c, nb := range written {
				if nb.Empty() && nb.Affinity == "" {
					nb = nil
				}
				a.learn(c, nb, rev)
			}
			return nil
		}
		a.learnChanged(changed)
		if kv, found := changed[HandleKey(handle)]; found {
			if err := h.fromKV(kv); err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
		}
	}
	return contention(what, a.attempts)
}

// ReleaseIPs releases addresses whoever holds them, decrementing their
// handles, all in one transaction. It returns the addresses that were not
// allocated (including any outside every pool), which is not an error.
func (a *Allocator) ReleaseIPs(ctx context.Context, ips ...netip.Addr) ([]netip.Addr, error) {
	what := fmt.Sprintf("releasing %d addresses", len(ips))
	if len(ips) == 0 {
		return nil, nil
	}
	res, _, err := a.store.ReadRanges(ctx, []datastore.RawRange{{Key: poolsPrefix(), Prefix: true}})
	if err != nil {
		return nil, fmt.Errorf("%s: reading IP pools: %w", what, err)
	}
	pools := decodePools(res[0])
	var outside []netip.Addr
	byBlock := map[netip.Prefix][]netip.Addr{}
	for _, ip := range ips {
		ip = ip.Unmap()
		pl := poolFor(pools, ip)
		if pl == nil {
			outside = append(outside, ip)
			continue
		}
		c := pl.geo.blockOf(ip)
		byBlock[c] = append(byBlock[c], ip)
	}
	cidrs := slices.SortedFunc(maps.Keys(byBlock), comparePrefix)
	for range a.attempts {
		unallocated, done, err := a.releaseIPsOnce(ctx, cidrs, byBlock, nil)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		if done {
			return append(outside, unallocated...), nil
		}
	}
	return nil, contention(what, a.attempts)
}

// releaseIPsOnce makes one attempt of ReleaseIPs. With expect, an address
// is released only if the handle expect names for it still holds it.
func (a *Allocator) releaseIPsOnce(ctx context.Context, cidrs []netip.Prefix, byBlock map[netip.Prefix][]netip.Addr, expect map[netip.Addr]string) ([]netip.Addr, bool, error) {
	blocks, err := a.readBlocksCached(ctx, cidrs)
	if err != nil {
		return nil, false, err
	}
	var unallocated []netip.Addr
	t := newTxn()
	written := map[netip.Prefix]*Block{}
	perHandle := map[string]map[string]int{} // handle -> block -> released
	released := 0
	for _, c := range cidrs {
		rb := blocks[c]
		if rb.b == nil {
			unallocated = append(unallocated, byBlock[c]...)
			continue
		}
		var ords []int
		for _, ip := range byBlock[c] {
			o, _ := rb.b.Ordinal(ip)
			at, held := rb.b.Owner(o)
			if want, ok := expect[ip]; ok && at.Handle != want {
				held = false
			}
			if !held || slices.Contains(ords, o) {
				unallocated = append(unallocated, ip)
				continue
			}
			ords = append(ords, o)
		}
		if len(ords) == 0 {
			continue
		}
		nb := rb.b.clone()
		for hd, n := range nb.release(ords, a.now()) {
			if perHandle[hd] == nil {
				perHandle[hd] = map[string]int{}
			}
			perHandle[hd][c.String()] += n
			released += n
		}
		if err := writeBlock(t, nb, rb.rev); err != nil {
			return nil, false, err
		}
		written[c] = nb
	}
	if released == 0 {
		return unallocated, true, nil
	}
	handles, err := a.readHandles(ctx, slices.Sorted(maps.Keys(perHandle)))
	if err != nil {
		return nil, false, err
	}
	for hd, counts := range perHandle {
		h := handles[hd]
		if h.rev == 0 {
			continue // no handle record to keep in step
		}
		rec := handleRecord{Blocks: maps.Clone(h.rec.Blocks)}
		for c, n := range counts {
			rec.Blocks[c] -= n
		}
		if err := writeHandle(t, hd, h, rec); err != nil {
			return nil, false, err
		}
	}
	ok, rev, changed, err := a.commit(ctx, t)
	if err != nil {
		return nil, false, err
	}
	if !ok {
		a.learnChanged(changed)
		return nil, false, nil
	}
	a.stats.released.Add(uint64(released))
	for c, nb := range written {
		if nb.Empty() && nb.Affinity == "" {
			nb = nil
		}
		a.learn(c, nb, rev)
	}
	slices.SortFunc(unallocated, netip.Addr.Compare)
	return unallocated, true, nil
}

// ReleaseEmptyBlocks gives up the node's blocks that have been empty for
// at least grace at now: each block and its affinity are deleted in one
// transaction guarded by the block's revision, so a block that received an
// address meanwhile is kept. It returns the released blocks. calyx-node
// calls it periodically; Calico (on etcd) never released empty blocks.
func (a *Allocator) ReleaseEmptyBlocks(ctx context.Context, node string, now time.Time, grace time.Duration) ([]netip.Prefix, error) {
	what := fmt.Sprintf("releasing the empty blocks of node %q", node)
	if err := checkName("node", node); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	st := a.node(node)
	if err := a.lockNode(ctx, st); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer st.mu.Unlock()
	if err := a.ensureView(ctx, st, false); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	var cidrs []netip.Prefix
	for c, ob := range st.blocks {
		if ob.b.Empty() && !ob.b.EmptySince.IsZero() && now.Sub(ob.b.EmptySince) >= grace {
			cidrs = append(cidrs, c)
		}
	}
	slices.SortFunc(cidrs, comparePrefix)
	var out []netip.Prefix
	for _, c := range cidrs {
		ob := st.blocks[c]
		t := newTxn()
		t.guard(BlockKey(c), ob.rev)
		t.del(BlockKey(c))
		t.del(AffinityKey(node, c))
		ok, _, changed, err := a.commit(ctx, t)
		if err != nil {
			return out, fmt.Errorf("%s: block %s: %w", what, c, err)
		}
		if !ok {
			a.absorb(st, changed) // it changed (an address was taken): keep it
			continue
		}
		a.dropOwn(st, c)
		out = append(out, c)
	}
	return out, nil
}
