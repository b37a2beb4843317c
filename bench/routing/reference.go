package main

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
)

// The reference: the same two hosts and containers, programmed by a
// script of `ip`, `bridge` and `sysctl` commands, with no agent, no etcd
// and no nftables. It copies what Calyx programs (internal/cni for the
// container side, internal/dataplane/route and vxlan for the host side):
//
//   - container: eth0 with a /32, a permanent neighbour entry for the
//     gateway 169.254.1.1 (the host veth's MAC ee:ee:ee:ee:ee:ee), a link
//     route to it and the default route via it;
//   - host veth: MAC ee:ee:ee:ee:ee:ee, proxy_arp=1, proxy_delay=0,
//     forwarding=1, rp_filter=1; a /32 route to the container (scope
//     link, proto 80) and a permanent neighbour entry for it; ip_forward=1;
//   - a blackhole for the host's own block (proto 80);
//   - routed: the peer's block via the peer's underlay address on eth0;
//   - VXLAN: vxlan.calyx (VNI 4096, port 4789, local = the underlay
//     address, learning off, UDP checksums on, MTU underlay − 50) holding
//     a /32 tunnel address; the peer's tunnel address as a permanent
//     neighbour, its MAC in the FDB towards its underlay address, and the
//     peer's block via its tunnel address, onlink.
//
// The container MTU is Calyx's derived one: the underlay's, less 50 under
// VXLAN.

// refHost is one host's part in the reference.
type refHost struct {
	host, ctr string       // namespace names
	underlay  netip.Prefix // eth0's address
	block     netip.Prefix // the host's block of container addresses
	ctrAddr   netip.Addr
	ctrMAC    string
	tunnel    netip.Addr // VXLAN: vxlan.calyx's address
	vxMAC     string     // VXLAN: vxlan.calyx's MAC
}

const (
	refHostIf   = "veth-ref" // the host end of a container's veth
	hostVethMAC = "ee:ee:ee:ee:ee:ee"
	gateway     = "169.254.1.1"
	vxlanDev    = "vxlan.calyx"
	vxlanVNI    = 4096
	vxlanPort   = 4789
	vxlanOver   = 50 // bytes VXLAN over IPv4 adds
	routeProto  = "80"
)

// refHosts are the reference's two hosts in mode, in namespaces named
// with prefix.
func refHosts(m mode, prefix string) [2]refHost {
	net := 78
	if m == vxlan {
		net = 79
	}
	var hs [2]refHost
	for i := range hs {
		block := netip.MustParsePrefix(fmt.Sprintf("10.%d.%d.0/26", net, i+1))
		hs[i] = refHost{
			host: fmt.Sprintf("%s-h%d", prefix, i+1), ctr: fmt.Sprintf("%s-c%d", prefix, i+1),
			underlay: underlay[i], block: block, ctrAddr: block.Addr().Next(),
			ctrMAC: fmt.Sprintf("02:00:00:00:%02x:01", i+1),
		}
		if m == vxlan {
			hs[i].tunnel, hs[i].vxMAC = block.Addr(), fmt.Sprintf("02:00:00:00:%02x:fe", i+1)
		}
	}
	return hs
}

// refMTU is the containers' MTU in mode.
func refMTU(m mode) int {
	if m == vxlan {
		return underlayMTU - vxlanOver
	}
	return underlayMTU
}

