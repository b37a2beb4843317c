package ipam_test

import (
	"context"
	"errors"
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
