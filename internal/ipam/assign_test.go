package ipam_test

import (
	"encoding/json"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/calyx-net/calyx/internal/api"
	"github.com/calyx-net/calyx/internal/datastore"
	"github.com/calyx-net/calyx/internal/ipam"
	"github.com/calyx-net/calyx/internal/testnet"
)

func TestAutoAssignFromAffineBlock(t *testing.T) {
	for _, tc := range []struct {
		name, cidr string
		size       int
		args       func(h string) ipam.AutoAssignArgs
	}{
		{"ipv4", "10.65.0.0/16", 26, func(h string) ipam.AutoAssignArgs { return v4(1, h, "node-a") }},
		{"ipv6", "fd65::/48", 122, func(h string) ipam.AutoAssignArgs {
			return ipam.AutoAssignArgs{Num6: 1, Handle: h, Node: "node-a"}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.apply(testnet.IPPool("pool", tc.cidr, tc.size), node("node-a", nil))
			a := e.alloc()
			ctx := testCtx(t)
			r1 := mustAssign(t, a, tc.args("net.c1.eth0"))
			r2 := mustAssign(t, a, tc.args("net.c2.eth0"))
			ip1 := append(r1.IPv4, r1.IPv6...)[0]
			ip2 := append(r2.IPv4, r2.IPv6...)[0]
			block, _ := ip1.Prefix(tc.size)
			if ip1 != block.Addr() || ip2 != ip1.Next() {
				t.Errorf("addresses %s, %s: want the first two of block %s", ip1, ip2, block)
			}
			// The block is affine to the node, its affinity confirmed, the
			// handle records its count.
			var stored struct {
				Affinity    string
				Allocations []*int
				Unallocated []int
				Attributes  []ipam.Attribute
			}
			if err := json.Unmarshal([]byte(e.raw(ipam.BlockKey(block))), &stored); err != nil {
				t.Fatal(err)
			}
			if stored.Affinity != "host:node-a" || len(stored.Allocations) != 1<<(ip1.BitLen()-tc.size) || stored.Unallocated[0] != 2 {
				t.Errorf("stored block: %+v", stored)
			}
			wantAttrs := []ipam.Attribute{
				{Handle: "net.c1.eth0", Attrs: map[string]string{"node": "node-a"}},
				{Handle: "net.c2.eth0", Attrs: map[string]string{"node": "node-a"}},
			}
			if diff := cmp.Diff(wantAttrs, stored.Attributes); diff != "" {
				t.Errorf("attributes (-want +got):\n%s", diff)
			}
			if got := e.raw(ipam.AffinityKey("node-a", block)); got != `{"state":"confirmed"}` {
				t.Errorf("affinity %q", got)
			}
			if got, want := e.raw(ipam.HandleKey("net.c1.eth0")), `{"`+block.String()+`":1}`; got != want {
				t.Errorf("handle %s, want %s", got, want)
			}
			got, err := a.IPsByHandle(ctx, "net.c2.eth0")
			if err != nil || !cmp.Equal(got, []netip.Addr{ip2}, netipComparers) {
				t.Errorf("IPsByHandle = %v, %v", got, err)
			}
			as, err := a.GetAssignment(ctx, ip2)
			want := ipam.Assignment{IP: ip2, Pool: "pool", PoolCIDR: netip.MustParsePrefix(tc.cidr), Block: block, Node: "node-a",
				Allocated: true, Handle: "net.c2.eth0", Attrs: map[string]string{"node": "node-a"}}
			if diff := cmp.Diff(want, as, netipComparers); diff != "" || err != nil {
				t.Errorf("GetAssignment (-want +got) %v:\n%s", err, diff)
			}
			if s := a.Stats(); s.Allocated != 2 || s.Claims != 1 || s.Retries != 0 {
				t.Errorf("stats %+v", s)
			}
			mustCheckClean(t, a, ipam.Endpoint{Name: "c1", Node: "node-a", IPs: []netip.Addr{ip1}},
				ipam.Endpoint{Name: "c2", Node: "node-a", IPs: []netip.Addr{ip2}})
		})
	}
}

