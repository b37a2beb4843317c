package vxlan

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"testing"

	"github.com/calyx-net/calyx/internal/netns"
	"github.com/calyx-net/calyx/internal/testnet"
	cnins "github.com/containernetworking/plugins/pkg/ns"
	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// kernelHost is one "host" of a kernel test: a network namespace with an
// underlay eth0, the reconciler's Kernel and a separate netlink handle
// for the test's own reads and writes.
type kernelHost struct {
	name     string
	ns       cnins.NetNS
	k        *Netlink
	h        *netlink.Handle
	r        *Reconciler
	n        int // 1 or 2: the last byte of its addresses
	underlay struct{ v4, v6 netip.Addr }
}

// newKernelHosts creates two host namespaces joined by a veth pair
// (192.0.2.1/24 and 2001:db8::1/64 on one side, .2 and ::2 on the other),
// optionally each with default routes via a gateway on the underlay that
// does not exist. Everything lives in namespaces the test removes.
func newKernelHosts(t *testing.T, defaultRoute bool) [2]*kernelHost {
	t.Helper()
	var hosts [2]*kernelHost
	for i := range hosts {
		n := testnet.NewNS(t)
		nsh, err := netns.Open(n.Path())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = nsh.Close() })
		k, err := NewNetlink(nsh)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(k.Close)
		h, err := nsh.NewNetlinkHandle()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(h.Close)
		hosts[i] = &kernelHost{name: fmt.Sprintf("node-%c", 'a'+i), ns: n, k: k, h: h, r: New(k, testnet.Logger(t)), n: i + 1}
		hosts[i].underlay.v4 = netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)})
		hosts[i].underlay.v6 = netip.MustParseAddr(fmt.Sprintf("2001:db8::%d", i+1))
	}
	veth := &netlink.Veth{
		LinkAttrs: netlink.LinkAttrs{Name: "eth0", MTU: 1500},
		PeerName:  "eth0", PeerNamespace: netlink.NsFd(int(hosts[1].ns.Fd())),
	}
	if err := hosts[0].h.LinkAdd(veth); err != nil {
		t.Fatalf("creating the underlay veth: %v", err)
	}
	for _, hs := range hosts {
		l, err := hs.h.LinkByName("eth0")
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range []*netlink.Addr{
			{IPNet: &net.IPNet{IP: hs.underlay.v4.AsSlice(), Mask: net.CIDRMask(24, 32)}},
			{IPNet: &net.IPNet{IP: hs.underlay.v6.AsSlice(), Mask: net.CIDRMask(64, 128)}, Flags: unix.IFA_F_NODAD},
		} {
			if err := hs.h.AddrAdd(l, a); err != nil {
				t.Fatalf("%s: adding %s: %v", hs.name, a, err)
			}
		}
		if err := hs.h.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
		if defaultRoute {
			for _, gw := range []string{"192.0.2.254", "2001:db8::fe"} {
				if err := hs.h.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Gw: net.ParseIP(gw)}); err != nil {
					t.Fatalf("%s: default route via %s: %v", hs.name, gw, err)
				}
			}
		}
	}
	return hosts
}

func (hs *kernelHost) tunnel(v6 bool) netip.Addr {
	if v6 {
		return netip.MustParseAddr(fmt.Sprintf("fd00:244::%d", hs.n))
	}
	return netip.AddrFrom4([4]byte{10, 244, 0, byte(hs.n)})
}

// desired is what the calc package would compute for hs with the other
// host as its peer (none when peer is nil).
func (hs *kernelHost) desired(peer *kernelHost, vni int) Desired {
	var d Desired
	for _, v6 := range []bool{false, true} {
		o := &Overlay{Device: Device{
			VNI: vni, MTU: MTU(1500, v6), MAC: MACFor(hs.name),
			Local: hs.underlay.v4, Parent: "eth0", Addr: netip.PrefixFrom(hs.tunnel(false), 32),
		}}
		if v6 {
			o.Device.Local, o.Device.Parent, o.Device.Addr = hs.underlay.v6, "", netip.PrefixFrom(hs.tunnel(true), 128)
		}
		if peer != nil {
			p := Peer{Node: peer.name, TunnelAddr: peer.tunnel(v6), MAC: MACFor(peer.name), Underlay: peer.underlay.v4}
			if v6 {
				p.Underlay = peer.underlay.v6
			}
			o.Peers = []Peer{p}
		}
		if v6 {
			d.V6 = o
		} else {
			d.V4 = o
		}
	}
	return d
}

func (hs *kernelHost) apply(t *testing.T, d Desired) uint64 {
	t.Helper()
	before := hs.r.Writes()
	if err := hs.r.Apply(t.Context(), d); err != nil {
		t.Fatalf("%s: Apply: %v", hs.name, err)
	}
	return hs.r.Writes() - before
}

