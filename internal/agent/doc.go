// Package agent is calyx-node, the one long-running Calyx process on a
// host.
//
// It owns the host's share of the cluster: it runs an embedded etcd when no
// external one is configured (so a single host works out of the box),
// registers the host's Node resource, and, as later parts land, keeps the
// datastore snapshot, allocates addresses, programs the kernel and speaks
// BGP. Run blocks until its context ends; stopping leaves kernel state in
// place for the next start.
package agent
