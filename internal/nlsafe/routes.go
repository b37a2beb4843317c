package nlsafe

import (
	"net/netip"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// RouteBrief is what MainRoutes reads of a route.
type RouteBrief struct {
	// Dst is the destination; the family's /0 for a route without one
	// (a default route).
	Dst                   netip.Prefix
	Protocol, Scope, Type uint8  // RTPROT_*, RT_SCOPE_*, RTN_*
	Flags                 uint32 // RTNH_F_*: unix.RTNH_F_ONLINK
	// LinkIndex is the output device (RTA_OIF), Gw the next hop
	// (RTA_GATEWAY): 0 and the zero Addr when the route has none. A
	// multipath route's next hops are not read.
	LinkIndex int
	Gw        netip.Addr
}

// MainRoutes lists the IPv4 and IPv6 routes of the main table of the
// calling thread's network namespace (run it there), as RouteListFiltered
// with no filter lists them, reading only what RouteBrief holds, on a
// socket of its own, and converting each route with conv as it is read
// (keeping those conv accepts): for calyx-node's resync, which reads every
// route of a host that may have tens of thousands.
func MainRoutes[T any](conv func(RouteBrief) (T, bool)) ([]T, error) {
	return retry("routes", func() ([]T, error) {
		var out []T
		err := request(routeDumpRequest(), unix.RTM_NEWROUTE, func(msg []byte) {
			if r, ok := routeBrief(msg); ok {
				if t, ok := conv(r); ok {
					out = append(out, t)
				}
			}
		})
		return out, err
	})
}

// routeDumpRequest is an RTM_GETROUTE dump request for every family:
// nlmsghdr, rtmsg.
func routeDumpRequest() []byte {
	return dumpRequest(unix.RTM_GETROUTE, unix.SizeofRtMsg, unix.AF_UNSPEC)
}

// routeBrief reads an RTM_NEWROUTE message's payload, an rtmsg then
// attributes: false for a route of another family or table, a cloned
// one (as vishvananda/netlink leaves them out), or one that does not
// parse.
func routeBrief(msg []byte) (RouteBrief, bool) {
	if len(msg) < unix.SizeofRtMsg {
		return RouteBrief{}, false
	}
	ne := nl.NativeEndian()
	family, dstLen, table := msg[0], int(msg[1]), uint32(msg[4])
	r := RouteBrief{Protocol: msg[5], Scope: msg[6], Type: msg[7], Flags: ne.Uint32(msg[8:12])}
	var bits int
	switch family {
	case unix.AF_INET:
		bits = 32
		r.Dst = netip.PrefixFrom(netip.IPv4Unspecified(), 0)
	case unix.AF_INET6:
		bits = 128
		r.Dst = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
	default:
		return RouteBrief{}, false
	}
	if dstLen > bits {
		return RouteBrief{}, false
	}
	ok := attrs(msg[unix.SizeofRtMsg:], func(typ uint16, data []byte) {
		switch typ {
		case unix.RTA_TABLE:
			if len(data) == 4 {
				table = ne.Uint32(data)
			}
		case unix.RTA_DST:
			if a, ok := netip.AddrFromSlice(data); ok && a.BitLen() == bits {
				r.Dst = netip.PrefixFrom(a, dstLen)
			}
		case unix.RTA_OIF:
			if len(data) == 4 {
				r.LinkIndex = int(ne.Uint32(data))
			}
		case unix.RTA_GATEWAY:
			if a, ok := netip.AddrFromSlice(data); ok {
				r.Gw = a.Unmap()
			}
		}
	})
	if !ok || table != unix.RT_TABLE_MAIN || r.Flags&unix.RTM_F_CLONED != 0 || r.Dst.Bits() != dstLen {
		return RouteBrief{}, false
	}
	return r, true
}
