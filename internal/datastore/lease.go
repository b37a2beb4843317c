package datastore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/calyx-net/calyx/internal/api"
	etcdserverpb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Claims. A claim is a key bound to an etcd lease: it exists while its
// holder keeps the lease alive and vanishes a TTL after the holder stops.
// calyx-node claims its node name with one, so that two processes never
// act for the same node. Claims live under ClaimPrefix, outside Prefix, so
// the syncer never sees them.

// ClaimPrefix is where claims are kept, e.g. /calyx/claims/nodes/n1.
const ClaimPrefix = "/calyx/claims/"

// ClaimSpec says what to claim.
type ClaimSpec struct {
	// Key is the claim's key; it must be under ClaimPrefix.
	Key string
	// Value is stored at Key while the claim is held: who holds it.
	Value []byte
	// TTL is how long the claim outlives its holder; etcd rounds it up to
	// whole seconds and to its minimum lease TTL.
	TTL time.Duration
	// Replace reports whether a live claim whose value is holder may be
	// taken over at once (e.g. the same host restarting after a crash).
	// Nil: never.
	Replace func(holder []byte) bool
}

// ClaimHeldError says that a live claim of another holder stands in the
// way. IsClaimHeld tells it apart.
type ClaimHeldError struct {
	Key    string
	Holder []byte // the stored value
	TTL    int64  // seconds the holder's lease has left, when known
}

func (e *ClaimHeldError) Error() string {
	return fmt.Sprintf("claim %s is held by another holder (%s)", e.Key, e.Holder)
}

// IsClaimHeld reports whether err says that a claim is held by another
// holder.
func IsClaimHeld(err error) bool {
	var e *ClaimHeldError
	return errors.As(err, &e)
}

// ClaimLostError says that a claim this process held was taken over by
// another holder (Holder is nil when it was deleted). IsClaimLost tells it
// apart.
type ClaimLostError struct {
	Key    string
	Holder []byte
}

func (e *ClaimLostError) Error() string {
	if e.Holder == nil {
		return fmt.Sprintf("claim %s was deleted", e.Key)
	}
	return fmt.Sprintf("claim %s was taken over by another holder (%s)", e.Key, e.Holder)
}

// IsClaimLost reports whether err says that a claim was lost.
func IsClaimLost(err error) bool {
	var e *ClaimLostError
	return errors.As(err, &e)
}

// Claim is a held claim. Run keeps it alive; Fence and Check tell whether
// it is still held.
type Claim struct {
	c    *Client
	spec ClaimSpec

	mu       sync.Mutex // guards following fields
	lease    clientv3.LeaseID
	rev      int64            // the key's ModRevision when this process wrote it
	watching func(from int64) // tests: called when a watch of the key starts
}

// maxClaimAttempts bounds the races Claim may lose to other writers of the
// same key before giving up.
const maxClaimAttempts = 10

// Claim takes the claim spec describes: when its key does not exist, or
// exists and spec.Replace accepts its holder. A live claim of another
// holder is refused with a *ClaimHeldError, and then nothing is written.
func (c *Client) Claim(ctx context.Context, spec ClaimSpec) (*Claim, error) {
	if len(spec.Key) <= len(ClaimPrefix) || spec.Key[:len(ClaimPrefix)] != ClaimPrefix {
		return nil, fmt.Errorf("claim key %q: expected a key under %s", spec.Key, ClaimPrefix)
	}
	if spec.TTL <= 0 {
		return nil, fmt.Errorf("claim %s: TTL %s must be positive", spec.Key, spec.TTL)
	}
	cl := &Claim{c: c, spec: spec}
	for range maxClaimAttempts {
		ok, err := cl.take(ctx, true)
		if err != nil {
			return nil, err
		}
		if ok {
			return cl, nil
		}
	}
	return nil, fmt.Errorf("claiming %s: lost %d races to other writers of the key", spec.Key, maxClaimAttempts)
}

// take reads the key and, if it is free (or replaceable, when mayReplace),
// writes it bound to a new lease. It reports false when the key changed
// between the read and the write.
func (cl *Claim) take(ctx context.Context, mayReplace bool) (bool, error) {
	return cl.takeIf(ctx, func(holder []byte) bool {
		return mayReplace && cl.spec.Replace != nil && cl.spec.Replace(holder)
	})
}

