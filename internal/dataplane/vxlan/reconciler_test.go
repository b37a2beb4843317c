package vxlan

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading golden file (run with -update to create it): %v", err)
	}
	if d := cmp.Diff(string(want), got); d != "" {
		t.Errorf("%s: kernel differs from the golden file (-want +got):\n%s", name, d)
	}
}

// Fixed MACs keep the golden files readable.
var (
	macA = mustMAC("02:aa:00:00:00:01")
	macB = mustMAC("02:bb:00:00:00:02")
	macC = mustMAC("02:cc:00:00:00:03")
)

func mustMAC(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

func v4Overlay(peers ...Peer) *Overlay {
	return &Overlay{
		Device: Device{MTU: 1450, MAC: macA, Local: netip.MustParseAddr("192.0.2.1"), Parent: "eth0", Addr: netip.MustParsePrefix("10.244.0.1/32")},
		Peers:  peers,
	}
}

func v6Overlay(peers ...Peer) *Overlay {
	return &Overlay{
		Device: Device{MTU: 1430, MAC: macA, Local: netip.MustParseAddr("2001:db8::1"), Addr: netip.MustParsePrefix("fd00:244::1/128")},
		Peers:  peers,
	}
}

var (
	peerB   = Peer{Node: "node-b", TunnelAddr: netip.MustParseAddr("10.244.1.1"), MAC: macB, Underlay: netip.MustParseAddr("192.0.2.2")}
	peerC   = Peer{Node: "node-c", TunnelAddr: netip.MustParseAddr("10.244.2.1"), MAC: macC, Underlay: netip.MustParseAddr("192.0.2.3")}
	peerB6  = Peer{Node: "node-b", TunnelAddr: netip.MustParseAddr("fd00:244::2"), MAC: macB, Underlay: netip.MustParseAddr("2001:db8::2")}
	peerC6  = Peer{Node: "node-c", TunnelAddr: netip.MustParseAddr("fd00:244::3"), MAC: macC, Underlay: netip.MustParseAddr("2001:db8::3")}
	peerBMv = Peer{Node: "node-b", TunnelAddr: netip.MustParseAddr("10.244.1.1"), MAC: macB, Underlay: netip.MustParseAddr("198.51.100.2")}
)

// newFakeHost returns a fake kernel with an underlay eth0 (and a
// neighbour on it, which the reconciler must leave alone) and a
// reconciler over it, resynced.
func newFakeHost(t *testing.T) (*Fake, *Reconciler) {
	t.Helper()
	f := NewFake()
	f.Seed(Link{Name: "eth0", Kind: "veth", MTU: 1500, MAC: "02:00:00:00:00:e0", Up: true})
	f.SeedAddr("eth0", netip.MustParsePrefix("192.0.2.1/24"))
	f.SeedNeigh("eth0", Neigh{IP: netip.MustParseAddr("192.0.2.254"), MAC: "02:00:00:00:00:fe", Permanent: true})
	r := New(f, nil)
	if err := r.Resync(t.Context()); err != nil {
		t.Fatal(err)
	}
	return f, r
}

func mustApply(t *testing.T, r *Reconciler, d Desired) {
	t.Helper()
	if err := r.Apply(t.Context(), d); err != nil {
		t.Fatalf("Apply(%s): %v", d, err)
	}
}

func mustResync(t *testing.T, r *Reconciler) {
	t.Helper()
	if err := r.Resync(t.Context()); err != nil {
		t.Fatalf("Resync: %v", err)
	}
}

type step struct {
	name string
	d    Desired
	// before runs on the fake before the step's Apply (e.g. drift).
	before func(*Fake)
	resync bool // Resync before Apply
}

// TestApplyGolden applies sequences of desired states and records, after
// each step, how many writes it made and what the kernel holds.
func TestApplyGolden(t *testing.T) {
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"create", []step{
			{name: "v4 device with two peers", d: Desired{V4: v4Overlay(peerB, peerC)}},
			{name: "the same again writes nothing", d: Desired{V4: v4Overlay(peerB, peerC)}},
		}},
		{"dual-stack", []step{
			{name: "v4 and v6 devices", d: Desired{V4: v4Overlay(peerB), V6: v6Overlay(peerB6, peerC6)}},
			{name: "after a resync the same writes nothing", d: Desired{V4: v4Overlay(peerB), V6: v6Overlay(peerB6, peerC6)}, resync: true},
		}},
		{"peers", []step{
			{name: "one peer", d: Desired{V4: v4Overlay(peerB)}},
			{name: "a second peer is added", d: Desired{V4: v4Overlay(peerB, peerC)}},
			{name: "the first peer is removed", d: Desired{V4: v4Overlay(peerC)}},
			{name: "a peer's underlay address changes", d: Desired{V4: v4Overlay(peerC, peerBMv)}},
			{name: "no peers", d: Desired{V4: v4Overlay()}},
		}},
		{"recreate", []step{
			{name: "created", d: Desired{V4: v4Overlay(peerB)}},
			{name: "VNI changes: re-created with its entries", d: Desired{V4: func() *Overlay {
				o := v4Overlay(peerB)
				o.Device.VNI = 5000
				return o
			}()}},
			{name: "port changes: re-created", d: Desired{V4: func() *Overlay {
				o := v4Overlay(peerB)
				o.Device.VNI, o.Device.Port = 5000, 8472
				return o
			}()}},
			{name: "no parent: re-created", d: Desired{V4: func() *Overlay {
				o := v4Overlay(peerB)
				o.Device.VNI, o.Device.Port, o.Device.Parent = 5000, 8472, ""
				return o
			}()}},
		}},
		{"in-place", []step{
			{name: "created", d: Desired{V4: v4Overlay(peerB)}},
			{name: "MTU changes in place", d: Desired{V4: func() *Overlay {
				o := v4Overlay(peerB)
				o.Device.MTU = 8950
				return o
			}()}},
			{name: "MAC and tunnel address change in place", d: Desired{V4: func() *Overlay {
				o := v4Overlay(peerB)
				o.Device.MTU, o.Device.MAC, o.Device.Addr = 8950, mustMAC("02:aa:00:00:00:99"), netip.MustParsePrefix("10.244.0.2/32")
				return o
			}()}},
		}},
		{"remove", []step{
			{name: "both families", d: Desired{V4: v4Overlay(peerB), V6: v6Overlay(peerB6)}},
			{name: "v6 removed", d: Desired{V4: v4Overlay(peerB)}},
			{name: "v4 removed", d: Desired{}},
			{name: "nothing to remove writes nothing", d: Desired{}},
		}},
		{"drift", []step{
			{name: "created", d: Desired{V4: v4Overlay(peerB, peerC)}},
			{name: "entries deleted and added behind its back, resync and apply repair it",
				d: Desired{V4: v4Overlay(peerB, peerC)}, resync: true, before: func(f *Fake) {
					f.Unseed(DeviceV4, peerB.TunnelAddr)
					f.Unseed(DeviceV4, peerC.Underlay)
					f.SeedNeigh(DeviceV4, Neigh{IP: netip.MustParseAddr("10.244.9.9"), MAC: "02:99:00:00:00:09", Permanent: true})
					f.SeedNeigh(DeviceV4, Neigh{IP: peerC.TunnelAddr, MAC: "02:99:00:00:00:0c", Permanent: true})
					f.SeedFDB(DeviceV4, FDB{MAC: "02:99:00:00:00:09", Dst: netip.MustParseAddr("192.0.2.99"), Permanent: true})
					f.SeedFDB(DeviceV4, FDB{MAC: macC.String(), Dst: netip.MustParseAddr("192.0.2.98"), Permanent: true})
					f.SeedAddr(DeviceV4, netip.MustParsePrefix("10.244.0.77/32"))
				}},
		}},
		{"stale-device", []step{
			{name: "a learning device with another VNI and a veth holding the v6 name are replaced",
				d: Desired{V4: v4Overlay(peerB), V6: v6Overlay(peerB6)}, resync: true, before: func(f *Fake) {
					f.Seed(Link{Name: DeviceV4, Kind: KindVXLAN, VNI: 1, Port: 4789, Local: netip.MustParseAddr("192.0.2.1"), Learning: true, MTU: 1500, MAC: "02:00:00:00:00:01"})
					f.SeedNeigh(DeviceV4, Neigh{IP: netip.MustParseAddr("10.244.9.9"), MAC: "02:99:00:00:00:09", Permanent: true})
					f.Seed(Link{Name: DeviceV6, Kind: "veth", MTU: 1500, MAC: "02:00:00:00:00:02"})
				}},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, r := newFakeHost(t)
			var b strings.Builder
			for _, s := range tc.steps {
				if s.before != nil {
					s.before(f)
				}
				if s.resync {
					mustResync(t, r)
				}
				before := f.Writes()
				mustApply(t, r, s.d)
				if got, want := r.Writes(), uint64(f.Writes()); got != want {
					t.Errorf("%s: the reconciler counts %d writes, the kernel %d", s.name, got, want)
				}
				fmt.Fprintf(&b, "# %s\n# writes: %d\n%s\n", s.name, f.Writes()-before, f.Render())
			}
			golden(t, tc.name, b.String())
		})
	}
}