func TestAutoAssignDualStackAndIdempotent(t *testing.T) {
	e := newEnv(t)
	e.apply(testnet.IPPool("v4", "10.65.0.0/16", 26), testnet.IPPool("v6", "fd65::/48", 122))
	a := e.alloc()
	args := ipam.AutoAssignArgs{Num4: 1, Num6: 1, Handle: "net.c1.eth0", Node: "node-a",
		Attrs: map[string]string{"orchestrator": "mesos", "workload": "task-1"}}
	first := mustAssign(t, a, args)
	if len(first.IPv4) != 1 || len(first.IPv6) != 1 {
		t.Fatalf("dual-stack result %v", first)
	}
	// Asking again for the same handle returns what it holds, also from
	// an allocator that never saw it (a restarted calyx-node).
	for _, al := range []*ipam.Allocator{a, e.alloc()} {
		again := mustAssign(t, al, args)
		if again.Revision != 0 {
			t.Errorf("a request the handle already satisfies wrote at revision %d", again.Revision)
		}
		again.Revision = first.Revision
		if diff := cmp.Diff(first, again, netipComparers); diff != "" {
			t.Errorf("second AutoAssign (-first +second):\n%s", diff)
		}
	}
	// A request for more tops the handle up.
	more := mustAssign(t, a, ipam.AutoAssignArgs{Num4: 2, Num6: 1, Handle: "net.c1.eth0", Node: "node-a"})
	if len(more.IPv4) != 2 || more.IPv4[0] != first.IPv4[0] || more.IPv6[0] != first.IPv6[0] {
		t.Errorf("top-up %v after %v", more, first)
	}
	if s := a.Stats(); s.Allocated != 3 {
		t.Errorf("stats %+v: want 3 addresses allocated", s)
	}
	as, _ := a.GetAssignment(testCtx(t), first.IPv6[0])
	if as.Attrs["orchestrator"] != "mesos" || as.Attrs["workload"] != "task-1" || as.Attrs["node"] != "node-a" {
		t.Errorf("attributes %v", as.Attrs)
	}
}

func TestSingleAddressBlocksAndExhaustion(t *testing.T) {
	for _, tc := range []struct {
		cidr string
		bits int
		six  bool
	}{
		{"10.66.0.0/30", 32, false},
		{"fd66::/126", 128, true},
	} {
		t.Run(tc.cidr, func(t *testing.T) {
			e := newEnv(t)
			e.apply(testnet.IPPool("tiny", tc.cidr, tc.bits))
			a := e.alloc()
			seen := map[netip.Addr]bool{}
			for i := range 4 {
				args := v4(1, "h"+string(rune('0'+i)), "node-a")
				if tc.six {
					args = ipam.AutoAssignArgs{Num6: 1, Handle: args.Handle, Node: "node-a"}
				}
				r := mustAssign(t, a, args)
				seen[append(r.IPv4, r.IPv6...)[0]] = true
			}
			if len(seen) != 4 {
				t.Errorf("4 allocations gave %d addresses", len(seen))
			}
			args := v4(1, "h-last", "node-a")
			if tc.six {
				args = ipam.AutoAssignArgs{Num6: 1, Handle: "h-last", Node: "node-a"}
			}
			_, err := a.AutoAssign(testCtx(t), args)
			if !ipam.IsExhausted(err) || !strings.Contains(err.Error(), `"tiny"`) || !strings.Contains(err.Error(), tc.cidr) {
				t.Errorf("fifth allocation: %v (want exhausted, naming the pool)", err)
			}
			if s := a.Stats(); s.Claims != 4 {
				t.Errorf("stats %+v: want 4 claims", s)
			}
		})
	}
}

func TestLastBlockAndMultiBlockRequest(t *testing.T) {
	e := newEnv(t)
	e.apply(testnet.IPPool("small", "10.67.0.0/24", 26))
	a := e.alloc()
	// 200 addresses span all four blocks, the last one included, in one
	// transaction.
	r := mustAssign(t, a, v4(200, "big", "node-a"))
	blocks := map[netip.Prefix]int{}
	for _, ip := range r.IPv4 {
		p, _ := ip.Prefix(26)
		blocks[p]++
	}
	if len(blocks) != 4 || blocks[netip.MustParsePrefix("10.67.0.192/26")] == 0 {
		t.Errorf("200 addresses over blocks %v", blocks)
	}
	r2 := mustAssign(t, a, v4(56, "rest", "node-a"))
	if len(r2.IPv4) != 56 {
		t.Errorf("rest: %d addresses", len(r2.IPv4))
	}
	if _, err := a.AutoAssign(testCtx(t), v4(1, "one-too-many", "node-a")); !ipam.IsExhausted(err) {
		t.Errorf("257th address: %v", err)
	}
	// A failed request leaves nothing behind.
	if got := e.raw(ipam.HandleKey("one-too-many")); got != "" {
		t.Errorf("failed request wrote its handle: %s", got)
	}
}

