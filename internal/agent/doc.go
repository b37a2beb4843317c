// Package agent is calyx-node, the one long-running Calyx process on a
// host.
//
// It owns the host's share of the cluster. It runs an embedded etcd when no
// external one is configured (so a single host works out of the box),
// registers the host's Node resource, and keeps an in-memory view of the
// datastore through the syncer. It serves the local API on a unix socket
// (internal/localapi): the CNI plugins ask it for addresses, endpoints and
// the host side of their containers, so they stay thin and one process
// owns the host's IPAM blocks and kernel state. It programs that host side
// through the route reconciler (internal/dataplane/route), reconciles it
// from the view on every change and periodically in full, and collects
// what vanished containers leave behind. Run blocks until its context
// ends; stopping leaves kernel state in place for the next start, which
// re-creates nothing and drops nothing.
//
// Files: agent.go (settings and wiring), node.go (registration and address
// detection), view.go (the datastore view with this node's own writes
// overlaid), server.go (HTTP on the socket, errors, health), service.go
// (the side effects behind small interfaces), add.go, ready.go, del.go,
// check.go, ipamapi.go and gc.go (one per operation), outage.go (what
// requests do while etcd is down or slow), reconcile.go (the
// reconcile loop), names.go (how veths, endpoints and profiles are
// named), policy.go (the policy seam), metrics.go, locks.go.
package agent
