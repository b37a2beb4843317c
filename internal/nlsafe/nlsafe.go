// Package nlsafe wraps the netlink dump calls Calyx uses so that an
// interrupted dump is retried instead of silently returning a partial
// result.
//
// Why: the kernel marks a netlink dump NLM_F_DUMP_INTR when the table
// changed while it was being read (a container started, a route was
// added). vishvananda/netlink then returns what it read together with
// netlink.ErrDumpInterrupted. A reconciler that treats that partial list as
// the truth would re-add or delete the wrong things, and one that ignores
// the error would act on stale data. Every dump in Calyx goes through this
// package, which retries a few times and otherwise returns a wrapped error
// that IsInterrupted recognises. Raw dump calls elsewhere are rejected by
// test/hygiene.
package nlsafe

import (
	"errors"
	"fmt"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// maxAttempts bounds the retries of one dump. Interruptions come from
// concurrent changes; a handful of attempts gets a consistent read on any
// host that is not changing its tables continuously.
const maxAttempts = 5

// IsInterrupted reports whether err says that a dump kept being interrupted
// by concurrent changes and no consistent result was read.
func IsInterrupted(err error) bool { return errors.Is(err, netlink.ErrDumpInterrupted) }

// retry runs dump until it is not interrupted, at most maxAttempts times.
func retry[T any](what string, dump func() (T, error)) (T, error) {
	var err error
	var zero T
	for range maxAttempts {
		var out T
		out, err = dump()
		if err == nil {
			return out, nil
		}
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return zero, fmt.Errorf("listing %s: %w", what, err)
		}
	}
	return zero, fmt.Errorf("listing %s: interrupted %d times by concurrent changes: %w", what, maxAttempts, err)
}

// LinkList lists every link of h's namespace.
func LinkList(h *netlink.Handle) ([]netlink.Link, error) {
	return retry("links", h.LinkList)
}

// AddrList lists the addresses of link (nil: of every link) in family.
func AddrList(h *netlink.Handle, link netlink.Link, family int) ([]netlink.Addr, error) {
	return retry("addresses", func() ([]netlink.Addr, error) { return h.AddrList(link, family) })
}

// RouteListFiltered lists the routes of family that match filter under
// filterMask (netlink.RT_FILTER_*); with no table in the mask, only the
// main table. filter must not be nil (netlink v1.3.1 dereferences it): pass
// &netlink.Route{} and a zero mask for every route.
func RouteListFiltered(h *netlink.Handle, family int, filter *netlink.Route, filterMask uint64) ([]netlink.Route, error) {
	return retry("routes", func() ([]netlink.Route, error) { return h.RouteListFiltered(family, filter, filterMask) })
}

// Routes is RouteListFiltered converting each route with conv as it is
// read (keeping those conv accepts), so that no list of netlink.Route (a
// few hundred bytes each) is built: for callers that keep a few fields of
// thousands of routes.
func Routes[T any](h *netlink.Handle, family int, filter *netlink.Route, filterMask uint64, conv func(netlink.Route) (T, bool)) ([]T, error) {
	return retry("routes", func() ([]T, error) {
		var out []T
		err := h.RouteListFilteredIter(family, filter, filterMask, func(r netlink.Route) bool {
			if t, ok := conv(r); ok {
				out = append(out, t)
			}
			return true
		})
		return out, err
	})
}

// NeighList lists the neighbour entries of family on linkIndex (0: every
// link).
func NeighList(h *netlink.Handle, linkIndex, family int) ([]netlink.Neigh, error) {
	return retry("neighbours", func() ([]netlink.Neigh, error) { return h.NeighList(linkIndex, family) })
}

// LinkBrief is what Links reads of a link.
type LinkBrief struct {
	Index int
	Name  string
	Flags uint32 // IFF_*: unix.IFF_UP for an interface set up
}

// Links lists the index, name and flags of every link of the calling
// thread's network namespace (run it there), on a netlink socket of its
// own, reading nothing else of them: for callers that check which of many
// interfaces exist, as calyx-node's collector does every few seconds. It
// asks the kernel to leave out the links' statistics, and reads the whole
// dump into one buffer: a host's thousand veths cost a few KB of names,
// not the megabytes of messages a general link list allocates.
func Links() ([]LinkBrief, error) {
	return retry("links", dumpLinks)
}

