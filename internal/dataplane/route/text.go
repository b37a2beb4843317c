package route

import (
	"fmt"
	"strconv"
	"strings"
)

// Golden text: kernel state written the way `ip route`, `ip neigh` and
// sysctl show it, for logs, errors and tests.

// RouteText renders a route on the link named dev the way `ip route`
// shows it, e.g. "10.65.0.7/32 dev calyx0123456789 proto 80 scope link",
// "10.65.2.0/26 via 10.65.2.0 dev vxlan.calyx proto 80 onlink",
// "blackhole 10.65.0.0/26 proto 80" or "default via 192.0.2.1 dev eth0
// proto 80". The device is left out when the route has none (LinkIndex 0
// and no name).
func RouteText(r Route, dev string) string {
	var b strings.Builder
	if r.Type != Unicast {
		b.WriteString(typeName(r.Type))
		b.WriteByte(' ')
	}
	if r.Dst.IsValid() && r.Dst.Bits() == 0 {
		b.WriteString("default")
	} else {
		b.WriteString(r.Dst.String())
	}
	if r.Gw.IsValid() {
		fmt.Fprintf(&b, " via %s", r.Gw)
	}
	if dev != "" || r.LinkIndex != 0 {
		fmt.Fprintf(&b, " dev %s", devName(dev, r.LinkIndex))
	}
	fmt.Fprintf(&b, " proto %s", protoName(r.Protocol))
	if r.Scope == ScopeLink {
		b.WriteString(" scope link")
	} else if r.Scope != ScopeUniverse {
		fmt.Fprintf(&b, " scope %d", r.Scope)
	}
	if r.OnLink {
		b.WriteString(" onlink")
	}
	return b.String()
}

func typeName(t RouteType) string {
	switch t {
	case Blackhole:
		return "blackhole"
	case Unreachable:
		return "unreachable"
	case Prohibit:
		return "prohibit"
	}
	return "type " + strconv.Itoa(int(t))
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
