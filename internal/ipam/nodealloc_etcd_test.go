package ipam_test

import (
	"context"
	"net/netip"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/calyx-net/calyx/internal/datastore"
	"github.com/calyx-net/calyx/internal/ipam"
	"github.com/calyx-net/calyx/internal/testnet"
)

// countingStore counts the ReadRanges round trips of the store it wraps.
type countingStore struct {
	ipam.Store
	reads atomic.Int64
}

func (s *countingStore) ReadRanges(ctx context.Context, ranges []datastore.RawRange) ([][]datastore.RawKV, int64, error) {
	s.reads.Add(1)
	return s.Store.ReadRanges(ctx, ranges)
}

// NodeAllocations reads a node's affine blocks in two round trips, and
// every block in one when asked for borrowed addresses too.
func TestNodeAllocations(t *testing.T) {
	e := newEnv(t)
	e.apply(testnet.IPPool("p", "10.69.0.0/28", 30), ipamSettings(false, true, 1))
	a := e.alloc()
	ctx := testCtx(t)
	b1 := mustAssign(t, a, v4(1, "b1", "node-b")).IPv4
	a1 := mustAssign(t, a, v4(4, "a1", "node-a")).IPv4
	// node-a's one block is full and maxBlocksPerHost is 1: it borrows
	// from node-b's block.
	a2 := mustAssign(t, a, v4(1, "a2", "node-a")).IPv4

	store := &countingStore{Store: e.c}
	a = ipam.New(store)
	for _, tc := range []struct {
		node     string
		borrowed bool
		want     []netip.Addr
		reads    int64
	}{
		{node: "node-a", want: a1, reads: 2},
		{node: "node-a", borrowed: true, want: slices.Concat(a1, a2), reads: 1},
		{node: "node-b", want: b1, reads: 2},
		{node: "node-b", borrowed: true, want: b1, reads: 1},
		{node: "node-c", reads: 1}, // no affinity: no block to read
	} {
		before := store.reads.Load()
		got, err := a.NodeAllocations(ctx, tc.node, tc.borrowed)
		if err != nil {
			t.Fatalf("%s (borrowed %v): %v", tc.node, tc.borrowed, err)
		}
		var ips []netip.Addr
		for _, al := range got {
			ips = append(ips, al.IP)
			if al.Node != tc.node || al.Attrs["node"] != tc.node || al.Borrowed != slices.Contains(a2, al.IP) {
				t.Errorf("%s (borrowed %v): allocation %+v", tc.node, tc.borrowed, al)
			}
		}
		slices.SortFunc(tc.want, netip.Addr.Compare)
		if !slices.Equal(ips, tc.want) {
			t.Errorf("%s (borrowed %v): addresses %v, want %v", tc.node, tc.borrowed, ips, tc.want)
		}
		if n := store.reads.Load() - before; n != tc.reads {
			t.Errorf("%s (borrowed %v): %d round trips, want %d", tc.node, tc.borrowed, n, tc.reads)
		}
	}
}
