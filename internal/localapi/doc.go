// Package localapi is the contract between calyx-node and the programs on
// the same host that ask it for work: the CNI plugins calyx and calyx-ipam,
// and calyxctl's node commands.
//
// calyx-node serves it as HTTP/JSON on a unix socket (default
// /run/calyx/calyx.sock). A unix socket rather than a TCP port because only
// root on this host may allocate addresses and program endpoints, and the
// file mode says so. The plugins stay thin: they parse the CNI call, do the
// work that needs the container's network namespace, and leave IPAM,
// endpoints and the host side of the kernel to calyx-node, which owns them.
//
// This package holds the request and response types and a small client.
// It must stay free of heavy imports: the plugin binaries link it.
package localapi
