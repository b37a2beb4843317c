package ipam

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/calyx-net/calyx/internal/ctxjoin"
)

// Group commit. A node's allocations all write the same few blocks, so
// they cannot commit side by side: each is guarded by the revisions of
// the blocks it read, and the node's lock serialises them around each
// etcd commit. Under a burst of ADDs that makes the commit the bottleneck.
// So AutoAssign requests queue on their node, and whoever holds the node's
// lock takes every request queued and plans them together, in arrival
// order, into ONE transaction: each handle gets its own addresses and
// handle record, the blocks are written once, and every request's Also
// keys ride along. The guarantees are a single request's: a request gets
// all its addresses or none, no address goes to two handles (one plan
// hands them out), and a failed guard replans the whole batch from what
// etcd now says.

// assignReq is one AutoAssign waiting for, or in, a batch.
type assignReq struct {
	ctx  context.Context // the caller's: its deadline bounds the batch
	args AutoAssignArgs
	at   Attribute
	what string
	// h is the handle as last read (assumed new: the common case needs
	// no read).
	h handleState
	// refreshed: the view was read again once for this request before
	// failing it as exhausted or for a missing or disabled pool.
	refreshed bool

	res  AssignResult
	err  error
	done chan struct{}
}

func (r *assignReq) finish(res AssignResult, err error) {
	r.res, r.err = res, err
	close(r.done)
}

func (r *assignReq) fail(err error) { r.finish(AssignResult{}, fmt.Errorf("%s: %w", r.what, err)) }

// answered reports whether finish was called.
func (r *assignReq) answered() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// enqueue adds r to the node's queue.
func (st *nodeState) enqueue(r *assignReq) {
	st.queueMu.Lock()
	st.queue = append(st.queue, r)
	st.queueMu.Unlock()
}

// withdraw removes r from the queue and reports whether it was still
// there (no batch took it).
func (st *nodeState) withdraw(r *assignReq) bool {
	st.queueMu.Lock()
	defer st.queueMu.Unlock()
	i := slices.Index(st.queue, r)
	if i < 0 {
		return false
	}
	st.queue = slices.Delete(st.queue, i, i+1)
	return true
}

// takeQueue empties the queue and returns what it held.
func (st *nodeState) takeQueue() []*assignReq {
	st.queueMu.Lock()
	defer st.queueMu.Unlock()
	q := st.queue
	st.queue = nil
	return q
}

// AutoAssign assigns Num4 IPv4 and Num6 IPv6 addresses to a handle, from
// blocks affine to the node, claiming new blocks as needed and, unless
// strictAffinity is set, borrowing from other nodes' blocks when it can
// claim none. All of them are written in one transaction with the handle
// (and Also's keys): the request gets every address or none. Concurrent
// requests of one node are committed together (see group commit above).
//
// It is idempotent per handle: addresses the handle already holds count
// toward the request and are returned, so retrying after an error whose
// outcome is unknown (a cut connection) neither leaks nor doubles.
func (a *Allocator) AutoAssign(ctx context.Context, args AutoAssignArgs) (AssignResult, error) {
	what := fmt.Sprintf("assigning %d IPv4 and %d IPv6 addresses to handle %q on node %q", args.Num4, args.Num6, args.Handle, args.Node)
	if err := checkArgs(args.Handle, args.Node); err != nil {
		return AssignResult{}, fmt.Errorf("%s: %w", what, err)
	}
	if args.Num4 < 0 || args.Num6 < 0 || args.Num4+args.Num6 == 0 {
		return AssignResult{}, fmt.Errorf("%s: %w", what, invalidf("ask for at least one address and no negative count"))
	}
	r := &assignReq{ctx: ctx, args: args, at: attribute(args.Handle, args.Node, args.Attrs), what: what, done: make(chan struct{})}
	st := a.node(args.Node)
	st.enqueue(r)
	if err := a.lockNode(ctx, st); err != nil {
		if st.withdraw(r) {
			return AssignResult{}, fmt.Errorf("%s: %w", what, err)
		}
		<-r.done // a batch took it: its outcome is the answer
		r.settle()
		return r.res, r.err
	}
	// Either r is queued, or a batch that held the lock before has
	// answered it; the queue may hold others' requests either way.
	if batch := st.takeQueue(); len(batch) > 0 {
		a.assignBatch(st, batch)
	}
	st.mu.Unlock()
	<-r.done
	r.settle()
	return r.res, r.err
}

// settle makes r's context report its end when the batch ran out of time
// with it: the batch's deadline is the latest of its callers', so r's has
// passed too, but its timer may not have fired yet, and callers read the
// cause of their context to explain a timeout.
func (r *assignReq) settle() {
	if !errors.Is(r.err, context.DeadlineExceeded) {
		return
	}
	if d, ok := r.ctx.Deadline(); ok && !time.Now().Before(d) {
		<-r.ctx.Done()
	}
}

