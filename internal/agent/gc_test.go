package agent

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/calyx-net/calyx/internal/api"
	"github.com/calyx-net/calyx/internal/dataplane/route"
	"github.com/calyx-net/calyx/internal/datastore"
	"github.com/calyx-net/calyx/internal/ipam"
	"github.com/calyx-net/calyx/internal/testnet"
)

// recordingStore records the keys of every ReadRanges call of the store
// it wraps, one slice per round trip.
type recordingStore struct {
	ipam.Store
	mu    sync.Mutex // guards reads
	reads [][]string
}

func (s *recordingStore) ReadRanges(ctx context.Context, ranges []datastore.RawRange) ([][]datastore.RawKV, int64, error) {
	keys := make([]string, len(ranges))
	for i, r := range ranges {
		keys[i] = r.Key
	}
	s.mu.Lock()
	s.reads = append(s.reads, keys)
	s.mu.Unlock()
	return s.Store.ReadRanges(ctx, ranges)
}

// take returns the reads so far and forgets them.
func (s *recordingStore) take() [][]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.reads
	s.reads = nil
	return out
}

// The background collector finds leaked handles by reading this node's
// affine blocks only, never a cluster-wide list of endpoints or nodes; it
// reads every block (for borrowed addresses) only every borrowedScanEvery
// scans, and releases a leaked handle in another node's block only then.
func TestCollectHandlesReadsOnlyThisNode(t *testing.T) {
	etcd := testnet.StartEtcd(t)
	c := testnet.NewClient(t, etcd)
	ctx := t.Context()
	autoAllocate := true
	for _, r := range []api.Resource{
		testnet.IPPool("p", "10.69.0.0/28", 30),
		&api.IPAMConfiguration{Metadata: api.ObjectMeta{Name: "default"}, Spec: api.IPAMConfigurationSpec{AutoAllocateBlocks: &autoAllocate, MaxBlocksPerHost: 1}},
	} {
		r.SetDefaults()
		if _, err := c.Apply(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	setup := ipam.New(c)
	assign := func(node, handle string, cni bool) {
		t.Helper()
		attrs := map[string]string{"node": node}
		if cni {
			attrs = map[string]string{"node": node, "network": "net1", "containerID": handle, "ifname": "eth0"}
		}
		if _, err := setup.AutoAssign(ctx, ipam.AutoAssignArgs{Num4: 1, Handle: handle, Attrs: attrs, Node: node}); err != nil {
			t.Fatal(err)
		}
	}
	// node-a's one block (4 addresses): a leaked CNI handle, one an
	// endpoint holds, one in flight and a non-CNI one. Then it borrows from
	// node-b's block for another leaked CNI handle.
	assign("node-b", "b-leaked", true)
	for _, h := range []string{"a-leaked", "a-held", "a-busy"} {
		assign("node-a", h, true)
	}
	assign("node-a", "a-tunnel", false)
	assign("node-a", "a-borrowed", true)
	if as, err := setup.IPsByHandle(ctx, "a-borrowed"); err != nil || len(as) != 1 {
		t.Fatalf("a-borrowed: %v, %v", as, err)
	} else if got, _ := setup.GetAssignment(ctx, as[0]); got.Node != "node-b" {
		t.Fatalf("a-borrowed is in a block of %q, want node-b's", got.Node)
	}

	store := &recordingStore{Store: c}
	v := newView("node-a", time.Now)
	v.wroteEndpoint(&api.WorkloadEndpoint{
		Metadata: api.ObjectMeta{Name: "held", Annotations: map[string]string{AnnotationHandle: "a-held"}},
		Spec:     api.WorkloadEndpointSpec{Node: "node-a"},
	})
	m, err := newMetrics(nil, v, func() datastore.Status { return datastore.Status{} }, func() datastore.Health { return datastore.Health{} }, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	log := testnet.Logger(t)
	rr := route.New(route.NewFake(), log)
	svc := &service{
		node: "node-a", log: log, store: c, alloc: ipam.New(store), host: rr,
		dp: startLoop(t, rr, v, m), view: v, locks: newHandleLocks(), adds: newPendingAdds(processAlive), m: m, now: time.Now, claim: heldClaim{},
	}
	unlock, err := svc.locks.lock(ctx, "a-busy")
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	grace := time.Minute
	col := newCollector(svc, log, grace, time.Second)

	exists := func(h string) bool {
		_, err := setup.IPsByHandle(ctx, h)
		if err != nil && !ipam.IsNotFound(err) {
			t.Fatal(err)
		}
		return err == nil
	}
	check := func(scan int, want map[string]bool) {
		t.Helper()
		for h, w := range want {
			if got := exists(h); got != w {
				t.Errorf("after scan %d: %s exists %v, want %v", scan, h, got, w)
			}
		}
	}
	t0 := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	for scan := range borrowedScanEvery + 1 {
		if err := col.collectHandles(ctx, t0.Add(time.Duration(scan)*grace)); err != nil {
			t.Fatalf("scan %d: %v", scan, err)
		}
		reads := store.take()
		for _, keys := range reads {
			for _, k := range keys {
				if !strings.HasPrefix(k, datastore.IPAMPrefix) || k == datastore.IPAMPrefix {
					t.Errorf("scan %d read %q, want only this node's IPAM keys", scan, k)
				}
			}
		}
		switch scan {
		case 0: // full, nothing leaked for the grace period yet
			check(scan, map[string]bool{"a-leaked": true, "a-borrowed": true})
		case 1: // affine: releases the affine leak only
			check(scan, map[string]bool{"a-leaked": false, "a-borrowed": true})
		case 2: // affine, nothing to release: affinities, then blocks
			if len(reads) != 2 {
				t.Errorf("scan %d: %d round trips %v, want 2", scan, len(reads), reads)
			}
			check(scan, map[string]bool{"a-borrowed": true})
		case borrowedScanEvery: // full again: the borrowed leak goes
			check(scan, map[string]bool{"a-borrowed": false})
		}
	}
	// Never collected: held, in flight, not a CNI handle, another node's.
	check(borrowedScanEvery, map[string]bool{"a-held": true, "a-busy": true, "a-tunnel": true, "b-leaked": true})
}

// heldClaim is a node claim this process always holds.
type heldClaim struct{}

func (heldClaim) Check(context.Context) error { return nil }
