package route

import (
	"errors"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func ip(s string) netip.Addr    { return netip.MustParseAddr(s) }

// Desired routes of a host with blocks 10.65.0.0/26 and fd65::/122, two
// peers (one on eth0's subnet, one through VXLAN) and a ToR that
// advertises default routes.
var (
	viaEth0       = RemoteRoute{Dst: pfx("10.65.1.0/26"), Gw: ip("192.0.2.12"), Dev: "eth0"}
	viaGwOnly     = RemoteRoute{Dst: pfx("10.65.3.0/26"), Gw: ip("192.0.2.13")}
	viaVXLAN      = RemoteRoute{Dst: pfx("10.65.2.0/26"), Gw: ip("10.65.2.0"), Dev: "vxlan.calyx", OnLink: true}
	localBlock    = RemoteRoute{Dst: pfx("10.65.0.0/26"), Blackhole: true}
	defaultV4     = RemoteRoute{Dst: pfx("0.0.0.0/0"), Gw: ip("192.0.2.1"), Dev: "eth0"}
	viaEth0V6     = RemoteRoute{Dst: pfx("fd65:1::/122"), Gw: ip("2001:db8:192::12"), Dev: "eth0"}
	viaVXLANV6    = RemoteRoute{Dst: pfx("fd65:2::/122"), Gw: ip("fd65:2::"), Dev: "vxlan.calyx", OnLink: true}
	localBlockV6  = RemoteRoute{Dst: pfx("fd65::/122"), Blackhole: true}
	defaultV6     = RemoteRoute{Dst: pfx("::/0"), Gw: ip("2001:db8:192::1")}
	allRemote     = []RemoteRoute{viaEth0, viaGwOnly, viaVXLAN, localBlock, defaultV4, viaEth0V6, viaVXLANV6, localBlockV6, defaultV6}
	connectedFake = []string{
		"route 192.0.2.0/24 dev eth0 proto kernel scope link",
		"route 2001:db8:192::/64 dev eth0 proto kernel",
	}
)

// allRemoteLines is how allRemote renders, connected routes included.
var allRemoteLines = sorted(connectedFake, []string{
	"route 10.65.1.0/26 via 192.0.2.12 dev eth0 proto 80",
	"route 10.65.3.0/26 via 192.0.2.13 dev eth0 proto 80", // the device the kernel found
	"route 10.65.2.0/26 via 10.65.2.0 dev vxlan.calyx proto 80 onlink",
	"route blackhole 10.65.0.0/26 proto 80",
	"route default via 192.0.2.1 dev eth0 proto 80",
	"route fd65:1::/122 via 2001:db8:192::12 dev eth0 proto 80",
	"route fd65:2::/122 via fd65:2:: dev vxlan.calyx proto 80 onlink",
	"route blackhole fd65::/122 proto 80",
	"route default via 2001:db8:192::1 dev eth0 proto 80",
})

// newRemoteFake returns a fake host with eth0 (its subnets connected) and
// vxlan.calyx.
func newRemoteFake() *Fake {
	f := NewFake()
	eth := f.AddLink("eth0")
	f.AddLink("vxlan.calyx")
	f.AddRoute(Route{Dst: pfx("192.0.2.0/24"), LinkIndex: eth.Index, Protocol: 2, Scope: ScopeLink})
	f.AddRoute(Route{Dst: pfx("2001:db8:192::/64"), LinkIndex: eth.Index, Protocol: 2})
	return f
}

func newTestRemote(t *testing.T, k Kernel, opts ...RemoteOption) *Remote {
	t.Helper()
	r := NewRemote(k, slog.New(slog.DiscardHandler), opts...)
	if err := r.Resync(t.Context()); err != nil {
		t.Fatal(err)
	}
	return r
}

// routeLines is the routes of f's golden text.
func routeLines(f *Fake) []string {
	return slices.DeleteFunc(f.Render(), func(l string) bool { return !strings.HasPrefix(l, "route ") })
}

func mustApply(t *testing.T, r *Remote, desired []RemoteRoute, now time.Time) {
	t.Helper()
	if err := r.Apply(t.Context(), desired, now); err != nil {
		t.Fatal(err)
	}
}

func TestRemoteRouteString(t *testing.T) {
	for _, tc := range []struct {
		r    RemoteRoute
		want string
	}{
		{viaEth0, "10.65.1.0/26 via 192.0.2.12 dev eth0 proto 80"},
		{viaGwOnly, "10.65.3.0/26 via 192.0.2.13 proto 80"},
		{viaVXLAN, "10.65.2.0/26 via 10.65.2.0 dev vxlan.calyx proto 80 onlink"},
		{localBlock, "blackhole 10.65.0.0/26 proto 80"},
		{defaultV4, "default via 192.0.2.1 dev eth0 proto 80"},
		{defaultV6, "default via 2001:db8:192::1 proto 80"},
		{localBlockV6, "blackhole fd65::/122 proto 80"},
		{RemoteRoute{Dst: pfx("10.65.4.0/26"), Dev: "tun0"}, "10.65.4.0/26 dev tun0 proto 80 scope link"},
	} {
		if got := tc.r.String(); got != tc.want {
			t.Errorf("String() = %q, want %q", got, tc.want)
		}
	}
}

func TestRemoteApplyGolden(t *testing.T) {
	f := newRemoteFake()
	r := newTestRemote(t, f)
	mustApply(t, r, allRemote, t0)
	if d := cmp.Diff(allRemoteLines, routeLines(f)); d != "" {
		t.Errorf("routes (-want +got):\n%s", d)
	}
	if w := r.Writes(); w != uint64(len(allRemote)) {
		t.Errorf("%d writes for %d routes", w, len(allRemote))
	}

	// Idempotent: a second Apply, and a restarted Remote (whose cache
	// holds the device the kernel found for the gateway-only route),
	// write nothing.
	before := f.Writes()
	mustApply(t, r, allRemote, t0.Add(time.Second))
	restarted := newTestRemote(t, f)
	mustApply(t, restarted, allRemote, t0.Add(2*time.Second))
	if w := f.Writes() - before; w != 0 {
		t.Errorf("identical Applies made %d writes", w)
	}
	if _, ok := r.NextPrune(); ok {
		t.Error("NextPrune reports work with every route desired")
	}

	// Nothing desired: every owned route goes (grace 0), connected
	// routes stay.
	mustApply(t, restarted, nil, t0.Add(3*time.Second))
	if d := cmp.Diff(connectedFake, routeLines(f)); d != "" {
		t.Errorf("routes after Apply(nil) (-want +got):\n%s", d)
	}
}

func TestRemoteReplace(t *testing.T) {
	f := newRemoteFake()
	r := newTestRemote(t, f)
	mustApply(t, r, []RemoteRoute{viaEth0, localBlock}, t0)
	moved := viaEth0
	moved.Gw = ip("192.0.2.14")
	tunnelled := RemoteRoute{Dst: viaEth0.Dst, Gw: ip("10.65.1.0"), Dev: "vxlan.calyx", OnLink: true}
	for _, step := range []struct {
		desired []RemoteRoute
		want    string
	}{
		{[]RemoteRoute{moved, localBlock}, "route 10.65.1.0/26 via 192.0.2.14 dev eth0 proto 80"},
		{[]RemoteRoute{tunnelled, localBlock}, "route 10.65.1.0/26 via 10.65.1.0 dev vxlan.calyx proto 80 onlink"},
		{[]RemoteRoute{{Dst: viaEth0.Dst, Blackhole: true}, localBlock}, "route blackhole 10.65.1.0/26 proto 80"},
	} {
		before := f.Writes()
		mustApply(t, r, step.desired, t0)
		if w := f.Writes() - before; w != 1 {
			t.Errorf("%d writes to change one route, want 1", w)
		}
		want := sorted(connectedFake, []string{step.want, "route blackhole 10.65.0.0/26 proto 80"})
		if d := cmp.Diff(want, routeLines(f)); d != "" {
			t.Errorf("routes (-want +got):\n%s", d)
		}
	}
}

// Routes changed or deleted behind Calyx's back are corrected by the
// first Apply after a Resync (and not before: Apply trusts its cache).
func TestRemoteDriftCorrectedAfterResync(t *testing.T) {
	f := newRemoteFake()
	r := newTestRemote(t, f)
	desired := []RemoteRoute{viaEth0, viaVXLAN, localBlock, viaEth0V6}
	mustApply(t, r, desired, t0)
	want := routeLines(f)
	eth, _ := f.LinkByName("eth0")
	f.AddRoute(Route{Dst: viaEth0.Dst, LinkIndex: eth.Index, Protocol: Protocol, Gw: ip("192.0.2.99")}) // another gateway
	f.AddRoute(Route{Dst: viaVXLAN.Dst, LinkIndex: eth.Index, Protocol: 4, Gw: ip("192.0.2.98")})       // someone else's
	if err := f.DeleteRoute(Route{Dst: localBlock.Dst, Type: Blackhole}); err != nil {
		t.Fatal(err)
	}
	if err := f.DeleteRoute(Route{Dst: viaEth0V6.Dst}); err != nil {
		t.Fatal(err)
	}
	before := f.Writes()
	mustApply(t, r, desired, t0)
	if w := f.Writes() - before; w != 0 {
		t.Errorf("Apply without a Resync made %d writes", w)
	}
	if err := r.Resync(t.Context()); err != nil {
		t.Fatal(err)
	}
	mustApply(t, r, desired, t0)
	if d := cmp.Diff(want, routeLines(f)); d != "" {
		t.Errorf("routes after Resync and Apply (-want +got):\n%s", d)
	}
	if w := f.Writes() - before; w != 4 {
		t.Errorf("%d writes to repair 4 routes", w)
	}
}

// A non-zero grace keeps routes from before a restart while the BGP
// sessions come back; time is an input.
func TestRemoteGrace(t *testing.T) {
	f := newRemoteFake()
	first := newTestRemote(t, f)
	mustApply(t, first, allRemote, t0)

	// Restart: the peers have not re-advertised yet; only the local
	// block is desired.
	r := newTestRemote(t, f, WithRemoteGrace(time.Minute))
	partial := []RemoteRoute{localBlock, localBlockV6}
	mustApply(t, r, partial, t0)
	if d := cmp.Diff(allRemoteLines, routeLines(f)); d != "" {
		t.Errorf("routes right after the restart (-want +got):\n%s", d)
	}
	if next, ok := r.NextPrune(); !ok || !next.Equal(t0.Add(time.Minute)) {
		t.Errorf("NextPrune = %v %v, want %v", next, ok, t0.Add(time.Minute))
	}
	// One peer is back within the grace: its routes stay, and its clock
	// is gone.
	withPeer := append(slices.Clone(partial), viaEth0, viaEth0V6)
	mustApply(t, r, withPeer, t0.Add(30*time.Second))
	mustApply(t, r, withPeer, t0.Add(59*time.Second))
	if d := cmp.Diff(allRemoteLines, routeLines(f)); d != "" {
		t.Errorf("routes within the grace (-want +got):\n%s", d)
	}
	// A Resync does not restart the clocks.
	if err := r.Resync(t.Context()); err != nil {
		t.Fatal(err)
	}
	mustApply(t, r, withPeer, t0.Add(time.Minute))
	want := sorted(connectedFake, []string{
		"route 10.65.1.0/26 via 192.0.2.12 dev eth0 proto 80",
		"route blackhole 10.65.0.0/26 proto 80",
		"route fd65:1::/122 via 2001:db8:192::12 dev eth0 proto 80",
		"route blackhole fd65::/122 proto 80",
	})
	if d := cmp.Diff(want, routeLines(f)); d != "" {
		t.Errorf("routes after the grace (-want +got):\n%s", d)
	}
	if _, ok := r.NextPrune(); ok {
		t.Error("NextPrune reports work after everything was pruned")
	}
	// A route asked for since the restart is no longer inherited: its
	// withdrawal is acted on at once.
	mustApply(t, r, partial, t0.Add(2*time.Minute))
	if slices.Contains(routeLines(f), "route 10.65.1.0/26 via 192.0.2.12 dev eth0 proto 80") {
		t.Error("a route withdrawn after the restart was kept")
	}
	if _, ok := r.NextPrune(); ok {
		t.Error("NextPrune reports work for routes that are not inherited")
	}
}

// A route that cannot be programmed is reported with its text and does
// not stop the others.
func TestRemoteErrorsDoNotBlockOthers(t *testing.T) {
	f := NewFake()
	eth := f.AddLink("eth0")
	f.AddRoute(Route{Dst: pfx("192.0.2.0/24"), LinkIndex: eth.Index, Protocol: 2, Scope: ScopeLink})
	r := newTestRemote(t, f)
	unreachable := RemoteRoute{Dst: pfx("10.65.5.0/26"), Gw: ip("198.51.100.1")}
	unmasked := RemoteRoute{Dst: pfx("10.65.6.1/26"), Gw: ip("192.0.2.12")}
	duplicate := RemoteRoute{Dst: viaEth0.Dst, Gw: ip("192.0.2.99"), Dev: "eth0"}
	workloadDev := RemoteRoute{Dst: pfx("10.65.7.0/26"), Gw: ip("192.0.2.12"), Dev: "calyx0123456789"}
	desired := []RemoteRoute{viaVXLAN, viaVXLANV6, unreachable, unmasked, duplicate, workloadDev, viaEth0, localBlock}
	err := r.Apply(t.Context(), desired, t0)
	if !IsLinkNotFound(err) {
		t.Errorf("Apply with vxlan.calyx missing: %v, want IsLinkNotFound", err)
	}
	for _, d := range []RemoteRoute{viaVXLAN, viaVXLANV6, unreachable, unmasked, duplicate, workloadDev} {
		if err == nil || !strings.Contains(err.Error(), "adding route "+d.String()+": ") {
			t.Errorf("error %v does not name %s", err, d)
		}
	}
	want := sorted(connectedFake[:1], []string{
		"route 10.65.1.0/26 via 192.0.2.12 dev eth0 proto 80",
		"route blackhole 10.65.0.0/26 proto 80",
	})
	if d := cmp.Diff(want, routeLines(f)); d != "" {
		t.Errorf("routes (-want +got):\n%s", d)
	}

	// The device appears (the vxlan reconciler made it): the next Apply
	// programs its routes.
	f.AddLink("vxlan.calyx")
	if err := r.Apply(t.Context(), []RemoteRoute{viaVXLAN, viaVXLANV6, viaEth0, localBlock}, t0); err != nil {
		t.Fatal(err)
	}
	want = sorted(want, []string{
		"route 10.65.2.0/26 via 10.65.2.0 dev vxlan.calyx proto 80 onlink",
		"route fd65:2::/122 via fd65:2:: dev vxlan.calyx proto 80 onlink",
	})
	if d := cmp.Diff(want, routeLines(f)); d != "" {
		t.Errorf("routes once vxlan.calyx exists (-want +got):\n%s", d)
	}

	// A write failure is reported and retried by the next Apply.
	boom := errors.New("boom")
	f.SetFailWrites(boom)
	if err := r.Apply(t.Context(), []RemoteRoute{viaEth0, localBlock, viaGwOnly}, t0); !errors.Is(err, boom) {
		t.Errorf("Apply with failing writes: %v", err)
	}
	f.SetFailWrites(nil)
	if err := r.Apply(t.Context(), []RemoteRoute{viaEth0, localBlock, viaGwOnly}, t0); err != nil {
		t.Fatal(err)
	}
	want = sorted(connectedFake[:1], []string{
		"route 10.65.1.0/26 via 192.0.2.12 dev eth0 proto 80",
		"route 10.65.3.0/26 via 192.0.2.13 dev eth0 proto 80",
		"route blackhole 10.65.0.0/26 proto 80",
	})
	if d := cmp.Diff(want, routeLines(f)); d != "" {
		t.Errorf("routes after a failed then a successful Apply (-want +got):\n%s", d)
	}
}

func TestRemoteValidate(t *testing.T) {
	for _, d := range []RemoteRoute{
		{},
		{Dst: pfx("10.65.1.1/26"), Gw: ip("192.0.2.1")},
		{Dst: pfx("10.65.1.0/26"), Blackhole: true, Gw: ip("192.0.2.1")},
		{Dst: pfx("10.65.1.0/26"), Blackhole: true, Dev: "eth0"},
		{Dst: pfx("10.65.1.0/26")},
		{Dst: pfx("10.65.1.0/26"), Gw: ip("2001:db8::1")},
		{Dst: pfx("10.65.1.0/26"), Gw: ip("10.65.1.0"), OnLink: true},
		{Dst: pfx("10.65.1.0/26"), Gw: ip("192.0.2.1"), Dev: "calyxaaaaaaaaaa"},
	} {
		if err := d.validate(); err == nil {
			t.Errorf("validate(%+v) = nil, want an error", d)
		}
	}
	for _, d := range allRemote {
		if err := d.validate(); err != nil {
			t.Errorf("validate(%s) = %v", d, err)
		}
	}
}

// The endpoint Reconciler and Remote share protocol 80 on one kernel and
// never touch each other's routes, nor anyone else's.
func TestRemoteAndReconcilerCoexist(t *testing.T) {
	f := newRemoteFake()
	cl := f.AddLink("calyxaaaaaaaaaa")
	eth, _ := f.LinkByName("eth0")
	foreign := []string{
		"route 10.99.0.0/16 via 192.0.2.50 dev eth0 proto static",
		"route default via 192.0.2.254 dev eth0 proto boot",
		"route 10.65.0.98/32 dev calyxaaaaaaaaaa proto 80 scope link", // a stale workload route: the Reconciler's
	}
	f.AddRoute(Route{Dst: pfx("10.99.0.0/16"), LinkIndex: eth.Index, Protocol: 4, Gw: ip("192.0.2.50")})
	f.AddRoute(Route{Dst: pfx("0.0.0.0/0"), LinkIndex: eth.Index, Protocol: 3, Gw: ip("192.0.2.254")})
	f.AddRoute(Route{Dst: pfx("10.65.0.98/32"), LinkIndex: cl.Index, Protocol: Protocol, Scope: ScopeLink})
	ep := Endpoint{Name: "a", IfName: "calyxaaaaaaaaaa", MAC: mac("02:00:00:00:00:0a"), Addrs: addrs("10.65.0.10", "fd65::a")}
	endpointLines := []string{
		"route 10.65.0.10/32 dev calyxaaaaaaaaaa proto 80 scope link",
		"route fd65::a/128 dev calyxaaaaaaaaaa proto 80",
	}
	remoteDesired := []RemoteRoute{viaEth0, viaVXLAN, localBlock, viaEth0V6, localBlockV6}
	remoteLines := []string{
		"route 10.65.1.0/26 via 192.0.2.12 dev eth0 proto 80",
		"route 10.65.2.0/26 via 10.65.2.0 dev vxlan.calyx proto 80 onlink",
		"route blackhole 10.65.0.0/26 proto 80",
		"route fd65:1::/122 via 2001:db8:192::12 dev eth0 proto 80",
		"route blackhole fd65::/122 proto 80",
	}
	rec := newTestReconciler(t, f)
	if err := rec.Update(t.Context(), ep); err != nil {
		t.Fatal(err)
	}
	rem := newTestRemote(t, f)
	mustApply(t, rem, remoteDesired, t0)
	// Remote leaves the stale workload route and the foreign ones.
	if d := cmp.Diff(sorted(connectedFake, foreign, endpointLines, remoteLines), routeLines(f)); d != "" {
		t.Errorf("routes after both reconcile (-want +got):\n%s", d)
	}
	// Both resync (a restart) and prune: the Reconciler removes only the
	// stale workload route.
	for _, resync := range []func() error{
		func() error { return rec.Resync(t.Context()) },
		func() error { return rem.Resync(t.Context()) },
	} {
		if err := resync(); err != nil {
			t.Fatal(err)
		}
	}
	for _, at := range []time.Duration{0, time.Hour} {
		if err := rec.Prune(t.Context(), []Endpoint{ep}, t0.Add(at)); err != nil {
			t.Fatal(err)
		}
		mustApply(t, rem, remoteDesired, t0.Add(at))
	}
	if d := cmp.Diff(sorted(connectedFake, foreign[:2], endpointLines, remoteLines), routeLines(f)); d != "" {
		t.Errorf("routes after both prune (-want +got):\n%s", d)
	}
	// Nothing desired on either side: each removes its own only.
	mustApply(t, rem, nil, t0.Add(2*time.Hour))
	if d := cmp.Diff(sorted(connectedFake, foreign[:2], endpointLines), routeLines(f)); d != "" {
		t.Errorf("routes after Remote's Apply(nil) (-want +got):\n%s", d)
	}
	for _, at := range []time.Duration{2 * time.Hour, 3 * time.Hour} {
		if err := rec.Prune(t.Context(), nil, t0.Add(at)); err != nil {
			t.Fatal(err)
		}
	}
	if d := cmp.Diff(sorted(connectedFake, foreign[:2]), routeLines(f)); d != "" {
		t.Errorf("routes after the Reconciler's Prune(nil) (-want +got):\n%s", d)
	}

	// A desired route to a workload's address is refused, not written.
	if err := rec.Update(t.Context(), ep); err != nil {
		t.Fatal(err)
	}
	if err := rem.Resync(t.Context()); err != nil {
		t.Fatal(err)
	}
	clash := RemoteRoute{Dst: pfx("10.65.0.10/32"), Gw: ip("192.0.2.12"), Dev: "eth0"}
	if err := rem.Apply(t.Context(), []RemoteRoute{clash}, t0); err == nil {
		t.Error("Apply took over a workload's route")
	}
	if !slices.Contains(routeLines(f), endpointLines[0]) {
		t.Errorf("the workload's route is gone: %q", routeLines(f))
	}
}

func TestRemoteDiffers(t *testing.T) {
	f := newRemoteFake()
	r := newTestRemote(t, f)
	mustApply(t, r, []RemoteRoute{viaEth0, viaGwOnly, localBlock}, t0)
	eth, _ := f.LinkByName("eth0")
	cl := f.AddLink("calyxaaaaaaaaaa")
	if err := r.Resync(t.Context()); err != nil {
		t.Fatal(err)
	}
	own := viaEth0.route(eth.Index)
	gwOnly := viaGwOnly.route(eth.Index) // as the kernel reports it
	for _, tc := range []struct {
		name string
		ev   RouteEvent
		want bool
	}{
		{"our own write", RouteEvent{Route: own}, false},
		{"our own write, device found by the kernel", RouteEvent{Route: gwOnly}, false},
		{"ours deleted", RouteEvent{Route: own, Deleted: true}, true},
		{"blackhole deleted", RouteEvent{Route: localBlock.route(0), Deleted: true}, true},
		{"ours replaced", RouteEvent{Route: Route{Dst: own.Dst, LinkIndex: eth.Index, Protocol: Protocol, Gw: ip("192.0.2.99")}}, true},
		{"ours replaced by someone else's", RouteEvent{Route: Route{Dst: own.Dst, LinkIndex: eth.Index, Protocol: 4, Gw: ip("192.0.2.12")}}, true},
		{"an unknown owned route", RouteEvent{Route: Route{Dst: pfx("10.65.9.0/26"), Protocol: Protocol, Type: Blackhole}}, true},
		{"a deletion we made", RouteEvent{Route: Route{Dst: pfx("10.65.9.0/26"), Protocol: Protocol, Type: Blackhole}, Deleted: true}, false},
		{"someone else's", RouteEvent{Route: Route{Dst: pfx("10.99.0.0/16"), LinkIndex: eth.Index, Protocol: 4, Gw: ip("192.0.2.1")}}, false},
		{"a workload's", RouteEvent{Route: Route{Dst: pfx("10.65.0.10/32"), LinkIndex: cl.Index, Protocol: Protocol, Scope: ScopeLink}}, false},
	} {
		if got := r.Differs(tc.ev); got != tc.want {
			t.Errorf("%s: Differs = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// The kernel's routes depend only on the last desired list, not on the
// path that led there, with or without a grace.
func TestRemotePathIndependence(t *testing.T) {
	moved := viaEth0
	moved.Gw = ip("192.0.2.14")
	tunnelled := RemoteRoute{Dst: viaEth0.Dst, Gw: ip("10.65.1.0"), Dev: "vxlan.calyx", OnLink: true}
	states := []struct {
		name    string
		desired []RemoteRoute
	}{
		{name: "empty"},
		{name: "all", desired: allRemote},
		{name: "local blocks", desired: []RemoteRoute{localBlock, localBlockV6}},
		{name: "peer moved", desired: []RemoteRoute{moved, localBlock, defaultV6}},
		{name: "peer tunnelled", desired: []RemoteRoute{tunnelled, viaVXLANV6, localBlock, defaultV4}},
		{name: "v6 only", desired: []RemoteRoute{viaEth0V6, viaVXLANV6, localBlockV6, defaultV6}},
	}
	// Each state's golden text, from an empty start.
	want := map[string][]string{}
	for _, st := range states {
		f := newRemoteFake()
		mustApply(t, newTestRemote(t, f), st.desired, t0)
		want[st.name] = routeLines(f)
	}
	if d := cmp.Diff(allRemoteLines, want["all"]); d != "" {
		t.Fatalf("state all (-want +got):\n%s", d)
	}
	for _, grace := range []time.Duration{0, 30 * time.Second} {
		for seed := range uint64(30) {
			rng := rand.New(rand.NewPCG(seed, 11))
			f := newRemoteFake()
			r := newTestRemote(t, f, WithRemoteGrace(grace))
			now := t0
			var path []string
			for range 8 {
				st := states[rng.IntN(len(states))]
				path = append(path, st.name)
				// Like calyx-node: Apply, then again when NextPrune says;
				// sometimes a Resync (a periodic one) in between, and the
				// desired list in another order.
				desired := slices.Clone(st.desired)
				rng.Shuffle(len(desired), func(i, j int) { desired[i], desired[j] = desired[j], desired[i] })
				mustApply(t, r, desired, now)
				if rng.IntN(2) == 0 {
					if err := r.Resync(t.Context()); err != nil {
						t.Fatal(err)
					}
				}
				if next, ok := r.NextPrune(); ok {
					now = next
					mustApply(t, r, desired, now)
				}
				if d := cmp.Diff(want[st.name], routeLines(f)); d != "" {
					t.Fatalf("grace %s, path %q (-want +got):\n%s", grace, path, d)
				}
				before := f.Writes()
				mustApply(t, r, desired, now)
				if w := f.Writes() - before; w != 0 {
					t.Fatalf("grace %s, path %q: a repeated Apply made %d writes", grace, path, w)
				}
				now = now.Add(time.Second)
			}
		}
	}
}
