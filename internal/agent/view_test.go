package agent

import (
	"context"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/calyx-net/calyx/internal/api"
	"github.com/calyx-net/calyx/internal/datastore"
	"github.com/google/go-cmp/cmp"
)

func testWEP(name, node string, rev int64, mac string) *api.WorkloadEndpoint {
	w := wepKind().New().(*api.WorkloadEndpoint)
	w.Metadata.Name = name
	w.Metadata.ResourceVersion = strconv.FormatInt(rev, 10)
	w.Spec.Node = node
	w.Spec.MAC = mac
	w.Spec.InterfaceName = "calyx" + name
	return w
}

func viewState(v *view) []string {
	var out []string
	for _, w := range v.endpoints() {
		out = append(out, w.Metadata.Name+"@"+w.Metadata.ResourceVersion+" "+w.Spec.MAC)
	}
	return out
}

// The view shows this node's own writes at once and never lets a late
// event from the syncer undo them.
func TestViewOverlay(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	v := newView("node-a", func() time.Time { return now })
	put := func(w *api.WorkloadEndpoint) datastore.Event {
		rev, _ := strconv.ParseInt(w.Metadata.ResourceVersion, 10, 64)
		return datastore.Event{Type: datastore.EventPut, Kind: api.KindWorkloadEndpoint, Name: w.Metadata.Name, Resource: w, Revision: rev}
	}
	del := func(name string, rev int64) datastore.Event {
		return datastore.Event{Type: datastore.EventDelete, Kind: api.KindWorkloadEndpoint, Name: name, Resource: testWEP(name, "node-a", rev, ""), Revision: rev}
	}
	v.OnSnapshot(datastore.Snapshot{Revision: 5, Resources: []api.Resource{testWEP("a", "node-a", 3, ""), testWEP("other", "node-b", 4, "")}})
	if !v.ready() {
		t.Fatal("not ready after the snapshot")
	}
	// Every step keeps the syncer's guarantee: events arrive in revision
	// order.
	steps := []struct {
		name string
		do   func()
		want []string
		lag  time.Duration // -1: not checked
	}{
		{"snapshot keeps only this node's", func() {}, []string{"a@3 "}, 0},
		{"own create is visible at once", func() { v.wroteEndpoint(testWEP("b", "node-a", 10, "")) }, []string{"a@3 ", "b@10 "}, 0},
		{"own update too", func() { now = now.Add(time.Second); v.wroteEndpoint(testWEP("b", "node-a", 11, "m1")) }, []string{"a@3 ", "b@11 m1"}, time.Second},
		{"the create's event does not undo the update", func() { v.OnEvent(put(testWEP("b", "node-a", 10, ""))) }, []string{"a@3 ", "b@11 m1"}, 0},
		{"own delete", func() { v.deletedEndpoint("a", 3) }, []string{"b@11 m1"}, -1},
		{"own create and delete", func() {
			v.wroteEndpoint(testWEP("c", "node-a", 20, ""))
			v.deletedEndpoint("c", 20)
		}, []string{"b@11 m1"}, -1},
		{"the update's event", func() { v.OnEvent(put(testWEP("b", "node-a", 11, "m1"))) }, []string{"b@11 m1"}, -1},
		{"the deleted create's late event cannot resurrect it", func() { v.OnEvent(put(testWEP("c", "node-a", 20, ""))) }, []string{"b@11 m1"}, -1},
		{"a's delete event", func() { v.OnEvent(del("a", 21)) }, []string{"b@11 m1"}, -1},
		{"c's delete event", func() { v.OnEvent(del("c", 22)) }, []string{"b@11 m1"}, 0},
		{"someone else's later change shows", func() { v.OnEvent(put(testWEP("b", "node-a", 23, "m2"))) }, []string{"b@23 m2"}, 0},
		{"an endpoint moving away is dropped", func() { v.OnEvent(put(testWEP("b", "node-b", 24, "m2"))) }, nil, 0},
	}
	for _, s := range steps {
		s.do()
		if d := cmp.Diff(s.want, viewState(v)); d != "" {
			t.Errorf("%s (-want +got):\n%s", s.name, d)
		}
		if got := v.syncLag(now); s.lag >= 0 && got != s.lag {
			t.Errorf("%s: sync lag %s, want %s", s.name, got, s.lag)
		}
	}
	if len(v.local) != 0 {
		t.Errorf("overlay entries left after the syncer caught up: %v", v.local)
	}
}

func TestViewPoolsAndProfiles(t *testing.T) {
	v := newView("node-a", time.Now)
	pk, _ := api.LookupKind(api.KindIPPool)
	pool := pk.New().(*api.IPPool)
	pool.Metadata.Name = "p"
	pool.Spec.CIDR = "10.65.0.0/16"
	prof := profileKind().New().(*api.Profile)
	prof.Metadata.Name = "net1"
	v.OnSnapshot(datastore.Snapshot{Revision: 1, Resources: []api.Resource{pool, prof}})
	if p, ok := v.poolPrefix(netip.MustParseAddr("10.65.3.4")); !ok || p.String() != "10.65.0.0/16" {
		t.Errorf("poolPrefix = %v, %v", p, ok)
	}
	if _, ok := v.poolPrefix(netip.MustParseAddr("10.66.0.1")); ok {
		t.Error("an address outside every pool has a pool")
	}
	if !v.hasProfile("net1") || v.hasProfile("net2") {
		t.Error("profiles wrong")
	}
	v.OnEvent(datastore.Event{Type: datastore.EventDelete, Kind: api.KindProfile, Name: "net1", Resource: prof, Revision: 2})
	if v.hasProfile("net1") {
		t.Error("a deleted profile is still known")
	}
}

