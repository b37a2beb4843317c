package testnet

import (
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
)

func TestNewNSIsIsolated(t *testing.T) {
	a := NewNS(t)
	b := NewNS(t)
	if a.Path() == b.Path() {
		t.Fatal("two namespaces share a path")
	}
	err := a.Do(func(ns.NetNS) error {
		// The test kernel has no dummy driver; veth is always there.
		if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "probe0"}, PeerName: "probe1"}); err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = b.Do(func(ns.NetNS) error {
		if _, err := netlink.LinkByName("probe0"); err == nil {
			t.Error("a link made in one namespace is visible in another")
		}
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		if lo.Attrs().Flags&1 == 0 {
			t.Error("lo is not up")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
