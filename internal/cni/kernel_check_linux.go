package cni

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"

	"github.com/calyx-net/calyx/internal/nlsafe"
)

func (netlinkKernel) Check(_ context.Context, s vethSpec) ([]string, error) {
	var problems []string
	// The gateway's neighbour entry must carry the host end's MAC, which
	// is HostVethMAC unless the host end says otherwise.
	hostMAC, _ := net.ParseMAC(HostVethMAC)
	if s.HostIfName != "" {
		host, err := netlink.LinkByName(s.HostIfName)
		if isLinkNotFound(err) {
			problems = append(problems, fmt.Sprintf("host interface %s is missing", s.HostIfName))
		} else if err == nil && len(host.Attrs().HardwareAddr) > 0 {
			hostMAC = host.Attrs().HardwareAddr
		}
	}
	err := withNetns(s.Netns, func() error {
		h, err := netlink.NewHandle()
		if err != nil {
			return fmt.Errorf("opening netlink: %w", err)
		}
		defer h.Close()
		link, err := h.LinkByName(s.IfName)
		if isLinkNotFound(err) {
			problems = append(problems, fmt.Sprintf("interface %s is missing", s.IfName))
			return nil
		}
		if err != nil {
			return err
		}
		p, err := checkContainer(h, link, s, hostMAC)
		problems = append(problems, p...)
		return err
	})
	return problems, err
}

// checkContainer runs inside the container's namespace.
func checkContainer(h *netlink.Handle, link netlink.Link, s vethSpec, hostMAC net.HardwareAddr) ([]string, error) {
	var problems []string
	attrs := link.Attrs()
	if link.Type() != "veth" {
		problems = append(problems, fmt.Sprintf("%s is a %s, not a veth", s.IfName, link.Type()))
	}
	if attrs.Flags&net.FlagUp == 0 {
		problems = append(problems, fmt.Sprintf("%s is down", s.IfName))
	}
	if s.MTU != 0 && attrs.MTU != s.MTU {
		problems = append(problems, fmt.Sprintf("%s has MTU %d, want %d", s.IfName, attrs.MTU, s.MTU))
	}
	addrs, err := nlsafe.AddrList(h, link, netlink.FAMILY_ALL)
	if err != nil {
		return problems, err
	}
	has4, has6 := false, false
	for _, want := range s.IPs {
		has4 = has4 || want.Addr().Is4()
		has6 = has6 || want.Addr().Is6()
		found := false
		for _, a := range addrs {
			found = found || toPrefix(a.IPNet) == want
		}
		if !found {
			problems = append(problems, fmt.Sprintf("address %s is missing from %s", want, s.IfName))
		}
	}
	for _, gw := range gateways(s, has4, has6) {
		p, err := checkNeigh(h, attrs.Index, s.IfName, gatewayNeigh(attrs.Index, gw, hostMAC))
		if err != nil {
			return problems, err
		}
		problems = append(problems, p...)
	}
	var routes []netlink.Route
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		rs, err := nlsafe.RouteListFiltered(h, fam, &netlink.Route{LinkIndex: attrs.Index}, netlink.RT_FILTER_OIF)
		if err != nil {
			return problems, err
		}
		routes = append(routes, rs...)
	}
	var want []*netlink.Route
	if has4 && s.Gateway4.IsValid() {
		want = append(want, gatewayRoutes(attrs.Index, s.Gateway4)...)
	}
	if has6 && s.Gateway6.IsValid() {
		want = append(want, gatewayRoutes(attrs.Index, s.Gateway6)...)
	}
	for _, w := range want {
		if !hasRoute(routes, w) {
			desc := fmt.Sprintf("route %s dev %s", toPrefix(w.Dst), s.IfName)
			if w.Gw != nil {
				desc = fmt.Sprintf("route %s via %s dev %s", toPrefix(w.Dst), w.Gw, s.IfName)
			}
			problems = append(problems, desc+" is missing")
		}
	}
	return problems, nil
}

func toPrefix(n *net.IPNet) netip.Prefix {
	if n == nil {
		return netip.Prefix{}
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}
	}
	a = a.Unmap()
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a, ones)
}

// hasRoute reports whether routes holds w's destination with w's gateway.
// A default route may be listed with no destination at all.
func hasRoute(routes []netlink.Route, w *netlink.Route) bool {
	wantDst := toPrefix(w.Dst)
	for _, r := range routes {
		dst := toPrefix(r.Dst)
		if r.Dst == nil {
			if r.Gw == nil {
				continue
			}
			dst = netip.PrefixFrom(netip.IPv4Unspecified(), 0)
			if r.Gw.To4() == nil {
				dst = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
			}
		}
		if dst != wantDst {
			continue
		}
		if w.Gw == nil || w.Gw.Equal(r.Gw) {
			return true
		}
	}
	return false
}

// checkNeigh reports a missing or different neighbour entry for want.IP.
func checkNeigh(h *netlink.Handle, idx int, ifName string, want *netlink.Neigh) ([]string, error) {
	neighs, err := nlsafe.NeighList(h, idx, want.Family)
	if err != nil {
		return nil, fmt.Errorf("listing the neighbours on %s: %w", ifName, err)
	}
	wantText := fmt.Sprintf("permanent neighbour %s lladdr %s dev %s", want.IP, want.HardwareAddr, ifName)
	for _, n := range neighs {
		if !n.IP.Equal(want.IP) {
			continue
		}
		if n.State&netlink.NUD_PERMANENT == 0 || !bytes.Equal(n.HardwareAddr, want.HardwareAddr) {
			return []string{fmt.Sprintf("%s is missing: the entry is %s lladdr %s", wantText, neighState(n.State), n.HardwareAddr)}, nil
		}
		return nil, nil
	}
	return []string{wantText + " is missing"}, nil
}

// neighState names a neighbour state as `ip neigh` does.
func neighState(st int) string {
	for _, s := range []struct {
		bit  int
		name string
	}{
		{netlink.NUD_PERMANENT, "PERMANENT"}, {netlink.NUD_REACHABLE, "REACHABLE"}, {netlink.NUD_STALE, "STALE"},
		{netlink.NUD_DELAY, "DELAY"}, {netlink.NUD_PROBE, "PROBE"}, {netlink.NUD_FAILED, "FAILED"},
		{netlink.NUD_INCOMPLETE, "INCOMPLETE"}, {netlink.NUD_NOARP, "NOARP"},
	} {
		if st&s.bit != 0 {
			return s.name
		}
	}
	return fmt.Sprintf("state %#x", st)
}
