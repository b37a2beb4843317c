// Package docker serves Docker's libnetwork plugin API for calyx-node: the
// remote network driver "calyx" and the IPAM driver "calyx-ipam", each on
// its own unix socket in Docker's plugin directory.
//
// Why it looks like this. Calico's libnetwork plugin declared global scope,
// so it needed dockerd's cluster store, which Docker 23 removed; it kept
// no IPAM handles, so a dockerd restart leaked endpoints and addresses;
// and it read labels in a goroutine after the container had started, so
// a container ran for a moment without its policy (reference
// interfaces.md §3-4, calico-design.md). Calyx answers those in turn:
//
//   - The driver reports local scope and global connectivity scope, which
//     Docker 20.10 through 28 accept without a cluster store or swarm.
//     Docker's network IDs then differ per host, so the network's name is
//     the cluster-wide key: the same name created on any host is one
//     Calyx network with one profile. Drivers are never told the name, so
//     it is read from dockerd (GET /networks/{id}) once the network
//     exists, or taken from the option calyx.network when given.
//   - Every call goes to calyx-node's one endpoint lifecycle (the Backend
//     interface), the code path CNI attachments take: addresses are held
//     under IPAM handles, endpoints are WorkloadEndpoints, the reconcile
//     loop programs the host side, and garbage collection covers both.
//   - Labels come from container labels prefixed calyx.label/, read in
//     Join from dockerd's container list (which takes no container lock,
//     unlike inspecting the container being started), and Join answers
//     only once the endpoint, with its labels, is programmed: the
//     container's first packet meets its policy.
//
// The package speaks Docker's wire protocols only; what an operation
// means to Calyx is the Backend's business.
package docker
