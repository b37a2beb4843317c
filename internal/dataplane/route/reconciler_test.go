package route

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func mac(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

// programmedFake is a fake kernel and a reconciler that has programmed
// endpoint a on its veth.
func programmedFake(t *testing.T) (*Fake, *Reconciler, Endpoint) {
	t.Helper()
	f := NewFake()
	ep := Endpoint{Name: "a", IfName: "calyxaaaaaaaaaa", MAC: mac("02:00:00:00:00:0a"), Addrs: addrs("10.65.0.10")}
	f.AddLink(ep.IfName)
	r := newTestReconciler(t, f)
	if err := r.Update(t.Context(), ep); err != nil {
		t.Fatal(err)
	}
	return f, r, ep
}

func newTestReconciler(t *testing.T, f *Fake) *Reconciler {
	t.Helper()
	r := New(f, slog.New(slog.DiscardHandler), WithGrace(10*time.Second))
	if err := r.Resync(t.Context()); err != nil {
		t.Fatal(err)
	}
	return r
}

// v4Lines is what a v4 endpoint on ifname with address ip and MAC m
// renders as, its link up.
func v4Lines(ifname, ip, m string) []string {
	lines := []string{
		"link " + ifname + " up",
		"route " + ip + "/32 dev " + ifname + " proto 80 scope link",
		"sysctl net/ipv4/conf/" + ifname + "/forwarding=1",
		"sysctl net/ipv4/conf/" + ifname + "/proxy_arp=1",
		"sysctl net/ipv4/conf/" + ifname + "/rp_filter=1",
		"sysctl net/ipv4/ip_forward=1",
		"sysctl net/ipv4/neigh/" + ifname + "/proxy_delay=0",
	}
	if m != "" {
		lines = append(lines, "neigh "+ip+" dev "+ifname+" lladdr "+m+" PERMANENT")
	}
	return lines
}

func sorted(groups ...[]string) []string {
	var out []string
	for _, g := range groups {
		for _, l := range g {
			if !slices.Contains(out, l) {
				out = append(out, l)
			}
		}
	}
	slices.Sort(out)
	return out
}

func TestUpdateGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		ep   Endpoint
		want []string
	}{
		{
			name: "ipv4 with mac",
			ep:   Endpoint{Name: "a", IfName: "calyxaaaaaaaaaa", MAC: mac("02:00:0a:41:00:07"), Addrs: addrs("10.65.0.7")},
			want: sorted(v4Lines("calyxaaaaaaaaaa", "10.65.0.7", "02:00:0a:41:00:07")),
		},
		{
			name: "mac not yet known: no neighbour entry",
			ep:   Endpoint{Name: "a", IfName: "calyxaaaaaaaaaa", Addrs: addrs("10.65.0.7")},
			want: sorted(v4Lines("calyxaaaaaaaaaa", "10.65.0.7", "")),
		},
		{
			name: "dual stack",
			ep:   Endpoint{Name: "a", IfName: "calyxaaaaaaaaaa", MAC: mac("02:00:0a:41:00:07"), Addrs: addrs("10.65.0.7", "fd65:cafe::7")},
			want: sorted(v4Lines("calyxaaaaaaaaaa", "10.65.0.7", "02:00:0a:41:00:07"), []string{
				"route fd65:cafe::7/128 dev calyxaaaaaaaaaa proto 80",
				"neigh fd65:cafe::7 dev calyxaaaaaaaaaa lladdr 02:00:0a:41:00:07 PERMANENT",
				"sysctl net/ipv6/conf/all/forwarding=1",
				"sysctl net/ipv6/conf/calyxaaaaaaaaaa/accept_ra=0",
				"sysctl net/ipv6/conf/calyxaaaaaaaaaa/forwarding=1",
				"sysctl net/ipv6/conf/calyxaaaaaaaaaa/proxy_ndp=1",
			}),
		},
		{
			name: "ipv6 only",
			ep:   Endpoint{Name: "a", IfName: "calyxaaaaaaaaaa", Addrs: addrs("fd65:cafe::7")},
			want: []string{
				"link calyxaaaaaaaaaa up",
				"route fd65:cafe::7/128 dev calyxaaaaaaaaaa proto 80",
				"sysctl net/ipv6/conf/all/forwarding=1",
				"sysctl net/ipv6/conf/calyxaaaaaaaaaa/accept_ra=0",
				"sysctl net/ipv6/conf/calyxaaaaaaaaaa/forwarding=1",
				"sysctl net/ipv6/conf/calyxaaaaaaaaaa/proxy_ndp=1",
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := NewFake()
			f.AddLink(tc.ep.IfName)
			r := newTestReconciler(t, f)
			if err := r.Update(t.Context(), tc.ep); err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, f.Render()); d != "" {
				t.Errorf("kernel state (-want +got):\n%s", d)
			}
			before := f.Writes()
			if err := r.Update(t.Context(), tc.ep); err != nil {
				t.Fatal(err)
			}
			if w := f.Writes() - before; w != 0 {
				t.Errorf("a second identical Update made %d writes, want 0", w)
			}
		})
	}
}

