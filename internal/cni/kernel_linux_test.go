package cni

import (
	"errors"
	"io/fs"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"

	"github.com/calyx-net/calyx/internal/testnet"
)

// TestNetlinkKernel drives the real kernel seam in two namespaces the test
// creates: "host" (where the plugin runs) and "container".
func TestNetlinkKernel(t *testing.T) {
	hostNS, ctrNS := testnet.NewNS(t), testnet.NewNS(t)
	k := netlinkKernel{}
	s := vethSpec{Netns: ctrNS.Path(), IfName: "eth0", HostIfName: "calyxtest00001", MTU: 1400,
		IPs:      []netip.Prefix{netip.MustParsePrefix("10.65.0.7/32"), netip.MustParsePrefix("fd65::7/128")},
		Gateway4: netip.MustParseAddr(DefaultGateway4), Gateway6: netip.MustParseAddr("fe80::ecee:eeff:feee:eeee"),
		MAC: net.HardwareAddr{0x02, 0x1f, 0x3a, 0x5b, 0x7c, 0x9d}}
	inHost := func(f func() error) {
		t.Helper()
		if err := hostNS.Do(func(ns.NetNS) error { return f() }); err != nil {
			t.Fatal(err)
		}
	}

	inHost(func() error {
		// A stale host end of the same name, from a crashed earlier ADD.
		stale := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: s.HostIfName}, PeerName: "stale-peer"}
		if err := netlink.LinkAdd(stale); err != nil {
			return err
		}
		exists, err := k.LinkExists(t.Context(), s.Netns, s.IfName)
		if err != nil || exists {
			t.Fatalf("LinkExists before ADD = %v, %v", exists, err)
		}
		// Create refuses it (the plugin decides whether it is stale).
		if err := k.Create(t.Context(), s); !errors.Is(err, fs.ErrExist) {
			t.Fatalf("Create over an existing host end: %v, want an error matching fs.ErrExist", err)
		}
		if err := k.Detach(t.Context(), "", "", s.HostIfName); err != nil {
			return err
		}
		mac, err := k.Attach(t.Context(), s)
		if err != nil {
			return err
		}
		if mac != s.MAC.String() {
			t.Errorf("Attach returned container MAC %q, want %s", mac, s.MAC)
		}
		host, err := netlink.LinkByName(s.HostIfName)
		if err != nil {
			return err
		}
		if a := host.Attrs(); a.HardwareAddr.String() != HostVethMAC || a.MTU != 1400 || a.Flags&net.FlagUp == 0 {
			t.Errorf("host end: mac %s mtu %d flags %v", a.HardwareAddr, a.MTU, a.Flags)
		}
		if _, err := netlink.LinkByName("stale-peer"); err == nil {
			t.Errorf("the stale veth was not deleted")
		}
		exists, err = k.LinkExists(t.Context(), s.Netns, s.IfName)
		if err != nil || !exists {
			t.Fatalf("LinkExists after ADD = %v, %v", exists, err)
		}
		problems, err := k.Check(t.Context(), s)
		if err != nil || len(problems) != 0 {
			t.Errorf("Check after ADD: %v %v", problems, err)
		}
		return nil
	})

	// The container side, as `ip` would show it.
	var got []string
	if err := ctrNS.Do(func(ns.NetNS) error {
		l, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		got = append(got, "mtu "+strconv.Itoa(l.Attrs().MTU), "mac "+l.Attrs().HardwareAddr.String())
		addrs, _ := netlink.AddrList(l, netlink.FAMILY_ALL)
		for _, a := range addrs {
			if !a.IP.IsLinkLocalUnicast() {
				got = append(got, "addr "+a.IPNet.String())
			}
		}
		for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
			routes, _ := netlink.RouteList(l, fam)
			for _, r := range routes {
				if r.Gw != nil {
					got = append(got, "route default via "+r.Gw.String())
				} else if r.Scope == netlink.SCOPE_LINK && r.Dst.IP.To4() != nil {
					got = append(got, "route "+r.Dst.String()+" scope link")
				}
			}
			neighs, _ := netlink.NeighList(l.Attrs().Index, fam)
			for _, n := range neighs {
				got = append(got, "neigh "+n.IP.String()+" lladdr "+n.HardwareAddr.String()+" "+neighState(n.State))
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"mtu 1400", "mac 02:1f:3a:5b:7c:9d", "addr 10.65.0.7/32", "addr fd65::7/128", "route 169.254.1.1/32 scope link",
		"route default via 169.254.1.1", "route default via fe80::ecee:eeff:feee:eeee",
		// The gateways never depend on ARP, NDP or the host's routes.
		"neigh 169.254.1.1 lladdr ee:ee:ee:ee:ee:ee PERMANENT", "neigh fe80::ecee:eeff:feee:eeee lladdr ee:ee:ee:ee:ee:ee PERMANENT"} {
		found := false
		for _, g := range got {
			found = found || g == w
		}
		if !found {
			t.Errorf("container side lacks %q; has %q", w, got)
		}
	}

	// CHECK notices a deleted default route and a gateway entry that is
	// no longer permanent.
	if err := ctrNS.Do(func(ns.NetNS) error {
		l, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		if err := netlink.NeighSet(&netlink.Neigh{LinkIndex: l.Attrs().Index, Family: netlink.FAMILY_V6, State: netlink.NUD_STALE,
			IP: net.ParseIP("fe80::ecee:eeff:feee:eeee"), HardwareAddr: net.HardwareAddr{0xee, 0xee, 0xee, 0xee, 0xee, 0xee}}); err != nil {
			return err
		}
		return netlink.RouteDel(&netlink.Route{Dst: &net.IPNet{IP: net.IPv4zero, Mask: net.CIDRMask(0, 32)}, Gw: net.ParseIP("169.254.1.1")})
	}); err != nil {
		t.Fatal(err)
	}
	inHost(func() error {
		problems, err := k.Check(t.Context(), s)
		if err != nil {
			return err
		}
		if d := cmp.Diff([]string{
			"permanent neighbour fe80::ecee:eeff:feee:eeee lladdr ee:ee:ee:ee:ee:ee dev eth0 is missing: the entry is STALE lladdr ee:ee:ee:ee:ee:ee",
			"route 0.0.0.0/0 via 169.254.1.1 dev eth0 is missing",
		}, problems); d != "" {
			t.Errorf("Check after deleting the default route (-want +got):\n%s", d)
		}
		// DEL of the container side, twice, and of a gone namespace.
		for range 2 {
			if err := k.Detach(t.Context(), s.Netns, s.IfName, ""); err != nil {
				return err
			}
		}
		if err := k.Detach(t.Context(), "/run/netns/no-such-ns", "eth0", "calyxnosuch"); err != nil {
			return err
		}
		if _, err := netlink.LinkByName(s.HostIfName); err == nil {
			t.Errorf("host end survived the container end's deletion")
		}
		problems, err = k.Check(t.Context(), s)
		if err != nil {
			return err
		}
		if !strings.Contains(strings.Join(problems, ";"), "interface eth0 is missing") {
			t.Errorf("Check after DEL: %q", problems)
		}
		return nil
	})
}

func TestRouteMetric(t *testing.T) {
	v4 := &netlink.Route{Dst: &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}}
	v6 := &netlink.Route{Dst: &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}}
	for _, tc := range []struct {
		ifName string
		r      *netlink.Route
		extra  int
		want   int
	}{
		{"eth0", v4, 0, 0}, {"eth1", v4, 0, 1}, {"eth12", v4, 0, 12}, {"net", v4, 0, 0},
		{"eth0", v6, 0, 1024}, {"eth2", v6, 0, 1026}, {"eth1", v4, 105, 106}, {"eth99999", v4, 0, 0},
	} {
		if got := routeMetric(tc.ifName, tc.r, tc.extra); got != tc.want {
			t.Errorf("routeMetric(%s, %s, %d) = %d, want %d", tc.ifName, tc.r.Dst, tc.extra, got, tc.want)
		}
	}
}
