package nlsafe_test

import (
	"net"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/calyx-net/calyx/internal/nlsafe"
)

// MainRoutes reads what RouteListFiltered does of the main table's routes
// of both families: device routes, gateways (onlink too), a default
// route, blackholes, and none of another table's.
func TestMainRoutesKernel(t *testing.T) {
	type brief struct {
		Dst                   string
		LinkIndex             int
		Gw                    string
		Protocol, Scope, Type int
		OnLink                bool
	}
	var got, want []brief
	inVethNS(t, func(h *netlink.Handle, v *netlink.Veth) error {
		for _, a := range []string{"10.9.0.1/24", "fd00:9::1/64"} {
			addr, err := netlink.ParseAddr(a)
			if err != nil {
				return err
			}
			addr.Flags = unix.IFA_F_NODAD
			if err := netlink.AddrAdd(v, addr); err != nil {
				return err
			}
		}
		cidr := func(s string) *net.IPNet { _, n, _ := net.ParseCIDR(s); return n }
		for _, r := range []netlink.Route{
			{LinkIndex: v.Index, Dst: cidr("10.64.0.7/32"), Scope: netlink.SCOPE_LINK, Protocol: 77},
			{LinkIndex: v.Index, Dst: cidr("10.65.0.0/26"), Gw: net.ParseIP("10.9.0.2"), Protocol: 77},
			{LinkIndex: v.Index, Dst: cidr("10.66.0.0/26"), Gw: net.ParseIP("192.0.2.9"), Flags: int(netlink.FLAG_ONLINK), Protocol: 77},
			{LinkIndex: v.Index, Gw: net.ParseIP("10.9.0.254")}, // default
			{Dst: cidr("10.67.0.0/26"), Type: unix.RTN_BLACKHOLE, Protocol: 77},
			{LinkIndex: v.Index, Dst: cidr("fd00:64::7/128"), Protocol: 77},
			{LinkIndex: v.Index, Dst: cidr("fd00:65::/122"), Gw: net.ParseIP("fd00:9::2"), Protocol: 77},
			{Dst: cidr("fd00:67::/122"), Type: unix.RTN_BLACKHOLE, Protocol: 77},
			{LinkIndex: v.Index, Dst: cidr("10.68.0.0/26"), Table: 100}, // another table
		} {
			if err := netlink.RouteAdd(&r); err != nil {
				return err
			}
		}
		rs, err := nlsafe.MainRoutes(func(r nlsafe.RouteBrief) (nlsafe.RouteBrief, bool) { return r, true })
		if err != nil {
			return err
		}
		for _, r := range rs {
			gw := ""
			if r.Gw.IsValid() {
				gw = r.Gw.String()
			}
			got = append(got, brief{r.Dst.String(), r.LinkIndex, gw, int(r.Protocol), int(r.Scope), int(r.Type), r.Flags&unix.RTNH_F_ONLINK != 0})
		}
		nrs, err := nlsafe.RouteListFiltered(h, netlink.FAMILY_ALL, &netlink.Route{}, 0)
		if err != nil {
			return err
		}
		for _, r := range nrs {
			dst := "0.0.0.0/0"
			if r.Family == netlink.FAMILY_V6 {
				dst = "::/0"
			}
			if r.Dst != nil {
				a, _ := netip.AddrFromSlice(r.Dst.IP)
				ones, _ := r.Dst.Mask.Size()
				dst = netip.PrefixFrom(a.Unmap(), ones).String()
			}
			gw := ""
			if a, ok := netip.AddrFromSlice(r.Gw); ok {
				gw = a.Unmap().String()
			}
			want = append(want, brief{dst, r.LinkIndex, gw, int(r.Protocol), int(r.Scope), r.Type, r.Flags&int(netlink.FLAG_ONLINK) != 0})
		}
		return nil
	})
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("MainRoutes (-RouteListFiltered +MainRoutes):\n%s", d)
	}
	found := map[string]bool{}
	for _, b := range got {
		found[b.Dst] = true
	}
	for _, dst := range []string{"10.64.0.7/32", "10.66.0.0/26", "0.0.0.0/0", "10.67.0.0/26", "fd00:65::/122", "fd00:67::/122"} {
		if !found[dst] {
			t.Errorf("MainRoutes has no route to %s: %+v", dst, got)
		}
	}
	if found["10.68.0.0/26"] {
		t.Errorf("MainRoutes read another table's route: %+v", got)
	}
}