func TestUpdateMissingLink(t *testing.T) {
	f := NewFake()
	r := newTestReconciler(t, f)
	err := r.Update(t.Context(), Endpoint{Name: "a", IfName: "calyxaaaaaaaaaa", Addrs: addrs("10.65.0.7")})
	if !IsLinkNotFound(err) {
		t.Fatalf("Update without a veth: %v, want IsLinkNotFound", err)
	}
	if f.Writes() != 0 {
		t.Errorf("%d writes for a missing link", f.Writes())
	}
}

// A restarted calyx-node (a new reconciler over the same kernel) writes
// nothing for endpoints that are already programmed.
func TestRestartWritesNothing(t *testing.T) {
	f := NewFake()
	eps := []Endpoint{
		{Name: "a", IfName: "calyxaaaaaaaaaa", MAC: mac("02:00:00:00:00:0a"), Addrs: addrs("10.65.0.10", "fd65::a")},
		{Name: "b", IfName: "calyxbbbbbbbbbb", MAC: mac("02:00:00:00:00:0b"), Addrs: addrs("10.65.0.11")},
	}
	first := newTestReconciler(t, f)
	for _, ep := range eps {
		f.AddLink(ep.IfName)
		if err := first.Update(t.Context(), ep); err != nil {
			t.Fatal(err)
		}
	}
	before, writes := f.Render(), f.Writes()
	second := newTestReconciler(t, f)
	for _, ep := range eps {
		if err := second.Update(t.Context(), ep); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		if err := second.Prune(t.Context(), eps, t0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	if w := f.Writes() - writes; w != 0 {
		t.Errorf("the restarted reconciler made %d writes, want 0", w)
	}
	if d := cmp.Diff(before, f.Render()); d != "" {
		t.Errorf("kernel state changed on restart (-before +after):\n%s", d)
	}
}

// A resync re-reads only the per-interface sysctls a known link's
// endpoint wants (4 for IPv4 only), all 8 of a link it does not know, and
// a reset one is repaired by the Update after it.
func TestResyncReadsWantedSysctls(t *testing.T) {
	f, r, ep := programmedFake(t)
	want := f.Render()
	f.AddLink("calyxbbbbbbbbbb") // no endpoint of this reconciler's yet
	reads := f.SysctlReads()
	if err := r.Resync(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := f.SysctlReads() - reads; n != 2+4+8 {
		t.Errorf("resync read %d sysctls, want 14: 2 global, 4 of a's link, 8 of the unknown one", n)
	}
	if err := f.WriteSysctls([]Sysctl{{Key: "net/ipv4/conf/calyxaaaaaaaaaa/rp_filter", Value: "0"}}); err != nil {
		t.Fatal(err)
	}
	if err := r.Resync(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := r.Update(t.Context(), ep); err != nil {
		t.Fatal(err)
	}
	f.RemoveLink("calyxbbbbbbbbbb")
	if d := cmp.Diff(want, f.Render()); d != "" {
		t.Errorf("reset sysctl not repaired (-want +got):\n%s", d)
	}
}

// A veth deleted and re-created under the same name (a retried ADD) is
// programmed afresh even though the cache knew the old one.
func TestUpdateRecreatedLink(t *testing.T) {
	f, r, ep := programmedFake(t)
	f.RemoveLink(ep.IfName)
	f.AddLink(ep.IfName)
	if err := r.Update(t.Context(), ep); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(sorted(v4Lines(ep.IfName, "10.65.0.10", "02:00:00:00:00:0a")), f.Render()); d != "" {
		t.Errorf("kernel state (-want +got):\n%s", d)
	}
}

func TestPrune(t *testing.T) {
	f := NewFake()
	a := f.AddLink("calyxaaaaaaaaaa")
	eth := f.AddLink("eth0")
	keep := Endpoint{Name: "a", IfName: "calyxaaaaaaaaaa", MAC: mac("02:00:00:00:00:0a"), Addrs: addrs("10.65.0.10")}
	// Left by an earlier run: an owned route and neighbour nobody wants.
	f.AddRoute(Route{Dst: netip.MustParsePrefix("10.65.0.99/32"), LinkIndex: a.Index, Protocol: Protocol, Scope: ScopeLink})
	f.AddNeigh(Neigh{IP: netip.MustParseAddr("10.65.0.99"), LinkIndex: a.Index, MAC: "02:00:00:00:00:99", Permanent: true})
	// Not Calyx's: another protocol on a Calyx link, a learned neighbour,
	// and protocol 80 on a link that is not Calyx's.
	f.AddRoute(Route{Dst: netip.MustParsePrefix("10.65.0.98/32"), LinkIndex: a.Index, Protocol: 4, Scope: ScopeLink})
	f.AddNeigh(Neigh{IP: netip.MustParseAddr("10.65.0.98"), LinkIndex: a.Index, MAC: "02:00:00:00:00:98"})
	f.AddRoute(Route{Dst: netip.MustParsePrefix("192.0.2.0/24"), LinkIndex: eth.Index, Protocol: Protocol})
	r := newTestReconciler(t, f)
	if err := r.Update(t.Context(), keep); err != nil {
		t.Fatal(err)
	}
	foreign := []string{
		"link eth0 down",
		"neigh 10.65.0.98 dev calyxaaaaaaaaaa lladdr 02:00:00:00:00:98",
		"route 10.65.0.98/32 dev calyxaaaaaaaaaa proto static scope link",
		"route 192.0.2.0/24 dev eth0 proto 80",
	}
	stale := []string{
		"neigh 10.65.0.99 dev calyxaaaaaaaaaa lladdr 02:00:00:00:00:99 PERMANENT",
		"route 10.65.0.99/32 dev calyxaaaaaaaaaa proto 80 scope link",
	}
	programmed := v4Lines(keep.IfName, "10.65.0.10", "02:00:00:00:00:0a")
	desired := []Endpoint{keep}
	for _, step := range []struct {
		now  time.Time
		want []string
	}{
		{now: t0, want: sorted(programmed, foreign, stale)},                      // first seen unwanted
		{now: t0.Add(9 * time.Second), want: sorted(programmed, foreign, stale)}, // within the grace
		{now: t0.Add(10 * time.Second), want: sorted(programmed, foreign)},       // grace over
	} {
		if err := r.Prune(t.Context(), desired, step.now); err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(step.want, f.Render()); d != "" {
			t.Errorf("after Prune at %s (-want +got):\n%s", step.now.Sub(t0), d)
		}
	}
	if _, ok := r.NextPrune(); ok {
		t.Error("NextPrune reports pending work after everything was pruned")
	}
}

// An unwanted object that becomes wanted again within the grace period
// is kept, and its clock restarts if it becomes unwanted later.
func TestPruneGraceRestarts(t *testing.T) {
	f := NewFake()
	f.AddLink("calyxaaaaaaaaaa")
	ep := Endpoint{Name: "a", IfName: "calyxaaaaaaaaaa", Addrs: addrs("10.65.0.10")}
	r := newTestReconciler(t, f)
	if err := r.Update(t.Context(), ep); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	mustPrune := func(desired []Endpoint, at time.Duration) {
		t.Helper()
		if err := r.Prune(ctx, desired, t0.Add(at)); err != nil {
			t.Fatal(err)
		}
	}
	mustPrune(nil, 0)
	if next, ok := r.NextPrune(); !ok || !next.Equal(t0.Add(10*time.Second)) {
		t.Errorf("NextPrune = %v %v, want %v", next, ok, t0.Add(10*time.Second))
	}
	mustPrune([]Endpoint{ep}, 5*time.Second) // wanted again
	mustPrune(nil, 11*time.Second)           // unwanted anew: the clock restarts
	if !slices.Contains(f.Render(), "route 10.65.0.10/32 dev calyxaaaaaaaaaa proto 80 scope link") {
		t.Fatal("route removed before a full grace period of being unwanted")
	}
	mustPrune(nil, 21*time.Second)
	if slices.ContainsFunc(f.Render(), func(l string) bool { return strings.HasPrefix(l, "route ") }) {
		t.Errorf("route kept after the grace period: %v", f.Render())
	}
}

func TestDeleteIsIdempotent(t *testing.T) {
	f := NewFake()
	f.AddLink("calyxaaaaaaaaaa")
	f.AddLink("calyxbbbbbbbbbb")
	a := Endpoint{Name: "a", IfName: "calyxaaaaaaaaaa", MAC: mac("02:00:00:00:00:0a"), Addrs: addrs("10.65.0.10")}
	b := Endpoint{Name: "b", IfName: "calyxbbbbbbbbbb", MAC: mac("02:00:00:00:00:0b"), Addrs: addrs("10.65.0.11")}
	r := newTestReconciler(t, f)
	for _, ep := range []Endpoint{a, b} {
		if err := r.Update(t.Context(), ep); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		if err := r.Delete(t.Context(), a); err != nil {
			t.Fatalf("Delete: %v", err)
		}
	}
	if err := r.Delete(t.Context(), Endpoint{Name: "never", IfName: "calyxcccccccccc"}); err != nil {
		t.Fatalf("Delete of an endpoint that never existed: %v", err)
	}
	if d := cmp.Diff(sorted(v4Lines(b.IfName, "10.65.0.11", "02:00:00:00:00:0b")), f.Render()); d != "" {
		t.Errorf("after Delete (-want +got):\n%s", d)
	}
	if ok, err := r.HasLink(t.Context(), a.IfName); ok || err != nil {
		t.Errorf("HasLink after Delete = %v, %v", ok, err)
	}
}

func TestCheck(t *testing.T) {
	f := NewFake()
	l := f.AddLink("calyxaaaaaaaaaa")
	other := f.AddLink("calyxbbbbbbbbbb")
	ep := Endpoint{Name: "a", IfName: "calyxaaaaaaaaaa", MAC: mac("02:00:00:00:00:0a"), Addrs: addrs("10.65.0.10", "10.65.0.12")}
	r := newTestReconciler(t, f)
	if err := r.Update(t.Context(), ep); err != nil {
		t.Fatal(err)
	}
	got, err := r.Check(t.Context(), ep)
	if err != nil || len(got) != 0 {
		t.Fatalf("Check after Update: %q, %v; want no problems", got, err)
	}
	f.AddRoute(Route{Dst: netip.MustParsePrefix("10.65.0.10/32"), LinkIndex: other.Index, Protocol: 4})
	if err := f.DeleteRoute(Route{Dst: netip.MustParsePrefix("10.65.0.12/32")}); err != nil {
		t.Fatal(err)
	}
	f.AddNeigh(Neigh{IP: netip.MustParseAddr("10.65.0.12"), LinkIndex: l.Index, MAC: "02:00:00:00:00:ff", Permanent: true})
	if err := f.WriteSysctls([]Sysctl{{Key: "net/ipv4/conf/calyxaaaaaaaaaa/proxy_arp", Value: "0"}}); err != nil {
		t.Fatal(err)
	}
	got, err = r.Check(t.Context(), ep)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"the host route to 10.65.0.10/32 goes through calyxbbbbbbbbbb, not calyxaaaaaaaaaa",
		"no host route to 10.65.0.12/32 (want 10.65.0.12/32 dev calyxaaaaaaaaaa proto 80 scope link)",
		"the neighbour entry for 10.65.0.12 on calyxaaaaaaaaaa has MAC 02:00:00:00:00:ff, want 02:00:00:00:00:0a",
		`sysctl net/ipv4/conf/calyxaaaaaaaaaa/proxy_arp is "0", want "1"`,
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("problems (-want +got):\n%s", d)
	}
	f.RemoveLink(ep.IfName)
	got, _ = r.Check(t.Context(), ep)
	if d := cmp.Diff([]string{"host interface calyxaaaaaaaaaa is missing"}, got); d != "" {
		t.Errorf("problems with the veth gone (-want +got):\n%s", d)
	}
}

func TestWriteFailureIsReported(t *testing.T) {
	f := NewFake()
	f.AddLink("calyxaaaaaaaaaa")
	r := newTestReconciler(t, f)
	boom := errors.New("boom")
	f.SetFailWrites(boom)
	ep := Endpoint{Name: "a", IfName: "calyxaaaaaaaaaa", Addrs: addrs("10.65.0.10")}
	if err := r.Update(t.Context(), ep); !errors.Is(err, boom) {
		t.Fatalf("Update with failing writes: %v", err)
	}
	f.SetFailWrites(nil)
	if err := r.Update(t.Context(), ep); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(sorted(v4Lines(ep.IfName, "10.65.0.10", "")), f.Render()); d != "" {
		t.Errorf("after a failed then a successful Update (-want +got):\n%s", d)
	}
}

// reconcile applies a desired state the way calyx-node does: Update every
// endpoint, then Prune twice, a grace period apart.
func reconcile(ctx context.Context, t *testing.T, r *Reconciler, desired []Endpoint, now time.Time) time.Time {
	t.Helper()
	for _, ep := range desired {
		if err := r.Update(ctx, ep); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		if err := r.Prune(ctx, desired, now); err != nil {
			t.Fatal(err)
		}
		now = now.Add(r.grace)
	}
	return now
}

// The kernel state depends only on the last desired state, not on the path
// that led there.
func TestPathIndependence(t *testing.T) {
	a := Endpoint{Name: "a", IfName: "calyxaaaaaaaaaa", MAC: mac("02:00:00:00:00:0a"), Addrs: addrs("10.65.0.10", "fd65::a")}
	a2 := a
	a2.MAC, a2.Addrs = mac("02:00:00:00:01:0a"), addrs("10.65.0.20", "fd65::14") // same veth, new container
	b := Endpoint{Name: "b", IfName: "calyxbbbbbbbbbb", MAC: mac("02:00:00:00:00:0b"), Addrs: addrs("10.65.0.11")}
	bNoMAC := b
	bNoMAC.MAC = nil
	c := Endpoint{Name: "c", IfName: "calyxcccccccccc", MAC: mac("02:00:00:00:00:0c"), Addrs: addrs("10.65.0.12")}
	base := []string{ // every link up with its sysctls, from the warm-up
		"link calyxaaaaaaaaaa up", "link calyxbbbbbbbbbb up", "link calyxcccccccccc up",
		"sysctl net/ipv4/conf/calyxaaaaaaaaaa/forwarding=1", "sysctl net/ipv4/conf/calyxaaaaaaaaaa/proxy_arp=1",
		"sysctl net/ipv4/conf/calyxaaaaaaaaaa/rp_filter=1", "sysctl net/ipv4/conf/calyxbbbbbbbbbb/forwarding=1",
		"sysctl net/ipv4/conf/calyxbbbbbbbbbb/proxy_arp=1", "sysctl net/ipv4/conf/calyxbbbbbbbbbb/rp_filter=1",
		"sysctl net/ipv4/conf/calyxcccccccccc/forwarding=1", "sysctl net/ipv4/conf/calyxcccccccccc/proxy_arp=1",
		"sysctl net/ipv4/conf/calyxcccccccccc/rp_filter=1", "sysctl net/ipv4/ip_forward=1",
		"sysctl net/ipv4/neigh/calyxaaaaaaaaaa/proxy_delay=0", "sysctl net/ipv4/neigh/calyxbbbbbbbbbb/proxy_delay=0",
		"sysctl net/ipv4/neigh/calyxcccccccccc/proxy_delay=0", "sysctl net/ipv6/conf/all/forwarding=1",
		"sysctl net/ipv6/conf/calyxaaaaaaaaaa/accept_ra=0", "sysctl net/ipv6/conf/calyxaaaaaaaaaa/forwarding=1",
		"sysctl net/ipv6/conf/calyxaaaaaaaaaa/proxy_ndp=1",
	}
	states := []struct {
		name    string
		desired []Endpoint
		want    []string
	}{
		{name: "empty", want: sorted(base)},
		{name: "a", desired: []Endpoint{a}, want: sorted(base, []string{
			"neigh 10.65.0.10 dev calyxaaaaaaaaaa lladdr 02:00:00:00:00:0a PERMANENT",
			"neigh fd65::a dev calyxaaaaaaaaaa lladdr 02:00:00:00:00:0a PERMANENT",
			"route 10.65.0.10/32 dev calyxaaaaaaaaaa proto 80 scope link",
			"route fd65::a/128 dev calyxaaaaaaaaaa proto 80",
		})},
		{name: "a2 b", desired: []Endpoint{a2, b}, want: sorted(base, []string{
			"neigh 10.65.0.11 dev calyxbbbbbbbbbb lladdr 02:00:00:00:00:0b PERMANENT",
			"neigh 10.65.0.20 dev calyxaaaaaaaaaa lladdr 02:00:00:00:01:0a PERMANENT",
			"neigh fd65::14 dev calyxaaaaaaaaaa lladdr 02:00:00:00:01:0a PERMANENT",
			"route 10.65.0.11/32 dev calyxbbbbbbbbbb proto 80 scope link",
			"route 10.65.0.20/32 dev calyxaaaaaaaaaa proto 80 scope link",
			"route fd65::14/128 dev calyxaaaaaaaaaa proto 80",
		})},
		{name: "b without mac, c", desired: []Endpoint{bNoMAC, c}, want: sorted(base, []string{
			"neigh 10.65.0.12 dev calyxcccccccccc lladdr 02:00:00:00:00:0c PERMANENT",
			"route 10.65.0.11/32 dev calyxbbbbbbbbbb proto 80 scope link",
			"route 10.65.0.12/32 dev calyxcccccccccc proto 80 scope link",
		})},
		{name: "a b c", desired: []Endpoint{a, b, c}, want: sorted(base, []string{
			"neigh 10.65.0.10 dev calyxaaaaaaaaaa lladdr 02:00:00:00:00:0a PERMANENT",
			"neigh 10.65.0.11 dev calyxbbbbbbbbbb lladdr 02:00:00:00:00:0b PERMANENT",
			"neigh 10.65.0.12 dev calyxcccccccccc lladdr 02:00:00:00:00:0c PERMANENT",
			"neigh fd65::a dev calyxaaaaaaaaaa lladdr 02:00:00:00:00:0a PERMANENT",
			"route 10.65.0.10/32 dev calyxaaaaaaaaaa proto 80 scope link",
			"route 10.65.0.11/32 dev calyxbbbbbbbbbb proto 80 scope link",
			"route 10.65.0.12/32 dev calyxcccccccccc proto 80 scope link",
			"route fd65::a/128 dev calyxaaaaaaaaaa proto 80",
		})},
	}
	newWarm := func() (*Fake, *Reconciler, time.Time) {
		f := NewFake()
		for _, n := range []string{a.IfName, b.IfName, c.IfName} {
			f.AddLink(n)
		}
		r := newTestReconciler(t, f)
		now := reconcile(t.Context(), t, r, []Endpoint{a, b, c}, t0)
		return f, r, now
	}
	// Each state from a warm start.
	for _, st := range states {
		f, r, now := newWarm()
		reconcile(t.Context(), t, r, st.desired, now)
		if d := cmp.Diff(st.want, f.Render()); d != "" {
			t.Errorf("state %q (-want +got):\n%s", st.name, d)
		}
	}
	// Random walks through the states end where their last state says.
	for seed := range uint64(30) {
		rng := rand.New(rand.NewPCG(seed, 7))
		f, r, now := newWarm()
		var path []string
		for range 6 {
			st := states[rng.IntN(len(states))]
			path = append(path, st.name)
			now = reconcile(t.Context(), t, r, st.desired, now)
			if d := cmp.Diff(st.want, f.Render()); d != "" {
				t.Fatalf("path %q (-want +got):\n%s", path, d)
			}
		}
	}
}

// Unroute removes an endpoint's routes and leaves its link (the CNI
// plugin is deleting it), and is idempotent.
func TestUnroute(t *testing.T) {
	f := NewFake()
	f.AddLink("calyxaaaaaaaaaa")
	f.AddLink("calyxbbbbbbbbbb")
	a := Endpoint{Name: "a", IfName: "calyxaaaaaaaaaa", MAC: mac("02:00:00:00:00:0a"), Addrs: addrs("10.65.0.10")}
	b := Endpoint{Name: "b", IfName: "calyxbbbbbbbbbb", MAC: mac("02:00:00:00:00:0b"), Addrs: addrs("10.65.0.11")}
	r := newTestReconciler(t, f)
	for _, ep := range []Endpoint{a, b} {
		if err := r.Update(t.Context(), ep); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		if err := r.Unroute(t.Context(), a); err != nil {
			t.Fatalf("Unroute: %v", err)
		}
	}
	if err := r.Unroute(t.Context(), Endpoint{Name: "never", IfName: "calyxcccccccccc"}); err != nil {
		t.Fatalf("Unroute of an endpoint that never existed: %v", err)
	}
	for _, l := range f.Render() {
		if strings.Contains(l, "10.65.0.10") && strings.HasPrefix(l, "route") {
			t.Errorf("a route to a is left: %s", l)
		}
	}
	if ok, err := r.HasLink(t.Context(), a.IfName); !ok || err != nil {
		t.Errorf("HasLink after Unroute = %v, %v: the link is the plugin's to delete", ok, err)
	}
	if !slices.ContainsFunc(f.Render(), func(l string) bool { return strings.Contains(l, "10.65.0.11") }) {
		t.Errorf("b's routes went too:\n%s", strings.Join(f.Render(), "\n"))
	}
}