// TestIdempotent: a second identical Apply, and an Apply by a restarted
// reconciler after its Resync, write nothing.
func TestIdempotent(t *testing.T) {
	d := Desired{V4: v4Overlay(peerB, peerC), V6: v6Overlay(peerB6, peerC6)}
	f, r := newFakeHost(t)
	mustApply(t, r, d)
	first := f.Render()
	before := f.Writes()
	mustApply(t, r, d)
	if w := f.Writes() - before; w != 0 {
		t.Errorf("second Apply made %d writes", w)
	}
	restarted := New(f, nil)
	mustResync(t, restarted)
	mustApply(t, restarted, d)
	if w := restarted.Writes(); w != 0 {
		t.Errorf("Apply after a restart made %d writes", w)
	}
	// Without a Resync, Apply reads what it does not know first.
	unsynced := New(f, nil)
	mustApply(t, unsynced, d)
	if w := unsynced.Writes(); w != 0 {
		t.Errorf("Apply by a reconciler that never resynced made %d writes", w)
	}
	if d := cmp.Diff(first, f.Render()); d != "" {
		t.Errorf("kernel changed (-first +now):\n%s", d)
	}
}

// TestInPlaceVersusRecreate checks by link index that an MTU change keeps
// the device and a VNI change makes a new one.
func TestInPlaceVersusRecreate(t *testing.T) {
	f, r := newFakeHost(t)
	o := v4Overlay(peerB)
	mustApply(t, r, Desired{V4: o})
	idx := func() int {
		l, err := f.LinkByName(DeviceV4)
		if err != nil {
			t.Fatal(err)
		}
		return l.Index
	}
	first := idx()
	o.Device.MTU = 1400
	before := f.Writes()
	mustApply(t, r, Desired{V4: o})
	if got := idx(); got != first {
		t.Errorf("MTU change re-created the device (index %d -> %d)", first, got)
	}
	if w := f.Writes() - before; w != 1 {
		t.Errorf("MTU change made %d writes, want 1", w)
	}
	o.Device.VNI = 77
	mustApply(t, r, Desired{V4: o})
	if got := idx(); got == first {
		t.Error("VNI change kept the device")
	}
}

