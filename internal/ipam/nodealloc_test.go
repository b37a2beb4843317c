package ipam

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/calyx-net/calyx/internal/datastore"
)

// TestNodeAllocationsFilter checks the pure part of NodeAllocations: which
// affinity keys name the node's blocks, and which allocations are the
// node's (its own in its blocks, and borrowed ones in others'), leaving
// out other nodes' and unattributed allocations.
func TestNodeAllocationsFilter(t *testing.T) {
	aBlock := netip.MustParsePrefix("10.0.0.0/30")
	bBlock := netip.MustParsePrefix("10.0.0.4/30")
	keys := []datastore.RawKV{
		{Key: AffinityKey("node-a", bBlock)},
		{Key: AffinityKey("node-a", aBlock)},
		{Key: AffinityKey("node-ab", netip.MustParsePrefix("10.0.0.8/30"))},
		{Key: affinityPrefix + "node-a/not-a-cidr"},
	}
	if d := cmp.Diff([]netip.Prefix{aBlock, bBlock}, affineBlocks(keys, "node-a"), netipComparers); d != "" {
		t.Errorf("affine blocks (-want +got):\n%s", d)
	}

	at := func(handle, node string) Attribute {
		if node == "" {
			return Attribute{Handle: handle}
		}
		return Attribute{Handle: handle, Attrs: map[string]string{"node": node}}
	}
	a := newBlock(aBlock, hostAffinity("node-a"), t0)
	a.assignNext(1, at("a-own", "node-a"))
	a.assignNext(1, at("b-borrowed", "node-b"))
	a.assignNext(1, at("tunnel", ""))
	b := newBlock(bBlock, hostAffinity("node-b"), t0)
	b.assignNext(1, at("b-own", "node-b"))
	b.assignNext(1, at("a-borrowed", "node-a"))
	blocks := []readBlock{{b: b, rev: 7}, {b: a, rev: 5}}

	want := []Allocation{
		{IP: netip.MustParseAddr("10.0.0.0"), Handle: "a-own", Node: "node-a", Block: aBlock, Revision: 5, Attrs: map[string]string{"node": "node-a"}},
		{IP: netip.MustParseAddr("10.0.0.5"), Handle: "a-borrowed", Node: "node-a", Block: bBlock, Revision: 7, Attrs: map[string]string{"node": "node-a"}, Borrowed: true},
	}
	if d := cmp.Diff(want, nodeAllocations(blocks, "node-a"), netipComparers); d != "" {
		t.Errorf("node-a's allocations (-want +got):\n%s", d)
	}
	// Only the affine block read: the borrowed address is not seen.
	if d := cmp.Diff(want[:1], nodeAllocations(blocks[1:], "node-a"), netipComparers); d != "" {
		t.Errorf("node-a's allocations in its own block (-want +got):\n%s", d)
	}
	if got := nodeAllocations(blocks, "node-c"); len(got) != 0 {
		t.Errorf("allocations of a node with none: %+v", got)
	}
}
