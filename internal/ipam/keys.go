package ipam

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/calyx-net/calyx/internal/api"
	"github.com/calyx-net/calyx/internal/datastore"
)

// Key layout under datastore.IPAMPrefix (/calyx/ipam/v1/):
//
//	block/<escaped cidr>             a block and its allocations
//	affinity/<node>/<escaped cidr>   {"state": "pending"|"confirmed"|"pendingDeletion"}
//	handle/<handle>                  {"<cidr>": <count>, ...}
//
// A CIDR is escaped by writing '/' as '-' and ':' as '_', neither of which
// occurs in an address's text, so the escaping is reversible and a key
// still reads as its CIDR: 10.65.0.64/26 is block/10.65.0.64-26 and
// fd65::40/122 is block/fd65__40-122. '/' must go because it separates key
// segments; ':' goes too so that a key is also a valid file and URL path
// segment (for dumps and for etcd's HTTP gateway).
const (
	blockSeg    = "block/"
	affinitySeg = "affinity/"
	handleSeg   = "handle/"
)

const (
	blockPrefix    = datastore.IPAMPrefix + blockSeg
	affinityPrefix = datastore.IPAMPrefix + affinitySeg
	handlePrefix   = datastore.IPAMPrefix + handleSeg
)

// kind returns the KindInfo of one of the resource kinds the allocator
// reads (raw, to batch them with its own keys in one round trip).
func kind(name string) api.KindInfo {
	k, _ := api.LookupKind(name) // only called with api.Kind* constants
	return k
}

// settingsName is the name of the one IPAMConfiguration object.
const settingsName = "default"

// poolsPrefix, settingsKey and nodeKey locate the resources the allocator
// reads.
func poolsPrefix() string { return datastore.KindPrefix(kind(api.KindIPPool)) }
func settingsKey() string {
	return datastore.ResourceKey(kind(api.KindIPAMConfiguration), settingsName)
}
func nodeKey(node string) string { return datastore.ResourceKey(kind(api.KindNode), node) }

// EscapeCIDR returns the key segment of a block CIDR.
func EscapeCIDR(p netip.Prefix) string {
	return strings.ReplaceAll(strings.ReplaceAll(p.String(), "/", "-"), ":", "_")
}

// UnescapeCIDR parses a key segment written by EscapeCIDR.
func UnescapeCIDR(seg string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(strings.ReplaceAll(strings.ReplaceAll(seg, "-", "/"), "_", ":"))
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("parsing block key segment %q: %w", seg, err)
	}
	return p, nil
}

// BlockKey returns the key of the block with the given CIDR.
func BlockKey(cidr netip.Prefix) string { return blockPrefix + EscapeCIDR(cidr) }

// AffinityKey returns the key recording that node claimed block cidr.
func AffinityKey(node string, cidr netip.Prefix) string {
	return affinityPrefix + node + "/" + EscapeCIDR(cidr)
}

// HandleKey returns the key of a handle.
func HandleKey(handle string) string { return handlePrefix + handle }

// blockFromKey parses a block key.
func blockFromKey(key string) (netip.Prefix, bool) {
	seg, ok := strings.CutPrefix(key, blockPrefix)
	if !ok {
		return netip.Prefix{}, false
	}
	p, err := UnescapeCIDR(seg)
	return p, err == nil
}

// affinityFromKey parses an affinity key into its node and block.
func affinityFromKey(key string) (string, netip.Prefix, bool) {
	rest, ok := strings.CutPrefix(key, affinityPrefix)
	if !ok {
		return "", netip.Prefix{}, false
	}
	node, seg, ok := strings.Cut(rest, "/")
	if !ok || node == "" {
		return "", netip.Prefix{}, false
	}
	p, err := UnescapeCIDR(seg)
	return node, p, err == nil
}

// blockRangeFor returns the narrowest key prefix that holds every block
// key of pool: for an IPv4 pool, the octets its mask fixes (every block of
// 10.65.0.0/16 is under block/10.65.); otherwise all blocks. Callers still
// filter the keys by containment.
func blockRangeFor(pool netip.Prefix) string {
	if !pool.Addr().Is4() {
		return blockPrefix
	}
	b := pool.Addr().As4()
	var sb strings.Builder
	sb.WriteString(blockPrefix)
	for i := range pool.Bits() / 8 {
		fmt.Fprintf(&sb, "%d.", b[i])
	}
	return sb.String()
}

// checkName refuses a node or handle name the key layout cannot hold.
func checkName(what, name string) error {
	switch {
	case name == "":
		return invalidf("no %s given", what)
	case strings.Contains(name, "/"):
		return invalidf("%s %q contains '/', which cannot be part of a key", what, name)
	}
	return nil
}
