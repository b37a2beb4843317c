package ipam

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
)

// FixResult says what Fix did.
type FixResult struct {
	Fixed int
	// Skipped has one line per problem left alone, saying why.
	Skipped []string
}

// Fix repairs what a Report found, each repair guarded so that anything
// that changed since Check is left alone (and listed in Skipped). In
// order:
//
//   - stale affinities are deleted, missing ones created and pending ones
//     confirmed;
//   - handle records are rewritten from the blocks (deleted when the
//     handle holds nothing);
//   - leaked addresses are released if the same handle still holds them;
//   - blocks of vanished nodes lose their affinity (and are deleted when
//     empty);
//   - addresses endpoints use without an allocation are assigned to the
//     endpoint's handle (or one named after the endpoint) when they are in
//     a pool;
//   - conflicts (one address, several owners) are left to the operator:
//     which owner is right is not something the datastore knows.
//
// A leaked address is one no endpoint was using when Check ran; an
// allocation made for a container whose endpoint was not written yet looks
// the same, so run Fix on a quiet cluster or check twice.
func (a *Allocator) Fix(ctx context.Context, r Report) (FixResult, error) {
	var res FixResult
	steps := []func(context.Context, Report, *FixResult) error{
		a.fixAffinities, a.fixHandles, a.fixLeaked, a.fixOrphans, a.fixUnallocated,
	}
	for _, step := range steps {
		if err := step(ctx, r, &res); err != nil {
			return res, fmt.Errorf("fixing IPAM: %w", err)
		}
	}
	for _, c := range r.Conflicts {
		res.Skipped = append(res.Skipped, fmt.Sprintf("%s has several owners (%s): remove all but one of them", c.IP, strings.Join(c.Owners, ", ")))
	}
	return res, nil
}

func (a *Allocator) fixHandles(ctx context.Context, r Report, res *FixResult) error {
	for _, hp := range r.Handles {
		done, err := a.fixHandle(ctx, hp)
		if err != nil {
			return err
		}
		if done {
			res.Fixed++
		} else {
			res.Skipped = append(res.Skipped, fmt.Sprintf("handle %q changed since the check", hp.Handle))
		}
	}
	return nil
}

// fixHandle rewrites a handle's record from its blocks as they are now.
func (a *Allocator) fixHandle(ctx context.Context, hp HandleProblem) (bool, error) {
	hs, err := a.readHandles(ctx, []string{hp.Handle})
	if err != nil {
		return false, err
	}
	h := hs[hp.Handle]
	if h.rev != hp.Revision {
		return false, nil
	}
	set := map[netip.Prefix]bool{}
	for _, m := range []map[string]int{h.rec.Blocks, hp.Actual} {
		for s := range m {
			if c, err := netip.ParsePrefix(s); err == nil {
				set[c] = true
			}
		}
	}
	cidrs := slices.SortedFunc(maps.Keys(set), comparePrefix)
	blocks, err := a.readBlocks(ctx, cidrs)
	if err != nil {
		return false, err
	}
	t := newTxn()
	rec := handleRecord{Blocks: map[string]int{}}
	for _, c := range cidrs {
		rb := blocks[c]
		t.guard(BlockKey(c), rb.rev)
		if rb.b != nil {
			if n := len(rb.b.ordinalsOf(hp.Handle)); n > 0 {
				rec.Blocks[c.String()] = n
			}
		}
	}
	if h.rev != 0 && maps.Equal(rec.Blocks, h.rec.Blocks) {
		return true, nil
	}
	if h.rev == 0 && len(rec.Blocks) == 0 {
		return true, nil
	}
	if err := writeHandle(t, hp.Handle, h, rec); err != nil {
		return false, err
	}
	ok, _, _, err := a.commit(ctx, t)
	return ok, err
}

func (a *Allocator) fixLeaked(ctx context.Context, r Report, res *FixResult) error {
	if len(r.Leaked) == 0 {
		return nil
	}
	expect := map[netip.Addr]string{}
	byBlock := map[netip.Prefix][]netip.Addr{}
	for _, l := range r.Leaked {
		expect[l.IP] = l.Handle
		byBlock[l.Block] = append(byBlock[l.Block], l.IP)
	}
	cidrs := slices.SortedFunc(maps.Keys(byBlock), comparePrefix)
	for range a.attempts {
		unallocated, done, err := a.releaseIPsOnce(ctx, cidrs, byBlock, expect)
		if err != nil {
			return err
		}
		if done {
			res.Fixed += len(r.Leaked) - len(unallocated)
			for _, ip := range unallocated {
				res.Skipped = append(res.Skipped, fmt.Sprintf("%s is no longer held by handle %q", ip, expect[ip]))
			}
			return nil
		}
	}
	return contention("releasing leaked addresses", a.attempts)
}

func (a *Allocator) fixAffinities(ctx context.Context, r Report, res *FixResult) error {
	for _, ap := range r.Affinities {
		key := AffinityKey(ap.Node, ap.Block)
		t := newTxn()
		t.guard(key, ap.Revision)
		switch ap.Problem {
		case AffinityStale:
			t.del(key)
		case AffinityMissing, AffinityPending:
			t.guard(BlockKey(ap.Block), ap.BlockRev)
			t.put(key, affinityValue(stateConfirmed))
		default:
			continue
		}
		ok, _, _, err := a.commit(ctx, t)
		if err != nil {
			return err
		}
		if ok {
			res.Fixed++
			a.forgetNode(ap.Node)
		} else {
			res.Skipped = append(res.Skipped, fmt.Sprintf("affinity of block %s to node %q changed since the check", ap.Block, ap.Node))
		}
	}
	return nil
}

func (a *Allocator) fixOrphans(ctx context.Context, r Report, res *FixResult) error {
	for _, o := range r.Orphans {
		blocks, err := a.readBlocks(ctx, []netip.Prefix{o.Block})
		if err != nil {
			return err
		}
		rb := blocks[o.Block]
		if rb.b == nil || rb.b.affineNode() != o.Node {
			res.Skipped = append(res.Skipped, fmt.Sprintf("block %s is no longer affine to node %q", o.Block, o.Node))
			continue
		}
		if _, _, err := a.releaseHostBlock(ctx, o.Node, rb, false); err != nil {
			return err
		}
		res.Fixed++
	}
	return nil
}

func (a *Allocator) fixUnallocated(ctx context.Context, r Report, res *FixResult) error {
	for _, u := range r.Unallocated {
		if u.Pool == "" || u.Node == "" {
			res.Skipped = append(res.Skipped, fmt.Sprintf("%s (endpoint %q) is outside every pool or on no node: fix the endpoint", u.IP, u.Endpoint))
			continue
		}
		handle := u.Handle
		if handle == "" {
			handle = "endpoint." + strings.ReplaceAll(u.Endpoint, "/", ".")
		}
		attrs := map[string]string{"endpoint": u.Endpoint, "repaired": "ipam check"}
		err := a.AssignIP(ctx, AssignIPArgs{IP: u.IP, Handle: handle, Attrs: attrs, Node: u.Node})
		switch {
		case err == nil:
			res.Fixed++
		case IsInUse(err) || IsPoolDisabled(err) || IsNotInPool(err) || IsExhausted(err):
			res.Skipped = append(res.Skipped, fmt.Sprintf("%s (endpoint %q): %v", u.IP, u.Endpoint, err))
		default:
			return err
		}
	}
	return nil
}
