package route

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/calyx-net/calyx/internal/netns"
	"github.com/calyx-net/calyx/internal/nlsafe"
	"github.com/calyx-net/calyx/internal/testnet"
	cnins "github.com/containernetworking/plugins/pkg/ns"
	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
)

// kernelTopology is a "host" namespace holding the host end of a veth
// whose other end was created directly in a "container" namespace, as the
// calyx CNI plugin does.
type kernelTopology struct {
	host      *netns.NS
	container cnins.NetNS
	k         *Netlink
	ifName    string
	mac       net.HardwareAddr // the container end's
}

func newKernelTopology(t *testing.T, ifName string) *kernelTopology {
	t.Helper()
	hostNS, ctrNS := testnet.NewNS(t), testnet.NewNS(t)
	host, err := netns.Open(hostNS.Path())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = host.Close() })
	k, err := NewNetlink(host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close)
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: ifName, HardwareAddr: net.HardwareAddr{0xee, 0xee, 0xee, 0xee, 0xee, 0xee}},
		PeerName:      "eth0",
		PeerNamespace: netlink.NsFd(int(ctrNS.Fd())),
	}
	if err := k.Handle().LinkAdd(veth); err != nil {
		t.Fatalf("creating the veth: %v", err)
	}
	topo := &kernelTopology{host: host, container: ctrNS, k: k, ifName: ifName}
	if err := ctrNS.Do(func(cnins.NetNS) error {
		l, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		topo.mac = l.Attrs().HardwareAddr
		return netlink.LinkSetUp(l)
	}); err != nil {
		t.Fatal(err)
	}
	return topo
}

