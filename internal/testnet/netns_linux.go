package testnet

import (
	"fmt"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/calyx-net/calyx/internal/nlsafe"
)

func setLinkUp(name string) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("finding %s: %w", name, err)
	}
	if err := netlink.LinkSetUp(l); err != nil {
		return fmt.Errorf("setting %s up: %w", name, err)
	}
	return nil
}

// Links returns the names of the links in netns other than lo.
func Links(t testing.TB, netns ns.NetNS) []string {
	t.Helper()
	var out []string
	if err := netns.Do(func(ns.NetNS) error {
		h, err := netlink.NewHandle()
		if err != nil {
			return err
		}
		defer h.Close()
		ls, err := nlsafe.LinkList(h)
		for _, l := range ls {
			if l.Attrs().Name != "lo" {
				out = append(out, l.Attrs().Name)
			}
		}
		return err
	}); err != nil {
		t.Fatalf("listing the links of %s: %v", netns.Path(), err)
	}
	return out
}

// LinksAfterDel returns the links left in netns after a CNI DEL, once
// calyx-node (which deletes the veth after DEL has answered) has had up to
// 5 s to: none, or what is still there then.
func LinksAfterDel(t testing.TB, netns ns.NetNS) []string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		l := Links(t, netns)
		if len(l) == 0 || time.Now().After(deadline) {
			return l
		}
		time.Sleep(10 * time.Millisecond)
	}
}