const (
	// linkDumpBuf is the receive buffer of one link request. The kernel
	// fills a dump's reply up to about 32 KiB at a time, and a link's
	// message without statistics is well under 1 KiB.
	linkDumpBuf = 64 << 10
	// rtextFilterSkipStats asks a link dump to leave out IFLA_STATS and
	// IFLA_STATS64 (RTEXT_FILTER_SKIP_STATS, linux/rtnetlink.h; Linux 4.5).
	// Older kernels ignore it.
	rtextFilterSkipStats = 1 << 3
)

// LinkByName reads the index, name and flags of the link called name in
// the calling thread's network namespace (run it there), as Links reads
// them; an error wrapping unix.ENODEV when there is none. A link lookup
// of vishvananda/netlink decodes the whole link, statistics included: some
// 8 KB for each endpoint calyx-node checks.
func LinkByName(name string) (LinkBrief, error) {
	var out []LinkBrief
	err := linkRequest(linkGetRequest(1, name), 1, func(l LinkBrief) { out = append(out, l) })
	switch {
	case err != nil:
		return LinkBrief{}, fmt.Errorf("looking up link %s: %w", name, err)
	case len(out) != 1:
		return LinkBrief{}, fmt.Errorf("looking up link %s: %d links in the reply", name, len(out))
	}
	return out[0], nil
}

// dumpLinks is one RTM_GETLINK dump; netlink.ErrDumpInterrupted when the
// kernel marked a part of it interrupted.
func dumpLinks() ([]LinkBrief, error) {
	var out []LinkBrief
	if err := linkRequest(linkDumpRequest(1), 1, func(l LinkBrief) { out = append(out, l) }); err != nil {
		return nil, err
	}
	return out, nil
}

// linkRequest sends req (with sequence number seq) on a NETLINK_ROUTE
// socket of its own and reads the reply into one buffer, calling add for
// each link it holds; netlink.ErrDumpInterrupted when the kernel marked a
// part of a dump interrupted.
func linkRequest(req []byte, seq uint32, add func(LinkBrief)) error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("opening a netlink socket: %w", err)
	}
	defer unix.Close(fd)
	kernel := &unix.SockaddrNetlink{Family: unix.AF_NETLINK}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("binding a netlink socket: %w", err)
	}
	if err := unix.Sendto(fd, req, 0, kernel); err != nil {
		return fmt.Errorf("sending a link request: %w", err)
	}
	buf := make([]byte, linkDumpBuf)
	interrupted := false
	for {
		n, _, err := unix.Recvfrom(fd, buf, unix.MSG_TRUNC)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return fmt.Errorf("reading links: %w", err)
		case n > len(buf):
			return fmt.Errorf("reading links: a reply of %d bytes is larger than the buffer (%d)", n, len(buf))
		}
		done, intr, err := parseLinkDump(buf[:n], seq, add)
		interrupted = interrupted || intr
		switch {
		case err != nil:
			return err
		case done && interrupted:
			return netlink.ErrDumpInterrupted
		case done:
			return nil
		}
	}
}

// linkDumpRequest is an RTM_GETLINK dump request for every family,
// without statistics: nlmsghdr, ifinfomsg, IFLA_EXT_MASK.
func linkDumpRequest(seq uint32) []byte {
	return linkRequestMsg(seq, unix.NLM_F_REQUEST|unix.NLM_F_DUMP, "")
}

// linkGetRequest is an RTM_GETLINK request for the link called name,
// without statistics: nlmsghdr, ifinfomsg, IFLA_EXT_MASK, IFLA_IFNAME.
func linkGetRequest(seq uint32, name string) []byte {
	return linkRequestMsg(seq, unix.NLM_F_REQUEST, name)
}