func (k *kernelTopology) sysctl(t *testing.T, key string) string {
	t.Helper()
	var v string
	if err := k.host.Do(func() error {
		var err error
		v, err = netns.ReadSysctl(key)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return v
}

// ownRoutes lists the routes with Calyx's protocol, read with netlink.
func (k *kernelTopology) ownRoutes(t *testing.T) []string {
	t.Helper()
	routes, err := nlsafe.RouteListFiltered(k.k.Handle(), netlink.FAMILY_ALL, &netlink.Route{Protocol: Protocol}, netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range routes {
		l, err := k.k.Handle().LinkByIndex(r.LinkIndex)
		if err != nil {
			t.Fatal(err)
		}
		p, _ := prefixOf(r.Dst)
		out = append(out, RouteText(Route{Dst: p, LinkIndex: r.LinkIndex, Protocol: int(r.Protocol), Scope: uint8(r.Scope)}, l.Attrs().Name))
	}
	slices.Sort(out)
	return out
}

func (k *kernelTopology) permanentNeighs(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		ns, err := nlsafe.NeighList(k.k.Handle(), 0, fam)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range ns {
			if n.State&netlink.NUD_PERMANENT != 0 {
				ip, _ := netip.AddrFromSlice(n.IP)
				out = append(out, NeighText(Neigh{IP: ip.Unmap(), MAC: n.HardwareAddr.String(), Permanent: true}, k.ifName))
			}
		}
	}
	slices.Sort(out)
	return out
}

// programmedEndpoint is a reconciler with grace, resynced, that has
// programmed one dual-stack endpoint on ifName's veth.
func programmedEndpoint(t *testing.T, ifName string, grace time.Duration) (*kernelTopology, *Reconciler, Endpoint) {
	t.Helper()
	topo := newKernelTopology(t, ifName)
	r := New(topo.k, slog.New(slog.DiscardHandler), WithGrace(grace))
	if err := r.Resync(t.Context()); err != nil {
		t.Fatal(err)
	}
	ep := Endpoint{Name: "test", IfName: ifName, MAC: topo.mac, Addrs: addrs("10.65.0.7", "fd65:cafe::7")}
	if err := r.Update(t.Context(), ep); err != nil {
		t.Fatal(err)
	}
	return topo, r, ep
}

func TestNetlinkUpdatePruneDelete(t *testing.T) {
	const ifName = "calyx0123456789"
	topo, r, ep := programmedEndpoint(t, ifName, 10*time.Second)
	ctx := t.Context()

	// Read back what the kernel holds.
	wantRoutes := []string{
		"10.65.0.7/32 dev " + ifName + " proto 80 scope link",
		"fd65:cafe::7/128 dev " + ifName + " proto 80",
	}
	if d := cmp.Diff(wantRoutes, topo.ownRoutes(t)); d != "" {
		t.Errorf("routes (-want +got):\n%s", d)
	}
	wantNeighs := []string{
		"10.65.0.7 dev " + ifName + " lladdr " + topo.mac.String() + " PERMANENT",
		"fd65:cafe::7 dev " + ifName + " lladdr " + topo.mac.String() + " PERMANENT",
	}
	if d := cmp.Diff(wantNeighs, topo.permanentNeighs(t)); d != "" {
		t.Errorf("neighbours (-want +got):\n%s", d)
	}
	for key, want := range map[string]string{
		"net/ipv4/ip_forward":                       "1",
		"net/ipv6/conf/all/forwarding":              "1",
		"net/ipv4/conf/" + ifName + "/proxy_arp":    "1",
		"net/ipv4/neigh/" + ifName + "/proxy_delay": "0",
		"net/ipv4/conf/" + ifName + "/forwarding":   "1",
		"net/ipv4/conf/" + ifName + "/rp_filter":    "1",
		"net/ipv6/conf/" + ifName + "/proxy_ndp":    "1",
		"net/ipv6/conf/" + ifName + "/accept_ra":    "0",
		"net/ipv6/conf/" + ifName + "/forwarding":   "1",
		"net/ipv6/conf/" + ifName + "/disable_ipv6": "0",
	} {
		if got := topo.sysctl(t, key); got != want {
			t.Errorf("sysctl %s = %q, want %q", key, got, want)
		}
	}
	if l, err := topo.k.LinkByName(ifName); err != nil || !l.Up {
		t.Errorf("host veth: %+v, %v; want up", l, err)
	}
	if problems, err := r.Check(ctx, ep); err != nil || len(problems) != 0 {
		t.Errorf("Check after Update: %q, %v", problems, err)
	}

	// A second Update, and a fresh reconciler after a resync (a restart),
	// write nothing.
	before := r.Writes()
	if err := r.Update(ctx, ep); err != nil {
		t.Fatal(err)
	}
	if w := r.Writes() - before; w != 0 {
		t.Errorf("second Update made %d writes", w)
	}
	restarted := New(topo.k, slog.New(slog.DiscardHandler))
	if err := restarted.Resync(ctx); err != nil {
		t.Fatal(err)
	}
	if err := restarted.Update(ctx, ep); err != nil {
		t.Fatal(err)
	}
	if w := restarted.Writes(); w != 0 {
		t.Errorf("Update after a restart made %d writes", w)
	}

	// Out-of-band changes (a sysctl reset, the route deleted) are found
	// by the next resync and repaired by the Update after it, although
	// the resync re-reads only the keys the link's endpoint wants.
	if err := topo.host.Do(func() error {
		return errors.Join(netns.WriteSysctl("net/ipv4/conf/"+ifName+"/proxy_arp", "0"),
			netns.WriteSysctl("net/ipv6/conf/"+ifName+"/proxy_ndp", "0"))
	}); err != nil {
		t.Fatal(err)
	}
	hl, err := topo.k.Handle().LinkByName(ifName)
	if err != nil {
		t.Fatal(err)
	}
	if err := topo.k.Handle().RouteDel(&netlink.Route{LinkIndex: hl.Attrs().Index, Dst: ipNet(netip.MustParsePrefix("10.65.0.7/32")),
		Protocol: Protocol, Scope: netlink.SCOPE_LINK}); err != nil {
		t.Fatal(err)
	}
	for _, rec := range []*Reconciler{r, restarted} {
		if err := rec.Resync(ctx); err != nil {
			t.Fatal(err)
		}
		if err := rec.Update(ctx, ep); err != nil {
			t.Fatal(err)
		}
	}
	for _, key := range []string{"net/ipv4/conf/" + ifName + "/proxy_arp", "net/ipv6/conf/" + ifName + "/proxy_ndp"} {
		if got := topo.sysctl(t, key); got != "1" {
			t.Errorf("sysctl %s = %q after a resync, want it repaired to 1", key, got)
		}
	}
	if d := cmp.Diff(wantRoutes, topo.ownRoutes(t)); d != "" {
		t.Errorf("routes after a resync (-want +got):\n%s", d)
	}

	// Prune removes an unknown Calyx route on a Calyx link, after the
	// grace period, and leaves everything else.
	l, _ := topo.k.Handle().LinkByName(ifName)
	stale := &netlink.Route{LinkIndex: l.Attrs().Index, Dst: ipNet(netip.MustParsePrefix("10.65.0.99/32")), Protocol: Protocol, Scope: netlink.SCOPE_LINK}
	if err := topo.k.Handle().RouteAdd(stale); err != nil {
		t.Fatal(err)
	}
	if err := r.Resync(ctx); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := r.Prune(ctx, []Endpoint{ep}, now); err != nil {
		t.Fatal(err)
	}
	if got := topo.ownRoutes(t); len(got) != 3 {
		t.Errorf("routes right after the first Prune: %q, want the stale one kept", got)
	}
	if err := r.Prune(ctx, []Endpoint{ep}, now.Add(10*time.Second)); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(wantRoutes, topo.ownRoutes(t)); d != "" {
		t.Errorf("routes after the grace period (-want +got):\n%s", d)
	}

	// Delete removes the veth (and its peer, routes and neighbours), and
	// is idempotent.
	for range 2 {
		if err := r.Delete(ctx, ep); err != nil {
			t.Fatal(err)
		}
	}
	if ok, err := r.HasLink(ctx, ifName); ok || err != nil {
		t.Errorf("HasLink after Delete = %v, %v", ok, err)
	}
	if got := topo.ownRoutes(t); len(got) != 0 {
		t.Errorf("routes left after Delete: %q", got)
	}
	if err := topo.container.Do(func(cnins.NetNS) error {
		_, err := netlink.LinkByName("eth0")
		return err
	}); err == nil {
		t.Error("the container end of the veth survived Delete")
	}
}

// LinkNames, which parses only the names of its own dump, lists what
// LinkList does, in the reconciler's namespace (not the test's).
func TestNetlinkLinkNames(t *testing.T) {
	const ifName = "calyx0123456789"
	topo := newKernelTopology(t, ifName)
	got, err := topo.k.LinkNames()
	if err != nil {
		t.Fatal(err)
	}
	links, err := nlsafe.LinkList(topo.k.Handle())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, l := range links {
		want[l.Attrs().Name] = true
	}
	if d := cmp.Diff(want, got); d != "" || !got[ifName] || !got["lo"] {
		t.Errorf("LinkNames (-LinkList +LinkNames):\n%s", d)
	}
}

// A link deleted behind the reconciler's back (calyx-node's reaper
// deletes veths on a socket of its own) took its routes and neighbour
// entries with it: Prune, finding them unwanted, drops them from its cache
// without an error, once, instead of failing on them at every pass.
func TestNetlinkPruneAfterLinkGone(t *testing.T) {
	const ifName = "calyx0123456789"
	topo, r, _ := programmedEndpoint(t, ifName, time.Second)
	ctx := t.Context()
	l, err := topo.k.Handle().LinkByName(ifName)
	if err != nil {
		t.Fatal(err)
	}
	if err := topo.k.Handle().LinkDel(l); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for i, at := range []time.Time{now, now.Add(time.Second), now.Add(2 * time.Second)} {
		before := r.Writes()
		if err := r.Prune(ctx, nil, at); err != nil {
			t.Fatalf("Prune %d after the link went: %v", i, err)
		}
		if w, want := r.Writes()-before, map[int]uint64{0: 0, 1: 4, 2: 0}[i]; w != want {
			t.Errorf("Prune %d made %d writes, want %d (the two routes and two entries once, after the grace period)", i, w, want)
		}
	}
}

// BenchmarkNetlinkUpdate measures programming a new endpoint's host side,
// the "netlink work per ADD" of benchmark B1: one veth per iteration, made
// beforehand the way the plugin makes it (host end down, peer in another
// namespace), then one Update.
func BenchmarkNetlinkUpdate(b *testing.B) {
	hostNS, ctrNS := testnet.NewNS(b), testnet.NewNS(b)
	host, err := netns.Open(hostNS.Path())
	if err != nil {
		b.Fatal(err)
	}
	defer host.Close()
	k, err := NewNetlink(host)
	if err != nil {
		b.Fatal(err)
	}
	defer k.Close()
	r := New(k, slog.New(slog.DiscardHandler))
	if err := r.Resync(b.Context()); err != nil {
		b.Fatal(err)
	}
	eps := make([]Endpoint, b.N)
	for i := range eps {
		name := fmt.Sprintf("calyx%010d", i)
		veth := &netlink.Veth{
			LinkAttrs: netlink.LinkAttrs{Name: name, HardwareAddr: net.HardwareAddr{0xee, 0xee, 0xee, 0xee, 0xee, 0xee}},
			PeerName:  fmt.Sprintf("eth%d", i), PeerNamespace: netlink.NsFd(int(ctrNS.Fd())),
		}
		if err := k.Handle().LinkAdd(veth); err != nil {
			b.Fatal(err)
		}
		a := netip.AddrFrom4([4]byte{10, 65, byte(i >> 8), byte(i)})
		eps[i] = Endpoint{Name: name, IfName: name, MAC: net.HardwareAddr{2, 0, 10, 65, byte(i >> 8), byte(i)}, Addrs: []netip.Addr{a}}
	}
	b.ResetTimer()
	for i := range b.N {
		if err := r.Update(b.Context(), eps[i]); err != nil {
			b.Fatal(err)
		}
	}
}