func TestReleasedAddressesAreReusedLast(t *testing.T) {
	e := newEnv(t)
	e.apply(testnet.IPPool("p", "10.68.0.0/29", 29))
	a := e.alloc()
	ctx := testCtx(t)
	var got []netip.Addr
	for _, h := range []string{"h0", "h1", "h2", "h3", "h4", "h5"} {
		got = append(got, mustAssign(t, a, v4(1, h, "n")).IPv4...)
	}
	for _, h := range []string{"h3", "h1"} {
		if err := a.ReleaseByHandle(ctx, h); err != nil {
			t.Fatal(err)
		}
	}
	var next []netip.Addr
	for _, h := range []string{"n6", "n7", "n8", "n9"} {
		next = append(next, mustAssign(t, a, v4(1, h, "n")).IPv4...)
	}
	want := addrs("10.68.0.6", "10.68.0.7", "10.68.0.3", "10.68.0.1")
	if diff := cmp.Diff(want, next, netipComparers); diff != "" || got[3] != want[2] {
		t.Errorf("allocation order after releases (-want +got):\n%s", diff)
	}
}

func TestBorrowingAndStrictAffinity(t *testing.T) {
	e := newEnv(t)
	e.apply(testnet.IPPool("p", "10.69.0.0/28", 30), ipamSettings(false, true, 1))
	a := e.alloc()
	ctx := testCtx(t)
	mustAssign(t, a, v4(1, "b1", "node-b"))
	mustAssign(t, a, v4(4, "a1", "node-a"))
	// node-a's one block is full and maxBlocksPerHost is 1: it borrows
	// from node-b's block.
	r := mustAssign(t, a, v4(1, "a2", "node-a"))
	as, err := a.GetAssignment(ctx, r.IPv4[0])
	if err != nil || as.Node != "node-b" || as.Attrs["node"] != "node-a" {
		t.Errorf("borrowed address %s: %+v %v", r.IPv4[0], as, err)
	}
	if s := a.Stats(); s.Borrowed != 1 {
		t.Errorf("stats %+v: want 1 borrowed", s)
	}
	u, err := a.Usage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range u.Nodes {
		if n.Node == "node-a" && (n.Borrowed != 1 || n.Blocks != 1 || n.InUse != 4) {
			t.Errorf("node-a usage %+v", n)
		}
	}

	// With strictAffinity the same request fails, saying why.
	e.apply(ipamSettings(true, true, 1))
	_, err = a.AutoAssign(ctx, v4(1, "a3", "node-a"))
	if !ipam.IsExhausted(err) || !strings.Contains(err.Error(), "maxBlocksPerHost is 1") || !strings.Contains(err.Error(), "strictAffinity") {
		t.Errorf("strict: %v", err)
	}
	// autoAllocateBlocks off: a new node can neither claim nor borrow.
	e.apply(ipamSettings(true, false, 0))
	_, err = a.AutoAssign(ctx, v4(1, "c1", "node-c"))
	if !ipam.IsExhausted(err) || !strings.Contains(err.Error(), "autoAllocateBlocks") {
		t.Errorf("autoAllocateBlocks false: %v", err)
	}
}

func TestMaxBlocksPerHostClaimsUpToTheLimit(t *testing.T) {
	e := newEnv(t)
	e.apply(testnet.IPPool("p", "10.70.0.0/24", 30), ipamSettings(true, true, 2))
	a := e.alloc()
	mustAssign(t, a, v4(8, "h", "node-a"))
	_, err := a.AutoAssign(testCtx(t), v4(1, "h2", "node-a"))
	if !ipam.IsExhausted(err) || !strings.Contains(err.Error(), "maxBlocksPerHost is 2") {
		t.Errorf("beyond maxBlocksPerHost: %v", err)
	}
	if s := a.Stats(); s.Claims != 2 {
		t.Errorf("stats %+v", s)
	}
}

