package route

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
)

const (
	// Protocol marks the routes Calyx owns (rtm_protocol). 80 is outside
	// the numbers iproute2 and the routing daemons in Debian reserve
	// (/etc/iproute2/rt_protos: 0-4 kernel/boot/static, 8-19, 42,
	// 99, 186-192). Calico uses it for its own routes too: the two must
	// not run on one host. Reconciler owns the protocol-80 routes on
	// InterfacePrefix interfaces, Remote every other one.
	Protocol = 80
	// InterfacePrefix starts the name of every host veth Calyx creates.
	InterfacePrefix = "calyx"
)

// Scopes of routes (rtm_scope).
const (
	ScopeUniverse uint8 = 0
	ScopeLink     uint8 = 253
)

// Endpoint is the host side of one workload endpoint, as the reconciler
// wants it.
type Endpoint struct {
	// Name identifies the endpoint in logs (the WorkloadEndpoint's name).
	Name string
	// IfName is the host veth.
	IfName string
	// MAC is the container interface's address; nil means unknown (no
	// neighbour entry is programmed).
	MAC net.HardwareAddr
	// Addrs are the container's addresses.
	Addrs []netip.Addr
}

// hasFamily reports whether the endpoint has an address of the family.
func (e Endpoint) hasFamily(v6 bool) bool {
	return slices.ContainsFunc(e.Addrs, func(a netip.Addr) bool { return a.Is6() == v6 })
}

// Link is a network interface as the reconciler sees it.
type Link struct {
	Index int
	Name  string
	Up    bool
}

// RouteType is a route's kind (rtm_type). The zero value is a unicast
// route, which forwards to a device or a gateway; other values are the
// kernel's RTN_* numbers.
type RouteType uint8

// Route types Calyx writes or may meet in the main table.
const (
	// Unicast forwards packets (RTN_UNICAST; `ip route` prints no type).
	Unicast RouteType = 0
	// Blackhole drops packets silently; a local sender's socket gets
	// EINVAL (RTN_BLACKHOLE). Calyx puts one on each local IPAM block so
	// that an address of the block without a workload is not sent to the
	// default route.
	Blackhole RouteType = 6
	// Unreachable drops packets with ICMP host unreachable
	// (RTN_UNREACHABLE).
	Unreachable RouteType = 7
	// Prohibit drops packets with ICMP administratively prohibited
	// (RTN_PROHIBIT).
	Prohibit RouteType = 8
)

// Route is a route in the main table.
type Route struct {
	Dst netip.Prefix
	// LinkIndex is the output device; 0 when the route has none (a
	// blackhole) or when a write leaves it to the kernel to find from Gw.
	LinkIndex int
	Protocol  int
	Scope     uint8
	// Gw is the next hop; the zero Addr means none (a device route).
	Gw netip.Addr
	// OnLink says that Gw is on LinkIndex's link even though no address
	// of the host covers it (RTNH_F_ONLINK), as a VXLAN peer's tunnel
	// address is.
	OnLink bool
	Type   RouteType
}

// Neigh is a neighbour (ARP or NDP) entry.
type Neigh struct {
	IP        netip.Addr
	LinkIndex int
	MAC       string // lower-case, colon-separated
	Permanent bool
}

// Sysctl is one /proc/sys key (slash-separated, e.g.
// "net/ipv4/conf/calyx0123456789/proxy_arp") and its value.
type Sysctl struct {
	Key   string
	Value string
}

// State is a dump of the kernel: every link, the main table's routes and
// the IPv4 and IPv6 neighbour entries.
type State struct {
	Links  []Link
	Routes []Route
	Neighs []Neigh
}

// Kernel is what the reconciler needs from the kernel. Implementations:
// Netlink and Fake.
type Kernel interface {
	// LinkByName returns the named link, or an error satisfying
	// IsLinkNotFound.
	LinkByName(name string) (Link, error)
	// LinkByIndex returns the link with that index, or an error
	// satisfying IsLinkNotFound.
	LinkByIndex(idx int) (Link, error)
	// LinkNames returns the names of every link, in one dump.
	LinkNames() (map[string]bool, error)
	SetLinkUp(l Link) error
	// DeleteLink deletes the link (a veth takes its peer with it).
	DeleteLink(l Link) error
	// Dump reads links, routes and neighbours.
	Dump() (State, error)
	// ReplaceRoute adds r or replaces the main-table route to r.Dst.
	ReplaceRoute(r Route) error
	// DeleteRoute and DeleteNeigh succeed when what they delete is
	// already gone, its link included.
	DeleteRoute(r Route) error
	// SetNeigh adds n or replaces the entry for n.IP on n.LinkIndex.
	SetNeigh(n Neigh) error
	DeleteNeigh(n Neigh) error
	// ReadSysctls returns the values of the keys that exist.
	ReadSysctls(keys []string) (map[string]string, error)
	WriteSysctls(s []Sysctl) error
}

// errLinkNotFound says that an interface does not exist.
var errLinkNotFound = errors.New("link not found")

// LinkNotFound returns the error a Kernel returns for a missing link.
func LinkNotFound(name string) error {
	return fmt.Errorf("interface %q: %w", name, errLinkNotFound)
}

// IsLinkNotFound reports whether err says that an interface does not
// exist.
func IsLinkNotFound(err error) bool { return errors.Is(err, errLinkNotFound) }
