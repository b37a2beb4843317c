package agent

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/calyx-net/calyx/internal/api"
	"github.com/calyx-net/calyx/internal/calc"
	"github.com/calyx-net/calyx/internal/dataplane/route"
	"github.com/calyx-net/calyx/internal/datastore"
	"github.com/google/go-cmp/cmp"
)

// fakeHost records what the reconcile loop asks of the route reconciler.
type fakeHost struct {
	calls   []string
	missing map[string]bool // veths that do not exist
}

var _ hostReconciler = (*fakeHost)(nil)

func (f *fakeHost) Resync(context.Context) error { f.calls = append(f.calls, "resync"); return nil }
func (f *fakeHost) Update(_ context.Context, ep route.Endpoint) error {
	f.calls = append(f.calls, "update "+ep.Name)
	if f.missing[ep.IfName] {
		return route.LinkNotFound(ep.IfName)
	}
	return nil
}

func (f *fakeHost) Delete(_ context.Context, ep route.Endpoint) error {
	f.calls = append(f.calls, "delete "+ep.Name)
	return nil
}

func (f *fakeHost) Unroute(_ context.Context, ep route.Endpoint) error {
	f.calls = append(f.calls, "unroute "+ep.Name)
	return nil
}

func (f *fakeHost) Prune(_ context.Context, desired []route.Endpoint, _ time.Time) error {
	f.calls = append(f.calls, "prune "+strconv.Itoa(len(desired)))
	return nil
}
func (f *fakeHost) NextPrune() (time.Time, bool) { return time.Time{}, false }

