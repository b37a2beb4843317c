// Package route programs the host side of workload endpoints: the host
// veth up, its per-interface sysctls, a host route to each container
// address and a static neighbour entry for it.
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
// Contract (shared by every Calyx reconciler):
//   - Update(ep) makes the kernel hold ep's state and is idempotent: a
//     second identical Update writes nothing (the reconciler keeps a cache
//     of what the kernel holds, filled by Resync and by its own writes).
//   - Delete(ep) removes the endpoint's host side, the veth included;
//     what is already gone is not an error.
//   - Prune(desired, now) removes owned routes and neighbours nobody
//     desires once they have been unwanted for the grace period (a CNI ADD
//     may race with a resync, as in Felix's 10 s grace).
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