// TestPeerErrorsDoNotStopOthers: a peer whose entries cannot be written,
// and invalid or conflicting peers, are reported with their names while
// the other peers are programmed; the next Apply retries.
func TestPeerErrorsDoNotStopOthers(t *testing.T) {
	f, r := newFakeHost(t)
	f.SetFailFor(peerB.Underlay)
	bad := Peer{Node: "node-bad", TunnelAddr: netip.MustParseAddr("fd00::9"), MAC: macC, Underlay: netip.MustParseAddr("192.0.2.9")}
	dupAddr := Peer{Node: "node-dup", TunnelAddr: peerC.TunnelAddr, MAC: mustMAC("02:dd:00:00:00:04"), Underlay: netip.MustParseAddr("192.0.2.4")}
	self := Peer{Node: "node-self", TunnelAddr: netip.MustParseAddr("10.244.0.1"), MAC: mustMAC("02:ee:00:00:00:05"), Underlay: netip.MustParseAddr("192.0.2.5")}
	err := r.Apply(t.Context(), Desired{V4: v4Overlay(peerB, peerC, bad, dupAddr, self)})
	if err == nil {
		t.Fatal("Apply succeeded")
	}
	for _, want := range []string{
		"programming vxlan.calyx",
		"peer node-b: adding FDB entry 02:bb:00:00:00:02 dev vxlan.calyx dst 192.0.2.2",
		"peer node-bad (fd00::9): tunnel address \"fd00::9\" is not an IPv4 address",
		"peer node-dup (10.244.2.1): tunnel address 10.244.2.1 is also peer node-c's",
		"peer node-self (10.244.0.1): its tunnel address is this host's",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	got := f.Render()
	for _, want := range []string{
		"neigh 10.244.2.1 dev vxlan.calyx lladdr 02:cc:00:00:00:03 PERMANENT",
		"fdb 02:cc:00:00:00:03 dev vxlan.calyx dst 192.0.2.3 self permanent",
		"neigh 10.244.1.1 dev vxlan.calyx lladdr 02:bb:00:00:00:02 PERMANENT", // the neighbour entry is still written
	} {
		if !strings.Contains(got, want) {
			t.Errorf("kernel lacks %q:\n%s", want, got)
		}
	}
	f.SetFailFor(netip.Addr{})
	if err := r.Apply(t.Context(), Desired{V4: v4Overlay(peerB, peerC)}); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if want := "fdb 02:bb:00:00:00:02 dev vxlan.calyx dst 192.0.2.2 self permanent"; !strings.Contains(f.Render(), want) {
		t.Errorf("retry did not add %q:\n%s", want, f.Render())
	}
}

// TestInvalidDevice: an invalid device is an error naming it, and nothing
// is written for it; the other family is still programmed.
func TestInvalidDevice(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Device)
		want string
	}{
		{"v6 local on the v4 device", func(d *Device) { d.Local = netip.MustParseAddr("2001:db8::1") }, "local address"},
		{"not a host prefix", func(d *Device) { d.Addr = netip.MustParsePrefix("10.244.0.0/26") }, "tunnel address"},
		{"multicast MAC", func(d *Device) { d.MAC = mustMAC("03:00:00:00:00:01") }, "unicast"},
		{"no MAC", func(d *Device) { d.MAC = nil }, "unicast"},
		{"VNI too large", func(d *Device) { d.VNI = 1 << 24 }, "VNI"},
		{"MTU zero", func(d *Device) { d.MTU = 0 }, "MTU"},
		{"parent name too long", func(d *Device) { d.Parent = "a-very-long-interface" }, "parent"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, r := newFakeHost(t)
			o := v4Overlay(peerB)
			tc.mod(&o.Device)
			err := r.Apply(t.Context(), Desired{V4: o, V6: v6Overlay(peerB6)})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), DeviceV4) {
				t.Errorf("Apply: %v, want an error about %s on %s", err, tc.want, DeviceV4)
			}
			if _, err := f.LinkByName(DeviceV4); !IsLinkNotFound(err) {
				t.Errorf("%s was created", DeviceV4)
			}
			if _, err := f.LinkByName(DeviceV6); err != nil {
				t.Errorf("%s: %v", DeviceV6, err)
			}
		})
	}
}

