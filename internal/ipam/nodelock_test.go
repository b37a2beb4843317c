package ipam_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/calyx-net/calyx/internal/datastore"
	"github.com/calyx-net/calyx/internal/ipam"
	"github.com/calyx-net/calyx/internal/testnet"
)

// stallingStore passes reads and writes to a real client, except that
// while stall is set every compare-and-swap waits for its context to end,
// like a write to an etcd that is down.
type stallingStore struct {
	*datastore.Client
	stall   chan struct{} // closed: CASRead stalls
	stalled chan struct{} // receives once per stalled CASRead
}

func (s *stallingStore) CASRead(ctx context.Context, conds []datastore.Cond, puts []datastore.RawPut, deletes []string) (bool, int64, []datastore.RawKV, error) {
	select {
	case <-s.stall:
		s.stalled <- struct{}{}
		<-ctx.Done()
		return false, 0, nil, ctx.Err()
	default:
	}
	return s.Client.CASRead(ctx, conds, puts, deletes)
}

// An allocation waiting behind another allocation of the same node that is
// stuck on the datastore gives up when its own context ends, rather than
// queueing until the first one finishes.
func TestNodeLockWaitRespectsDeadline(t *testing.T) {
	e := newEnv(t)
	e.apply(testnet.IPPool("pool", "10.65.0.0/16", 26), node("node-a", nil))
	st := &stallingStore{Client: e.c, stall: make(chan struct{}), stalled: make(chan struct{}, 1)}
	a := ipam.New(st)
	mustAssign(t, a, v4(1, "net.c0.eth0", "node-a")) // loads the node's view
	close(st.stall)

	stuckCtx, cancelStuck := context.WithCancel(testCtx(t))
	defer cancelStuck()
	stuck := make(chan error, 1)
	go func() {
		_, err := a.AutoAssign(stuckCtx, v4(1, "net.c1.eth0", "node-a"))
		stuck <- err
	}()
	<-st.stalled // the first allocation holds the node's lock, waiting on the datastore

	ctx, cancel := context.WithTimeout(testCtx(t), 200*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := a.AutoAssign(ctx, v4(1, "net.c2.eth0", "node-a"))
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("second AutoAssign: %v, want a deadline-exceeded error", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the second AutoAssign waited for the stuck one past its own deadline")
	}
	cancelStuck()
	if err := <-stuck; err == nil {
		t.Error("the stuck AutoAssign succeeded after its context was cancelled")
	}
}

// stallOnceStore passes everything to a real client, except that the next
// compare-and-swap after stallNext waits for its context to end.
type stallOnceStore struct {
	*datastore.Client
	next    atomic.Bool
	stalled chan struct{} // receives when the stalled CASRead starts
}

func (s *stallOnceStore) stallNext() { s.next.Store(true) }

func (s *stallOnceStore) CASRead(ctx context.Context, conds []datastore.Cond, puts []datastore.RawPut, deletes []string) (bool, int64, []datastore.RawKV, error) {
	if s.next.CompareAndSwap(true, false) {
		s.stalled <- struct{}{}
		<-ctx.Done()
		return false, 0, nil, ctx.Err()
	}
	return s.Client.CASRead(ctx, conds, puts, deletes)
}

// A release (a DEL's) of an address in a block of a node whose lock is
// held by an operation stuck on the datastore does not wait for that lock:
// it reads the block from etcd rather than from the node's cache, and what
// it wrote reaches the cache when the lock is next taken.
func TestReleaseDoesNotWaitForAStuckNode(t *testing.T) {
	e := newEnv(t)
	e.apply(testnet.IPPool("pool", "10.65.0.0/16", 26), node("node-a", nil))
	st := &stallOnceStore{Client: e.c, stalled: make(chan struct{}, 1)}
	a := ipam.New(st)
	mustAssign(t, a, v4(1, "net.c0.eth0", "node-a")) // the node's block, cached
	mustAssign(t, a, v4(1, "net.c1.eth0", "node-a"))

	st.stallNext()
	stuckCtx, cancelStuck := context.WithCancel(testCtx(t))
	defer cancelStuck()
	stuck := make(chan error, 1)
	go func() {
		_, err := a.AutoAssign(stuckCtx, v4(1, "net.c2.eth0", "node-a"))
		stuck <- err
	}()
	<-st.stalled // the allocation holds the node's lock, waiting on the datastore

	ctx, cancel := context.WithTimeout(testCtx(t), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- a.ReleaseByHandle(ctx, "net.c0.eth0") }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("ReleaseByHandle while the node's lock is held: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("ReleaseByHandle waited for the node's lock, held by an allocation stuck on the datastore")
	}
	cancelStuck()
	if err := <-stuck; err == nil {
		t.Error("the stuck AutoAssign succeeded after its context was cancelled")
	}
	if _, err := a.IPsByHandle(testCtx(t), "net.c0.eth0"); !ipam.IsNotFound(err) {
		t.Errorf("IPsByHandle of the released handle: %v, want not found", err)
	}
	// The next allocation finds the release in the cache: its
	// compare-and-swap succeeds at the first attempt.
	retries := a.Stats().Retries
	mustAssign(t, a, v4(1, "net.c3.eth0", "node-a"))
	if got := a.Stats().Retries - retries; got != 0 {
		t.Errorf("the allocation after the release retried %d times: the cache missed the release", got)
	}
}
