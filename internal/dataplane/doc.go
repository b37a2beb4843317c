// Package dataplane holds calyx-node's reconcilers: each makes one part of
// the kernel match a desired state computed from the datastore, with
// minimal writes, and can be re-run at any time (after a restart, on a
// periodic resync) without disturbing traffic.
//
// Why one package per kernel subsystem (route/ for workload routes,
// neighbours and interface sysctls; nft/ for the firewall; vxlan/ for the
// overlay device, its neighbour and FDB entries): each
// reconciler owns a well-delimited slice of kernel state that it
// recognises as its own after a restart (an interface prefix, a route
// protocol number, a table name), so the reconcilers never fight over an
// object. All of them share one contract: Update(x) is idempotent,
// Delete(x) treats "already gone" as success, Prune(desired) removes only
// what the reconciler owns and nobody wants any more, and a periodic full
// resync corrects drift. Each talks to the kernel through a small
// interface with a fake beside it that renders state as `ip`-style golden
// text, so the reconcile logic is tested without root.
package dataplane
