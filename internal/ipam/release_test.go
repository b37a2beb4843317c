package ipam_test

import (
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/calyx-net/calyx/internal/ipam"
	"github.com/calyx-net/calyx/internal/testnet"
)

func TestReleaseByHandle(t *testing.T) {
	e := newEnv(t)
	e.apply(testnet.IPPool("v4", "10.80.0.0/16", 26), testnet.IPPool("v6", "fd80::/48", 122), node("n", nil))
	a := e.alloc()
	ctx := testCtx(t)
	r := mustAssign(t, a, ipam.AutoAssignArgs{Num4: 2, Num6: 1, Handle: "net.c1.eth0", Node: "n"})
	mustAssign(t, a, v4(1, "net.c2.eth0", "n"))
	if err := a.ReleaseByHandle(ctx, "net.c1.eth0"); err != nil {
		t.Fatal(err)
	}
	if got := e.raw(ipam.HandleKey("net.c1.eth0")); got != "" {
		t.Errorf("handle left behind: %s", got)
	}
	for _, ip := range append(r.IPv4, r.IPv6...) {
		if as, err := a.GetAssignment(ctx, ip); err != nil || as.Allocated {
			t.Errorf("%s after release: %+v %v", ip, as, err)
		}
	}
	if _, err := a.IPsByHandle(ctx, "net.c1.eth0"); !ipam.IsNotFound(err) {
		t.Errorf("IPsByHandle of a released handle: %v", err)
	}
	// Releasing again, or a handle that never existed, is not an error.
	for _, h := range []string{"net.c1.eth0", "never"} {
		if err := a.ReleaseByHandle(ctx, h); err != nil {
			t.Errorf("ReleaseByHandle(%s): %v", h, err)
		}
	}
	// A release through another allocator (calyxctl) leaves the node's
	// cache stale: the next allocation costs at most one retry.
	other := e.alloc()
	if err := other.ReleaseByHandle(ctx, "net.c2.eth0"); err != nil {
		t.Fatal(err)
	}
	before := a.Stats().Retries
	mustAssign(t, a, v4(1, "net.c3.eth0", "n"))
	if got := a.Stats().Retries - before; got > 1 {
		t.Errorf("%d retries after an outside release", got)
	}
	mustCheckClean(t, a, ipam.Endpoint{Name: "c3", Node: "n", IPs: mustIPs(t, a, "net.c3.eth0")})
}

func mustIPs(t *testing.T, a *ipam.Allocator, handle string) []netip.Addr {
	t.Helper()
	ips, err := a.IPsByHandle(testCtx(t), handle)
	if err != nil {
		t.Fatal(err)
	}
	return ips
}

func TestReleaseIPs(t *testing.T) {
	e := newEnv(t)
	e.apply(testnet.IPPool("p", "10.81.0.0/16", 26), node("n", nil))
	a := e.alloc()
	ctx := testCtx(t)
	r := mustAssign(t, a, v4(3, "h", "n"))
	outside := netip.MustParseAddr("192.0.2.7")
	free := r.IPv4[2].Next()
	unallocated, err := a.ReleaseIPs(ctx, r.IPv4[0], free, outside, r.IPv4[1])
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]netip.Addr{outside, free}, unallocated, netipComparers); diff != "" {
		t.Errorf("unallocated (-want +got):\n%s", diff)
	}
	if got := mustIPs(t, a, "h"); !cmp.Equal(got, r.IPv4[2:], netipComparers) {
		t.Errorf("handle keeps %v, want %v", got, r.IPv4[2:])
	}
	block, _ := r.IPv4[0].Prefix(26)
	if got, want := e.raw(ipam.HandleKey("h")), `{"`+block.String()+`":1}`; got != want {
		t.Errorf("handle record %s, want %s", got, want)
	}
	if _, err := a.ReleaseIPs(ctx, r.IPv4[2]); err != nil {
		t.Fatal(err)
	}
	if got := e.raw(ipam.HandleKey("h")); got != "" {
		t.Errorf("handle with no address left: %s", got)
	}
	mustCheckClean(t, a)
}