// TestOwnsOnlyItsDevices: with other links, including another VXLAN
// device with entries, everything the reconciler does (create, drift
// repair, removal) leaves them as they were.
func TestOwnsOnlyItsDevices(t *testing.T) {
	f, r := newFakeHost(t)
	f.Seed(Link{Name: "flannel.1", Kind: KindVXLAN, VNI: 1, Port: 8472, Local: netip.MustParseAddr("192.0.2.1"), MTU: 1450, MAC: "02:00:00:00:0f:01", Up: true})
	f.SeedAddr("flannel.1", netip.MustParsePrefix("10.1.0.0/32"))
	f.SeedNeigh("flannel.1", Neigh{IP: netip.MustParseAddr("10.1.1.0"), MAC: "02:00:00:00:0f:02", Permanent: true})
	f.SeedFDB("flannel.1", FDB{MAC: "02:00:00:00:0f:02", Dst: netip.MustParseAddr("192.0.2.2"), Permanent: true})
	mustResync(t, r)
	others := f.Render()
	mustApply(t, r, Desired{V4: v4Overlay(peerB), V6: v6Overlay(peerC6)})
	mustResync(t, r)
	mustApply(t, r, Desired{V4: v4Overlay(peerC)})
	mustApply(t, r, Desired{})
	if d := cmp.Diff(others, f.Render()); d != "" {
		t.Errorf("other links changed (-before +after):\n%s", d)
	}
}

