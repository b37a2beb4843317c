// Package e2e holds end-to-end tests that run the real Calyx binaries:
// calyx-node on its embedded etcd, calyxctl against it, and (as the
// dataplane lands) several hosts in network namespaces with real packets.
package e2e
