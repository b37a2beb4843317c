package bgp

import (
	"fmt"
	"net/netip"

	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

// apiPath is the GoBGP form of a locally originated path, or of its
// withdrawal: origin IGP and the next hop (NEXT_HOP for IPv4,
// MP_REACH_NLRI for IPv6, as RFC 4760 has it).
func apiPath(p Path, withdraw bool) (*apiutil.Path, error) {
	prefix := p.Prefix.Masked()
	nlri, err := bgp.NewIPAddrPrefix(prefix)
	if err != nil {
		return nil, fmt.Errorf("path %s: %w", p.Prefix, err)
	}
	family := bgp.RF_IPv4_UC
	if prefix.Addr().Is6() {
		family = bgp.RF_IPv6_UC
	}
	attrs := []bgp.PathAttributeInterface{bgp.NewPathAttributeOrigin(bgp.BGP_ORIGIN_ATTR_TYPE_IGP)}
	if family == bgp.RF_IPv4_UC {
		nh, err := bgp.NewPathAttributeNextHop(p.NextHop)
		if err != nil {
			return nil, fmt.Errorf("path %s: next hop %s: %w", p.Prefix, p.NextHop, err)
		}
		attrs = append(attrs, nh)
	} else {
		mp, err := bgp.NewPathAttributeMpReachNLRI(family, []bgp.PathNLRI{{NLRI: nlri}}, p.NextHop)
		if err != nil {
			return nil, fmt.Errorf("path %s: next hop %s: %w", p.Prefix, p.NextHop, err)
		}
		attrs = append(attrs, mp)
	}
	return &apiutil.Path{Family: family, Nlri: nlri, Attrs: attrs, Withdrawal: withdraw}, nil
}

// validPath checks a desired path before anything is sent to GoBGP: a
// valid prefix and a next hop of the same family.
func validPath(p Path) error {
	if !p.Prefix.IsValid() {
		return fmt.Errorf("path %v: invalid prefix", p.Prefix)
	}
	if !p.NextHop.IsValid() || p.NextHop.Is4() != p.Prefix.Addr().Is4() {
		return fmt.Errorf("path %s: next hop %v is not an address of the prefix's family", p.Prefix, p.NextHop)
	}
	return nil
}

// prefixOf is the IP prefix of a unicast path's NLRI.
func prefixOf(p *apiutil.Path) (netip.Prefix, bool) {
	if p.Family != bgp.RF_IPv4_UC && p.Family != bgp.RF_IPv6_UC {
		return netip.Prefix{}, false
	}
	n, ok := p.Nlri.(*bgp.IPAddrPrefix)
	if !ok {
		return netip.Prefix{}, false
	}
	return n.Prefix, true
}

// nextHopOf is a path's next hop: NEXT_HOP for IPv4 unicast over IPv4,
// the MP_REACH_NLRI next hop otherwise.
func nextHopOf(p *apiutil.Path) netip.Addr {
	for _, a := range p.Attrs {
		switch a := a.(type) {
		case *bgp.PathAttributeNextHop:
			return a.Value
		case *bgp.PathAttributeMpReachNLRI:
			return a.Nexthop.Unmap()
		}
	}
	return netip.Addr{}
}