func TestReleaseHostAffinities(t *testing.T) {
	for _, releaseIPs := range []bool{false, true} {
		t.Run(map[bool]string{false: "keep addresses", true: "release addresses"}[releaseIPs], func(t *testing.T) {
			e := newEnv(t)
			e.apply(testnet.IPPool("p", "10.82.0.0/24", 28), node("gone", nil), node("stays", nil))
			a := e.alloc()
			ctx := testCtx(t)
			used := mustAssign(t, a, v4(1, "h-used", "gone"))
			// Fill the first block and release into a second, so the node
			// holds one empty block and one in use.
			tmp := mustAssign(t, a, v4(16, "h-tmp", "gone"))
			if err := a.ReleaseByHandle(ctx, "h-tmp"); err != nil {
				t.Fatal(err)
			}
			emptyBlock, _ := tmp.IPv4[15].Prefix(28)
			usedBlock, _ := used.IPv4[0].Prefix(28)
			if emptyBlock == usedBlock {
				t.Fatalf("test setup: one block only (%s)", usedBlock)
			}
			rel, err := a.ReleaseHostAffinities(ctx, "gone", releaseIPs)
			if err != nil {
				t.Fatal(err)
			}
			want := ipam.HostRelease{Blocks: 2, Deleted: 1}
			if releaseIPs {
				want = ipam.HostRelease{Blocks: 2, Deleted: 2, Addresses: 1}
			}
			if rel != want {
				t.Errorf("ReleaseHostAffinities = %+v, want %+v", rel, want)
			}
			if e.raw(ipam.BlockKey(emptyBlock)) != "" || e.raw(ipam.AffinityKey("gone", usedBlock)) != "" || e.raw(ipam.AffinityKey("gone", emptyBlock)) != "" {
				t.Error("empty block or affinities left")
			}
			as, err := a.GetAssignment(ctx, used.IPv4[0])
			if err != nil {
				t.Fatal(err)
			}
			if releaseIPs {
				if as.Allocated || e.raw(ipam.HandleKey("h-used")) != "" {
					t.Errorf("address kept: %+v", as)
				}
				mustCheckClean(t, a)
				return
			}
			if !as.Allocated || as.Node != "" {
				t.Errorf("kept address %+v: want allocated in a block of no node", as)
			}
			// Another node may borrow from the orphaned block.
			mustCheckClean(t, a, ipam.Endpoint{Name: "c", Node: "gone", IPs: used.IPv4})
			if err := a.ReleaseByHandle(ctx, "h-used"); err != nil {
				t.Fatal(err)
			}
			if got := e.raw(ipam.BlockKey(usedBlock)); got != "" {
				t.Errorf("empty block of no node kept: %s", got)
			}
		})
	}
}

func TestReleaseEmptyBlocks(t *testing.T) {
	e := newEnv(t)
	e.apply(testnet.IPPool("p", "10.83.0.0/16", 26), node("n", nil))
	var mu sync.Mutex
	now := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	a := e.alloc(ipam.WithClock(clock))
	ctx := testCtx(t)
	r := mustAssign(t, a, v4(1, "h", "n"))
	block, _ := r.IPv4[0].Prefix(26)
	mu.Lock()
	now = now.Add(time.Hour)
	mu.Unlock()
	releasedAt := clock()
	if err := a.ReleaseByHandle(ctx, "h"); err != nil {
		t.Fatal(err)
	}
	const grace = 10 * time.Minute
	got, err := a.ReleaseEmptyBlocks(ctx, "n", releasedAt.Add(grace-time.Second), grace)
	if err != nil || len(got) != 0 {
		t.Fatalf("within the grace period: %v %v", got, err)
	}
	got, err = a.ReleaseEmptyBlocks(ctx, "n", releasedAt.Add(grace), grace)
	if err != nil || !cmp.Equal(got, []netip.Prefix{block}, netipComparers) {
		t.Fatalf("after the grace period: %v %v", got, err)
	}
	if e.raw(ipam.BlockKey(block)) != "" || e.raw(ipam.AffinityKey("n", block)) != "" {
		t.Error("block or affinity left")
	}
	// The node claims a block again when it needs one.
	mustAssign(t, a, v4(1, "h2", "n"))
	if s := a.Stats(); s.Claims != 2 {
		t.Errorf("stats %+v: want a second claim", s)
	}
	// A block in use is never released.
	if got, _ := a.ReleaseEmptyBlocks(ctx, "n", releasedAt.Add(24*time.Hour), grace); len(got) != 0 {
		t.Errorf("released a block in use: %v", got)
	}
}

func TestUsage(t *testing.T) {
	e := newEnv(t)
	e.apply(testnet.IPPool("a", "10.84.0.0/24", 26), testnet.IPPool("b", "fd84::/120", 122))
	al := e.alloc()
	mustAssign(t, al, ipam.AutoAssignArgs{Num4: 3, Num6: 1, Handle: "h1", Node: "n1"})
	mustAssign(t, al, v4(2, "h2", "n2"))
	u, err := al.Usage(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(u.Pools) != 2 || u.Pools[0].Name != "a" || u.Pools[0].Blocks != 2 || u.Pools[0].InUse != 5 ||
		u.Pools[0].Capacity != 128 || u.Pools[0].Size.Int64() != 256 || u.Pools[1].InUse != 1 {
		t.Errorf("pool usage %+v", u.Pools)
	}
	want := []ipam.NodeUsage{{Node: "n1", Blocks: 2, Capacity: 128, InUse: 4}, {Node: "n2", Blocks: 1, Capacity: 64, InUse: 2}}
	if diff := cmp.Diff(want, u.Nodes); diff != "" {
		t.Errorf("node usage (-want +got):\n%s", diff)
	}
	if len(u.Blocks) != 3 {
		t.Errorf("blocks %+v", u.Blocks)
	}
}
