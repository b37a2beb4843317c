package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"net"
	"regexp"
	"strings"

	"github.com/calyx-net/calyx/internal/localapi"
)

// Names calyx-node derives for a CNI attachment. All are pure functions
// of the attachment, so DEL, CHECK, GC and a restarted calyx-node find the
// same objects without any state on disk.
//
//   - Host veth: route.InterfacePrefix ("calyx") + the first 10 hex
//     characters of sha256(handle), 15 characters, the Linux limit.
//   - Container MAC: 0x02 (locally administered, unicast) + the first 5
//     bytes of sha256(handle). calyx-node records it on the endpoint at
//     ADD and the plugin creates the container end with it, so READY has
//     nothing left to write.
//   - WorkloadEndpoint: Calico's v3 scheme (calico-design.md §1.2), the
//     segments <node>, <orchestrator>, <containerID>, <ifname> joined by
//     '-' with every '-' inside a segment doubled, e.g.
//     "host-1-mesos-0f7c--2b1e-eth0" for container "0f7c-2b1e". When that
//     is not a valid name (a DNS subdomain: lower-case letters, digits,
//     '-' and '.', labels of at most 63 characters, 253 in all) or would
//     lose information (a container ID with capitals or '_'), the name is
//     hashedName of the joined segments instead.
//   - Profile of a CNI network: the network name when it is a valid DNS
//     subdomain (CNI allows [a-zA-Z0-9_.-]), otherwise hashedName of it:
//     "My_Net" becomes "my-net-<16 hex>".
//   - The endpoint label calyx.dev/network: the network name when it is a
//     valid label value (63 characters, [A-Za-z0-9_.-], starting and
//     ending alphanumeric), otherwise hashedName of it.
//
// hashedName keeps a readable prefix (lower-cased, every character other
// than a-z, 0-9 and '-' replaced by '-', at most 40 characters) and adds
// '-' and the first 16 hex characters of sha256 of the original, so
// distinct inputs get distinct names and the result is valid as a name
// and as a label value.

// Endpoint labels and annotations calyx-node writes.
const (
	LabelNetwork      = "calyx.dev/network"
	LabelOrchestrator = "calyx.dev/orchestrator"
	// AnnotationHandle records the attachment's IPAM handle on the
	// endpoint, so that garbage collection releases the right addresses
	// whatever the network's name mapped to.
	AnnotationHandle = "calyx.dev/ipam-handle"
	// AnnotationNetns records CNI_NETNS, for diagnostics.
	AnnotationNetns = "calyx.dev/netns"
)

// vethName returns the host veth of the attachment with this handle
// (localapi.HostIfName: the plugin derives it too).
func vethName(handle string) string { return localapi.HostIfName(handle) }

// containerMAC returns the MAC of the container end of the attachment
// with this handle (localapi.ContainerMAC).
func containerMAC(handle string) net.HardwareAddr { return localapi.ContainerMAC(handle) }

// endpointName returns the WorkloadEndpoint name of an attachment.
func endpointName(node, orchestrator, containerID, ifName string) string {
	segs := []string{node, orchestrator, containerID, ifName}
	for i, s := range segs {
		segs[i] = strings.ReplaceAll(s, "-", "--")
	}
	raw := strings.Join(segs, "-")
	if lower := strings.ToLower(raw); lower == raw && isDNSSubdomain(raw) {
		return raw
	}
	return hashedName(raw)
}

// profileName returns the Profile of a CNI network.
func profileName(network string) string {
	if isDNSSubdomain(network) {
		return network
	}
	return hashedName(network)
}

// networkLabelValue returns the calyx.dev/network label value of a CNI
// network.
func networkLabelValue(network string) string {
	if isLabelValue(network) {
		return network
	}
	return hashedName(network)
}

// networkSelector selects the endpoints of a CNI network.
func networkSelector(network string) string {
	return LabelNetwork + ` == "` + networkLabelValue(network) + `"`
}

// hashedName is a valid, readable and collision-resistant name for raw.
func hashedName(raw string) string {
	sum := sha256.Sum256([]byte(raw))
	h := hex.EncodeToString(sum[:])[:16]
	var b strings.Builder
	for _, r := range strings.ToLower(raw) {
		if b.Len() == 40 {
			break
		}
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	prefix := strings.Trim(b.String(), "-")
	if prefix == "" {
		return h
	}
	return prefix + "-" + h
}

var (
	dnsLabelRE   = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	labelValueRE = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$`)
)

// isDNSSubdomain is the rule for resource names (RFC 1123 subdomain).
func isDNSSubdomain(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for part := range strings.SplitSeq(s, ".") {
		if len(part) > 63 || !dnsLabelRE.MatchString(part) {
			return false
		}
	}
	return true
}

// isLabelValue is the rule for non-empty label values.
func isLabelValue(s string) bool { return len(s) <= 63 && labelValueRE.MatchString(s) }
