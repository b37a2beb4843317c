package nlsafe_test

import (
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/calyx-net/calyx/internal/testnet"
)

// inVethNS runs f in a new network namespace that holds the veth
// calyxtest0, up (its peer, peer0, down), with a netlink handle of the
// namespace to read what f's reads are compared with.
func inVethNS(t *testing.T, f func(h *netlink.Handle, v *netlink.Veth) error) {
	t.Helper()
	testnet.RequireRoot(t)
	err := testnet.NewNS(t).Do(func(ns.NetNS) error {
		v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "calyxtest0"}, PeerName: "peer0"}
		if err := netlink.LinkAdd(v); err != nil {
			return err
		}
		if err := netlink.LinkSetUp(v); err != nil {
			return err
		}
		h, err := netlink.NewHandle()
		if err != nil {
			return err
		}
		defer h.Close()
		return f(h, v)
	})
	if err != nil {
		t.Fatal(err)
	}
}
