package datastore_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/calyx-net/calyx/internal/api"
	"github.com/calyx-net/calyx/internal/datastore"
	"github.com/calyx-net/calyx/internal/testnet"
	"github.com/google/go-cmp/cmp"
)

// recorder is a Handler that keeps everything it is given. With hold set,
// OnSnapshot closes held and then blocks until hold is closed.
type recorder struct {
	mu     sync.Mutex
	snaps  []datastore.Snapshot
	events []string
	notify chan struct{}
	hold   chan struct{}
	held   chan struct{}
}

func newRecorder() *recorder { return &recorder{notify: make(chan struct{}, 1)} }

func (r *recorder) poke() {
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

func (r *recorder) OnSnapshot(s datastore.Snapshot) {
	r.mu.Lock()
	r.snaps = append(r.snaps, s)
	r.mu.Unlock()
	r.poke()
	if r.hold != nil {
		close(r.held)
		<-r.hold
	}
}

func (r *recorder) OnEvent(e datastore.Event) {
	ev := fmt.Sprintf("%s %s/%s @%d", e.Type, e.Kind, e.Name, e.Revision) // a delete without its value
	if e.Resource != nil {
		if e.Kind != e.Resource.GetKind() || e.Name != e.Resource.GetObjectMeta().Name {
			panic(fmt.Sprintf("event %s %s/%s carries %s/%s", e.Type, e.Kind, e.Name, e.Resource.GetKind(), e.Resource.GetObjectMeta().Name))
		}
		ev = eventString(e.Type, e.Resource, e.Revision)
	}
	r.mu.Lock()
	r.events = append(r.events, ev)
	r.mu.Unlock()
	r.poke()
}

// describe renders a resource's kind, name and content.
func describe(r api.Resource) string {
	content := ""
	switch v := r.(type) {
	case *api.IPPool:
		content = v.Spec.CIDR
	case *api.GlobalNetworkSet:
		content = strings.Join(v.Spec.Nets, ",")
	}
	return fmt.Sprintf("%s/%s=%s", r.GetKind(), r.GetObjectMeta().Name, content)
}

func eventString(t datastore.EventType, r api.Resource, rev int64) string {
	return fmt.Sprintf("%s %s @%d", t, describe(r), rev)
}

// waitFor waits until cond holds over the recorder's state.
func (r *recorder) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		r.mu.Lock()
		ok := cond()
		r.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-r.notify:
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			r.mu.Lock()
			defer r.mu.Unlock()
			t.Fatalf("timed out waiting for %s; have %d snapshots and events:\n%s", what, len(r.snaps), strings.Join(r.events, "\n"))
		}
	}
}

func (r *recorder) waitEvents(t *testing.T, n int) []string {
	t.Helper()
	r.waitFor(t, fmt.Sprintf("%d events", n), func() bool { return len(r.events) >= n })
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.events...)
}

// runSyncer runs a syncer until the test ends or stop is called, then
// checks that Run returned nil.
func runSyncer(t *testing.T, c *datastore.Client, kinds []api.KindInfo, h datastore.Handler) (s *datastore.Syncer, stop func()) {
	t.Helper()
	s = datastore.NewSyncer(c, kinds, testnet.Logger(t))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, h) }()
	stop = sync.OnceFunc(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run returned %v after cancel, want nil", err)
		}
	})
	t.Cleanup(stop)
	return s, stop
}

func rv(r api.Resource) int64 {
	var n int64
	_, _ = fmt.Sscan(r.GetObjectMeta().ResourceVersion, &n)
	return n
}

// writer makes changes and records the events a syncer must deliver.
type writer struct {
	t      *testing.T
	c      *datastore.Client
	stored map[string]api.Resource // by kind/name: what the syncer last delivered
	want   []string
}

func newWriter(t *testing.T, c *datastore.Client) *writer {
	t.Helper()
	return &writer{t: t, c: c, stored: map[string]api.Resource{}}
}

func (w *writer) apply(r api.Resource) {
	w.t.Helper()
	out, err := w.c.Apply(testCtx(w.t), r)
	if err != nil {
		w.t.Fatal(err)
	}
	w.stored[r.GetKind()+"/"+r.GetObjectMeta().Name] = out
	w.want = append(w.want, eventString(datastore.EventPut, out, rv(out)))
}

