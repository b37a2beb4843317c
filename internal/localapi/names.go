package localapi

import (
	"crypto/sha256"
	"encoding/hex"
	"net"
)

// HostIfPrefix starts the name of every workload veth's host end
// (route.InterfacePrefix, which calyx-node's dataplane owns).
const HostIfPrefix = "calyx"

// HostIfName is the host end of the veth of the attachment with this
// handle: HostIfPrefix and the first 10 hex characters of sha256(handle),
// 15 characters, the Linux limit. A pure function of the handle, so that
// the plugin can create the veth while calyx-node allocates, and DEL,
// CHECK and garbage collection find it without state.
func HostIfName(handle string) string {
	sum := sha256.Sum256([]byte(handle))
	return HostIfPrefix + hex.EncodeToString(sum[:])[:10]
}

// ContainerMAC is the MAC of the container end of the attachment with
// this handle: 0x02 (locally administered, unicast) and the first 5 bytes
// of sha256(handle). calyx-node records it on the endpoint at ADD.
func ContainerMAC(handle string) net.HardwareAddr {
	sum := sha256.Sum256([]byte(handle))
	return append(net.HardwareAddr{0x02}, sum[:5]...)
}

// TempIfName is a name for a veth end of the attachment with this handle
// while it is being set up: "tmp" and the hash HostIfName has. The Docker
// driver names the container end so until libnetwork moves it into the
// sandbox.
func TempIfName(handle string) string {
	return "tmp" + HostIfName(handle)[len(HostIfPrefix):]
}