// addRoutes does what the route reconciler does in production: a route
// to the peer's tunnel addresses through the device, and a route to an
// address behind the peer (on its lo) via the peer's tunnel address,
// onlink.
func (hs *kernelHost) addRoutes(t *testing.T, peer *kernelHost) {
	t.Helper()
	for _, v6 := range []bool{false, true} {
		name := DeviceV4
		if v6 {
			name = DeviceV6
		}
		l, err := hs.h.LinkByName(name)
		if err != nil {
			t.Fatal(err)
		}
		dst := peer.tunnel(v6)
		r := &netlink.Route{LinkIndex: l.Attrs().Index, Dst: hostNet(dst), Scope: netlink.SCOPE_LINK}
		if v6 {
			r.Scope = netlink.SCOPE_UNIVERSE
		}
		if err := hs.h.RouteReplace(r); err != nil {
			t.Fatalf("%s: route to %s: %v", hs.name, dst, err)
		}
		if !v6 {
			behind := &netlink.Route{
				LinkIndex: l.Attrs().Index, Dst: hostNet(peer.behind()), Gw: dst.AsSlice(), Flags: int(netlink.FLAG_ONLINK),
			}
			if err := hs.h.RouteReplace(behind); err != nil {
				t.Fatalf("%s: route to %s: %v", hs.name, peer.behind(), err)
			}
		}
	}
}

// behind is an address on hs's lo, reached through its tunnel address.
func (hs *kernelHost) behind() netip.Addr { return netip.AddrFrom4([4]byte{10, 99, 0, byte(hs.n)}) }

func hostNet(a netip.Addr) *net.IPNet {
	return &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(a.BitLen(), a.BitLen())}
}

func (hs *kernelHost) ping(t *testing.T, dst netip.Addr, extra ...string) bool {
	t.Helper()
	ok, err := testnet.Ping(t.Context(), hs.ns, dst.String(), extra...)
	if err != nil {
		t.Fatalf("%s: ping %s: %v", hs.name, dst, err)
	}
	return ok
}

// entries lists the permanent neighbour and FDB entries on the host's
// devices, read with netlink.
func (hs *kernelHost) entries(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, name := range []string{DeviceV4, DeviceV6} {
		l, err := hs.h.LinkByName(name)
		if err != nil {
			continue
		}
		idx := l.Attrs().Index
		for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6, unix.AF_BRIDGE} {
			ns, err := hs.h.NeighList(idx, fam)
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range ns {
				if n.LinkIndex != idx || n.State&netlink.NUD_PERMANENT == 0 || len(n.HardwareAddr) != 6 || n.HardwareAddr[0]&0x01 != 0 {
					continue
				}
				ip, _ := netip.AddrFromSlice(n.IP)
				if fam == unix.AF_BRIDGE {
					out = append(out, "fdb "+FDBText(FDB{MAC: n.HardwareAddr.String(), Dst: ip.Unmap(), Permanent: true}, name))
				} else {
					out = append(out, "neigh "+NeighText(Neigh{IP: ip.Unmap(), MAC: n.HardwareAddr.String(), Permanent: true}, name))
				}
			}
		}
	}
	slices.Sort(out)
	return out
}

func (hs *kernelHost) wantEntries(peer *kernelHost) []string {
	m := MACFor(peer.name).String()
	out := []string{
		"fdb " + m + " dev " + DeviceV4 + " dst " + peer.underlay.v4.String() + " self permanent",
		"fdb " + m + " dev " + DeviceV6 + " dst " + peer.underlay.v6.String() + " self permanent",
		"neigh " + peer.tunnel(false).String() + " dev " + DeviceV4 + " lladdr " + m + " PERMANENT",
		"neigh " + peer.tunnel(true).String() + " dev " + DeviceV6 + " lladdr " + m + " PERMANENT",
	}
	slices.Sort(out)
	return out
}

// run runs a command (ip, bridge) inside the host's namespace.
func (hs *kernelHost) run(t *testing.T, name string, args ...string) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := hs.ns.Do(func(cnins.NetNS) error { return cmd.Start() }); err != nil {
		t.Fatalf("%s: starting %s: %v", hs.name, name, err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("%s: %s %q: %v: %s", hs.name, name, args, err, out.String())
	}
}

func (hs *kernelHost) linkIndex(t *testing.T, name string) int {
	t.Helper()
	l, err := hs.h.LinkByName(name)
	if err != nil {
		t.Fatalf("%s: %s: %v", hs.name, name, err)
	}
	return l.Attrs().Index
}

