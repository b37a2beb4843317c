package agent

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/calyx-net/calyx/internal/calc"
	"github.com/calyx-net/calyx/internal/dataplane/nft"
	"github.com/calyx-net/calyx/internal/dataplane/route"
	"github.com/calyx-net/calyx/internal/testnet"
)

// fakePolicy stands in for the nftables reconciler: it records what the
// loop asked of it and can be told to fail.
type fakePolicy struct {
	mu    sync.Mutex
	calls []string
	fail  error
	last  *calc.State
	// unchanged is what Unchanged reports: nothing touched nftables.
	unchanged bool
}

func newFakePolicy() *fakePolicy { return &fakePolicy{} }

func (f *fakePolicy) Apply(_ context.Context, s *calc.State, d calc.Delta) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "apply "+deltaText(d))
	if f.fail != nil {
		return f.fail
	}
	f.last = s
	return nil
}

func (f *fakePolicy) Resync(_ context.Context, s *calc.State) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "resync")
	if f.fail != nil {
		return f.fail
	}
	f.last = s
	return nil
}

func (f *fakePolicy) Unchanged(context.Context) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.unchanged
}

func (f *fakePolicy) setFail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = err
}

func (f *fakePolicy) takeCalls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.calls
	f.calls = nil
	return c
}

// deltaText renders a delta for test expectations.
func deltaText(d calc.Delta) string {
	s := "eps" + listText(d.Endpoints) + " chains" + listText(d.Chains) + " sets" + listText(d.Sets)
	if d.Config {
		s += " config"
	}
	return s
}

func listText(l []string) string {
	out := "["
	for i, x := range l {
		if i > 0 {
			out += " "
		}
		out += x
	}
	return out + "]"
}

// startLoop runs a reconcile loop over host and v (with calc and a fake
// policy dataplane) until the test ends.
func startLoop(t *testing.T, host *route.Reconciler, v *view, m *metrics) *reconcileLoop {
	t.Helper()
	l := newReconcileLoop(host, newFakePolicy(), calc.New("node-a"), v, m, testnet.Logger(t), time.Now, time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = l.run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return l
}

// fakeNftables is the real nftables reconciler over the fake kernel.
func fakeNftables() *nft.Reconciler { return nft.New(nft.NewFake(), nft.Options{}) }
