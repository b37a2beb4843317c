package nlsafe

import (
	"net"
	"net/netip"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// NeighBrief is what Neighs reads of a neighbour entry.
type NeighBrief struct {
	IP        netip.Addr
	LinkIndex int
	State     uint16 // NUD_*
	Flags     uint8  // NTF_*
	// MAC is the link-layer address, lower-case and colon-separated; ""
	// when the entry has none.
	MAC string
}

// Neighs lists the neighbour entries of family (unix.AF_INET or
// unix.AF_INET6) on every link of the calling thread's network namespace
// (run it there), reading only what NeighBrief holds, on a socket of its
// own.
func Neighs(family uint8) ([]NeighBrief, error) {
	return retry("neighbours", func() ([]NeighBrief, error) {
		var out []NeighBrief
		err := request(neighDumpRequest(family), unix.RTM_NEWNEIGH, func(msg []byte) {
			if n, ok := neighBrief(msg, family); ok {
				out = append(out, n)
			}
		})
		return out, err
	})
}

// neighDumpRequest is an RTM_GETNEIGH dump request for family: nlmsghdr,
// ndmsg.
func neighDumpRequest(family uint8) []byte {
	return dumpRequest(unix.RTM_GETNEIGH, unix.SizeofNdMsg, family)
}

// neighBrief reads an RTM_NEWNEIGH message's payload, an ndmsg then
// attributes: false for another family's entry, or one without an
// address or that does not parse.
func neighBrief(msg []byte, family uint8) (NeighBrief, bool) {
	if len(msg) < unix.SizeofNdMsg || msg[0] != family {
		return NeighBrief{}, false
	}
	ne := nl.NativeEndian()
	n := NeighBrief{LinkIndex: int(int32(ne.Uint32(msg[4:8]))), State: ne.Uint16(msg[8:10]), Flags: msg[10]}
	ok := attrs(msg[unix.SizeofNdMsg:], func(typ uint16, data []byte) {
		switch typ {
		case unix.NDA_DST:
			if a, ok := netip.AddrFromSlice(data); ok {
				n.IP = a.Unmap()
			}
		case unix.NDA_LLADDR:
			if len(data) > 0 {
				n.MAC = net.HardwareAddr(data).String()
			}
		}
	})
	return n, ok && n.IP.IsValid()
}