// TestNetlinkOverlay programs two hosts' overlays against each other and
// proves with real packets that they carry traffic, at the full device
// MTU and not one byte more, for IPv4 and IPv6, with and without default
// routes; then exercises peer removal, drift repair, a VNI change and
// removal against the kernel.
func TestNetlinkOverlay(t *testing.T) {
	for _, defaultRoute := range []bool{false, true} {
		t.Run(fmt.Sprintf("default-route=%v", defaultRoute), func(t *testing.T) {
			hosts := newKernelHosts(t, defaultRoute)
			a, b := hosts[0], hosts[1]
			for _, hs := range hosts {
				if err := hs.r.Resync(t.Context()); err != nil {
					t.Fatal(err)
				}
			}
			a.apply(t, a.desired(b, 0))
			b.apply(t, b.desired(a, 0))
			a.addRoutes(t, b)
			b.addRoutes(t, a)
			b.run(t, "ip", "addr", "add", b.behind().String()+"/32", "dev", "lo")

			// Read back: device attributes and entries as desired.
			for _, hs := range hosts {
				for _, tc := range []struct {
					name string
					want string
				}{
					{DeviceV4, fmt.Sprintf("%s vxlan id 4096 local %s dev eth0 dstport 4789 nolearning mtu 1450 address %s up", DeviceV4, hs.underlay.v4, MACFor(hs.name))},
					{DeviceV6, fmt.Sprintf("%s vxlan id 4096 local %s dstport 4789 nolearning mtu 1430 address %s up", DeviceV6, hs.underlay.v6, MACFor(hs.name))},
				} {
					l, err := hs.k.LinkByName(tc.name)
					if err != nil {
						t.Fatal(err)
					}
					if got := LinkText(l); got != tc.want {
						t.Errorf("%s: %s\n got %s\nwant %s", hs.name, tc.name, got, tc.want)
					}
				}
				peer := hosts[2-hs.n]
				if d := cmp.Diff(hs.wantEntries(peer), hs.entries(t)); d != "" {
					t.Errorf("%s: entries (-want +got):\n%s", hs.name, d)
				}
			}

			// Idempotent against the kernel, and after a restart.
			if w := a.apply(t, a.desired(b, 0)); w != 0 {
				t.Errorf("second Apply made %d writes", w)
			}
			restarted := New(a.k, testnet.Logger(t))
			if err := restarted.Resync(t.Context()); err != nil {
				t.Fatal(err)
			}
			if err := restarted.Apply(t.Context(), a.desired(b, 0)); err != nil {
				t.Fatal(err)
			}
			if w := restarted.Writes(); w != 0 {
				t.Errorf("Apply after a restart made %d writes", w)
			}

			// Packets cross the overlay, both families, at the full MTU
			// with DF set; one byte more does not fit the device.
			rxBefore := rxPackets(t, b, DeviceV4)
			for _, tc := range []struct {
				dst   netip.Addr
				extra []string
				want  bool
			}{
				{b.tunnel(false), nil, true},
				{b.tunnel(true), nil, true},
				{b.behind(), nil, true},
				{b.tunnel(false), []string{"-M", "do", "-s", "1372"}, true}, // 1400-byte packet
				{b.tunnel(false), []string{"-M", "do", "-s", "1422"}, true}, // 1450: the device MTU
				{b.tunnel(false), []string{"-M", "do", "-s", "1423"}, false},
				{b.tunnel(true), []string{"-M", "do", "-s", "1352"}, true}, // 1400-byte packet
				{b.tunnel(true), []string{"-M", "do", "-s", "1382"}, true}, // 1430: the device MTU
				{b.tunnel(true), []string{"-M", "do", "-s", "1383"}, false},
			} {
				if got := a.ping(t, tc.dst, tc.extra...); got != tc.want {
					t.Errorf("ping %s %q from %s: reply %v, want %v", tc.dst, tc.extra, a.name, got, tc.want)
				}
			}
			if rx := rxPackets(t, b, DeviceV4); rx <= rxBefore {
				t.Errorf("%s received nothing on %s (%d packets before, %d after)", b.name, DeviceV4, rxBefore, rx)
			}
			if !b.ping(t, a.tunnel(false)) || !b.ping(t, a.tunnel(true)) {
				t.Errorf("%s cannot reach %s's tunnel addresses", b.name, a.name)
			}

			// Removing the peer removes its entries, and traffic stops.
			a.apply(t, a.desired(nil, 0))
			if got := a.entries(t); len(got) != 0 {
				t.Errorf("entries left after removing the peer: %q", got)
			}
			if a.ping(t, b.tunnel(false)) {
				t.Error("ping crosses the overlay without the peer's entries")
			}
			a.apply(t, a.desired(b, 0))
			if !a.ping(t, b.tunnel(false)) {
				t.Error("ping fails after the peer is back")
			}

			// Drift: entries deleted behind the reconciler's back are
			// put back by a Resync and an Apply, with two writes.
			m := MACFor(b.name).String()
			a.run(t, "bridge", "fdb", "del", m, "dev", DeviceV4, "dst", b.underlay.v4.String())
			a.run(t, "ip", "neigh", "del", b.tunnel(true).String(), "dev", DeviceV6)
			if err := a.r.Resync(t.Context()); err != nil {
				t.Fatal(err)
			}
			if w := a.apply(t, a.desired(b, 0)); w != 2 {
				t.Errorf("drift repair made %d writes, want 2", w)
			}
			if d := cmp.Diff(a.wantEntries(b), a.entries(t)); d != "" {
				t.Errorf("entries after drift repair (-want +got):\n%s", d)
			}
			if !a.ping(t, b.tunnel(false)) || !a.ping(t, b.tunnel(true)) {
				t.Error("ping fails after drift repair")
			}

			// A VNI change re-creates the devices; once both ends have it
			// (and the test's routes are back) traffic flows again.
			before := a.linkIndex(t, DeviceV4)
			a.apply(t, a.desired(b, 5000))
			b.apply(t, b.desired(a, 5000))
			if after := a.linkIndex(t, DeviceV4); after == before {
				t.Errorf("VNI change kept %s (index %d)", DeviceV4, before)
			}
			l, err := a.k.LinkByName(DeviceV4)
			if err != nil || l.VNI != 5000 {
				t.Errorf("%s after the VNI change: %+v, %v", DeviceV4, l, err)
			}
			if d := cmp.Diff(a.wantEntries(b), a.entries(t)); d != "" {
				t.Errorf("entries after re-creation (-want +got):\n%s", d)
			}
			a.addRoutes(t, b)
			b.addRoutes(t, a)
			if !a.ping(t, b.tunnel(false)) || !a.ping(t, b.tunnel(true)) {
				t.Error("ping fails after the VNI change")
			}

			// Removal: both devices go, eth0 stays.
			a.apply(t, Desired{})
			for _, name := range []string{DeviceV4, DeviceV6} {
				if _, err := a.k.LinkByName(name); !IsLinkNotFound(err) {
					t.Errorf("%s after removal: %v", name, err)
				}
			}
			if _, err := a.k.LinkByName("eth0"); err != nil {
				t.Errorf("eth0 after removal: %v", err)
			}
			if w := a.apply(t, Desired{}); w != 0 {
				t.Errorf("removing again made %d writes", w)
			}
		})
	}
}

