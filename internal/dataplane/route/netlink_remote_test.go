package route

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/calyx-net/calyx/internal/netns"
	"github.com/calyx-net/calyx/internal/testnet"
	cnins "github.com/containernetworking/plugins/pkg/ns"
	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
)

// remoteTopology is a "host" namespace and a "peer" namespace joined by
// two veth pairs: eth0 (192.0.2.11/24 and 2001:db8:192::11/64 on the
// host, .12 and ::12 on the peer), and one named vxlan.calyx standing in
// for the VXLAN device (no address on the host side; the peer side holds
// the tunnel addresses 10.65.2.0 and fd65:2::). The peer's lo holds an
// address in each remote block, to receive packets routed to it.
type remoteTopology struct {
	host, peer *netns.NS
	hostName   string // for `ip -n`
	k          *Netlink
	peerNS     cnins.NetNS
}

func newRemoteTopology(t *testing.T) *remoteTopology {
	t.Helper()
	hostNS, peerNS := testnet.NewNS(t), testnet.NewNS(t)
	topo := &remoteTopology{hostName: filepath.Base(hostNS.Path()), peerNS: peerNS}
	for _, p := range []struct {
		path string
		dst  **netns.NS
	}{{hostNS.Path(), &topo.host}, {peerNS.Path(), &topo.peer}} {
		n, err := netns.Open(p.path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = n.Close() })
		*p.dst = n
		// No duplicate address detection (addresses usable at once), and
		// no reverse-path filter (a packet that came in through the
		// tunnel stand-in is answered through eth0). Namespace-local.
		if err := n.Do(func() error {
			var errs []error
			for _, key := range []string{
				"net/ipv6/conf/all/accept_dad", "net/ipv6/conf/default/accept_dad",
				"net/ipv4/conf/all/rp_filter", "net/ipv4/conf/default/rp_filter",
			} {
				errs = append(errs, netns.WriteSysctl(key, "0"))
			}
			return errors.Join(errs...)
		}); err != nil {
			t.Fatal(err)
		}
	}
	k, err := NewNetlink(topo.host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close)
	topo.k = k
	ph, err := topo.peer.NewNetlinkHandle()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ph.Close)
	for _, name := range []string{"eth0", "vxlan.calyx"} {
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: name, PeerNamespace: netlink.NsFd(int(peerNS.Fd()))}
		if err := k.Handle().LinkAdd(veth); err != nil {
			t.Fatalf("creating veth %s: %v", name, err)
		}
	}
	addrs := func(h *netlink.Handle, link string, cidrs ...string) {
		t.Helper()
		l, err := h.LinkByName(link)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cidrs {
			a, err := netlink.ParseAddr(c)
			if err != nil {
				t.Fatal(err)
			}
			a.Flags = unix.IFA_F_NODAD
			if err := h.AddrAdd(l, a); err != nil {
				t.Fatalf("adding %s to %s: %v", c, link, err)
			}
		}
		if err := h.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
	}
	addrs(k.Handle(), "eth0", "192.0.2.11/24", "2001:db8:192::11/64")
	addrs(k.Handle(), "vxlan.calyx")
	addrs(ph, "eth0", "192.0.2.12/24", "2001:db8:192::12/64")
	addrs(ph, "vxlan.calyx", "10.65.2.0/32", "fd65:2::/128")
	addrs(ph, "lo", "10.65.1.5/32", "10.65.2.5/32", "fd65:1::5/128", "fd65:2::5/128")
	return topo
}

