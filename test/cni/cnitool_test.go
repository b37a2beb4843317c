package cni

import (
	"crypto/sha512"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/calyx-net/calyx/internal/testnet"
)

// cnitoolID is the container ID cnitool derives from the netns path.
func cnitoolID(netnsPath string) string {
	s := sha512.Sum512([]byte(netnsPath))
	return fmt.Sprintf("cnitool-%x", s[:10])
}

// TestCnitool runs ADD, CHECK (0.4.0 on) and DEL through cnitool for every
// spec version, from a .conf and from a .conflist.
func TestCnitool(t *testing.T) {
	testnet.RequireRoot(t)
	tool := cnitool(t)
	h := newHost(t)
	for _, v := range allVersions {
		for _, list := range []bool{false, true} {
			format := map[bool]string{false: "conf", true: "conflist"}[list]
			t.Run(v+"/"+format, func(t *testing.T) {
				name := "ct-" + strings.ReplaceAll(v, ".", "") + "-" + format
				dir := t.TempDir()
				writeConf(t, dir, h.calyxConf(v, name, false), list)
				ctr := testnet.NewNS(t)
				id := cnitoolID(ctr.Path())

				out, err := h.runCnitool(t, tool, dir, "add", name, ctr.Path())
				if err != nil {
					t.Fatal(err)
				}
				r := parseResult(t, v, []byte(out))
				if len(r.IPs) != 1 || !strings.HasPrefix(r.IPs[0].Address.String(), "10.66.") || !strings.HasSuffix(r.IPs[0].Address.String(), "/32") {
					t.Fatalf("result ips %v", r.IPs)
				}
				if got := addrs(t, ctr); len(got) != 1 || got[0] != r.IPs[0].Address.String() {
					t.Errorf("eth0 in the container has %v, result says %s", got, r.IPs[0].Address.String())
				}
				if weps := h.weps(t); !strings.Contains(weps, id) {
					t.Errorf("no endpoint for %s:\n%s", id, weps)
				}
				if atLeast(v, "0.4.0") {
					if _, err := h.runCnitool(t, tool, dir, "check", name, ctr.Path()); err != nil {
						t.Error(err)
					}
				}
				for range 2 {
					if _, err := h.runCnitool(t, tool, dir, "del", name, ctr.Path()); err != nil {
						t.Fatal(err)
					}
				}
				if l := testnet.LinksAfterDel(t, ctr); len(l) != 0 {
					t.Errorf("left in the container after DEL: %v", l)
				}
				if weps := h.weps(t); strings.Contains(weps, id) {
					t.Errorf("endpoint for %s survived DEL:\n%s", id, weps)
				}
			})
		}
	}
}

// TestPingAndCheck attaches two containers through cnitool, pings between
// them (IPv4 and IPv6), then deletes a container's default route and
// expects CHECK to say so.
func TestPingAndCheck(t *testing.T) {
	testnet.RequireRoot(t)
	tool := cnitool(t)
	h := newHost(t)
	dir := t.TempDir()
	writeConf(t, dir, h.calyxConf("1.1.0", "ping-net", true), true)
	a, b := testnet.NewNS(t), testnet.NewNS(t)
	ip := map[ns.NetNS][2]string{}
	for _, c := range []ns.NetNS{a, b} {
		out, err := h.runCnitool(t, tool, dir, "add", "ping-net", c.Path())
		if err != nil {
			t.Fatal(err)
		}
		r := parseResult(t, "1.1.0", []byte(out))
		ip[c] = [2]string{firstIP(t, r, true), firstIP(t, r, false)}
		c := c
		t.Cleanup(func() { _, _ = h.runCnitool(t, tool, dir, "del", "ping-net", c.Path()) })
	}
	t.Run("ipv4", func(t *testing.T) {
		ping(t, a, ip[b][0])
		ping(t, b, ip[a][0])
	})
	t.Run("ipv6", func(t *testing.T) {
		ping(t, a, ip[b][1])
		ping(t, b, ip[a][1])
	})
	if _, err := h.runCnitool(t, tool, dir, "check", "ping-net", a.Path()); err != nil {
		t.Fatalf("CHECK of a healthy container: %v", err)
	}
	if err := a.Do(func(ns.NetNS) error {
		return netlink.RouteDel(&netlink.Route{Dst: &net.IPNet{IP: net.IPv4zero, Mask: net.CIDRMask(0, 32)}, Gw: net.ParseIP("169.254.1.1")})
	}); err != nil {
		t.Fatal(err)
	}
	_, err := h.runCnitool(t, tool, dir, "check", "ping-net", a.Path())
	if err == nil || !strings.Contains(err.Error(), "route 0.0.0.0/0 via 169.254.1.1 dev eth0 is missing") {
		t.Errorf("CHECK after deleting the default route: %v", err)
	}
}
