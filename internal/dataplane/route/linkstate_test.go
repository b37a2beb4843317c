package route

import (
	"net/netip"
	"testing"
	"unsafe"
)

// Every endpoint's veth has a linkState for its life: its sysctls are
// kept in it by index, with no key strings of their own, and the keys
// made from the index are the ones ifaceSysctls writes.
func TestLinkStateKeepsSysctlsByIndex(t *testing.T) {
	if s := unsafe.Sizeof(linkState{}); s > 176 {
		t.Errorf("a linkState is %d bytes, want at most 176", s)
	}
	ep := Endpoint{IfName: "calyx0123456789", Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.1")}}
	m := ifaceMask(ep)
	var ls linkState
	for i, s := range ifaceSysctls(ep) {
		if !m.has(i) || ifaceKey(i, ep.IfName) != s.Key {
			t.Fatalf("setting %d: mask %b, key %q, want %q", i, m, ifaceKey(i, ep.IfName), s.Key)
		}
		ls.set(i, s.Value)
	}
	if m != 0b1111 || ls.known != m {
		t.Errorf("an IPv4 endpoint: mask %b, known %b, want 1111", m, ls.known)
	}
	if v, ok := ls.get(0); !ok || v != "1" {
		t.Errorf("proxy_arp: %q, %v", v, ok)
	}
	ls.forget(0)
	if _, ok := ls.get(0); ok || ls.known != 0b1110 {
		t.Errorf("after forget: known %b", ls.known)
	}
	ep.Addrs = append(ep.Addrs, netip.MustParseAddr("fd00::1"))
	if m := ifaceMask(ep); m != allIfaceKeys || len(ifaceSysctls(ep)) != len(ifaceSettings) {
		t.Errorf("a dual-stack endpoint: mask %b, want every setting", m)
	}
}