// ipRoutes runs `ip [-6] route show` in the host namespace and returns
// the protocol-80 lines, in the golden text RouteText writes: without
// what `ip` adds to IPv6 routes (metric 1024, pref medium, and the dev lo
// the kernel gives a blackhole), without linkdown (a container end that
// is down), and with host routes' lengths, which `ip` leaves out.
func (topo *remoteTopology) ipRoutes(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, fam := range []string{"-4", "-6"} {
		b, err := exec.Command("ip", "-n", topo.hostName, fam, "route", "show").CombinedOutput()
		if err != nil {
			t.Fatalf("ip route show: %v: %s", err, b)
		}
		for _, l := range strings.Split(string(b), "\n") {
			l = strings.Join(strings.Fields(l), " ")
			if !strings.Contains(l, " proto 80") {
				continue
			}
			for _, extra := range []string{" metric 1024", " pref medium", " linkdown"} {
				l = strings.Replace(l, extra, "", 1)
			}
			f := strings.Fields(l)
			dst := 0
			if f[0] == "blackhole" {
				dst = 1
				f = slices.DeleteFunc(f, func(s string) bool { return s == "dev" || s == "lo" })
			}
			if a, err := netip.ParseAddr(f[dst]); err == nil { // `ip` shows a host route without its length
				f[dst] = netip.PrefixFrom(a, a.BitLen()).String()
			}
			out = append(out, "route "+strings.Join(f, " "))
		}
	}
	slices.Sort(out)
	return out
}

func (topo *remoteTopology) ip(t *testing.T, args ...string) {
	t.Helper()
	if b, err := exec.Command("ip", append([]string{"-n", topo.hostName}, args...)...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, b)
	}
}