// takeOwn is take that replaces only a claim holding exactly this
// process's value.
func (cl *Claim) takeOwn(ctx context.Context) (bool, error) {
	return cl.takeIf(ctx, func(holder []byte) bool { return bytes.Equal(holder, cl.spec.Value) })
}

func (cl *Claim) takeIf(ctx context.Context, replace func(holder []byte) bool) (bool, error) {
	key := cl.spec.Key
	resp, err := cl.c.cli.Get(ctx, key)
	if err != nil {
		return false, cl.c.wrapErr("reading claim "+key, err)
	}
	var cmp clientv3.Cmp
	var old clientv3.LeaseID
	if len(resp.Kvs) == 0 {
		cmp = clientv3.Compare(clientv3.CreateRevision(key), "=", 0)
	} else {
		kv := resp.Kvs[0]
		if !replace(kv.Value) {
			held := &ClaimHeldError{Key: key, Holder: kv.Value}
			if kv.Lease != 0 {
				if ttl, err := cl.c.cli.TimeToLive(ctx, clientv3.LeaseID(kv.Lease)); err == nil {
					held.TTL = ttl.TTL
				}
			}
			return false, held
		}
		cmp = clientv3.Compare(clientv3.ModRevision(key), "=", kv.ModRevision)
		old = clientv3.LeaseID(kv.Lease)
	}
	ttl := int64((cl.spec.TTL + time.Second - 1) / time.Second)
	grant, err := cl.c.cli.Grant(ctx, ttl)
	if err != nil {
		return false, cl.c.wrapErr("granting a lease for claim "+key, err)
	}
	txn, err := cl.c.cli.Txn(ctx).If(cmp).Then(clientv3.OpPut(key, string(cl.spec.Value), clientv3.WithLease(grant.ID))).Commit()
	if err != nil || !txn.Succeeded {
		// Best effort: an unused lease expires by itself anyway.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_, _ = cl.c.cli.Revoke(rctx, grant.ID)
		cancel()
		if err != nil {
			return false, cl.c.wrapErr("writing claim "+key, err)
		}
		return false, nil
	}
	if old != 0 && old != grant.ID {
		// The replaced holder's lease binds nothing now; revoking it makes
		// a holder that is somehow still alive notice at once.
		_, _ = cl.c.cli.Revoke(ctx, old)
	}
	cl.mu.Lock()
	cl.lease, cl.rev = grant.ID, txn.Header.Revision
	cl.mu.Unlock()
	return true, nil
}

// Fence is the condition that holds while the key is as this process last
// wrote it; adding it to a CAS makes the write conditional on the claim.
func (cl *Claim) Fence() Cond {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return Cond{Key: cl.spec.Key, ModRevision: cl.rev}
}

// Check reads the key and returns nil if it is still this process's claim,
// a *ClaimLostError if it is not.
func (cl *Claim) Check(ctx context.Context) error {
	_, err := cl.check(ctx)
	return err
}

// check is Check that also returns the revision etcd read the key at.
func (cl *Claim) check(ctx context.Context) (int64, error) {
	resp, err := cl.c.cli.Get(ctx, cl.spec.Key)
	if err != nil {
		return 0, cl.c.wrapErr("reading claim "+cl.spec.Key, err)
	}
	cl.mu.Lock()
	lease, rev := cl.lease, cl.rev
	cl.mu.Unlock()
	at := resp.Header.Revision
	if len(resp.Kvs) == 0 {
		return at, &ClaimLostError{Key: cl.spec.Key}
	}
	if kv := resp.Kvs[0]; clientv3.LeaseID(kv.Lease) != lease || kv.ModRevision != rev {
		return at, &ClaimLostError{Key: cl.spec.Key, Holder: kv.Value}
	}
	return at, nil
}

// ClaimEvents are the callbacks of Run; each may be nil.
type ClaimEvents struct {
	// Retaken is called after each re-take of the claim.
	Retaken func()
	// Retrying is called when a re-take failed for a reason that may pass
	// (etcd unreachable, without a quorum, too slow); Run tries again
	// after a pause.
	Retrying func(err error)
}

