package agent

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"
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
		runBlockGC(ctx, f, "node-a", time.Millisecond, time.Hour, time.Now, slog.New(slog.DiscardHandler))
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
