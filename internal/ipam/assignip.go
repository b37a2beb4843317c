package ipam

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
)

// AssignIP assigns one given address to a handle (CNI's IP= argument,
// docker run --ip). The address must be in an enabled pool that allows
// workloads. When its block does not exist the node claims it (or, when
// it may not claim blocks and strictAffinity is off, creates it with no
// affinity); a block affine to another node is used only without
// strictAffinity. Assigning an address its handle already holds succeeds
// and changes nothing; an address held by another handle is an error that
// names that handle.
func (a *Allocator) AssignIP(ctx context.Context, args AssignIPArgs) error {
	what := fmt.Sprintf("assigning %s to handle %q on node %q", args.IP, args.Handle, args.Node)
	if err := checkArgs(args.Handle, args.Node); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if !args.IP.IsValid() {
		return fmt.Errorf("%s: %w", what, invalidf("no address given"))
	}
	ip := args.IP.Unmap()
	at := attribute(args.Handle, args.Node, args.Attrs)
	st := a.node(args.Node)
	if err := a.lockNode(ctx, st); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer st.mu.Unlock()
	if err := a.ensureView(ctx, st, false); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	refreshed := false
	h := handleState{}
	for range a.attempts {
		done, err := a.assignIPOnce(ctx, st, args.Handle, ip, at, &h)
		switch {
		case done:
			return nil
		case errors.Is(err, errReplan), err == nil && st.view.stale,
			err != nil && !refreshed && (IsNotInPool(err) || IsPoolDisabled(err)):
			refreshed = refreshed || err != nil
			if err := a.ensureView(ctx, st, true); err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
		case err != nil:
			return fmt.Errorf("%s: %w", what, err)
		}
	}
	return contention(what, a.attempts)
}

func (a *Allocator) assignIPOnce(ctx context.Context, st *nodeState, handle string, ip netip.Addr, at Attribute, h *handleState) (bool, error) {
	v := st.view
	pl := poolFor(v.pools, ip)
	switch {
	case pl == nil:
		return false, notInPool(ip)
	case pl.disabled:
		return false, poolDisabled(pl)
	case !pl.workload:
		return false, invalidf("%s does not allow workload addresses (allowedUses lacks Workload)", pl.describe())
	}
	cidr := pl.geo.blockOf(ip)
	p := newPlan()
	var pb *planBlock
	if ob := st.blocks[cidr]; ob != nil {
		pb = p.add(ob.b, ob.rev, pl, ob)
	} else {
		blocks, err := a.readBlocks(ctx, []netip.Prefix{cidr})
		if err != nil {
			return false, err
		}
		rb := blocks[cidr]
		switch {
		case rb.b == nil:
			ob, err := a.createFor(ctx, st, pl, cidr)
			if err != nil || ob == nil {
				return false, err // nil, nil: someone created it first; read it again
			}
			own := ob
			if ob.b.affineNode() != st.name {
				own = nil
			}
			pb = p.add(ob.b, ob.rev, pl, own)
		case rb.b.affineNode() == st.name:
			a.absorbRead(st, rb)
			pb = p.add(rb.b, rb.rev, pl, st.blocks[cidr])
		case v.settings.strictAffinity:
			return false, exhaustedf("block %s of %s is affine to %s and strictAffinity forbids using other nodes' blocks",
				cidr, pl.describe(), affinityText(rb.b.Affinity))
		default:
			pb = p.add(rb.b, rb.rev, pl, nil)
		}
	}
	ord, _ := pb.b.Ordinal(ip)
	if owner, ok := pb.b.Owner(ord); ok {
		if owner.Handle == handle {
			return true, nil
		}
		return false, inUse(ip, owner.Handle)
	}
	pb.b.assignOrdinal(ord, at)
	pb.added = 1
	p.record(ip)
	if h.rev == 0 && h.rec.Blocks == nil {
		h.rec.Blocks = map[string]int{}
	}
	t, err := p.txn(writeContext{node: st.name, handle: handle, h: h, settings: v.settings, nodeRev: v.nodeRev})
	if err != nil {
		return false, err
	}
	ok, rev, changed, err := a.commit(ctx, t)
	if err != nil {
		return false, err
	}
	if !ok {
		a.absorb(st, changed)
		if kv, found := changed[HandleKey(handle)]; found {
			if err := h.fromKV(kv); err != nil {
				return false, fmt.Errorf("handle %q: %w", handle, err)
			}
		}
		return false, nil
	}
	a.apply(st, p, rev)
	return true, nil
}

// createFor creates a missing block for AssignIP: claimed by the node when
// it may claim one more, otherwise (without strictAffinity) with no
// affinity. nil, nil: another writer created it first.
func (a *Allocator) createFor(ctx context.Context, st *nodeState, pl *pool, cidr netip.Prefix) (*ownBlock, error) {
	s := st.view.settings
	if s.autoAllocate && (s.maxBlocks == 0 || len(st.blocks) < s.maxBlocks) {
		return a.create(ctx, st, pl, cidr, hostAffinity(st.name))
	}
	if s.strictAffinity {
		return nil, exhaustedf("block %s of %s does not exist and node %q may not claim it (autoAllocateBlocks false or maxBlocksPerHost %d reached) while strictAffinity forbids unowned blocks",
			cidr, pl.describe(), st.name, s.maxBlocks)
	}
	return a.create(ctx, st, pl, cidr, "")
}

// affinityText describes a block's affinity for messages.
func affinityText(aff string) string {
	if aff == "" {
		return "no node"
	}
	if len(aff) > 5 && aff[:5] == "host:" {
		return "node " + quote(aff[5:])
	}
	return quote(aff)
}
