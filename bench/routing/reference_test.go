package main

import (
	"strings"
	"testing"
)

// TestRefScript pins the reference script, what Calyx programs for one
// host and its container, as golden text.
func TestRefScript(t *testing.T) {
	common := `ip -n p-h1 link add veth-ref mtu MTU address ee:ee:ee:ee:ee:ee type veth peer name eth0 mtu MTU address 02:00:00:00:01:01 netns p-c1
ip netns exec p-h1 sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.veth-ref.proxy_arp=1 net.ipv4.neigh.veth-ref.proxy_delay=0 net.ipv4.conf.veth-ref.forwarding=1 net.ipv4.conf.veth-ref.rp_filter=1
ip -n p-h1 link set veth-ref up
ip -n p-h1 route add NET.1.1/32 dev veth-ref scope link proto 80
ip -n p-h1 neigh add NET.1.1 lladdr 02:00:00:00:01:01 dev veth-ref nud permanent
ip -n p-h1 route add blackhole NET.1.0/26 proto 80
ip -n p-c1 addr add NET.1.1/32 dev eth0
ip -n p-c1 link set eth0 up
ip -n p-c1 neigh add 169.254.1.1 lladdr ee:ee:ee:ee:ee:ee dev eth0 nud permanent
ip -n p-c1 route add 169.254.1.1 dev eth0 scope link
ip -n p-c1 route add default via 169.254.1.1 dev eth0
`
	for _, tc := range []struct {
		m         mode
		mtu, net  string
		modeLines string
	}{
		{routed, "1500", "10.78", "ip -n p-h1 route add 10.78.2.0/26 via 192.0.2.12 dev eth0 proto 80\n"},
		{vxlan, "1450", "10.79", `ip -n p-h1 link add vxlan.calyx mtu 1450 address 02:00:00:00:01:fe type vxlan id 4096 local 192.0.2.11 dstport 4789 nolearning udpcsum
ip -n p-h1 addr add 10.79.1.0/32 dev vxlan.calyx
ip -n p-h1 link set vxlan.calyx up
ip -n p-h1 neigh add 10.79.2.0 lladdr 02:00:00:00:02:fe dev vxlan.calyx nud permanent
bridge -n p-h1 fdb add 02:00:00:00:02:fe dev vxlan.calyx dst 192.0.2.12 self permanent
ip -n p-h1 route add 10.79.2.0/26 via 10.79.2.0 dev vxlan.calyx onlink proto 80
`},
	} {
		hs := refHosts(tc.m, "p")
		got := scriptText(refScript(tc.m, hs[0], hs[1]))
		want := strings.NewReplacer("MTU", tc.mtu, "NET", tc.net).Replace(common) + tc.modeLines
		if got != want {
			t.Errorf("%s script for h1:\ngot:\n%s\nwant:\n%s", tc.m, got, want)
		}
		// h2's script is h1's mirror: its own block, the peer's routes.
		got2 := scriptText(refScript(tc.m, hs[1], hs[0]))
		if !strings.Contains(got2, "route add "+tc.net+".1.0/26 via ") || !strings.Contains(got2, "blackhole "+tc.net+".2.0/26") {
			t.Errorf("%s script for h2 does not mirror h1's:\n%s", tc.m, got2)
		}
	}
}
