// Package route programs the host's routing for Calyx: the host side of
// workload endpoints (the host veth up, its per-interface sysctls, a host
// route to each container address and a static neighbour entry for it),
// and the routes that are not a workload's: to other hosts' IPAM blocks
// through their addresses or through the VXLAN device (onlink), a
// blackhole for each local block, and routes learned by BGP, a default
// route from a ToR included.
//
// Why it looks like this. A container reaches everything through its host
// veth: it has a default route via 169.254.1.1, which the host answers by
// proxy ARP (proxy_arp=1, proxy_delay=0 so the first packet is not held
// back), and the host reaches the container through a /32 (or /128) route
// on the veth plus a permanent neighbour entry, so no ARP round trip and
// no spoofed answer can redirect its traffic. That is Calico's layout
// (calico-design.md §4.4, §6.3), kept because it needs no bridge, no
// address on the host veth, and scales to thousands of endpoints.
//
// Ownership. Calyx recognises its own state after a restart without any
// file on disk: host veths are named InterfacePrefix+10 hex characters,
// its routes carry route protocol Protocol (80; `ip route` shows
// "proto 80"), and its neighbour entries are the PERMANENT ones on its
// interfaces (the kernel never creates permanent entries by itself). Prune
// touches nothing else, so routes added by an operator, by the kernel or
// by a routing daemon survive.
//
// Two reconcilers share protocol 80, split by link so that neither can
// remove the other's routes:
//   - Reconciler owns the protocol-80 routes on InterfacePrefix links
//     (and the permanent neighbour entries there); its Resync caches only
//     routes on those links, and Prune considers nothing else.
//   - Remote owns every other protocol-80 route in the main table:
//     gateway and onlink routes on eth0 or vxlan.calyx, blackholes (which
//     have no link), default routes. It never deletes a route on an
//     InterfacePrefix link nor one of another protocol. Its desired state
//     is the full list of routes (RemoteRoute, naming devices by name, as
//     the pure calc package knows them), applied by Apply; a desired route
//     does replace whatever route to the same destination the kernel
//     holds, since the main table keys routes by destination, except a
//     workload's. Its grace (WithRemoteGrace) is for BGP graceful
//     restart: routes learned before a restart stay until the sessions
//     are back.
//
// Netlink.WatchRoutes reports route changes, so that calyx-node can
// resync Remote at once when someone deletes one of its routes
// (Remote.Differs tells those events from the echo of its own writes)
// rather than wait for the periodic resync.
//
// Contract (shared by every Calyx reconciler):
//   - Update(ep) makes the kernel hold ep's state and is idempotent: a
//     second identical Update writes nothing (the reconciler keeps a cache
//     of what the kernel holds, filled by Resync and by its own writes).
//   - Delete(ep) removes the endpoint's host side, the veth included;
//     what is already gone is not an error.
//   - Prune(desired, now) removes owned routes and neighbours nobody
//     desires once they have been unwanted for the grace period (a CNI ADD
//     may race with a resync, as in Felix's 10 s grace).
//   - Remote's Apply(desired, now) is Update and Prune in one call, the
//     shape of a full desired list computed at once.
//   - Resync re-reads the kernel; calyx-node runs it periodically
//     (--resync-interval) and at start, so drift is corrected and a
//     restart re-creates nothing and drops nothing.
//
// The kernel is reached through Kernel, a small interface with two
// implementations: Netlink (netlink for links, routes and neighbours,
// /proc/sys for sysctls, in a given network namespace) and Fake, which
// renders its state as `ip route`/`ip neigh`/sysctl golden text lines and
// counts writes.
package route