func TestSweep(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	since := map[string]time.Time{}
	grace := 10 * time.Second
	for _, step := range []struct {
		at         time.Duration
		candidates []string
		want       []string
	}{
		{0, []string{"a", "b"}, nil},
		{5 * time.Second, []string{"a", "c"}, nil}, // b is no longer a candidate: forgotten
		{10 * time.Second, []string{"a", "b", "c"}, []string{"a"}},
		{15 * time.Second, []string{"b", "c", "a"}, []string{"a", "c"}},
		{20 * time.Second, []string{"b"}, []string{"b"}},
	} {
		got := sweep(since, step.candidates, t0.Add(step.at), grace)
		if !slices.Equal(got, step.want) {
			t.Errorf("at %s: %v, want %v", step.at, got, step.want)
		}
	}
	if len(since) != 1 {
		t.Errorf("remembered %v, want only b", since)
	}
}

func TestPickNodeIPv4(t *testing.T) {
	p := netip.MustParsePrefix
	addrs := map[int][]netip.Prefix{2: {p("192.0.2.10/24"), p("192.0.2.5/24")}, 3: {p("198.51.100.7/25")}}
	for _, tc := range []struct {
		defaults []defaultRoute
		want     string
	}{
		{[]defaultRoute{{link: 2}}, "192.0.2.5/24"},
		{[]defaultRoute{{link: 2, metric: 100}, {link: 3, metric: 50}}, "198.51.100.7/25"},
		{[]defaultRoute{{link: 9}}, ""},
		{nil, ""},
	} {
		got, ok := pickNodeAddr(tc.defaults, addrs, false)
		if ok != (tc.want != "") || ok && got.String() != tc.want {
			t.Errorf("pickNodeAddr(%v) = %v, %v; want %q", tc.defaults, got, ok, tc.want)
		}
	}
}

func TestHandleLocks(t *testing.T) {
	l := newHandleLocks()
	unlock, err := l.lock(t.Context(), "h")
	if err != nil {
		t.Fatal(err)
	}
	if !l.busy("h") || l.busy("other") {
		t.Error("busy is wrong while locked")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if _, err := l.lock(ctx, "h"); err == nil {
		t.Error("a second lock of a held handle succeeded")
	}
	unlock()
	if l.busy("h") {
		t.Error("busy after unlock")
	}
	unlock2, err := l.lock(t.Context(), "h")
	if err != nil {
		t.Fatal(err)
	}
	unlock2()
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string // error substring, "" for none
	}{
		{Config{NodeName: "n1"}, ""},
		{Config{}, "--name"},
		{Config{NodeName: "N_1"}, "lower-case DNS name"},
		{Config{NodeName: "n1", NodeIPv4: "10.0.0.5"}, "--ip"},
		{Config{NodeName: "n1", MTU: 20}, "--mtu"},
		{Config{NodeName: "n1", Netns: "/run/netns/x"}, "--bgp=false"},
		{Config{NodeName: "n1", GCGrace: -1}, "--gc-grace"},
		{Config{NodeName: "n1", ResyncInterval: -1}, "--resync-interval"},
	} {
		err := tc.cfg.validate()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("validate(%+v) = %v, want %q", tc.cfg, err, tc.want)
		}
	}
	c := Config{NodeName: "n1"}
	if err := c.validate(); err != nil {
		t.Fatal(err)
	}
	if c.Socket != "/run/calyx/calyx.sock" || c.MTU != 0 || c.GCGrace != time.Minute || c.ResyncInterval != 90*time.Second {
		t.Errorf("defaults %+v", c)
	}
}

// When the syncer delivers this node's own write, the view keeps the
// written copy (which calc holds already) if the two are equal, and the
// syncer's otherwise, in either order; an equal copy of what it holds
// changes nothing.
func TestViewKeepsOwnCopy(t *testing.T) {
	v := newView("node-a", time.Now)
	v.OnSnapshot(datastore.Snapshot{Revision: 5})
	event := func(w *api.WorkloadEndpoint, rev int64) {
		v.OnEvent(datastore.Event{Type: datastore.EventPut, Kind: api.KindWorkloadEndpoint, Name: w.Metadata.Name, Resource: w, Revision: rev})
	}
	own := testWEP("b", "node-a", 10, "m1")
	v.wroteEndpoint(own)
	event(testWEP("b", "node-a", 10, "m1"), 10)
	if got := v.endpoint("b"); got != own {
		t.Errorf("after the syncer's equal copy the view holds %p, want the written copy %p", got, own)
	}
	own = testWEP("b", "node-a", 11, "m2")
	v.wroteEndpoint(own)
	theirs := testWEP("b", "node-a", 12, "m3") // changed by another writer since
	event(theirs, 12)
	if got := v.endpoint("b"); got != theirs {
		t.Errorf("after a different copy the view holds %+v, want the syncer's %+v", got, theirs)
	}
	event(testWEP("b", "node-a", 12, "m3"), 13) // the same again, as a resync brings it
	if got := v.endpoint("b"); got != theirs {
		t.Errorf("after an equal copy the view holds %p, want the one it had, %p", got, theirs)
	}
	// the syncer first, then the writer
	first := testWEP("c", "node-a", 20, "m4")
	event(first, 20)
	v.wroteEndpoint(testWEP("c", "node-a", 20, "m4"))
	if got := v.endpoint("c"); got != first {
		t.Errorf("after an own write the syncer delivered first, the view holds %p, want the syncer's copy %p", got, first)
	}
	event(testWEP("d", "node-a", 21, ""), 21) // the overlay entry goes
	if got := v.endpoint("c"); got != first || len(v.local) != 0 {
		t.Errorf("once the syncer caught up the view holds %p (want %p), overlay %v", got, first, v.local)
	}
}