func TestDisabledPool(t *testing.T) {
	e := newEnv(t)
	p := testnet.IPPool("p", "10.71.0.0/16", 26)
	e.apply(p)
	a := e.alloc()
	ctx := testCtx(t)
	r := mustAssign(t, a, v4(1, "kept", "node-a"))
	p.Spec.Disabled = true
	e.apply(p)
	// The allocator's view still says enabled; the pool's revision guard
	// catches the change on the first write.
	_, err := a.AutoAssign(ctx, v4(1, "new", "node-a"))
	if !ipam.IsExhausted(err) || !strings.Contains(err.Error(), "no enabled IPv4 pool") {
		t.Errorf("allocation from a disabled pool: %v", err)
	}
	_, err = a.AutoAssign(ctx, ipam.AutoAssignArgs{Num4: 1, Handle: "new", Node: "node-a", IPv4Pools: []string{"p"}})
	if !ipam.IsPoolDisabled(err) || !strings.Contains(err.Error(), `"p" (10.71.0.0/16) is disabled`) {
		t.Errorf("requested disabled pool: %v", err)
	}
	err = a.AssignIP(ctx, ipam.AssignIPArgs{IP: netip.MustParseAddr("10.71.3.3"), Handle: "x", Node: "node-a"})
	if !ipam.IsPoolDisabled(err) {
		t.Errorf("AssignIP in a disabled pool: %v", err)
	}
	// Existing allocations stay, and can be released.
	if got, err := a.IPsByHandle(ctx, "kept"); err != nil || !cmp.Equal(got, r.IPv4, netipComparers) {
		t.Errorf("allocation in disabled pool: %v %v", got, err)
	}
	if err := a.ReleaseByHandle(ctx, "kept"); err != nil {
		t.Error(err)
	}
}

func TestRequestedPools(t *testing.T) {
	e := newEnv(t)
	e.apply(testnet.IPPool("a", "10.72.0.0/16", 26), testnet.IPPool("b", "10.73.0.0/16", 26), testnet.IPPool("six", "fd73::/48", 122))
	al := e.alloc()
	ctx := testCtx(t)
	for _, req := range []string{"b", "10.73.0.0/16"} {
		r := mustAssign(t, al, ipam.AutoAssignArgs{Num4: 1, Handle: "h-" + strings.ReplaceAll(req, "/", "_"), Node: "n", IPv4Pools: []string{req}})
		if !netip.MustParsePrefix("10.73.0.0/16").Contains(r.IPv4[0]) {
			t.Errorf("requested %s, got %s", req, r.IPv4[0])
		}
	}
	for _, tc := range []struct {
		args ipam.AutoAssignArgs
		pred func(error) bool
		want string
	}{
		{ipam.AutoAssignArgs{Num4: 1, Handle: "x", Node: "n", IPv4Pools: []string{"nope"}}, ipam.IsPoolNotFound, `IP pool "nope" does not exist`},
		{ipam.AutoAssignArgs{Num4: 1, Handle: "x", Node: "n", IPv4Pools: []string{"10.72.0.0/17"}}, ipam.IsPoolNotFound, "10.72.0.0/17"},
		{ipam.AutoAssignArgs{Num4: 1, Handle: "x", Node: "n", IPv4Pools: []string{"six"}}, ipam.IsInvalid, `"six" (fd73::/48) is not an IPv4 pool`},
		{ipam.AutoAssignArgs{Num4: 1, Node: "n"}, ipam.IsInvalid, "no handle"},
		{ipam.AutoAssignArgs{Num4: 1, Handle: "a/b", Node: "n"}, ipam.IsInvalid, "'/'"},
		{ipam.AutoAssignArgs{Handle: "x", Node: "n"}, ipam.IsInvalid, "at least one"},
		{ipam.AutoAssignArgs{Num6: 1, Handle: "x", Node: "n", IPv6Pools: []string{"a"}}, ipam.IsInvalid, "not an IPv6 pool"},
	} {
		_, err := al.AutoAssign(ctx, tc.args)
		if err == nil || !tc.pred(err) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("AutoAssign(%+v): %v, want %q", tc.args, err, tc.want)
		}
	}
}