// sendUDP sends a datagram from the host namespace to dst, received in
// the peer namespace; it returns the error of the send, or of the
// receive.
func (topo *remoteTopology) sendUDP(t *testing.T, dst netip.AddrPort) error {
	t.Helper()
	var pc net.PacketConn
	if err := topo.peer.Do(func() error {
		var err error
		pc, err = net.ListenPacket("udp", dst.String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if err := topo.host.Do(func() error {
		c, err := net.Dial("udp", dst.String())
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte("calyx"))
		return err
	}); err != nil {
		return err
	}
	if err := pc.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	n, _, err := pc.ReadFrom(buf)
	if err == nil && string(buf[:n]) != "calyx" {
		err = errors.New("garbled datagram")
	}
	return err
}

func TestNetlinkRemoteRoutes(t *testing.T) {
	topo := newRemoteTopology(t)
	r := newTestRemote(t, topo.k)
	mustApply(t, r, allRemote, time.Now())
	want := slices.DeleteFunc(slices.Clone(allRemoteLines), func(l string) bool { return !strings.Contains(l, " proto 80") })
	if d := cmp.Diff(want, topo.ipRoutes(t)); d != "" {
		t.Errorf("ip route (-want +got):\n%s", d)
	}

	// Idempotent, and a restart re-creates nothing: what Dump reads back
	// (gateway, onlink, blackhole, the device the kernel found, default
	// routes) matches what was written.
	before := r.Writes()
	mustApply(t, r, allRemote, time.Now())
	if w := r.Writes() - before; w != 0 {
		t.Errorf("a second Apply made %d writes", w)
	}
	restarted := newTestRemote(t, topo.k)
	mustApply(t, restarted, allRemote, time.Now())
	if w := restarted.Writes(); w != 0 {
		t.Errorf("Apply after a restart made %d writes", w)
	}

	// Packets follow the routes: through the gateway, through the onlink
	// next hop, and into the blackhole, which a local sender sees as
	// EINVAL.
	for _, dst := range []string{"10.65.1.5:7001", "10.65.2.5:7002", "[fd65:1::5]:7003", "[fd65:2::5]:7004"} {
		if err := topo.sendUDP(t, netip.MustParseAddrPort(dst)); err != nil {
			t.Errorf("sending to %s: %v", dst, err)
		}
	}
	for _, dst := range []string{"10.65.0.5:7005", "[fd65::5]:7006"} {
		err := topo.host.Do(func() error {
			c, err := net.Dial("udp", dst)
			if err != nil {
				return err
			}
			defer c.Close()
			_, err = c.Write([]byte("calyx"))
			return err
		})
		if !errors.Is(err, unix.EINVAL) {
			t.Errorf("sending to %s, in a blackhole: %v, want EINVAL", dst, err)
		}
	}

	// Removal: every owned route goes, the connected ones stay.
	mustApply(t, restarted, nil, time.Now())
	if got := topo.ipRoutes(t); len(got) != 0 {
		t.Errorf("routes left after Apply(nil): %q", got)
	}
	st, err := topo.k.Dump()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(st.Routes, func(rt Route) bool { return rt.Dst == pfx("192.0.2.0/24") }) {
		t.Errorf("the connected route went with Apply(nil): %v", st.Routes)
	}
}

// Errors on the kernel: a missing device and an unreachable gateway fail
// their routes only.
func TestNetlinkRemoteErrors(t *testing.T) {
	topo := newRemoteTopology(t)
	r := newTestRemote(t, topo.k)
	missing := RemoteRoute{Dst: pfx("10.65.8.0/26"), Gw: ip("10.65.8.0"), Dev: "vxlan.nope", OnLink: true}
	unreachable := RemoteRoute{Dst: pfx("10.65.9.0/26"), Gw: ip("198.51.100.1")}
	unreachableV6 := RemoteRoute{Dst: pfx("fd65:9::/122"), Gw: ip("2001:db8:ffff::1"), Dev: "eth0"}
	err := r.Apply(t.Context(), []RemoteRoute{missing, unreachable, unreachableV6, viaEth0, localBlockV6}, time.Now())
	if !IsLinkNotFound(err) {
		t.Errorf("Apply: %v, want IsLinkNotFound", err)
	}
	for _, d := range []RemoteRoute{missing, unreachable, unreachableV6} {
		if err == nil || !strings.Contains(err.Error(), "adding route "+d.String()+": ") {
			t.Errorf("error %v does not name %s", err, d)
		}
	}
	want := []string{
		"route 10.65.1.0/26 via 192.0.2.12 dev eth0 proto 80",
		"route blackhole fd65::/122 proto 80",
	}
	if d := cmp.Diff(want, topo.ipRoutes(t)); d != "" {
		t.Errorf("ip route (-want +got):\n%s", d)
	}
}

// A route deleted or replaced outside Calyx is reported by WatchRoutes
// and repaired by Resync and Apply.
func TestNetlinkRemoteRepairOnEvents(t *testing.T) {
	topo := newRemoteTopology(t)
	r := newTestRemote(t, topo.k)
	desired := []RemoteRoute{viaEth0, viaVXLAN, localBlock, viaEth0V6, localBlockV6}
	mustApply(t, r, desired, time.Now())
	want := topo.ipRoutes(t)

	ctx, cancel := context.WithCancel(t.Context())
	g, gctx := errgroup.WithContext(ctx)
	ready := make(chan struct{})
	events := make(chan RouteEvent, 256)
	g.Go(func() error {
		return topo.k.WatchRoutes(gctx, func() { close(ready) }, func(ev RouteEvent) {
			select {
			case events <- ev:
			default:
			}
		})
	})
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		t.Fatal("WatchRoutes did not become ready")
	}
	// next returns the next event about dst that Differs from the cache
	// as wantDiffers says, skipping others.
	next := func(dst netip.Prefix, deleted, wantDiffers bool) RouteEvent {
		t.Helper()
		timeout := time.After(10 * time.Second)
		for {
			select {
			case ev := <-events:
				if ev.Route.Dst != dst || ev.Deleted != deleted {
					continue
				}
				if got := r.Differs(ev); got != wantDiffers {
					t.Errorf("Differs(%+v) = %v, want %v", ev, got, wantDiffers)
				}
				return ev
			case <-timeout:
				t.Fatalf("no event for %s (deleted %v)", dst, deleted)
			}
		}
	}
	repair := func(wantWrites uint64) {
		t.Helper()
		if err := r.Resync(t.Context()); err != nil {
			t.Fatal(err)
		}
		before := r.Writes()
		mustApply(t, r, desired, time.Now())
		if w := r.Writes() - before; w != wantWrites {
			t.Errorf("repair made %d writes, want %d", w, wantWrites)
		}
		if d := cmp.Diff(want, topo.ipRoutes(t)); d != "" {
			t.Errorf("ip route after the repair (-want +got):\n%s", d)
		}
	}

	topo.ip(t, "route", "del", "10.65.1.0/26")
	ev := next(viaEth0.Dst, true, true)
	if ev.Route.Gw != viaEth0.Gw || ev.Route.Protocol != Protocol {
		t.Errorf("deletion event %+v, want the route via %s", ev, viaEth0.Gw)
	}
	repair(1)
	next(viaEth0.Dst, false, false) // our own write, as the cache says

	topo.ip(t, "-6", "route", "del", "blackhole", "fd65::/122")
	next(localBlockV6.Dst, true, true)
	topo.ip(t, "route", "replace", "10.65.2.0/26", "via", "192.0.2.13", "dev", "eth0")
	next(viaVXLAN.Dst, false, true)
	repair(2)

	// A route on a link made since the last resync: a new endpoint's veth
	// is not ours to judge; another interface's is.
	topo.ip(t, "link", "add", InterfacePrefix+"new0", "type", "veth", "peer", "name", "new0peer")
	topo.ip(t, "link", "set", InterfacePrefix+"new0", "up")
	topo.ip(t, "route", "add", "10.65.9.9/32", "dev", InterfacePrefix+"new0", "proto", "80", "scope", "link")
	next(netip.MustParsePrefix("10.65.9.9/32"), false, false)
	topo.ip(t, "link", "add", "other0", "type", "veth", "peer", "name", "other0peer")
	topo.ip(t, "link", "set", "other0", "up")
	topo.ip(t, "route", "add", "10.65.9.10/32", "dev", "other0", "proto", "80", "scope", "link")
	next(netip.MustParsePrefix("10.65.9.10/32"), false, true)

	cancel()
	if err := g.Wait(); err != nil {
		t.Errorf("WatchRoutes after cancel: %v", err)
	}
}

// Default routes: a namespace without one gets the one BGP learned; in a
// namespace with someone else's, Remote leaves it while it desires none.
func TestNetlinkRemoteDefaultRoute(t *testing.T) {
	t.Run("without a default route", func(t *testing.T) {
		topo := newRemoteTopology(t)
		r := newTestRemote(t, topo.k)
		mustApply(t, r, []RemoteRoute{defaultV4, defaultV6, localBlock}, time.Now())
		want := []string{
			"route blackhole 10.65.0.0/26 proto 80",
			"route default via 192.0.2.1 dev eth0 proto 80",
			"route default via 2001:db8:192::1 dev eth0 proto 80",
		}
		if d := cmp.Diff(want, topo.ipRoutes(t)); d != "" {
			t.Errorf("ip route (-want +got):\n%s", d)
		}
		restarted := newTestRemote(t, topo.k)
		mustApply(t, restarted, []RemoteRoute{defaultV4, defaultV6, localBlock}, time.Now())
		if w := restarted.Writes(); w != 0 {
			t.Errorf("Apply after a restart made %d writes", w)
		}
		mustApply(t, restarted, []RemoteRoute{localBlock}, time.Now())
		if d := cmp.Diff(want[:1], topo.ipRoutes(t)); d != "" {
			t.Errorf("ip route once the default is withdrawn (-want +got):\n%s", d)
		}
	})
	t.Run("with someone else's default route", func(t *testing.T) {
		topo := newRemoteTopology(t)
		topo.ip(t, "route", "add", "default", "via", "192.0.2.254", "dev", "eth0", "proto", "static")
		topo.ip(t, "-6", "route", "add", "default", "via", "2001:db8:192::fe", "dev", "eth0")
		r := newTestRemote(t, topo.k)
		for range 2 {
			mustApply(t, r, []RemoteRoute{viaEth0, localBlock}, time.Now())
			mustApply(t, r, nil, time.Now())
		}
		st, err := topo.k.Dump()
		if err != nil {
			t.Fatal(err)
		}
		var defaults []string
		for _, rt := range st.Routes {
			if rt.Dst.Bits() == 0 {
				defaults = append(defaults, RouteText(rt, "eth0"))
			}
		}
		slices.Sort(defaults)
		wantDefaults := []string{
			"default via 192.0.2.254 dev eth0 proto static",
			"default via 2001:db8:192::fe dev eth0 proto boot",
		}
		if d := cmp.Diff(wantDefaults, defaults); d != "" {
			t.Errorf("default routes (-want +got):\n%s", d)
		}
	})
}

// The endpoint Reconciler and Remote on one kernel: each removes only its
// own routes.
func TestNetlinkRemoteAndReconcilerCoexist(t *testing.T) {
	topo := newRemoteTopology(t)
	const ifName = "calyx0123456789"
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: ifName}, PeerName: "ceth0", PeerNamespace: netlink.NsFd(int(topo.peerNS.Fd()))}
	if err := topo.k.Handle().LinkAdd(veth); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	log := slog.New(slog.DiscardHandler)
	rec := New(topo.k, log, WithGrace(time.Second))
	rem := NewRemote(topo.k, log)
	for _, resync := range []func(context.Context) error{rec.Resync, rem.Resync} {
		if err := resync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	ep := Endpoint{Name: "a", IfName: ifName, Addrs: addrs("10.65.0.7", "fd65::7")}
	if err := rec.Update(ctx, ep); err != nil {
		t.Fatal(err)
	}
	remote := []RemoteRoute{viaEth0, viaVXLAN, localBlock, viaEth0V6, localBlockV6}
	mustApply(t, rem, remote, time.Now())
	endpointLines := []string{
		"route 10.65.0.7/32 dev " + ifName + " proto 80 scope link",
		"route fd65::7/128 dev " + ifName + " proto 80",
	}
	remoteLines := []string{
		"route 10.65.1.0/26 via 192.0.2.12 dev eth0 proto 80",
		"route 10.65.2.0/26 via 10.65.2.0 dev vxlan.calyx proto 80 onlink",
		"route blackhole 10.65.0.0/26 proto 80",
		"route blackhole fd65::/122 proto 80",
		"route fd65:1::/122 via 2001:db8:192::12 dev eth0 proto 80",
	}
	if d := cmp.Diff(sorted(endpointLines, remoteLines), topo.ipRoutes(t)); d != "" {
		t.Errorf("ip route (-want +got):\n%s", d)
	}
	// Both resync and reconcile; the Reconciler's grace passes.
	for _, resync := range []func(context.Context) error{rec.Resync, rem.Resync} {
		if err := resync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	for _, at := range []time.Duration{0, time.Minute} {
		if err := rec.Prune(ctx, []Endpoint{ep}, now.Add(at)); err != nil {
			t.Fatal(err)
		}
	}
	mustApply(t, rem, remote, now)
	if w := rem.Writes(); w != uint64(len(remote)) {
		t.Errorf("Remote made %d writes, want %d", w, len(remote))
	}
	if d := cmp.Diff(sorted(endpointLines, remoteLines), topo.ipRoutes(t)); d != "" {
		t.Errorf("ip route after both reconciled again (-want +got):\n%s", d)
	}
	// Remote desires nothing: the workload routes stay.
	mustApply(t, rem, nil, now)
	if d := cmp.Diff(sorted(endpointLines), topo.ipRoutes(t)); d != "" {
		t.Errorf("ip route after Remote's Apply(nil) (-want +got):\n%s", d)
	}
	// The Reconciler desires nothing: its routes go, and Remote's (once
	// re-applied) stay.
	mustApply(t, rem, remote, now)
	if err := rec.Resync(ctx); err != nil {
		t.Fatal(err)
	}
	for _, at := range []time.Duration{2 * time.Minute, 3 * time.Minute} {
		if err := rec.Prune(ctx, nil, now.Add(at)); err != nil {
			t.Fatal(err)
		}
	}
	if d := cmp.Diff(sorted(remoteLines), topo.ipRoutes(t)); d != "" {
		t.Errorf("ip route after the Reconciler's Prune(nil) (-want +got):\n%s", d)
	}
}
