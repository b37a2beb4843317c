package nlsafe

import (
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// Some reads are done here on a NETLINK_ROUTE socket of their own rather
// than through vishvananda/netlink, which decodes every attribute of every
// object into a value of its own: calyx-node's periodic resync and
// collector read a few fields of thousands of links and routes, and the
// library's decoding was most of what they allocated (tens of MB a
// resync at 1,000 endpoints and 10,000 routes).

const (
	// requestSeq is the sequence number of every request: each is alone
	// on its socket.
	requestSeq = 1
	// dumpBuf is the receive buffer of a dump (see request).
	dumpBuf = 32 << 10
)

// request sends req (sequence number requestSeq) on a NETLINK_ROUTE
// socket of its own, in the calling thread's network namespace, and reads
// the reply into one buffer, calling msg with the payload of each message
// of type typ. It returns netlink.ErrDumpInterrupted when the kernel
// marked a part of a dump interrupted, having read it all.
func request(req []byte, typ uint16, msg func([]byte)) error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("opening a netlink socket: %w", err)
	}
	defer func() { _ = unix.Close(fd) }()
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("binding a netlink socket: %w", err)
	}
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("sending a netlink request: %w", err)
	}
	// The kernel fills each datagram of a dump up to the largest buffer
	// this socket has read with (up to about 32 KiB; a page at first), so
	// a dump reads with dumpBuf, which keeps their number small. A single
	// reply (one link's a few KB) gets a buffer of its size, which a peek
	// measures: a lookup of one link per endpoint must not cost 32 KiB.
	// A larger datagram than the buffer grows it likewise.
	var buf []byte
	if nl.NativeEndian().Uint16(req[6:8])&unix.NLM_F_DUMP == unix.NLM_F_DUMP {
		buf = make([]byte, dumpBuf)
	}
	interrupted := false
	for {
		n, _, err := unix.Recvfrom(fd, nil, unix.MSG_PEEK|unix.MSG_TRUNC)
		if err == nil && n > len(buf) {
			buf = make([]byte, n)
		}
		if err == nil {
			n, _, err = unix.Recvfrom(fd, buf, 0)
		}
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return fmt.Errorf("reading a netlink reply: %w", err)
		}
		done, intr, err := parseReply(buf[:n], requestSeq, typ, msg)
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

// parseReply reads one datagram of the reply to the request with sequence
// number seq, calling msg with the payload of each message of type typ:
// done at NLMSG_DONE or after a message of type typ that is not part of a
// dump, interrupted when a message carries NLM_F_DUMP_INTR. Messages of
// another sequence number are skipped.
func parseReply(b []byte, seq uint32, typ uint16, msg func([]byte)) (done, interrupted bool, err error) {
	ne := nl.NativeEndian()
	for len(b) >= unix.NLMSG_HDRLEN {
		n := int(ne.Uint32(b[0:4]))
		if n < unix.NLMSG_HDRLEN || n > len(b) {
			return false, false, fmt.Errorf("reading a netlink reply: a message of %d bytes where %d remain", n, len(b))
		}
		t, flags, msgSeq := ne.Uint16(b[4:6]), ne.Uint16(b[6:8]), ne.Uint32(b[8:12])
		payload := b[unix.NLMSG_HDRLEN:n]
		b = b[min(nlmsgAlign(n), len(b)):]
		if msgSeq != seq {
			continue
		}
		if flags&unix.NLM_F_DUMP_INTR != 0 {
			interrupted = true
		}
		switch t {
		case unix.NLMSG_DONE:
			// its payload is the dump's error, if any
			if len(payload) >= 4 {
				if errno := -int32(ne.Uint32(payload[0:4])); errno > 0 {
					return false, false, fmt.Errorf("reading a netlink dump: %w", unix.Errno(errno))
				}
			}
			return true, interrupted, nil
		case unix.NLMSG_ERROR:
			if len(payload) < 4 {
				return false, false, errors.New("reading a netlink reply: a short error message")
			}
			if errno := -int32(ne.Uint32(payload[0:4])); errno > 0 {
				return false, false, fmt.Errorf("reading a netlink reply: %w", unix.Errno(errno))
			}
		case typ:
			msg(payload)
			if flags&unix.NLM_F_MULTI == 0 { // a reply of one message
				return true, interrupted, nil
			}
		}
	}
	return false, interrupted, nil
}

// dumpRequest is a dump request of type typ (RTM_GET*) whose body is a
// family header of hdrLen bytes, zero but for its first, the family.
func dumpRequest(typ uint16, hdrLen int, family uint8) []byte {
	ne := nl.NativeEndian()
	size := unix.NLMSG_HDRLEN + hdrLen
	b := make([]byte, size)
	ne.PutUint32(b[0:4], uint32(size))
	ne.PutUint16(b[4:6], typ)
	ne.PutUint16(b[6:8], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	ne.PutUint32(b[8:12], requestSeq)
	b[unix.NLMSG_HDRLEN] = family
	return b
}

func nlmsgAlign(n int) int { return (n + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1) }

// attrs calls f with the type and payload of each route attribute in b,
// stopping at the first malformed one (false).
func attrs(b []byte, f func(typ uint16, data []byte)) bool {
	ne := nl.NativeEndian()
	for len(b) >= unix.SizeofRtAttr {
		n := int(ne.Uint16(b[0:2]))
		if n < unix.SizeofRtAttr || n > len(b) {
			return false
		}
		f(ne.Uint16(b[2:4])&^unix.NLA_F_NESTED, b[unix.SizeofRtAttr:n])
		b = b[min((n+unix.RTA_ALIGNTO-1)&^(unix.RTA_ALIGNTO-1), len(b)):]
	}
	return true
}