func TestNodeSelectorChoosesPools(t *testing.T) {
	e := newEnv(t)
	r1 := testnet.IPPool("rack1", "10.74.0.0/16", 26)
	r1.Spec.NodeSelector = `rack == "r1"`
	r2 := testnet.IPPool("rack2", "10.75.0.0/16", 26)
	r2.Spec.NodeSelector = `rack == "r2"`
	tunnel := testnet.IPPool("tunnel-only", "10.76.0.0/16", 26)
	tunnel.Spec.AllowedUses = []string{api.IPPoolUseTunnel}
	e.apply(r1, r2, tunnel, node("n1", map[string]string{"rack": "r1"}), node("n2", map[string]string{"rack": "r2"}), node("n3", nil))
	a := e.alloc()
	ctx := testCtx(t)
	in := func(ip netip.Addr, cidr string) bool { return netip.MustParsePrefix(cidr).Contains(ip) }
	if ip := mustAssign(t, a, v4(1, "h1", "n1")).IPv4[0]; !in(ip, "10.74.0.0/16") {
		t.Errorf("n1 (rack r1) got %s", ip)
	}
	if ip := mustAssign(t, a, v4(1, "h2", "n2")).IPv4[0]; !in(ip, "10.75.0.0/16") {
		t.Errorf("n2 (rack r2) got %s", ip)
	}
	if _, err := a.AutoAssign(ctx, v4(1, "h3", "n3")); !ipam.IsExhausted(err) || !strings.Contains(err.Error(), `selects node "n3"`) {
		t.Errorf("n3 (no labels): %v", err)
	}
	// n1 moves to rack r2: the Node's revision guards the next write, so
	// the cached view does not hand out a rack1 address.
	e.apply(node("n1", map[string]string{"rack": "r2"}))
	if ip := mustAssign(t, a, v4(1, "h4", "n1")).IPv4[0]; !in(ip, "10.75.0.0/16") {
		t.Errorf("n1 after relabelling got %s", ip)
	}
}

func TestAssignIP(t *testing.T) {
	e := newEnv(t)
	e.apply(testnet.IPPool("p", "10.77.0.0/16", 26), testnet.IPPool("q", "fd77::/48", 122), node("node-a", nil), node("node-b", nil))
	a := e.alloc()
	ctx := testCtx(t)
	ip := netip.MustParseAddr("10.77.5.5")
	if err := a.AssignIP(ctx, ipam.AssignIPArgs{IP: ip, Handle: "docker-ep-1", Node: "node-a"}); err != nil {
		t.Fatal(err)
	}
	as, _ := a.GetAssignment(ctx, ip)
	if !as.Allocated || as.Handle != "docker-ep-1" || as.Node != "node-a" || as.Block.String() != "10.77.5.0/26" {
		t.Errorf("assignment %+v: want the block claimed by node-a", as)
	}
	// The same handle again: no change. Another handle: an error naming the
	// holder.
	if err := a.AssignIP(ctx, ipam.AssignIPArgs{IP: ip, Handle: "docker-ep-1", Node: "node-a"}); err != nil {
		t.Errorf("repeated AssignIP: %v", err)
	}
	err := a.AssignIP(ctx, ipam.AssignIPArgs{IP: ip, Handle: "docker-ep-2", Node: "node-a"})
	if !ipam.IsInUse(err) || !strings.Contains(err.Error(), `10.77.5.5 is already assigned to handle "docker-ep-1"`) {
		t.Errorf("taken address: %v", err)
	}
	err = a.AssignIP(ctx, ipam.AssignIPArgs{IP: netip.MustParseAddr("192.0.2.1"), Handle: "x", Node: "node-a"})
	if !ipam.IsNotInPool(err) || !strings.Contains(err.Error(), "192.0.2.1 is outside every IP pool") {
		t.Errorf("outside pools: %v", err)
	}
	// An address in another node's block: fine without strictAffinity.
	ip2 := netip.MustParseAddr("10.77.5.6")
	if err := a.AssignIP(ctx, ipam.AssignIPArgs{IP: ip2, Handle: "b1", Node: "node-b"}); err != nil {
		t.Errorf("AssignIP in another node's block: %v", err)
	}
	e.apply(ipamSettings(true, true, 0))
	err = a.AssignIP(ctx, ipam.AssignIPArgs{IP: netip.MustParseAddr("10.77.5.7"), Handle: "b2", Node: "node-b"})
	if !ipam.IsExhausted(err) || !strings.Contains(err.Error(), `affine to node "node-a"`) {
		t.Errorf("AssignIP in another node's block under strictAffinity: %v", err)
	}
	ip6 := netip.MustParseAddr("fd77::1:7")
	if err := a.AssignIP(ctx, ipam.AssignIPArgs{IP: ip6, Handle: "v6", Node: "node-b"}); err != nil {
		t.Errorf("AssignIP v6: %v", err)
	}
	// The handle then gets AutoAssign's addresses on top.
	r := mustAssign(t, a, ipam.AutoAssignArgs{Num4: 1, Num6: 1, Handle: "v6", Node: "node-b"})
	if r.IPv6[0] != ip6 || len(r.IPv4) != 1 {
		t.Errorf("AutoAssign after AssignIP: %v", r)
	}
	mustCheckClean(t, a,
		ipam.Endpoint{Name: "e1", Node: "node-a", IPs: []netip.Addr{ip, ip2}},
		ipam.Endpoint{Name: "e2", Node: "node-b", IPs: append(r.IPv4, ip6)})
}