func linkRequestMsg(seq uint32, flags uint16, name string) []byte {
	ne := nl.NativeEndian()
	size := unix.NLMSG_HDRLEN + unix.SizeofIfInfomsg + unix.SizeofRtAttr + 4
	if name != "" {
		size += nlmsgAlign(unix.SizeofRtAttr + len(name) + 1)
	}
	b := make([]byte, size)
	ne.PutUint32(b[0:4], uint32(size))
	ne.PutUint16(b[4:6], unix.RTM_GETLINK)
	ne.PutUint16(b[6:8], flags)
	ne.PutUint32(b[8:12], seq)
	// ifinfomsg: all zero (AF_UNSPEC, any index).
	a := b[unix.NLMSG_HDRLEN+unix.SizeofIfInfomsg:]
	ne.PutUint16(a[0:2], unix.SizeofRtAttr+4)
	ne.PutUint16(a[2:4], unix.IFLA_EXT_MASK)
	ne.PutUint32(a[4:8], rtextFilterSkipStats)
	if name != "" {
		a = a[unix.SizeofRtAttr+4:]
		ne.PutUint16(a[0:2], uint16(unix.SizeofRtAttr+len(name)+1))
		ne.PutUint16(a[2:4], unix.IFLA_IFNAME)
		copy(a[unix.SizeofRtAttr:], name) // NUL-terminated: the buffer is zeroed
	}
	return b
}

// parseLinkDump reads one datagram of the reply to the link request with
// sequence number seq, calling add for each link: done at NLMSG_DONE or
// after a link message that is not part of a dump, interrupted when a
// message carries NLM_F_DUMP_INTR. Messages of another sequence number
// are skipped.
func parseLinkDump(b []byte, seq uint32, add func(LinkBrief)) (done, interrupted bool, err error) {
	ne := nl.NativeEndian()
	for len(b) >= unix.NLMSG_HDRLEN {
		n := int(ne.Uint32(b[0:4]))
		if n < unix.NLMSG_HDRLEN || n > len(b) {
			return false, false, fmt.Errorf("reading a link dump: a message of %d bytes where %d remain", n, len(b))
		}
		typ, flags, msgSeq := ne.Uint16(b[4:6]), ne.Uint16(b[6:8]), ne.Uint32(b[8:12])
		msg := b[unix.NLMSG_HDRLEN:n]
		b = b[min(nlmsgAlign(n), len(b)):]
		if msgSeq != seq {
			continue
		}
		if flags&unix.NLM_F_DUMP_INTR != 0 {
			interrupted = true
		}
		switch typ {
		case unix.NLMSG_DONE:
			// its payload is the dump's error, if any
			if len(msg) >= 4 {
				if errno := -int32(ne.Uint32(msg[0:4])); errno > 0 {
					return false, false, fmt.Errorf("reading a link dump: %w", unix.Errno(errno))
				}
			}
			return true, interrupted, nil
		case unix.NLMSG_ERROR:
			if len(msg) < 4 {
				return false, false, errors.New("reading a link dump: a short error message")
			}
			if errno := -int32(ne.Uint32(msg[0:4])); errno > 0 {
				return false, false, fmt.Errorf("reading a link dump: %w", unix.Errno(errno))
			}
		case unix.RTM_NEWLINK:
			if l, ok := linkBrief(msg); ok {
				add(l)
			}
			if flags&unix.NLM_F_MULTI == 0 { // a reply of one message
				return true, interrupted, nil
			}
		}
	}
	return false, interrupted, nil
}

func nlmsgAlign(n int) int { return (n + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1) }

// linkBrief reads an RTM_NEWLINK message's payload: an ifinfomsg, then
// attributes, of which it wants IFLA_IFNAME.
func linkBrief(msg []byte) (LinkBrief, bool) {
	if len(msg) < unix.SizeofIfInfomsg {
		return LinkBrief{}, false
	}
	ne := nl.NativeEndian()
	l := LinkBrief{Index: int(int32(ne.Uint32(msg[4:8]))), Flags: ne.Uint32(msg[8:12])}
	b := msg[unix.SizeofIfInfomsg:]
	for len(b) >= unix.SizeofRtAttr {
		n := int(ne.Uint16(b[0:2]))
		if n < unix.SizeofRtAttr || n > len(b) {
			return LinkBrief{}, false
		}
		if ne.Uint16(b[2:4]) == unix.IFLA_IFNAME {
			l.Name = strings.TrimRight(string(b[unix.SizeofRtAttr:n]), "\x00")
			return l, true
		}
		b = b[min((n+unix.RTA_ALIGNTO-1)&^(unix.RTA_ALIGNTO-1), len(b)):]
	}
	return LinkBrief{}, false
}
