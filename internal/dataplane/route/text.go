package route

import (
	"fmt"
	"strconv"
	"strings"
)

// Golden text: kernel state written the way `ip route`, `ip neigh` and
// sysctl show it, for logs, errors and tests.

// RouteText renders a route on the link named dev, e.g.
// "10.65.0.7/32 dev calyx0123456789 proto 80 scope link".
func RouteText(r Route, dev string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s dev %s proto %s", r.Dst, devName(dev, r.LinkIndex), protoName(r.Protocol))
	if r.Scope == ScopeLink {
		b.WriteString(" scope link")
	} else if r.Scope != ScopeUniverse {
		fmt.Fprintf(&b, " scope %d", r.Scope)
	}
	return b.String()
}

// NeighText renders a neighbour entry on the link named dev, e.g.
// "10.65.0.7 dev calyx0123456789 lladdr 02:42:0a:41:00:07 PERMANENT".
func NeighText(n Neigh, dev string) string {
	s := fmt.Sprintf("%s dev %s lladdr %s", n.IP, devName(dev, n.LinkIndex), n.MAC)
	if n.Permanent {
		s += " PERMANENT"
	}
	return s
}

// SysctlText renders a sysctl, e.g. "net/ipv4/ip_forward=1".
func SysctlText(s Sysctl) string { return s.Key + "=" + s.Value }

func devName(dev string, idx int) string {
	if dev == "" {
		return "if" + strconv.Itoa(idx)
	}
	return dev
}

func protoName(p int) string {
	switch p {
	case 2:
		return "kernel"
	case 3:
		return "boot"
	case 4:
		return "static"
	}
	return strconv.Itoa(p)
}
