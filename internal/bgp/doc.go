// Package bgp is calyx-node's BGP speaker: it tells the other nodes and
// the network (ToRs, route reflectors) which IPAM blocks this node
// serves, and learns theirs.
//
// Why GoBGP, in process. Calico runs BIRD beside Felix and renders its
// configuration from templates through confd (calico-design.md §7); each
// change rewrites a file and reloads a daemon, and BIRD learns kernel
// routes by scanning the FIB. Calyx instead links the GoBGP library
// (github.com/osrg/gobgp/v4) into calyx-node, as Calico's experimental
// calico-bgp-daemon did: peers and paths are set by function calls,
// learned routes arrive as events, and there is no second process, no
// generated file and no periodic scan. v4 rather than v3: v3's
// BgpServer.Serve never returns (every stopped server would leak a
// goroutine) and its StopBgp always sends a NOTIFICATION, which ends
// graceful restart before it starts; v4 stops cleanly, can stop without
// NOTIFICATIONs, and logs through log/slog.
//
// No kernel writes. GoBGP keeps its RIB in memory and, without zebra,
// programs nothing; this package keeps it that way. It is driven like a
// reconciler: SetPeers and SetPaths take the full desired lists
// (computed by internal/calc) and apply only the difference, so repeating
// them is free. Routes reports the best paths learned from peers, and
// Subscribe wakes the caller when they change; calyx-node installs them
// with internal/dataplane/route (Remote), which owns the kernel side,
// next hops and all.
//
// Mapping. Every Calyx peering becomes one GoBGP neighbour keyed by
// address (neighbors, a pure function tested without a server): the
// node-to-node mesh (a Peer per other node, iBGP), global and per-node
// BGPPeers (iBGP or eBGP by AS number), and route-reflector clients
// (Peer.RouteReflectorClient with Config.ClusterID, as Calico's
// Node.spec.bgp.routeReflectorClusterID). Each session carries IPv4 and
// IPv6 unicast whatever its own family. When the speaker listens on a
// single address per family, sessions are also opened from it, as BIRD's
// "source address" in Calico's template. Paths keep the next hop they are
// given (the node's address), over eBGP too.
//
// Graceful restart (RFC 4724, with the RFC 8538 notification bit) is on
// for both families on every session. When calyx-node stops or restarts,
// Run closes the sessions without a NOTIFICATION, so peers keep this
// node's routes for Config.GracefulRestartTime while the kernel, which
// calyx-node leaves alone, keeps forwarding; when a peer restarts, its
// routes stay in Routes, marked Stale, until it is back (then they are
// refreshed in place) or its restart time runs out (then they are
// withdrawn). Long-lived GR is off: a peer gone for longer than its
// restart time is gone. GoBGP holds a session Idle for 5 s after it goes
// down, refusing connections, so restart times under about 10 s are too
// short for a peer to come back in time.
//
// GoBGP writes package-level route-selection options in StartBgp; several
// speakers in one process (as in the tests) must be started one after
// another (wait for Ready) so that a start does not race with another
// server's reads.
package bgp