func testLoop(t *testing.T, v *view, host hostReconciler, pol policyDataplane) *reconcileLoop {
	t.Helper()
	m, err := newMetrics(nil, v, func() datastore.Status { return datastore.Status{} }, func() datastore.Health { return datastore.Health{} }, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	return newReconcileLoop(host, pol, calc.New("node-a"), v, m, slog.New(slog.DiscardHandler), time.Now, time.Hour)
}

// The loop gives nftables only calc's delta and programs the routes of
// the endpoints that changed; a full pass resyncs both; an endpoint whose
// veth is missing is tried again on every pass.
func TestReconcileLoopIsIncremental(t *testing.T) {
	v := newView("node-a", time.Now)
	v.OnSnapshot(datastore.Snapshot{Revision: 1, Resources: []api.Resource{
		testWEP("a", "node-a", 1, "02:00:00:00:00:0a"), testWEP("b", "node-a", 1, ""), testWEP("r", "node-b", 1, ""),
	}})
	host := &fakeHost{missing: map[string]bool{"calyxb": true}}
	pol := newFakePolicy()
	l := testLoop(t, v, host, pol)
	ctx := t.Context()
	// unroute runs a DEL's unrouting on the loop, as the loop's goroutine
	// would between two passes.
	unroute := func(name string) {
		go func() {
			op := <-l.ops
			op.errc <- op.fn(ctx)
		}()
		if err := l.unrouteEndpoint(ctx, route.Endpoint{Name: name, IfName: "calyx" + name}); err != nil {
			t.Fatal(err)
		}
	}
	steps := []struct {
		name       string
		do         func()
		full       bool
		want, pols []string
	}{
		{"first, full", func() {}, true, []string{"resync", "update a", "update b", "prune 2"}, []string{"resync"}},
		{"nothing changed: only b, whose veth is missing", func() {}, false, []string{"update b", "prune 2"}, nil},
		{"b's veth appears", func() { host.missing = nil }, false, []string{"update b", "prune 2"}, nil},
		{"nothing changed", func() {}, false, []string{"prune 2"}, nil},
		{"a's MAC recorded anew", func() { v.wroteEndpoint(testWEP("a", "node-a", 5, "02:00:00:00:01:0a")) }, false,
			[]string{"update a", "prune 2"}, []string{"apply eps[a] chains[] sets[]"}},
		{"the syncer echoes a's write and a remote endpoint changes: no route work", func() {
			v.OnEvent(datastore.Event{Type: datastore.EventPut, Kind: api.KindWorkloadEndpoint, Name: "a", Resource: testWEP("a", "node-a", 5, "02:00:00:00:01:0a"), Revision: 5})
			v.OnEvent(datastore.Event{Type: datastore.EventPut, Kind: api.KindWorkloadEndpoint, Name: "r", Resource: testWEP("r", "node-b", 6, "02:00:00:00:00:01"), Revision: 6})
		}, false, []string{"prune 2"}, nil},
		{"READY touches a: programmed again", func() { v.touch("a") }, false, []string{"update a", "prune 2"}, nil},
		{"b deleted", func() { v.deletedEndpoint("b", 1) }, false, []string{"prune 1"}, []string{"apply eps[b] chains[] sets[]"}},
		{"resync programs all again", func() {}, true, []string{"resync", "update a", "prune 1"}, []string{"resync"}},
		// Nothing else touched nftables since: a full pass compares
		// the routes, but gives nftables only the delta.
		{"resync, nftables unchanged", func() { pol.unchanged = true }, true, []string{"resync", "update a", "prune 1"}, nil},
		{"resync with a change, nftables unchanged", func() { v.wroteEndpoint(testWEP("a", "node-a", 7, "02:00:00:00:02:0a")) }, true,
			[]string{"resync", "update a", "prune 1"}, []string{"apply eps[a] chains[] sets[]"}},
		// A DEL takes a off the host before its deletion from the
		// datastore reaches the view: no pass programs it again meanwhile.
		{"DEL unroutes a", func() { unroute("a") }, false, []string{"prune 0"}, nil},
		{"resync while a's deletion is on its way", func() {}, true, []string{"resync", "prune 0"}, nil},
		{"an ADD of the same attachment: READY touches a", func() { v.touch("a") }, false, []string{"update a", "prune 1"}, nil},
		{"DEL again, and a's deletion arrives", func() { unroute("a"); v.deletedEndpoint("a", 8) }, false,
			[]string{"prune 0"}, []string{"apply eps[a] chains[] sets[]"}},
	}
	for _, s := range steps {
		s.do()
		host.calls = nil
		if !l.pass(ctx, s.full, false) {
			t.Fatalf("%s: pass failed", s.name)
		}
		if d := cmp.Diff(s.want, host.calls); d != "" {
			t.Errorf("%s: routes (-want +got):\n%s", s.name, d)
		}
		if d := cmp.Diff(s.pols, pol.takeCalls()); d != "" {
			t.Errorf("%s: nftables (-want +got):\n%s", s.name, d)
		}
	}
	if len(l.done) != 0 || len(l.removed) != 0 {
		t.Errorf("endpoints remembered after all were deleted: programmed %v, removed %v",
			slices.Sorted(maps.Keys(l.done)), slices.Sorted(maps.Keys(l.removed)))
	}
}

// A refused nftables transaction keeps its delta: the retry is a resync
// (what the kernel holds is uncertain), READY waits and then fails with a
// transient error naming the cause, and once nftables works READY
// succeeds.
func TestReconcileLoopRetriesPolicy(t *testing.T) {
	v := newView("node-a", time.Now)
	v.OnSnapshot(datastore.Snapshot{Revision: 1})
	host := &fakeHost{}
	pol := newFakePolicy()
	l := testLoop(t, v, host, pol)
	l.programTimeout = 200 * time.Millisecond
	ctx := t.Context()
	l.pass(ctx, true, false)
	pol.takeCalls()

	refused := errors.New("netlink: message too long")
	pol.setFail(refused)
	v.wroteEndpoint(testWEP("a", "node-a", 2, "02:00:00:00:00:0a"))
	l.pass(ctx, false, false)
	if got := pol.takeCalls(); !slices.Equal(got, []string{"apply eps[a] chains[] sets[]"}) {
		t.Fatalf("nftables calls %v", got)
	}
	if err := l.progress.failing(); !errors.Is(err, refused) {
		t.Fatalf("failing() = %v, want the refusal", err)
	}
	err := l.waitProgrammed(ctx, "a", v.touch("a"))
	if !errors.Is(err, errNotProgrammed) || !errors.Is(err, refused) || !isRetryable(err) {
		t.Fatalf("READY's wait = %v, want a retryable errNotProgrammed wrapping the refusal", err)
	}

	pol.setFail(nil)
	seq := v.touch("a")
	l.pass(ctx, false, false)
	if got := pol.takeCalls(); !slices.Equal(got, []string{"resync"}) {
		t.Errorf("after a failure the loop should resync, got %v", got)
	}
	if err := l.progress.failing(); err != nil {
		t.Errorf("still failing: %v", err)
	}
	if err := l.waitProgrammed(ctx, "a", seq); err != nil {
		t.Errorf("READY's wait after recovery: %v", err)
	}
	if !l.pending.Empty() {
		t.Errorf("pending delta not cleared: %+v", l.pending)
	}
}

// READY's wait: a missing veth is final; an endpoint programmed at an
// older sequence does not satisfy a newer wait.
func TestProgressWait(t *testing.T) {
	p := newProgress()
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	p.publish(3, map[string]error{"a": nil, "b": route.LinkNotFound("calyxb")}, nil)
	if err := p.wait(ctx, "a", 3); err != nil {
		t.Errorf("a at 3: %v", err)
	}
	if err := p.wait(ctx, "b", 2); !route.IsLinkNotFound(err) {
		t.Errorf("b: %v, want link not found", err)
	}
	if err := p.wait(ctx, "a", 4); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a at 4 before the loop got there: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- p.wait(t.Context(), "a", 5) }()
	p.publish(5, map[string]error{"a": nil}, nil)
	if err := <-done; err != nil {
		t.Errorf("a at 5 after publish: %v", err)
	}
}
