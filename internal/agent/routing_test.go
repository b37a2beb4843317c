package agent

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/calyx-net/calyx/internal/calc"
	"github.com/calyx-net/calyx/internal/dataplane/route"
)

// The desired routes are calc's plus the learned ones calc does not
// route, merged in destination order.
func TestDesiredRoutesMerge(t *testing.T) {
	p := netip.MustParsePrefix
	a := netip.MustParseAddr
	st := &calc.State{
		Routes: map[netip.Prefix]*calc.Route{
			p("10.65.0.0/26"): {Dst: p("10.65.0.0/26"), Kind: calc.RouteLocalBlock},
			p("10.65.2.0/26"): {Dst: p("10.65.2.0/26"), Kind: calc.RouteVXLAN, Gw: a("10.65.2.1"), Dev: "vxlan.calyx", OnLink: true},
		},
		BGP: &calc.BGP{Subnets: []netip.Prefix{p("192.0.2.0/24")}},
	}
	r := &routing{learned: func([]netip.Prefix) []route.RemoteRoute {
		return []route.RemoteRoute{
			{Dst: p("0.0.0.0/0"), Gw: a("192.0.2.1")},
			{Dst: p("10.65.1.0/26"), Gw: a("192.0.2.12")},
			{Dst: p("10.65.2.0/26"), Gw: a("192.0.2.13")}, // calc's VXLAN route wins
			{Dst: p("203.0.113.0/24"), Gw: a("192.0.2.1")},
		}
	}}
	var got []string
	for _, d := range r.desiredRoutes(st) {
		got = append(got, d.String())
	}
	want := []string{
		"default via 192.0.2.1 proto 80",
		"blackhole 10.65.0.0/26 proto 80",
		"10.65.1.0/26 via 192.0.2.12 proto 80",
		"10.65.2.0/26 via 10.65.2.1 dev vxlan.calyx proto 80 onlink",
		"203.0.113.0/24 via 192.0.2.1 proto 80",
	}
	if !slices.Equal(got, want) {
		t.Errorf("desired routes:\n got %q\nwant %q", got, want)
	}
}

func TestCachedMTU(t *testing.T) {
	now := time.Unix(0, 0)
	reads := 0
	mtu := 1500
	get := cachedMTU(func(netip.Addr) (int, error) { reads++; return mtu, nil }, 10*time.Second, func() time.Time { return now })
	a, b := netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("192.0.2.11")
	check := func(addr netip.Addr, want, wantReads int) {
		t.Helper()
		if got, err := get(addr); err != nil || got != want || reads != wantReads {
			t.Errorf("MTU of %s = %d, %v after %d reads; want %d after %d", addr, got, err, reads, want, wantReads)
		}
	}
	check(a, 1500, 1)
	mtu = 9000
	now = now.Add(9 * time.Second)
	check(a, 1500, 1) // reused within the TTL
	check(b, 9000, 2) // another address is read
	now = now.Add(10 * time.Second)
	check(b, 9000, 3) // read again after it
}
