// Package cni is the logic of Calyx's two CNI plugins, calyx and
// calyx-ipam; their main packages only wire it to skel.
//
// Why the plugins are thin: a container runtime starts a fresh plugin
// process for every call, and the Mesos isolator gives it a bare
// environment. So the plugin parses the call, does the one job that needs
// the container's network namespace (the veth pair and the container side
// of it), and leaves IPAM, WorkloadEndpoints, profiles and the host side of
// the kernel to calyx-node, which it asks over the local API
// (internal/localapi). This package must never import the datastore, the
// dataplane or the agent: the plugin binaries stay small and start fast,
// and a test in cmd/calyx checks it.
//
// The division of one ADD:
//
//	plugin                                  calyx-node
//	refuse CNI_NETNS if it is the plugin's own
//	parse stdin + env
//	POST /v1/cni/add ---------------------> profile on first use; addresses
//	meanwhile: veth pair created in place     and endpoint in ONE etcd commit;
//	  (one call), host end "calyx<hash>"     the loop programs the host side
//	  and up                                  as soon as it sees the endpoint
//	                                          and the host end
//	POST /v1/cni/ready -------------------> answers when programmed (usually
//	meanwhile: container MTU and MAC as       at once)
//	  calyx-node answered, addresses,
//	  routes, permanent gateway
//	  neighbour entries
//	print the result in the asked version
//
// The veth is made while calyx-node allocates, as the container's MAC and
// the host end's name derive from the attachment (localapi.HostIfName,
// ContainerMAC). A name in use fails the create, which is how the plugin
// tells the cases apart: calyx-node answered that the endpoint existed
// (a duplicate ADD: refused, nothing undone), the container's interface
// exists (another plugin's: refused, the allocation undone), or only the
// host end does (left by an earlier ADD that crashed: replaced). READY
// goes as soon as calyx-node has answered, and the container side is set
// up while calyx-node finishes the host side; the ADD answers once both
// are done, so the container (not yet started by the runtime) never sends
// a packet its policy has not seen. Both requests travel on one kept
// connection.
//
// Anything after the first request that fails is undone: the veth is
// deleted and /v1/cni/del releases the addresses and the endpoint.
package cni
