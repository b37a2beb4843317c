package vxlan

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Golden text: kernel state written the way `ip -d link`, `ip addr`,
// `ip neigh` and `bridge fdb` show it, for logs, errors and tests.

// LinkText renders a link, e.g. "vxlan.calyx vxlan id 4096 local
// 192.0.2.1 dev eth0 dstport 4789 nolearning mtu 1450 address
// 02:11:22:33:44:55 up". Links of other kinds show only kind, MTU, address
// and state.
func LinkText(l Link) string {
	var b strings.Builder
	b.WriteString(l.Name)
	if l.Kind != "" {
		b.WriteString(" " + l.Kind)
	}
	if l.Kind == KindVXLAN {
		fmt.Fprintf(&b, " id %d local %s", l.VNI, l.Local)
		if l.Parent != "" {
			b.WriteString(" dev " + l.Parent)
		}
		fmt.Fprintf(&b, " dstport %d", l.Port)
		if l.Learning {
			b.WriteString(" learning")
		} else {
			b.WriteString(" nolearning")
		}
	}
	fmt.Fprintf(&b, " mtu %d address %s", l.MTU, l.MAC)
	if l.Up {
		b.WriteString(" up")
	} else {
		b.WriteString(" down")
	}
	return b.String()
}

// AddrText renders an address on the link named dev, e.g.
// "10.244.0.1/32 dev vxlan.calyx".
func AddrText(p netip.Prefix, dev string) string { return p.String() + " dev " + dev }

// NeighText renders a neighbour entry on the link named dev, e.g.
// "10.244.0.2 dev vxlan.calyx lladdr 02:11:22:33:44:66 PERMANENT".
func NeighText(n Neigh, dev string) string {
	s := fmt.Sprintf("%s dev %s lladdr %s", n.IP, devName(dev, n.LinkIndex), n.MAC)
	if n.Permanent {
		s += " PERMANENT"
	}
	return s
}

// FDBText renders an FDB entry on the link named dev, e.g.
// "02:11:22:33:44:66 dev vxlan.calyx dst 192.0.2.2 self permanent".
func FDBText(e FDB, dev string) string {
	s := fmt.Sprintf("%s dev %s dst %s self", e.MAC, devName(dev, e.LinkIndex), e.Dst)
	if e.Permanent {
		s += " permanent"
	}
	return s
}

func devName(dev string, idx int) string {
	if dev == "" {
		return "if" + strconv.Itoa(idx)
	}
	return dev
}