// Claim re-take backoff: from claimRetryMin, doubling, to claimRetryMax,
// jittered; each attempt bounded by claimAttemptLimit, so that a request
// etcd never answers does not hold up the next.
const (
	claimRetryMin     = 100 * time.Millisecond
	claimRetryMax     = 2 * time.Second
	claimAttemptLimit = 10 * time.Second
)

// Run keeps the claim alive until ctx ends, then returns nil, leaving the
// lease to expire a TTL later (a restart of the same holder replaces it at
// once). When the lease expires (etcd was out of reach for longer than the
// TTL) and nobody else took the key, Run takes it again, retrying for as
// long as etcd is unavailable; when another holder took it, Run returns a
// *ClaimLostError. Run also ends, with an error, when the client was
// closed.
func (cl *Claim) Run(ctx context.Context, ev ClaimEvents) error {
	backoff := retryDelay{min: claimRetryMin, max: claimRetryMax, rand: rand.Float64}
	for {
		err := cl.hold(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		// The lease is gone, or no longer answers. Take the key again
		// unless another holder did.
		backoff.reset()
		for {
			err := cl.retake(ctx)
			if ctx.Err() != nil {
				return nil
			}
			if err == nil {
				if ev.Retaken != nil {
					ev.Retaken()
				}
				break
			}
			if IsClaimLost(err) {
				return err
			}
			if cl.c.cli.Ctx().Err() != nil {
				return fmt.Errorf("keeping claim %s: the etcd client was closed: %w", cl.spec.Key, err)
			}
			// etcd unavailable or slow (a lost quorum, a partition), or
			// an error this process cannot judge: the claim is not taken
			// by another holder, so keep trying; giving up here would stop
			// the holder for the rest of the outage.
			if ev.Retrying != nil {
				ev.Retrying(err)
			}
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff.next()):
			}
		}
	}
}

// retake makes one attempt to take the key again after the lease ended:
// nil when taken, a *ClaimLostError when another holder has it, another
// error when the attempt failed (or lost a race to another writer, in
// which case the next attempt sees the winner).
func (cl *Claim) retake(ctx context.Context) error {
	actx, cancel := context.WithTimeout(ctx, claimAttemptLimit)
	defer cancel()
	ok, err := cl.take(actx, false)
	var held *ClaimHeldError
	if errors.As(err, &held) {
		if !bytes.Equal(held.Holder, cl.spec.Value) {
			return &ClaimLostError{Key: cl.spec.Key, Holder: held.Holder}
		}
		// Our own earlier write, its lease not yet expired: only that is
		// replaced here, never another process's claim (even one
		// spec.Replace would accept), so that two holders never take the
		// key from each other in turn.
		ok, err = cl.takeOwn(actx)
		if errors.As(err, &held) {
			return &ClaimLostError{Key: cl.spec.Key, Holder: held.Holder}
		}
	}
	switch {
	case err != nil:
		return err
	case !ok:
		return fmt.Errorf("re-taking claim %s: another writer changed the key meanwhile", cl.spec.Key)
	}
	return nil
}

// hold keeps the current lease alive and watches the key. It returns nil
// when the lease expired or the key was deleted (the claim may be taken
// again), a *ClaimLostError when another holder wrote the key.
func (cl *Claim) hold(ctx context.Context) error {
	cl.mu.Lock()
	lease, rev := cl.lease, cl.rev
	cl.mu.Unlock()
	hctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ka, err := cl.c.cli.KeepAlive(hctx, lease)
	if err != nil {
		return nil // the lease is gone already: take the key again
	}
	// from is the first revision the watch has not yet covered: the key
	// is known to be as written up to from-1.
	from := rev + 1
	wch := cl.watch(hctx, from)
	for {
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-ka:
			if !ok {
				return nil
			}
		case wr, ok := <-wch:
			if !ok {
				return nil
			}
			if wr.Err() != nil {
				// Lost the leader or compacted: look at the key, then watch
				// again from the revision of that look (a watch from an
				// older one fails again once etcd compacted past it), no
				// more than once a second. The keepalive goes on meanwhile
				// and says when the lease ended.
				cctx, ccancel := context.WithTimeout(hctx, 5*time.Second)
				at, err := cl.check(cctx)
				ccancel()
				var lost *ClaimLostError
				if errors.As(err, &lost) {
					if lost.Holder == nil {
						return nil
					}
					return err
				}
				if err == nil {
					from = at + 1
				}
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(time.Second):
				}
				wch = cl.watch(hctx, from)
				continue
			}
			for _, ev := range wr.Events {
				if ev.Type == clientv3.EventTypeDelete {
					return nil
				}
				if clientv3.LeaseID(ev.Kv.Lease) != lease || ev.Kv.ModRevision != rev {
					return &ClaimLostError{Key: cl.spec.Key, Holder: ev.Kv.Value}
				}
			}
		}
	}
}