// TestFailedWriteRereads: after a failed write the device is read again
// before the next Apply writes, so a device deleted behind the
// reconciler's back is created again without a Resync.
func TestFailedWriteRereads(t *testing.T) {
	f, r := newFakeHost(t)
	mustApply(t, r, Desired{V4: v4Overlay(peerB)})
	want := f.Render()
	l, err := f.LinkByName(DeviceV4)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.DeleteLink(l); err != nil {
		t.Fatal(err)
	}
	err = r.Apply(t.Context(), Desired{V4: v4Overlay(peerB, peerC)})
	if !IsLinkNotFound(err) {
		t.Fatalf("Apply on a vanished device: %v, want a link-not-found error", err)
	}
	mustApply(t, r, Desired{V4: v4Overlay(peerB)})
	if d := cmp.Diff(want, f.Render()); d != "" {
		t.Errorf("kernel after recovery (-want +got):\n%s", d)
	}
	f.SetFailWrites(errors.New("injected"))
	if err := r.Apply(t.Context(), Desired{}); err == nil || !strings.Contains(err.Error(), "removing vxlan.calyx: injected") {
		t.Errorf("Apply with failing writes: %v", err)
	}
}

// TestPathIndependence: whatever sequence of desired states (with or
// without resyncs and drift in between) precedes it, applying a state
// leaves the kernel as applying it to a fresh host does.
func TestPathIndependence(t *testing.T) {
	mtu9000 := v4Overlay(peerB, peerC)
	mtu9000.Device.MTU = 8950
	vni := v6Overlay(peerB6)
	vni.Device.VNI = 6096
	moved := v4Overlay(peerBMv)
	moved.Device.MAC = macC
	moved.Device.Parent = ""
	states := []Desired{
		{},
		{V4: v4Overlay()},
		{V4: v4Overlay(peerB)},
		{V4: v4Overlay(peerB, peerC)},
		{V4: v4Overlay(peerC), V6: v6Overlay(peerB6, peerC6)},
		{V6: v6Overlay(peerC6)},
		{V4: mtu9000, V6: vni},
		{V4: moved},
	}
	want := make([]string, len(states))
	for i, s := range states {
		f, r := newFakeHost(t)
		mustApply(t, r, s)
		want[i] = f.Render()
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for run := range 200 {
		f, r := newFakeHost(t)
		var path []string
		for range 1 + rng.IntN(6) {
			i := rng.IntN(len(states))
			switch rng.IntN(4) {
			case 0:
				mustResync(t, r)
				path = append(path, "resync")
			case 1:
				f.Unseed(DeviceV4, peerB.TunnelAddr)
				f.SeedNeigh(DeviceV6, Neigh{IP: netip.MustParseAddr("fd00::99"), MAC: "02:99:00:00:00:99", Permanent: true})
				mustResync(t, r)
				path = append(path, "drift+resync")
			}
			mustApply(t, r, states[i])
			path = append(path, fmt.Sprint(i))
			if d := cmp.Diff(want[i], f.Render()); d != "" {
				t.Fatalf("run %d, path %v: kernel differs from a direct Apply of state %d (-want +got):\n%s", run, path, i, d)
			}
			before := f.Writes()
			mustApply(t, r, states[i])
			if w := f.Writes() - before; w != 0 {
				t.Fatalf("run %d, path %v: repeating state %d made %d writes", run, path, i, w)
			}
		}
	}
}

func TestApplyHonoursContext(t *testing.T) {
	_, r := newFakeHost(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := r.Apply(ctx, Desired{V4: v4Overlay()}); !errors.Is(err, context.Canceled) {
		t.Errorf("Apply with a cancelled context: %v", err)
	}
	if r.Writes() != 0 {
		t.Errorf("Apply with a cancelled context wrote")
	}
}
