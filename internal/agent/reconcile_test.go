package agent

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/calyx-net/calyx/internal/api"
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

func (f *fakeHost) Prune(_ context.Context, desired []route.Endpoint, _ time.Time) error {
	f.calls = append(f.calls, "prune "+strconv.Itoa(len(desired)))
	return nil
}
func (f *fakeHost) NextPrune() (time.Time, bool) { return time.Time{}, false }

// The loop programs everything on a full pass and only what changed on an
// incremental one; an endpoint whose veth is missing is tried again.
func TestReconcileLoopIsIncremental(t *testing.T) {
	v := newView("node-a", time.Now)
	v.OnSnapshot(datastore.Snapshot{Revision: 1, Resources: []api.Resource{
		testWEP("a", "node-a", 1, "02:00:00:00:00:0a"), testWEP("b", "node-a", 1, ""),
	}})
	m, err := newMetrics(nil, v, func() datastore.Status { return datastore.Status{} }, func() datastore.Health { return datastore.Health{} }, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	host := &fakeHost{missing: map[string]bool{"calyxb": true}}
	l := &reconcileLoop{host: host, view: v, m: m, log: slog.New(slog.DiscardHandler), now: time.Now, resync: time.Hour}
	ctx := t.Context()
	steps := []struct {
		name string
		do   func()
		full bool
		want []string
	}{
		{"first, full", func() {}, true, []string{"resync", "update a", "update b", "prune 2"}},
		{"nothing changed: only b, whose veth is missing", func() {}, false, []string{"update b", "prune 2"}},
		{"b's veth appears", func() { host.missing = nil }, false, []string{"update b", "prune 2"}},
		{"nothing changed", func() {}, false, []string{"prune 2"}},
		{"a's MAC recorded anew", func() { v.wroteEndpoint(testWEP("a", "node-a", 5, "02:00:00:00:01:0a")) }, false, []string{"update a", "prune 2"}},
		{"b deleted", func() { v.deletedEndpoint("b", 1) }, false, []string{"prune 1"}},
		{"resync programs all again", func() {}, true, []string{"resync", "update a", "prune 1"}},
	}
	for _, s := range steps {
		s.do()
		host.calls = nil
		if !l.pass(ctx, s.full) {
			t.Fatalf("%s: pass failed", s.name)
		}
		if d := cmp.Diff(s.want, host.calls); d != "" {
			t.Errorf("%s (-want +got):\n%s", s.name, d)
		}
	}
	if got := slices.Sorted(maps.Keys(l.done)); !slices.Equal(got, []string{"a"}) {
		t.Errorf("programmed endpoints remembered: %v, want [a]", got)
	}
}