// watch watches the key from revision from on.
func (cl *Claim) watch(ctx context.Context, from int64) clientv3.WatchChan {
	cl.mu.Lock()
	hook := cl.watching
	cl.mu.Unlock()
	if hook != nil {
		hook(from)
	}
	return cl.c.cli.Watch(clientv3.WithRequireLeader(ctx), cl.spec.Key, clientv3.WithRev(from))
}

// Release deletes the claim and revokes its lease, so that another holder
// may take it at once.
func (cl *Claim) Release(ctx context.Context) error {
	cl.mu.Lock()
	lease := cl.lease
	cl.mu.Unlock()
	if _, err := cl.c.cli.Revoke(ctx, lease); err != nil {
		return cl.c.wrapErr("releasing claim "+cl.spec.Key, err)
	}
	return nil
}

// withFence adds fence, when not nil, to a transaction's comparisons, and
// a read of the fence key as the last of its else operations, so that
// fenceLost can tell a failed fence from a failure of the others.
func withFence(cmps []clientv3.Cmp, orElse []clientv3.Op, fence *Cond) ([]clientv3.Cmp, []clientv3.Op) {
	if fence == nil {
		return cmps, orElse
	}
	return append(cmps, clientv3.Compare(clientv3.ModRevision(fence.Key), "=", fence.ModRevision)),
		append(orElse, clientv3.OpGet(fence.Key))
}

// fenceLost returns the *ClaimLostError of a failed transaction built
// with withFence whose fence did not hold, nil when it held (or there was
// none).
func fenceLost(resp *clientv3.TxnResponse, fence *Cond) *ClaimLostError {
	return fenceLostIn(resp.Responses, fence)
}

// fenceLostIn is fenceLost for the failure branch's responses (the
// fence's read last).
func fenceLostIn(reads []*etcdserverpb.ResponseOp, fence *Cond) *ClaimLostError {
	if fence == nil || len(reads) == 0 {
		return nil
	}
	kvs := reads[len(reads)-1].GetResponseRange().GetKvs()
	var cur int64 // 0: missing, as a Cond has it
	if len(kvs) > 0 {
		cur = kvs[0].ModRevision
	}
	if cur == fence.ModRevision {
		return nil
	}
	lost := &ClaimLostError{Key: fence.Key}
	if len(kvs) > 0 {
		lost.Holder = kvs[0].Value
	}
	return lost
}

// DeleteFenced deletes the named resource of kind if fence holds (the
// claim it was taken from is still as its holder wrote it), like Delete
// with no resourceVersion. When fence fails it deletes nothing and returns
// a *ClaimLostError.
func (c *Client) DeleteFenced(ctx context.Context, kind api.KindInfo, name string, fence Cond) (api.Resource, error) {
	if err := checkName(kind.Kind, name); err != nil {
		return nil, err
	}
	key := ResourceKey(kind, name)
	cmps, orElse := withFence(nil, nil, &fence)
	resp, err := c.cli.Txn(ctx).If(cmps...).Then(clientv3.OpDelete(key, clientv3.WithPrevKV())).Else(orElse...).Commit()
	if err != nil {
		return nil, c.wrapErr(fmt.Sprintf("deleting %s %q", kind.Kind, name), err)
	}
	if !resp.Succeeded {
		lost := fenceLost(resp, &fence)
		if lost == nil { // unreachable: the fence is the only comparison
			lost = &ClaimLostError{Key: fence.Key}
		}
		return nil, fmt.Errorf("deleting %s %q: %w", kind.Kind, name, lost)
	}
	prev := resp.Responses[0].GetResponseDeleteRange().GetPrevKvs()
	if len(prev) == 0 {
		return nil, notFound(kind.Kind, name)
	}
	return c.decodeDeleted(kind, name, prev[0]), nil
}
