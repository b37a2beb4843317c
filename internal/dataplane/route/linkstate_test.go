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
	v4, v6 := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("fd00::1")
	for _, tc := range []struct {
		addrs []netip.Addr
		want  keyMask
	}{{[]netip.Addr{v4}, 0b1111}, {[]netip.Addr{v6}, 0b11110000}, {[]netip.Addr{v4, v6}, allIfaceKeys}, {nil, 0}} {
		ep := Endpoint{IfName: "calyx0123456789", Addrs: tc.addrs}
		m := ifaceMask(ep)
		if m != tc.want {
			t.Errorf("%v: mask %08b, want %08b", tc.addrs, m, tc.want)
		}
		// ifaceSysctls lists the mask's settings in index order.
		var ls linkState
		sys := ifaceSysctls(ep)
		for i := range ifaceSettings {
			if !m.has(i) {
				continue
			}
			if len(sys) == 0 || sys[0].Key != ifaceKey(i, ep.IfName) || sys[0].Value != ifaceSettings[i].value {
				t.Fatalf("%v: setting %d is %q, next written %v", tc.addrs, i, ifaceKey(i, ep.IfName), sys)
			}
			ls.set(i, sys[0].Value)
			sys = sys[1:]
		}
		if len(sys) != 0 || ls.known != m {
			t.Errorf("%v: %d settings written beyond the mask; known %08b", tc.addrs, len(sys), ls.known)
		}
		for i := range ifaceSettings {
			if v, ok := ls.get(i); ok != m.has(i) || ok && v != ifaceSettings[i].value {
				t.Errorf("%v: setting %d: %q, %v", tc.addrs, i, v, ok)
			}
			ls.forget(i)
		}
		if ls.known != 0 {
			t.Errorf("%v: known %08b after forgetting every setting", tc.addrs, ls.known)
		}
	}
}