// batchContext bounds a batch's work: it ends when every caller's context
// has (not when one has: the others still want their addresses), or at
// the latest of their deadlines.
func batchContext(batch []*assignReq) (context.Context, context.CancelFunc) {
	ctxs := make([]context.Context, len(batch))
	for i, r := range batch {
		ctxs[i] = r.ctx
	}
	ctx, release := ctxjoin.All(ctxs)
	if len(batch) == 1 {
		// The caller's own: its cancellation and cause stay as they are.
		return ctx, release
	}
	var latest time.Time
	for _, r := range batch {
		d, ok := r.ctx.Deadline()
		if !ok {
			d = time.Now().Add(time.Hour)
		}
		if d.After(latest) {
			latest = d
		}
	}
	ctx, cancel := context.WithDeadline(ctx, latest)
	return ctx, func() {
		cancel()
		release()
	}
}

// assignBatch answers every request of the batch; the caller holds the
// node's lock.
func (a *Allocator) assignBatch(st *nodeState, batch []*assignReq) {
	ctx, cancel := batchContext(batch)
	defer cancel()
	if err := a.ensureView(ctx, st, false); err != nil {
		for _, r := range batch {
			r.fail(err)
		}
		return
	}
	pending, attempts := batch, 0
	for {
		// A round cut short returns requests it answered meanwhile too.
		pending = slices.DeleteFunc(pending, (*assignReq).answered)
		if len(pending) == 0 {
			return
		}
		if attempts == a.attempts {
			for _, r := range pending {
				r.finish(AssignResult{}, contention(r.what, a.attempts))
			}
			return
		}
		var counted bool
		pending, counted = a.assignRound(ctx, st, pending)
		if counted {
			attempts++
		}
	}
}

// member is a request planned into a round's transaction.
type member struct {
	r            *assignReq
	have4, have6 []netip.Addr
	rec          handleRecord
	consulted    map[netip.Prefix]int64
	// the plan's addresses for it: v4[s4:e4], v6[s6:e6]
	s4, e4, s6, e6 int
}

func (m *member) result(p *plan) AssignResult {
	return AssignResult{IPv4: slices.Concat(m.have4, p.v4[m.s4:m.e4]), IPv6: slices.Concat(m.have6, p.v6[m.s6:m.e6])}
}

// assignRound plans the pending requests into one transaction and
// commits it. It answers what it can and returns the requests to try
// again, and whether this round counts as a compare-and-swap attempt (a
// round cut short to drop a failed request, or to read the view again
// for one, does not: each such round answers or refreshes a request, so
// there are few).
func (a *Allocator) assignRound(ctx context.Context, st *nodeState, pending []*assignReq) ([]*assignReq, bool) {
	v := st.view
	p := newPlan()
	var members []*member
	var later []*assignReq // a second request for a handle already planned
	planned := map[string]bool{}
	byLabels := false
	for i, r := range pending {
		if planned[r.args.Handle] {
			later = append(later, r)
			continue
		}
		m, done, err := a.planOne(ctx, st, p, r)
		if err != nil {
			rest := slices.Delete(slices.Clone(pending), i, i+1)
			switch {
			case errors.Is(err, errReplan):
				if err := a.ensureView(ctx, st, true); err != nil {
					for _, r := range pending {
						r.fail(err)
					}
					return nil, false
				}
				return pending, true
			case !r.refreshed && (IsExhausted(err) || IsPoolNotFound(err) || IsPoolDisabled(err)):
				// Check against a fresh view before failing: a pool may
				// have been added, enabled or extended since it was read.
				r.refreshed = true
				if err := a.ensureView(ctx, st, true); err != nil {
					for _, r := range pending {
						r.fail(err)
					}
					return nil, false
				}
				return pending, false
			}
			r.fail(err)
			return rest, false
		}
		if done {
			continue
		}
		planned[r.args.Handle] = true
		byLabels = byLabels || m.byLabels
		members = append(members, &m.member)
	}
	if len(members) == 0 {
		return later, false
	}
	t, err := p.batchTxn(st.name, v, members, byLabels)
	if err != nil {
		for _, m := range members {
			m.r.fail(err)
		}
		return later, false
	}
	alsoOf := map[string]*member{}
	written := map[string]bool{}
	for _, put := range t.puts {
		written[put.Key] = true
	}
	for i, m := range members {
		if m.r.args.Also == nil {
			continue
		}
		puts, conds, err := m.r.args.Also(m.result(p))
		dup := ""
		for _, put := range puts {
			if _, taken := written[put.Key]; taken {
				dup = put.Key // another request of the batch writes it
			}
		}
		if err != nil || dup != "" {
			if err != nil {
				m.r.fail(err)
			} else {
				m.r.finish(AssignResult{}, &AlsoConflictError{Key: dup})
			}
			rest := slices.Concat(later, requests(slices.Delete(slices.Clone(members), i, i+1)))
			return rest, false
		}
		for _, put := range puts {
			written[put.Key] = true
		}
		for _, c := range conds {
			t.guard(c.Key, c.ModRevision)
			alsoOf[c.Key] = m
		}
		t.puts = append(t.puts, puts...)
	}
	ok, rev, changed, err := a.commit(ctx, t)
	if err != nil {
		for _, m := range members {
			m.r.fail(err)
		}
		return later, false
	}
	if !ok {
		var retry []*assignReq
		for _, m := range members {
			conflict := ""
			for k, am := range alsoOf {
				if am == m {
					if _, found := changed[k]; found {
						conflict = k
					}
				}
			}
			if conflict != "" {
				m.r.finish(AssignResult{}, &AlsoConflictError{Key: conflict})
				continue
			}
			if kv, found := changed[HandleKey(m.r.args.Handle)]; found {
				if err := m.r.h.fromKV(kv); err != nil {
					m.r.fail(fmt.Errorf("handle %q: %w", m.r.args.Handle, err))
					continue
				}
			}
			retry = append(retry, m.r)
		}
		a.absorb(st, changed)
		if st.view.stale {
			if err := a.ensureView(ctx, st, true); err != nil {
				for _, r := range append(retry, later...) {
					r.fail(err)
				}
				return nil, false
			}
		}
		return append(retry, later...), true
	}
	a.apply(st, p, rev)
	for _, m := range members {
		res := m.result(p)
		res.Revision = rev
		m.r.finish(res, nil)
	}
	return later, false
}

