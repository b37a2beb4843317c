package nlsafe

import (
	"fmt"
	"strings"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

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
	// rtextFilterSkipStats asks a link dump to leave out IFLA_STATS and
	// IFLA_STATS64 (RTEXT_FILTER_SKIP_STATS, linux/rtnetlink.h; Linux 4.5).
	// Older kernels ignore it.
	rtextFilterSkipStats = 1 << 3
)

// LinkByName reads the index, name and flags of the link called name (or
// with that alternative name) in the calling thread's network namespace
// (run it there), as Links reads them; an error wrapping unix.ENODEV when
// there is none. A link lookup of vishvananda/netlink decodes the whole
// link, statistics included: some 8 KB for each endpoint calyx-node
// checks.
func LinkByName(name string) (LinkBrief, error) {
	if name == "" {
		return LinkBrief{}, fmt.Errorf("looking up a link without a name: %w", unix.ENODEV)
	}
	var out []LinkBrief
	err := request(linkGetRequest(name), unix.RTM_NEWLINK, addLink(&out))
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
	if err := request(linkDumpRequest(), unix.RTM_NEWLINK, addLink(&out)); err != nil {
		return nil, err
	}
	return out, nil
}

// addLink appends each link message's brief to out.
func addLink(out *[]LinkBrief) func([]byte) {
	return func(msg []byte) {
		if l, ok := linkBrief(msg); ok {
			*out = append(*out, l)
		}
	}
}

// linkDumpRequest is an RTM_GETLINK dump request for every family,
// without statistics: nlmsghdr, ifinfomsg, IFLA_EXT_MASK.
func linkDumpRequest() []byte {
	return linkRequestMsg(unix.NLM_F_REQUEST|unix.NLM_F_DUMP, "")
}

// linkGetRequest is an RTM_GETLINK request for the link called name,
// without statistics: nlmsghdr, ifinfomsg, IFLA_EXT_MASK, IFLA_IFNAME (or
// IFLA_ALT_IFNAME for a name longer than a link's name can be).
func linkGetRequest(name string) []byte {
	return linkRequestMsg(unix.NLM_F_REQUEST, name)
}

func linkRequestMsg(flags uint16, name string) []byte {
	ne := nl.NativeEndian()
	size := unix.NLMSG_HDRLEN + unix.SizeofIfInfomsg + unix.SizeofRtAttr + 4
	if name != "" {
		size += nlmsgAlign(unix.SizeofRtAttr + len(name) + 1)
	}
	b := make([]byte, size)
	ne.PutUint32(b[0:4], uint32(size))
	ne.PutUint16(b[4:6], unix.RTM_GETLINK)
	ne.PutUint16(b[6:8], flags)
	ne.PutUint32(b[8:12], requestSeq)
	// ifinfomsg: all zero (AF_UNSPEC, any index).
	a := b[unix.NLMSG_HDRLEN+unix.SizeofIfInfomsg:]
	ne.PutUint16(a[0:2], unix.SizeofRtAttr+4)
	ne.PutUint16(a[2:4], unix.IFLA_EXT_MASK)
	ne.PutUint32(a[4:8], rtextFilterSkipStats)
	if name != "" {
		a = a[unix.SizeofRtAttr+4:]
		ne.PutUint16(a[0:2], uint16(unix.SizeofRtAttr+len(name)+1))
		attr := uint16(unix.IFLA_IFNAME)
		if len(name) >= unix.IFNAMSIZ { // only an alternative name is that long
			attr = unix.IFLA_ALT_IFNAME
		}
		ne.PutUint16(a[2:4], attr)
		copy(a[unix.SizeofRtAttr:], name) // NUL-terminated: the buffer is zeroed
	}
	return b
}

// linkBrief reads an RTM_NEWLINK message's payload: an ifinfomsg, then
// attributes, of which it wants IFLA_IFNAME (false without one, or when an
// attribute before it is malformed).
func linkBrief(msg []byte) (LinkBrief, bool) {
	if len(msg) < unix.SizeofIfInfomsg {
		return LinkBrief{}, false
	}
	ne := nl.NativeEndian()
	l := LinkBrief{Index: int(int32(ne.Uint32(msg[4:8]))), Flags: ne.Uint32(msg[8:12])}
	found := false
	attrs(msg[unix.SizeofIfInfomsg:], func(typ uint16, data []byte) {
		if typ == unix.IFLA_IFNAME && !found {
			l.Name, found = strings.TrimRight(string(data), "\x00"), true
		}
	})
	return l, found
}
