package ipam

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func mustGeo(t *testing.T, pool string, bits int) geometry {
	t.Helper()
	g, ok := newGeometry(netip.MustParsePrefix(pool), bits)
	if !ok {
		t.Fatalf("newGeometry(%s, %d) refused", pool, bits)
	}
	return g
}

func TestGeometry(t *testing.T) {
	for _, tc := range []struct {
		pool      string
		bits      int
		count     u128
		idx       u128
		block     string
		lastBlock string
	}{
		{"10.65.0.0/16", 26, u128{0, 1024}, u128{0, 1}, "10.65.0.64/26", "10.65.255.192/26"},
		{"10.65.0.0/24", 32, u128{0, 256}, u128{0, 1}, "10.65.0.1/32", "10.65.0.255/32"},
		{"10.65.0.0/26", 26, u128{0, 1}, u128{}, "10.65.0.0/26", "10.65.0.0/26"},
		{"fd65::/48", 122, u128{0, 1 << 63}.shl(11), u128{0, 1}, "fd65::40/122", "fd65::ffff:ffff:ffff:ffff:ffc0/122"},
		{"fd65::/120", 128, u128{0, 256}, u128{0, 1}, "fd65::1/128", "fd65::ff/128"},
		{"255.255.255.0/24", 28, u128{0, 16}, u128{0, 1}, "255.255.255.16/28", "255.255.255.240/28"},
	} {
		g := mustGeo(t, tc.pool, tc.bits)
		if g.count() != tc.count {
			t.Errorf("%s/%d: count %v, want %v", tc.pool, tc.bits, g.count(), tc.count)
		}
		if got := g.at(tc.idx).String(); got != tc.block {
			t.Errorf("%s/%d: at(%v) = %s, want %s", tc.pool, tc.bits, tc.idx, got, tc.block)
		}
		last := g.count().sub(u128{0, 1})
		if got := g.at(last).String(); got != tc.lastBlock {
			t.Errorf("%s/%d: last block %s, want %s", tc.pool, tc.bits, got, tc.lastBlock)
		}
		if got := g.index(netip.MustParsePrefix(tc.lastBlock)); got != last {
			t.Errorf("%s/%d: index(last) = %v, want %v", tc.pool, tc.bits, got, last)
		}
		if !g.isBlock(netip.MustParsePrefix(tc.block)) {
			t.Errorf("%s/%d: %s is not a block", tc.pool, tc.bits, tc.block)
		}
	}
	if _, ok := newGeometry(netip.MustParsePrefix("10.0.0.0/16"), 8); ok {
		t.Error("blocks larger than the pool accepted")
	}
	g := mustGeo(t, "10.65.0.0/16", 26)
	for _, p := range []string{"10.65.0.0/25", "10.65.0.32/26", "10.66.0.0/26", "fd65::/26"} {
		if g.isBlock(netip.MustParsePrefix(p)) {
			t.Errorf("%s counted as a block of %s", p, g.pool)
		}
	}
}