func requests(ms []*member) []*assignReq {
	out := make([]*assignReq, len(ms))
	for i, m := range ms {
		out[i] = m.r
	}
	return out
}

// plannedOne is planOne's result: the member, and whether its pool
// choice depended on the node's labels.
type plannedOne struct {
	member
	byLabels bool
}

// planOne plans one request into p. done reports that it was answered
// without a write (its handle holds every address asked for). On error p
// may hold part of the request: the caller plans again without it.
func (a *Allocator) planOne(ctx context.Context, st *nodeState, p *plan, r *assignReq) (plannedOne, bool, error) {
	v := st.view
	args := r.args
	sel, err := selectPools(v.pools, v.labels, args.use(), args.IPv4Pools, args.IPv6Pools)
	if err != nil {
		return plannedOne{}, false, err
	}
	have, rec, consulted, err := a.handleAddrs(ctx, st, args.Handle, &r.h)
	if err != nil {
		return plannedOne{}, false, err
	}
	m := plannedOne{member: member{r: r, rec: rec, consulted: consulted}, byLabels: sel.byLabels}
	for _, ip := range have {
		if ip.Is4() {
			m.have4 = append(m.have4, ip)
		} else {
			m.have6 = append(m.have6, ip)
		}
	}
	need4, need6 := max(args.Num4-len(m.have4), 0), max(args.Num6-len(m.have6), 0)
	if need4 == 0 && need6 == 0 {
		r.finish(AssignResult{IPv4: m.have4, IPv6: m.have6}, nil)
		return plannedOne{}, true, nil
	}
	p.cur = args.Handle
	m.s4, m.s6 = len(p.v4), len(p.v6)
	if err := a.fill(ctx, st, p, sel.v4, need4, r.at, "IPv4"); err != nil {
		return plannedOne{}, false, err
	}
	if err := a.fill(ctx, st, p, sel.v6, need6, r.at, "IPv6"); err != nil {
		return plannedOne{}, false, err
	}
	m.e4, m.e6 = len(p.v4), len(p.v6)
	return m, false, nil
}

// batchTxn builds a batch's compare-and-swap: every changed block once
// (writeBlocks), and each member's handle
// record with its counts, guarded by the handle as read; the blocks read
// to find what a handle held are guarded too, and the Node when a pool
// choice depended on its labels.
func (p *plan) batchTxn(node string, v *view, members []*member, byLabels bool) (*txn, error) {
	t := newTxn()
	if err := p.writeBlocks(t, node, v.settings); err != nil {
		return nil, err
	}
	for _, m := range members {
		handle := m.r.args.Handle
		rec := handleRecord{Blocks: map[string]int{}}
		for b, n := range m.rec.Blocks {
			rec.Blocks[b] = n
		}
		for cidr, n := range p.counts[handle] {
			rec.Blocks[cidr.String()] += n
		}
		for cidr, rev := range m.consulted {
			t.guard(BlockKey(cidr), rev)
		}
		hv, err := json.Marshal(rec)
		if err != nil {
			return nil, fmt.Errorf("encoding handle %q: %w", handle, err)
		}
		t.guard(HandleKey(handle), m.r.h.rev)
		t.put(HandleKey(handle), hv)
	}
	if byLabels {
		t.guard(nodeKey(node), v.nodeRev)
	}
	return t, nil
}
