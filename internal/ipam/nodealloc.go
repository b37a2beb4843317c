package ipam

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"

	"github.com/calyx-net/calyx/internal/datastore"
)

// NodeAllocations returns, sorted by address, every allocation whose
// "node" attribute is node: what a node's garbage collector compares with
// its own endpoints. Unlike Check it reads no endpoints, nodes, handles or
// pools, so its cost grows with the node's blocks, not the cluster's.
//
// Without includeBorrowed it reads only the blocks affine to node: the
// node's affinity keys (keys only), then those blocks, two round trips
// (one more per readChunk blocks). Addresses node borrowed from blocks
// affine to other nodes are then missed. With includeBorrowed it reads
// every block instead (values, in one round trip), which finds them too.
// A node only borrows when it can claim no block, so callers scanning
// often read the affine blocks and include the borrowed ones rarely.
//
// Blocks that do not decode are logged and skipped.
func (a *Allocator) NodeAllocations(ctx context.Context, node string, includeBorrowed bool) ([]Allocation, error) {
	what := fmt.Sprintf("listing the allocations of node %q", node)
	if err := checkName("node", node); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	var kvs []datastore.RawKV
	if includeBorrowed {
		res, _, err := a.store.ReadRanges(ctx, []datastore.RawRange{{Key: blockPrefix, Prefix: true}})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		kvs = res[0]
	} else {
		res, _, err := a.store.ReadRanges(ctx, []datastore.RawRange{{Key: affinityPrefix + node + "/", Prefix: true, KeysOnly: true}})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		for chunk := range slices.Chunk(affineBlocks(res[0], node), readChunk) {
			ranges := make([]datastore.RawRange, len(chunk))
			for i, c := range chunk {
				ranges[i] = datastore.RawRange{Key: BlockKey(c)}
			}
			res, _, err := a.store.ReadRanges(ctx, ranges)
			if err != nil {
				return nil, fmt.Errorf("%s: reading %d blocks: %w", what, len(chunk), err)
			}
			for _, r := range res {
				kvs = append(kvs, r...)
			}
		}
	}
	var blocks []readBlock
	for _, kv := range kvs {
		b, err := decodeBlock(kv.Value)
		if err != nil {
			a.log.Warn("listing a node's allocations: skipping undecodable block", "key", kv.Key, "err", err)
			continue
		}
		blocks = append(blocks, readBlock{b: b, rev: kv.ModRevision})
	}
	return nodeAllocations(blocks, node), nil
}

// affineBlocks returns the blocks that node's affinity keys name, sorted,
// whatever the affinities' state: a pending or pendingDeletion affinity's
// block may hold node's addresses too. Pure.
func affineBlocks(affinityKeys []datastore.RawKV, node string) []netip.Prefix {
	var out []netip.Prefix
	for _, kv := range affinityKeys {
		if n, c, ok := affinityFromKey(kv.Key); ok && n == node {
			out = append(out, c)
		}
	}
	slices.SortFunc(out, comparePrefix)
	return slices.Compact(out)
}

// nodeAllocations returns the allocations in blocks whose "node"
// attribute is node, sorted by address, marking those in blocks not
// affine to node as borrowed. Pure.
func nodeAllocations(blocks []readBlock, node string) []Allocation {
	var out []Allocation
	for _, rb := range blocks {
		b := rb.b
		for _, o := range b.Allocated() {
			at, _ := b.Owner(o)
			if at.Attrs["node"] != node {
				continue
			}
			out = append(out, Allocation{
				IP: b.Addr(o), Handle: at.Handle, Node: node, Block: b.CIDR, Revision: rb.rev,
				Attrs: maps.Clone(at.Attrs), Borrowed: b.affineNode() != node,
			})
		}
	}
	slices.SortFunc(out, func(x, y Allocation) int { return x.IP.Compare(y.IP) })
	return out
}