func TestFirstFree(t *testing.T) {
	g := mustGeo(t, "10.0.0.0/24", 28) // 16 blocks
	n := func(vs ...uint64) []u128 {
		out := make([]u128, len(vs))
		for i, v := range vs {
			out[i] = u128{0, v}
		}
		return out
	}
	for _, tc := range []struct {
		name  string
		taken []u128
		start uint64
		want  uint64
		ok    bool
	}{
		{"empty pool starts at the seed", nil, 5, 5, true},
		{"skips a run", n(5, 6, 7), 5, 8, true},
		{"wraps past the last block", n(14, 15), 14, 0, true},
		{"wraps and skips", n(0, 1, 14, 15), 15, 2, true},
		{"last block of the pool", n(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14), 3, 15, true},
		{"full", n(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), 9, 0, false},
	} {
		got, ok := g.firstFree(tc.taken, u128{0, tc.start})
		if ok != tc.ok || ok && got != (u128{0, tc.want}) {
			t.Errorf("%s: firstFree = %v, %v; want %d, %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
	// A huge IPv6 pool: the seed is below 2^32, and nothing is enumerated.
	g6 := mustGeo(t, "fd00::/48", 122)
	start := g6.startIndex("node-a")
	got, ok := g6.firstFree([]u128{start}, start)
	if !ok || got != start.add(u128{0, 1}) {
		t.Errorf("v6 firstFree = %v %v", got, ok)
	}
}

func TestStartIndexSpreadsNodes(t *testing.T) {
	g := mustGeo(t, "10.65.0.0/16", 26)
	seen := map[u128]bool{}
	for i := range 40 {
		s := g.startIndex("host-" + string(rune('a'+i%26)) + string(rune('0'+i/26)))
		if s.cmp(g.count()) >= 0 {
			t.Fatalf("start %v beyond %v blocks", s, g.count())
		}
		seen[s] = true
	}
	if len(seen) < 35 {
		t.Errorf("40 nodes share only %d start blocks", len(seen))
	}
	if x1, x2 := g.startIndex("x"), g.startIndex("x"); x1 != x2 {
		t.Error("start index is not deterministic")
	}
}

func TestU128(t *testing.T) {
	x := u128{0, ^uint64(0)}
	if got := x.add(u128{0, 1}); got != (u128{1, 0}) {
		t.Errorf("carry: %v", got)
	}
	if got := (u128{1, 0}).sub(u128{0, 1}); got != x {
		t.Errorf("borrow: %v", got)
	}
	if got := (u128{0, 1}).shl(100).shr(100); got != (u128{0, 1}) {
		t.Errorf("shift round trip: %v", got)
	}
	a := netip.MustParseAddr("fd65::1:2")
	if got := u128Addr(addrU128(a), false); got != a {
		t.Errorf("addr round trip: %s", got)
	}
	taken := insertSorted(insertSorted(insertSorted(nil, u128{0, 3}), u128{0, 1}), u128{0, 3})
	if diff := cmp.Diff([]u128{{0, 1}, {0, 3}}, taken, cmp.AllowUnexported(u128{})); diff != "" {
		t.Errorf("insertSorted (-want +got):\n%s", diff)
	}
}

func TestKeys(t *testing.T) {
	for _, tc := range []struct{ cidr, key string }{
		{"10.65.0.64/26", "/calyx/ipam/v1/block/10.65.0.64-26"},
		{"fd65::40/122", "/calyx/ipam/v1/block/fd65__40-122"},
		{"10.65.0.7/32", "/calyx/ipam/v1/block/10.65.0.7-32"},
		{"fd65::7/128", "/calyx/ipam/v1/block/fd65__7-128"},
	} {
		p := netip.MustParsePrefix(tc.cidr)
		if got := BlockKey(p); got != tc.key {
			t.Errorf("BlockKey(%s) = %s, want %s", p, got, tc.key)
		}
		back, ok := blockFromKey(tc.key)
		if !ok || back != p {
			t.Errorf("blockFromKey(%s) = %s %v", tc.key, back, ok)
		}
	}
	n, p, ok := affinityFromKey(AffinityKey("node-a", netip.MustParsePrefix("fd65::40/122")))
	if !ok || n != "node-a" || p.String() != "fd65::40/122" {
		t.Errorf("affinity key round trip: %s %s %v", n, p, ok)
	}
	if got := blockRangeFor(netip.MustParsePrefix("10.65.0.0/16")); got != "/calyx/ipam/v1/block/10.65." {
		t.Errorf("blockRangeFor v4 /16 = %s", got)
	}
	if got := blockRangeFor(netip.MustParsePrefix("10.64.0.0/10")); got != "/calyx/ipam/v1/block/10." {
		t.Errorf("blockRangeFor v4 /10 = %s", got)
	}
	if got := blockRangeFor(netip.MustParsePrefix("fd65::/48")); got != blockPrefix {
		t.Errorf("blockRangeFor v6 = %s", got)
	}
}
