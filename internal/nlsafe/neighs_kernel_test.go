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

// Neighs reads what NeighList does of each family's entries (permanent
// ones here; not the proxy entry, which a neighbour dump leaves out).
func TestNeighsKernel(t *testing.T) {
	type brief struct {
		IP        string
		LinkIndex int
		State     int
		Flags     int
		MAC       string
	}
	var got, want []brief
	inVethNS(t, func(h *netlink.Handle, v *netlink.Veth) error {
		mac, _ := net.ParseMAC("ee:ee:ee:00:00:07")
		for _, n := range []netlink.Neigh{
			{LinkIndex: v.Index, Family: netlink.FAMILY_V4, State: netlink.NUD_PERMANENT, IP: net.ParseIP("10.64.0.7"), HardwareAddr: mac},
			{LinkIndex: v.Index, Family: netlink.FAMILY_V6, State: netlink.NUD_PERMANENT, IP: net.ParseIP("fd00:64::7"), HardwareAddr: mac},
			{LinkIndex: v.Index, Family: netlink.FAMILY_V4, Flags: netlink.NTF_PROXY, IP: net.ParseIP("10.64.0.8")},
		} {
			if err := netlink.NeighAdd(&n); err != nil {
				return err
			}
		}
		for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
			bs, err := nlsafe.Neighs(uint8(fam))
			if err != nil {
				return err
			}
			for _, b := range bs {
				got = append(got, brief{b.IP.String(), b.LinkIndex, int(b.State), int(b.Flags), b.MAC})
			}
			ns, err := nlsafe.NeighList(h, 0, fam)
			if err != nil {
				return err
			}
			for _, n := range ns {
				ip, _ := netip.AddrFromSlice(n.IP)
				want = append(want, brief{ip.Unmap().String(), n.LinkIndex, n.State, n.Flags, n.HardwareAddr.String()})
			}
		}
		return nil
	})
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("Neighs (-NeighList +Neighs):\n%s", d)
	}
	found := map[string]brief{}
	for _, b := range got {
		found[b.IP] = b
	}
	if b := found["fd00:64::7"]; b.MAC != "ee:ee:ee:00:00:07" || b.State&unix.NUD_PERMANENT == 0 {
		t.Errorf("Neighs read fd00:64::7 as %+v, want a permanent entry with its MAC", b)
	}
	if b, ok := found["10.64.0.8"]; ok {
		t.Errorf("Neighs read the proxy entry 10.64.0.8 (%+v): a dump lists only neighbour entries", b)
	}
}