func (w *writer) delete(kindName, name string) {
	w.t.Helper()
	k, _ := api.LookupKind(kindName)
	if _, err := w.c.Delete(testCtx(w.t), k, name, ""); err != nil {
		w.t.Fatal(err)
	}
	last := w.stored[k.Kind+"/"+name]
	delete(w.stored, k.Kind+"/"+name)
	w.want = append(w.want, eventString(datastore.EventDelete, last, mustRevision(w.t, w.c)))
}

func TestSyncerSnapshotThenEvents(t *testing.T) {
	c := setup(t)
	w := newWriter(t, c)
	w.apply(pool("p0", "10.0.0.0/16", nil))
	w.apply(pool("p1", "10.1.0.0/16", nil))
	w.apply(netSet("g0", "192.0.2.0/24"))
	w.want = nil
	snapRev := mustRevision(t, c)

	rec := newRecorder()
	s, _ := runSyncer(t, c, nil, rec)
	rec.waitFor(t, "the snapshot", func() bool { return len(rec.snaps) == 1 })
	snap := rec.snaps[0]
	var got []string
	for _, r := range snap.Resources {
		got = append(got, describe(r))
	}
	want := []string{"GlobalNetworkSet/g0=192.0.2.0/24", "IPPool/p0=10.0.0.0/16", "IPPool/p1=10.1.0.0/16"}
	if diff := cmp.Diff(want, got); diff != "" || snap.Revision != snapRev {
		t.Errorf("snapshot at %d (want %d), resources (-want +got):\n%s", snap.Revision, snapRev, diff)
	}

	// Many creates, updates and deletes of two kinds, with writes the
	// syncer must ignore in between.
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 150 {
		switch n := rng.IntN(12); {
		case n < 8:
			name := fmt.Sprint("p", n)
			if _, ok := w.stored["IPPool/"+name]; ok && rng.IntN(3) == 0 {
				w.delete("ippool", name)
			} else {
				w.apply(pool(name, fmt.Sprintf("10.%d.0.0/16", i), nil))
			}
		case n < 11:
			name := fmt.Sprint("g", n-8)
			if _, ok := w.stored["GlobalNetworkSet/"+name]; ok && rng.IntN(3) == 0 {
				w.delete("gns", name)
			} else {
				w.apply(netSet(name, fmt.Sprintf("198.51.100.%d/32", i)))
			}
		default:
			ok, _, err := c.CAS(testCtx(t), nil, []datastore.RawPut{
				{Key: datastore.IPAMPrefix + "handle/x", Value: []byte("{}")},
				{Key: datastore.Prefix + "frob/x", Value: []byte("{}")},
			}, nil)
			if !ok || err != nil {
				t.Fatal(ok, err)
			}
		}
	}
	w.apply(pool("sentinel", "10.255.0.0/16", nil)) // proves nothing extra came before it
	events := rec.waitEvents(t, len(w.want))
	if diff := cmp.Diff(w.want, events); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	// The status advances once the handler has the watch response's
	// events, so it may trail the last event for a moment.
	last := mustRevision(t, c)
	testnet.WaitFor(t, "the syncer's status to reach the last revision", func() bool { return s.Status().Revision == last })
	if st := s.Status(); !st.InSync || st.Resyncs != 0 {
		t.Errorf("status %+v", st)
	}
}

// WithoutDeletedValues: deletes name what went, without its last value;
// snapshots and puts are as usual.
func TestSyncerWithoutDeletedValues(t *testing.T) {
	c := setup(t)
	w := newWriter(t, c)
	w.apply(pool("p0", "10.0.0.0/16", nil))
	rec := newRecorder()
	s := datastore.NewSyncer(c, nil, testnet.Logger(t)).WithoutDeletedValues()
	ctx, cancel := context.WithCancel(testCtx(t))
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, rec) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	rec.waitFor(t, "the snapshot", func() bool { return len(rec.snaps) == 1 })
	if got := len(rec.snaps[0].Resources); got != 1 {
		t.Errorf("snapshot of %d resources, want 1", got)
	}
	w.want = nil
	w.apply(pool("p1", "10.1.0.0/16", nil))
	w.delete("ippool", "p0")
	want := []string{w.want[0], fmt.Sprintf("delete IPPool/p0 @%d", mustRevision(t, c))}
	if diff := cmp.Diff(want, rec.waitEvents(t, 2)); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