// TestAutoAssignAlso: keys Also returns are written in the allocation's
// transaction, and a failed guard of theirs writes nothing.
func TestAutoAssignAlso(t *testing.T) {
	e := newEnv(t)
	e.apply(testnet.IPPool("v4", "10.65.0.0/16", 26))
	a := e.alloc()
	ctx := testCtx(t)
	var seen ipam.AssignResult
	also := func(r ipam.AssignResult) ([]datastore.RawPut, []datastore.Cond, error) {
		seen = r
		v, _ := json.Marshal(r.IPv4)
		return []datastore.RawPut{{Key: "/test/ep1", Value: v}}, []datastore.Cond{{Key: "/test/ep1"}}, nil
	}
	res := mustAssign(t, a, ipam.AutoAssignArgs{Num4: 1, Handle: "net.c1.eth0", Node: "node-a", Also: also})
	if len(seen.IPv4) != 1 || seen.IPv4[0] != res.IPv4[0] {
		t.Errorf("Also saw %v, the result is %v", seen, res)
	}
	got, _, err := e.c.ReadRanges(ctx, []datastore.RawRange{{Key: "/test/ep1"}})
	if err != nil || len(got[0]) != 1 || got[0][0].ModRevision != res.Revision {
		t.Fatalf("the Also key: %v %v; want it written at the allocation's revision %d", got, err, res.Revision)
	}
	// Its guard fails now (the key exists): nothing is written.
	before := e.revision(t)
	_, err = a.AutoAssign(ctx, ipam.AutoAssignArgs{Num4: 1, Handle: "net.c2.eth0", Node: "node-a", Also: also})
	if !ipam.IsAlsoConflict(err) {
		t.Fatalf("Also's key exists: %v, want an Also conflict", err)
	}
	if after := e.revision(t); after != before {
		t.Errorf("a failed Also guard wrote: revision %d -> %d", before, after)
	}
	if ips, err := a.IPsByHandle(ctx, "net.c2.eth0"); !ipam.IsNotFound(err) || len(ips) != 0 {
		t.Errorf("handle of the failed request holds %v (%v)", ips, err)
	}
	// An error of Also's fails the request, writing nothing.
	_, err = a.AutoAssign(ctx, ipam.AutoAssignArgs{Num4: 1, Handle: "net.c3.eth0", Node: "node-a",
		Also: func(ipam.AssignResult) ([]datastore.RawPut, []datastore.Cond, error) {
			return nil, nil, errors.New("no endpoint")
		}})
	if err == nil || !strings.Contains(err.Error(), "no endpoint") {
		t.Errorf("Also failing: %v", err)
	}
	if after := e.revision(t); after != before {
		t.Errorf("a failed Also wrote: revision %d -> %d", before, after)
	}
}