func rxPackets(t *testing.T, hs *kernelHost, name string) uint64 {
	t.Helper()
	l, err := hs.h.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	if s := l.Attrs().Statistics; s != nil {
		return s.RxPackets
	}
	return 0
}

// TestNetlinkReplacesForeignLink: a link of another kind holding the
// device's name, and stray addresses on the device, are replaced; the
// IPv6 link-local address the kernel gives the device is kept.
func TestNetlinkReplacesForeignLink(t *testing.T) {
	hosts := newKernelHosts(t, false)
	a, b := hosts[0], hosts[1]
	if err := a.h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: DeviceV4}, PeerName: "stray-peer"}); err != nil {
		t.Fatal(err)
	}
	if err := a.r.Resync(t.Context()); err != nil {
		t.Fatal(err)
	}
	a.apply(t, a.desired(b, 0))
	l, err := a.k.LinkByName(DeviceV4)
	if err != nil || l.Kind != KindVXLAN {
		t.Fatalf("%s: %+v, %v; want a vxlan device", DeviceV4, l, err)
	}
	a.run(t, "ip", "addr", "add", "10.244.0.77/32", "dev", DeviceV4)
	if err := a.r.Resync(t.Context()); err != nil {
		t.Fatal(err)
	}
	if w := a.apply(t, a.desired(b, 0)); w != 1 {
		t.Errorf("removing a stray address made %d writes, want 1", w)
	}
	st, err := a.k.ReadLink(l)
	if err != nil {
		t.Fatal(err)
	}
	var v4 []netip.Prefix
	var ll bool
	for _, p := range st.Addrs {
		if p.Addr().Is4() {
			v4 = append(v4, p)
		} else if p.Addr().IsLinkLocalUnicast() {
			ll = true
		}
	}
	if want := []netip.Prefix{netip.MustParsePrefix("10.244.0.1/32")}; !slices.Equal(v4, want) {
		t.Errorf("IPv4 addresses on %s: %v, want %v", DeviceV4, v4, want)
	}
	if !ll {
		t.Logf("no IPv6 link-local address on %s (kernel without IPv6 on it?): %v", DeviceV4, st.Addrs)
	}
}