// refScript returns the commands that program host self (whose peer is
// peer) in mode, each an argv; the namespaces and the underlay exist.
func refScript(m mode, self, peer refHost) [][]string {
	mtu := fmt.Sprint(refMTU(m))
	h := func(args ...string) []string { return append([]string{"ip", "-n", self.host}, args...) }
	c := func(args ...string) []string { return append([]string{"ip", "-n", self.ctr}, args...) }
	ctr32 := netip.PrefixFrom(self.ctrAddr, 32).String()
	s := [][]string{
		h("link", "add", refHostIf, "mtu", mtu, "address", hostVethMAC, "type", "veth",
			"peer", "name", "eth0", "mtu", mtu, "address", self.ctrMAC, "netns", self.ctr),
		{"ip", "netns", "exec", self.host, "sysctl", "-qw", "net.ipv4.ip_forward=1",
			"net.ipv4.conf." + refHostIf + ".proxy_arp=1", "net.ipv4.neigh." + refHostIf + ".proxy_delay=0",
			"net.ipv4.conf." + refHostIf + ".forwarding=1", "net.ipv4.conf." + refHostIf + ".rp_filter=1"},
		h("link", "set", refHostIf, "up"),
		h("route", "add", ctr32, "dev", refHostIf, "scope", "link", "proto", routeProto),
		h("neigh", "add", self.ctrAddr.String(), "lladdr", self.ctrMAC, "dev", refHostIf, "nud", "permanent"),
		h("route", "add", "blackhole", self.block.String(), "proto", routeProto),
		c("addr", "add", ctr32, "dev", "eth0"),
		c("link", "set", "eth0", "up"),
		c("neigh", "add", gateway, "lladdr", hostVethMAC, "dev", "eth0", "nud", "permanent"),
		c("route", "add", gateway, "dev", "eth0", "scope", "link"),
		c("route", "add", "default", "via", gateway, "dev", "eth0"),
	}
	switch m {
	case routed:
		s = append(s, h("route", "add", peer.block.String(), "via", peer.underlay.Addr().String(), "dev", "eth0", "proto", routeProto))
	case vxlan:
		s = append(s,
			h("link", "add", vxlanDev, "mtu", mtu, "address", self.vxMAC, "type", "vxlan", "id", fmt.Sprint(vxlanVNI),
				"local", self.underlay.Addr().String(), "dstport", fmt.Sprint(vxlanPort), "nolearning", "udpcsum"),
			h("addr", "add", netip.PrefixFrom(self.tunnel, 32).String(), "dev", vxlanDev),
			h("link", "set", vxlanDev, "up"),
			h("neigh", "add", peer.tunnel.String(), "lladdr", peer.vxMAC, "dev", vxlanDev, "nud", "permanent"),
			[]string{"bridge", "-n", self.host, "fdb", "add", peer.vxMAC, "dev", vxlanDev, "dst", peer.underlay.Addr().String(), "self", "permanent"},
			h("route", "add", peer.block.String(), "via", peer.tunnel.String(), "dev", vxlanDev, "onlink", "proto", routeProto))
	}
	return s
}

// scriptText renders commands as shell lines, for logs and tests.
func scriptText(cmds [][]string) string {
	var b strings.Builder
	for _, c := range cmds {
		b.WriteString(strings.Join(c, " "))
		b.WriteByte('\n')
	}
	return b.String()
}

// conntrackTable is what every stateful ruleset costs, Calyx's included:
// a forward hook whose first rule accepts established flows (conntrack
// on), and the NAT hooks Calyx's table registers (port mappings,
// natOutgoing), with no rules. The reference_ct peer loads it on both
// hosts; Calyx's figures over it leave Calyx's policy chains and
// calyx-node itself.
const conntrackTable = `table inet refct {
	chain filter_forward {
		type filter hook forward priority filter; policy accept;
		ct state established,related accept
	}
	chain nat_prerouting {
		type nat hook prerouting priority dstnat; policy accept;
	}
	chain nat_output {
		type nat hook output priority -100; policy accept;
	}
	chain nat_postrouting {
		type nat hook postrouting priority srcnat; policy accept;
	}
}
`

// newReference builds mode's reference: the hosts and the underlay as for
// Calyx, then refScript on each host, from the benchmark's own namespace:
// every command names its namespace (`ip -n`, `ip netns exec`), so
// nothing outside them changes. With conntrack, each host also gets
// conntrackTable.
func newReference(ctx context.Context, m mode, conntrack bool) (_ *topology, err error) {
	t := &topology{}
	defer func() {
		if err != nil {
			t.close()
		}
	}()
	prefix, name, who := "ref-"+string(m), "reference", refIs
	if conntrack {
		prefix, name, who = "refct-"+string(m), "reference_ct", refCTIs
	}
	hostNS, err := t.hosts(ctx, prefix)
	if err != nil {
		return nil, err
	}
	rh := refHosts(m, nsName(prefix))
	var ctrs [2]*netNS
	for i := range ctrs {
		if ctrs[i], err = t.ns(ctx, fmt.Sprintf("%s-c%d", prefix, i+1)); err != nil {
			return nil, err
		}
		if hostNS[i].name != rh[i].host || ctrs[i].name != rh[i].ctr {
			return nil, fmt.Errorf("reference namespaces %s, %s are not the script's %s, %s", hostNS[i].name, ctrs[i].name, rh[i].host, rh[i].ctr)
		}
	}
	for i := range rh {
		for _, c := range refScript(m, rh[i], rh[1-i]) {
			if err := command(ctx, c[0], c[1:]...); err != nil {
				return nil, fmt.Errorf("reference script: %w", err)
			}
		}
	}
	if conntrack {
		for _, h := range hostNS {
			if _, err := h.input(ctx, conntrackTable, "nft", "-f", "-"); err != nil {
				return nil, err
			}
		}
	}
	t.pair = pair{name: name, who: who,
		client: ctrs[0], srv: ctrs[1], srvAddr: rh[1].ctrAddr.String(), mtu: refMTU(m)}
	if err := waitPing(ctx, ctrs[0], rh[1].ctrAddr.String()); err != nil {
		return nil, err
	}
	if err := waitPing(ctx, ctrs[1], rh[0].ctrAddr.String()); err != nil {
		return nil, err
	}
	return t, nil
}
