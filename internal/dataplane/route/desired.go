package route

import (
	"net/netip"
	"strings"
)

// The desired kernel state of an endpoint. Pure functions of the endpoint
// (and its link's index).

// Global sysctls: forwarding in the namespace. They are written when the
// first endpoint of a family is programmed rather than when calyx-node
// starts: a host without workloads keeps its settings (turning on
// net.ipv6.conf.all.forwarding makes the kernel ignore router
// advertisements, which would drop a SLAAC host's default route), and
// calyx-node running for datastore or API work alone changes nothing.
const (
	keyIPv4Forward = "net/ipv4/ip_forward"
	keyIPv6Forward = "net/ipv6/conf/all/forwarding"
)

// globalSysctls returns the namespace-wide settings an endpoint needs.
func globalSysctls(ep Endpoint) []Sysctl {
	var out []Sysctl
	if ep.hasFamily(false) {
		out = append(out, Sysctl{Key: keyIPv4Forward, Value: "1"})
	}
	if ep.hasFamily(true) {
		out = append(out, Sysctl{Key: keyIPv6Forward, Value: "1"})
	}
	return out
}

// ifaceSettings are the settings of an endpoint's host veth, as Calico
// sets them (calico-design.md §6.3):
//
//   - IPv4: proxy_arp=1 so that the host answers the container's ARP for
//     its gateway 169.254.1.1 with the veth's MAC; proxy_delay=0 so that
//     it answers at once (the default holds proxy replies back up to
//     0.8 s); forwarding=1; rp_filter=1 (strict): the container may only
//     send from addresses routed to its own veth, so it cannot spoof
//     another workload's address.
//   - IPv6 (only when the endpoint has an IPv6 address): disable_ipv6=0
//     so the veth has its fe80:: address, the container's gateway;
//     accept_ra=0 (the host is the router on this link, it takes no
//     advice from the container); proxy_ndp=1 and forwarding=1.
//
// route_localnet, which Calico also sets for Kubernetes NodePorts, is not
// needed by Calyx and left alone.
var ifaceSettings = [...]ifaceSetting{
	{"net/ipv4/conf/", "/proxy_arp", "1", false},
	{"net/ipv4/neigh/", "/proxy_delay", "0", false},
	{"net/ipv4/conf/", "/forwarding", "1", false},
	{"net/ipv4/conf/", "/rp_filter", "1", false},
	{"net/ipv6/conf/", "/disable_ipv6", "0", true},
	{"net/ipv6/conf/", "/accept_ra", "0", true},
	{"net/ipv6/conf/", "/proxy_ndp", "1", true},
	{"net/ipv6/conf/", "/forwarding", "1", true},
}

// ifaceSetting is one per-interface sysctl: its key is prefix, the
// interface's name, suffix. The IPv6 ones apply to an endpoint with an
// IPv6 address, the others to one with an IPv4 address.
type ifaceSetting struct {
	prefix, suffix, value string
	v6                    bool
}

// keyMask is a set of ifaceSettings, by index.
type keyMask uint8

// allIfaceKeys are every per-interface key Calyx may set on a link, read
// at resync on a link whose endpoint the reconciler does not know.
const allIfaceKeys keyMask = 1<<len(ifaceSettings) - 1

func (m keyMask) has(i int) bool { return m&(1<<i) != 0 }

// ifaceMask returns the per-interface settings ep needs.
func ifaceMask(ep Endpoint) keyMask {
	v4, v6 := ep.hasFamily(false), ep.hasFamily(true)
	var m keyMask
	for i, s := range ifaceSettings {
		if s.v6 && v6 || !s.v6 && v4 {
			m |= 1 << i
		}
	}
	return m
}

// ifaceKey returns the key of setting i for the interface name.
func ifaceKey(i int, name string) string {
	return ifaceSettings[i].prefix + name + ifaceSettings[i].suffix
}

// ifaceSysctls returns the settings of the endpoint's host veth.
func ifaceSysctls(ep Endpoint) []Sysctl {
	var out []Sysctl
	m := ifaceMask(ep)
	for i := range ifaceSettings {
		if m.has(i) {
			out = append(out, Sysctl{Key: ifaceKey(i, ep.IfName), Value: ifaceSettings[i].value})
		}
	}
	return out
}

// isIfaceKey reports whether key is a per-interface key of name.
func isIfaceKey(key, name string) bool { return strings.Contains(key, "/"+name+"/") }

// hostPrefix is the /32 or /128 of an address.
func hostPrefix(a netip.Addr) netip.Prefix { return netip.PrefixFrom(a, a.BitLen()) }

// routesFor returns the endpoint's routes on the link with index idx:
// one host route per address, scope link for IPv4 (IPv6 routes have no
// scope; the kernel reports universe).
func routesFor(ep Endpoint, idx int) []Route {
	out := make([]Route, 0, len(ep.Addrs))
	for _, a := range ep.Addrs {
		r := Route{Dst: hostPrefix(a), LinkIndex: idx, Protocol: Protocol, Scope: ScopeLink}
		if a.Is6() {
			r.Scope = ScopeUniverse
		}
		out = append(out, r)
	}
	return out
}

// neighKey identifies a neighbour entry.
type neighKey struct {
	ip  netip.Addr
	idx int
}

// neighsFor returns the endpoint's permanent neighbour entries on the link
// with index idx; none while its MAC is unknown.
func neighsFor(ep Endpoint, idx int) []Neigh {
	if len(ep.MAC) == 0 {
		return nil
	}
	out := make([]Neigh, 0, len(ep.Addrs))
	for _, a := range ep.Addrs {
		out = append(out, Neigh{IP: a, LinkIndex: idx, MAC: ep.MAC.String(), Permanent: true})
	}
	return out
}
