package ipam_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/calyx-net/calyx/internal/api"
	"github.com/calyx-net/calyx/internal/ipam"
	"github.com/calyx-net/calyx/internal/testnet"
)

func wep(name, nodeName string, ips ...string) *api.WorkloadEndpoint {
	return &api.WorkloadEndpoint{Metadata: api.ObjectMeta{Name: name},
		Spec: api.WorkloadEndpointSpec{Node: nodeName, Orchestrator: "cni", ContainerID: name, Endpoint: "eth0", IPNetworks: ips}}
}

// TestCheckAndFix builds one instance of every problem class by writing
// the datastore behind the allocator's back, checks that Check reports
// exactly those, and that Fix repairs all but the conflict.
func TestCheckAndFix(t *testing.T) {
	e := newEnv(t)
	e.apply(testnet.IPPool("p", "10.90.0.0/16", 28), node("n1", nil), node("n2", nil), node("doomed", nil))
	a := e.alloc()
	ctx := testCtx(t)

	// In use and allocated: fine.
	ok := mustAssign(t, a, v4(1, "ok", "n1")).IPv4[0]
	// (a) leaked: allocated, no endpoint.
	leaked := mustAssign(t, a, v4(1, "leaky", "n1")).IPv4[0]
	// (b) used by an endpoint, not allocated: one in a pool, one outside.
	unalloc := netip.MustParseAddr("10.90.200.1")
	outside := netip.MustParseAddr("192.0.2.50")
	// (c) two endpoints with one address.
	shared := mustAssign(t, a, v4(1, "shared", "n2")).IPv4[0]
	// (d) a handle record with no address, and an allocation whose handle
	// record is gone.
	e.put(ipam.HandleKey("ghost"), `{"10.90.99.0/28":1}`)
	lost := mustAssign(t, a, v4(1, "lost-record", "n2")).IPv4[0]
	e.del(ipam.HandleKey("lost-record"))
	// (e) a block of a node that no longer exists.
	doomed := mustAssign(t, a, v4(1, "doomed-h", "doomed")).IPv4[0]
	doomedBlock, _ := doomed.Prefix(28)
	if _, err := e.c.Delete(ctx, mustKind(t, api.KindNode), "doomed", ""); err != nil {
		t.Fatal(err)
	}
	// Affinities: stale (no block), missing, pending.
	staleBlock := netip.MustParsePrefix("10.90.250.0/28")
	e.put(ipam.AffinityKey("n1", staleBlock), `{"state":"confirmed"}`)
	n2Block, _ := shared.Prefix(28)
	e.del(ipam.AffinityKey("n2", n2Block))
	n1Block, _ := ok.Prefix(28)
	e.put(ipam.AffinityKey("n1", n1Block), `{"state":"pending"}`)

	e.apply(wep("w-ok", "n1", ok.String()+"/32"), wep("w-unalloc", "n1", unalloc.String()+"/32"),
		wep("w-outside", "n1", outside.String()+"/32"),
		wep("w-shared-1", "n2", shared.String()+"/32"), wep("w-shared-2", "n2", shared.String()+"/32"),
		wep("w-lost", "n2", lost.String()+"/32"), wep("w-doomed", "doomed", doomed.String()+"/32"))

	r, err := a.Check(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := ipam.Report{
		Leaked: []ipam.Allocation{{IP: leaked, Handle: "leaky", Node: "n1", Block: n1Block}},
		Unallocated: []ipam.EndpointIP{
			{IP: unalloc, Endpoint: "w-unalloc", Node: "n1", Pool: "p"},
			{IP: outside, Endpoint: "w-outside", Node: "n1"},
		},
		Conflicts: []ipam.Conflict{{IP: shared, Owners: []string{`endpoint "w-shared-1"`, `endpoint "w-shared-2"`, `handle "shared" in block ` + n2Block.String()}}},
		Handles: []ipam.HandleProblem{
			{Handle: "ghost", Recorded: map[string]int{"10.90.99.0/28": 1}, Actual: map[string]int{}},
			{Handle: "lost-record", Actual: map[string]int{n2Block.String(): 1}},
		},
		Orphans: []ipam.OrphanBlock{{Block: doomedBlock, Node: "doomed", InUse: 1}},
		Affinities: []ipam.AffinityProblem{
			{Node: "n1", Block: n1Block, Problem: ipam.AffinityPending},
			{Node: "n1", Block: staleBlock, Problem: ipam.AffinityStale},
			{Node: "n2", Block: n2Block, Problem: ipam.AffinityMissing},
		},
	}
	ignoreRevs := cmp.FilterPath(func(p cmp.Path) bool {
		return strings.HasSuffix(p.String(), "Revision") || strings.HasSuffix(p.String(), "BlockRev")
	}, cmp.Ignore())
	if diff := cmp.Diff(want, r, netipComparers, ignoreRevs); diff != "" {
		t.Fatalf("report (-want +got):\n%s", diff)
	}
	if r.Problems() != 10 {
		t.Errorf("Problems() = %d", r.Problems())
	}

	res, err := a.Fix(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if res.Fixed != 8 || len(res.Skipped) != 2 {
		t.Errorf("Fix = %+v: want 8 fixed, the outside address and the conflict skipped", res)
	}
	r2, err := a.Check(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(r2.Conflicts) != 1 || r2.Problems() != 2 || len(r2.Unallocated) != 1 || r2.Unallocated[0].IP != outside {
		t.Errorf("after Fix: %+v", r2)
	}
	if as, _ := a.GetAssignment(ctx, unalloc); !as.Allocated || as.Handle != "endpoint.w-unalloc" || as.Node != "n1" {
		t.Errorf("repaired allocation %+v", as)
	}
	if as, _ := a.GetAssignment(ctx, leaked); as.Allocated {
		t.Errorf("leaked address still allocated: %+v", as)
	}
	if as, _ := a.GetAssignment(ctx, doomed); !as.Allocated || as.Node != "" {
		t.Errorf("address in the orphan block %+v: want kept, in a block of no node", as)
	}
	// A second Fix with the old report changes nothing (every entry is
	// guarded by what Check saw).
	res, err = a.Fix(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if res.Fixed > 3 {
		t.Errorf("stale Fix fixed %d", res.Fixed)
	}
}

func mustKind(t *testing.T, name string) api.KindInfo {
	t.Helper()
	k, ok := api.LookupKind(name)
	if !ok {
		t.Fatalf("no kind %s", name)
	}
	return k
}

func TestFixLeakedSkipsReassignedAddress(t *testing.T) {
	e := newEnv(t)
	e.apply(testnet.IPPool("p", "10.91.0.0/29", 29), node("n", nil))
	a := e.alloc()
	ctx := testCtx(t)
	ip := mustAssign(t, a, v4(1, "old", "n")).IPv4[0]
	r, err := a.Check(ctx)
	if err != nil || len(r.Leaked) != 1 {
		t.Fatalf("check: %+v %v", r, err)
	}
	// Between check and fix the address is released and taken by
	// another handle, which must keep it.
	if err := a.ReleaseByHandle(ctx, "old"); err != nil {
		t.Fatal(err)
	}
	if err := a.AssignIP(ctx, ipam.AssignIPArgs{IP: ip, Handle: "new", Node: "n"}); err != nil {
		t.Fatal(err)
	}
	res, err := a.Fix(ctx, r)
	if err != nil || res.Fixed != 0 || len(res.Skipped) != 1 {
		t.Errorf("Fix = %+v, %v", res, err)
	}
	if as, _ := a.GetAssignment(ctx, ip); as.Handle != "new" {
		t.Errorf("reassigned address lost: %+v", as)
	}
}

func TestCheckLeavesIPAMOnlyAllocations(t *testing.T) {
	e := newEnv(t)
	e.apply(testnet.IPPool("p", "10.92.0.0/29", 29), node("n", nil))
	a := e.alloc()
	ctx := testCtx(t)
	args := v4(1, "bridged.c1.eth0", "n")
	args.Attrs = map[string]string{ipam.AttrIPAMOnly: "true", "node": "n"}
	ip := mustAssign(t, a, args).IPv4[0]
	r, err := a.Check(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Leaked) != 0 {
		t.Errorf("an allocation of calyx-ipam under another plugin is reported leaked: %+v", r.Leaked)
	}
	if _, err := a.Fix(ctx, r); err != nil {
		t.Fatal(err)
	}
	if as, _ := a.GetAssignment(ctx, ip); as.Handle != "bridged.c1.eth0" {
		t.Errorf("Fix released a live calyx-ipam allocation: %+v", as)
	}
}
