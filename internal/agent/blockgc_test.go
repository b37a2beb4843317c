package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type fakeReleaser struct {
	mu    sync.Mutex
	calls []string
	done  chan struct{}
}

func (f *fakeReleaser) ReleaseEmptyBlocks(_ context.Context, node string, _ time.Time, grace time.Duration) ([]netip.Prefix, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, node+" "+grace.String())
	if len(f.calls) == 3 {
		close(f.done)
	}
	return []netip.Prefix{netip.MustParsePrefix("10.65.0.0/26")}, nil
}

func TestBlockGCRunsUntilCancelled(t *testing.T) {
	f := &fakeReleaser{done: make(chan struct{})}
	ctx, cancel := context.WithCancel(t.Context())
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		runBlockGC(ctx, f, func(context.Context) error { return nil }, "node-a", time.Millisecond, time.Hour, 0, time.Now, slog.New(slog.DiscardHandler))
	}()
	<-f.done
	cancel()
	<-stopped
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.calls[0] != "node-a 1h0m0s" {
		t.Errorf("calls %v", f.calls)
	}
}

// A calyx-node that does not hold its node's claim releases no block.
func TestBlockGCNeedsTheClaim(t *testing.T) {
	f := &fakeReleaser{done: make(chan struct{})}
	ctx, cancel := context.WithCancel(t.Context())
	checks := 0
	check := func(context.Context) error {
		if checks++; checks == 5 {
			cancel()
		}
		return fmt.Errorf("node node-a: %w", errClaimLost)
	}
	runBlockGC(ctx, f, check, "node-a", time.Millisecond, time.Hour, 0, time.Now, slog.New(slog.DiscardHandler))
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.calls) != 0 || checks < 5 {
		t.Errorf("released blocks %v after %d failed claim checks, want none", f.calls, checks)
	}
	if !errors.Is(check(ctx), errClaimLost) {
		t.Error("the check's error is not errClaimLost")
	}
}

// stalledReleaser is a releaser whose datastore stopped answering: each
// release waits for its context to end, then says so on returned.
type stalledReleaser struct{ returned chan struct{} }

func (f *stalledReleaser) ReleaseEmptyBlocks(ctx context.Context, _ string, _ time.Time, _ time.Duration) ([]netip.Prefix, error) {
	<-ctx.Done()
	f.returned <- struct{}{}
	return nil, ctx.Err()
}

// The block GC, which holds IPAM's lock on the node (that ADDs wait for)
// while it releases, gives up on an etcd that does not answer within the
// timeout and tries again at the next tick, rather than wait for as long
// as it runs; its claim check is bounded the same way.
func TestBlockGCBoundsItsDatastoreWork(t *testing.T) {
	f := &stalledReleaser{returned: make(chan struct{}, 10)}
	ctx, cancel := context.WithCancel(t.Context())
	stopped := make(chan struct{})
	var checks atomic.Int32
	check := func(ctx context.Context) error {
		if checks.Add(1) == 1 { // the first check stalls like the release
			<-ctx.Done()
			return ctx.Err()
		}
		return nil
	}
	go func() {
		defer close(stopped)
		runBlockGC(ctx, f, check, "node-a", time.Millisecond, time.Hour, 50*time.Millisecond, time.Now, slog.New(slog.DiscardHandler))
	}()
	for i := range 2 {
		select {
		case <-f.returned:
		case <-time.After(outageBound):
			t.Fatalf("release %d of a block GC whose etcd stalled did not end within %s", i, outageBound)
		}
	}
	cancel()
	<-stopped
}