func TestSyncerResyncAfterCompaction(t *testing.T) {
	c := setup(t)
	w := newWriter(t, c)
	for _, n := range []string{"a", "b", "c", "d"} {
		w.apply(pool(n, "10.0.0.0/16", nil))
	}
	w.want = nil

	// Hold the handler in OnSnapshot, so the watch has not started, while
	// history it would need is written and compacted away.
	rec := newRecorder()
	rec.hold, rec.held = make(chan struct{}), make(chan struct{})
	s, _ := runSyncer(t, c, nil, rec)
	<-rec.held
	w.apply(pool("a", "10.1.0.0/16", nil))
	w.delete("ippool", "b")
	w.apply(pool("e", "10.2.0.0/16", nil))
	w.apply(pool("f", "10.3.0.0/16", nil))
	w.delete("ippool", "f")
	w.apply(pool("c", "10.4.0.0/16", nil))
	w.apply(pool("c", "10.5.0.0/16", nil))
	if err := c.Compact(testCtx(t), mustRevision(t, c)); err != nil {
		t.Fatal(err)
	}
	listRev := mustRevision(t, c)
	close(rec.hold)

	// Only the net difference, as ordinary events: changed keys in the
	// order they were written, then the vanished ones at the list's
	// revision. f came and went unseen.
	net := []string{
		eventString(datastore.EventPut, w.stored["IPPool/a"], rv(w.stored["IPPool/a"])),
		eventString(datastore.EventPut, w.stored["IPPool/e"], rv(w.stored["IPPool/e"])),
		eventString(datastore.EventPut, w.stored["IPPool/c"], rv(w.stored["IPPool/c"])),
		fmt.Sprintf("delete IPPool/b=10.0.0.0/16 @%d", listRev),
	}
	w.want = net
	rec.waitEvents(t, len(w.want))
	w.apply(pool("g", "10.6.0.0/16", nil)) // and watching resumed
	events := rec.waitEvents(t, len(w.want))
	if diff := cmp.Diff(w.want, events); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	if st := s.Status(); st.Resyncs != 1 || !st.InSync {
		t.Errorf("status %+v, want one resync", st)
	}
	if len(rec.snaps) != 1 {
		t.Errorf("%d snapshots, want 1: the handler never starts over", len(rec.snaps))
	}
}

func TestSyncerSurvivesEtcdRestart(t *testing.T) {
	cfg := testnet.EtcdConfig(t)
	e := testnet.StartEtcdWith(t, cfg)
	c := testnet.NewClient(t, e)
	w := newWriter(t, c)
	w.apply(pool("a", "10.0.0.0/16", nil))
	w.apply(pool("b", "10.1.0.0/16", nil))
	w.want = nil

	rec := newRecorder()
	s, stop := runSyncer(t, c, nil, rec)
	rec.waitFor(t, "the snapshot", func() bool { return len(rec.snaps) == 1 })
	w.apply(pool("c", "10.2.0.0/16", nil))
	rec.waitEvents(t, len(w.want))

	// A plain restart: changes made right after it, a delete among them,
	// arrive.
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	e = testnet.StartEtcdWith(t, cfg) // same data, same ports
	w.apply(pool("d", "10.3.0.0/16", nil))
	w.delete("ippool", "a")
	w.apply(pool("c", "10.4.0.0/16", nil))
	events := rec.waitEvents(t, len(w.want))
	if diff := cmp.Diff(w.want, events); diff != "" {
		t.Fatalf("events after a restart (-want +got):\n%s", diff)
	}

	// Changes made while the syncer cannot reach etcd: the same member is
	// started on another client port, changed and compacted there, and
	// then restarted where the syncer looks. Its watch cannot resume from
	// where it stopped, so it relists and delivers the difference.
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	aside := cfg
	aside.ClientURL = fmt.Sprintf("https://127.0.0.1:%d", testnet.FreePorts(t, 1)[0])
	e = testnet.StartEtcdWith(t, aside)
	w.c = testnet.NewClient(t, e)
	w.apply(pool("e", "10.5.0.0/16", nil))
	w.delete("ippool", "b")
	w.apply(pool("d", "10.6.0.0/16", nil))
	w.want = w.want[:len(w.want)-3]
	listRev := mustRevision(t, w.c)
	if err := w.c.Compact(testCtx(t), listRev); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	w.c = c
	testnet.StartEtcdWith(t, cfg)
	for _, n := range []string{"IPPool/e", "IPPool/d"} {
		w.want = append(w.want, eventString(datastore.EventPut, w.stored[n], rv(w.stored[n])))
	}
	w.want = append(w.want, fmt.Sprintf("delete IPPool/b=10.1.0.0/16 @%d", listRev))
	rec.waitEvents(t, len(w.want))
	w.apply(pool("f", "10.7.0.0/16", nil))
	events = rec.waitEvents(t, len(w.want))
	if diff := cmp.Diff(w.want, events); diff != "" {
		t.Errorf("events after changes made while disconnected (-want +got):\n%s", diff)
	}
	rec.waitFor(t, "in sync", func() bool { return s.Status().InSync })
	if st := s.Status(); st.Resyncs < 1 {
		t.Errorf("status %+v, want a resync", st)
	}
	if len(rec.snaps) != 1 {
		t.Errorf("%d snapshots, want 1", len(rec.snaps))
	}
	stop() // before the servers close: an open watch delays their shutdown
}

func TestSyncerKindsAndBadValues(t *testing.T) {
	c := setup(t)
	ctx := testCtx(t)
	w := newWriter(t, c)
	w.apply(pool("a", "10.0.0.0/16", nil))
	w.apply(netSet("g", "192.0.2.0/24"))
	raw := func(key, val string) {
		t.Helper()
		if ok, _, err := c.CAS(ctx, nil, []datastore.RawPut{{Key: key, Value: []byte(val)}}, nil); !ok || err != nil {
			t.Fatal(ok, err)
		}
	}
	raw(datastore.Prefix+"ippool/bad", "{not json")
	raw(datastore.Prefix+"frob/x", "{}")
	w.want = nil

	rec := newRecorder()
	runSyncer(t, c, []api.KindInfo{kind(t, "ippool")}, rec)
	rec.waitFor(t, "the snapshot", func() bool { return len(rec.snaps) == 1 })
	if n := len(rec.snaps[0].Resources); n != 1 || describe(rec.snaps[0].Resources[0]) != "IPPool/a=10.0.0.0/16" {
		t.Errorf("snapshot holds %d resources: %v", n, rec.snaps[0].Resources)
	}

	// A value that no longer decodes is gone as far as the handler knows.
	raw(datastore.Prefix+"ippool/a", "[]")
	w.want = append(w.want, fmt.Sprintf("delete IPPool/a=10.0.0.0/16 @%d", mustRevision(t, c)))
	w.apply(netSet("g", "192.0.2.1/32")) // not requested
	w.want = w.want[:1]
	w.apply(pool("bad", "10.1.0.0/16", nil)) // repaired
	w.apply(pool("b", "10.2.0.0/16", nil))
	events := rec.waitEvents(t, len(w.want))
	if diff := cmp.Diff(w.want, events); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

func TestSyncerEndsWhenClientCloses(t *testing.T) {
	e := testnet.StartEtcd(t)
	c := testnet.NewClient(t, e)
	rec := newRecorder()
	s := datastore.NewSyncer(c, nil, testnet.Logger(t))
	done := make(chan error, 1)
	go func() { done <- s.Run(context.Background(), rec) }()
	rec.waitFor(t, "the snapshot", func() bool { return len(rec.snaps) == 1 })
	_ = c.Close()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "closed") {
			t.Errorf("Run after Close: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after its client was closed")
	}
}
