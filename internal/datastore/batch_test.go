package datastore_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/calyx-net/calyx/internal/api"
	"github.com/calyx-net/calyx/internal/datastore"
	"github.com/calyx-net/calyx/internal/testnet"
)

// storedNames lists the pool names stored, for all-or-nothing checks.
func storedNames(t *testing.T, c *datastore.Client) []string {
	t.Helper()
	rs, _, err := c.List(testCtx(t), kind(t, "ippool"), nil)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range rs {
		out = append(out, r.GetObjectMeta().Name+"="+cidrOf(r))
	}
	return out
}

func TestBatchAllOrNothing(t *testing.T) {
	c := setup(t)
	existing := mustCreate(t, c, pool("b", "10.2.0.0/16", nil))
	stale := existing.DeepCopyResource().(*api.IPPool)
	if _, err := c.Apply(testCtx(t), pool("b", "10.22.0.0/16", nil)); err != nil {
		t.Fatal(err)
	}
	before := storedNames(t, c)
	ipp := func(name string) *api.IPPool { return pool(name, "10.9.0.0/16", nil) }

	for _, tc := range []struct {
		name string
		ops  []datastore.Op
		is   func(error) bool
		want []string // in the error
	}{
		{"create of an existing pool", []datastore.Op{
			{Action: datastore.OpCreate, Resource: ipp("a")},
			{Action: datastore.OpCreate, Resource: ipp("b")},
			{Action: datastore.OpApply, Resource: ipp("c")},
		}, datastore.IsAlreadyExists, []string{`IPPool "b"`, "batch operation 1"}},
		{"stale update", []datastore.Op{
			{Action: datastore.OpCreate, Resource: ipp("a")},
			{Action: datastore.OpUpdate, Resource: stale},
		}, datastore.IsConflict, []string{`IPPool "b"`, stale.Metadata.ResourceVersion}},
		{"update of a missing pool", []datastore.Op{
			{Action: datastore.OpApply, Resource: ipp("a")},
			{Action: datastore.OpUpdate, Resource: func() api.Resource { p := ipp("zz"); p.Metadata.ResourceVersion = "3"; return p }()},
		}, datastore.IsNotFound, []string{`IPPool "zz"`}},
		{"delete of a missing pool", []datastore.Op{
			{Action: datastore.OpCreate, Resource: ipp("a")},
			{Action: datastore.OpDelete, Resource: ipp("zz")},
		}, datastore.IsNotFound, []string{`IPPool "zz"`}},
		{"delete at a stale revision", []datastore.Op{
			{Action: datastore.OpCreate, Resource: ipp("a")},
			{Action: datastore.OpDelete, Resource: stale},
		}, datastore.IsConflict, []string{`IPPool "b"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.Batch(testCtx(t), tc.ops)
			if !tc.is(err) {
				t.Fatalf("Batch: %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if got := storedNames(t, c); strings.Join(got, " ") != strings.Join(before, " ") {
				t.Errorf("a failed batch wrote: stored %v, before %v", got, before)
			}
		})
	}

	t.Run("duplicate key", func(t *testing.T) {
		_, err := c.Batch(testCtx(t), []datastore.Op{
			{Action: datastore.OpApply, Resource: ipp("a")},
			{Action: datastore.OpDelete, Resource: ipp("a")},
		})
		if err == nil || !strings.Contains(err.Error(), `IPPool "a"`) {
			t.Errorf("Batch with a key twice: %v", err)
		}
	})
}

func TestBatchMixed(t *testing.T) {
	c := setup(t)
	upd := mustCreate(t, c, pool("upd", "10.1.0.0/16", nil)).(*api.IPPool)
	del := mustCreate(t, c, pool("del", "10.2.0.0/16", nil))
	app := mustCreate(t, c, pool("app", "10.3.0.0/16", nil))

	upd.Spec.CIDR = "10.11.0.0/16"
	out, err := c.Batch(testCtx(t), []datastore.Op{
		{Action: datastore.OpCreate, Resource: pool("new", "10.4.0.0/16", nil)},
		{Action: datastore.OpUpdate, Resource: upd},
		{Action: datastore.OpApply, Resource: pool("app", "10.13.0.0/16", nil)},
		{Action: datastore.OpApply, Resource: netSet("gns", "192.0.2.0/24")},
		{Action: datastore.OpDelete, Resource: pool("del", "", nil)},
	})
	if err != nil {
		t.Fatal(err)
	}
	rev := fmt.Sprint(mustRevision(t, c))
	for i, r := range out[:4] {
		if r.GetObjectMeta().ResourceVersion != rev {
			t.Errorf("result %d at revision %s, want the batch's %s", i, r.GetObjectMeta().ResourceVersion, rev)
		}
	}
	if out[2].GetObjectMeta().UID != app.GetObjectMeta().UID || out[1].GetObjectMeta().UID != upd.Metadata.UID {
		t.Errorf("apply or update lost the uid")
	}
	if out[4].GetObjectMeta().UID != del.GetObjectMeta().UID || cidrOf(out[4]) != "10.2.0.0/16" {
		t.Errorf("delete returned %+v, want the deleted pool", out[4])
	}
	want := "app=10.13.0.0/16 new=10.4.0.0/16 upd=10.11.0.0/16"
	if got := strings.Join(storedNames(t, c), " "); got != want {
		t.Errorf("stored %s, want %s", got, want)
	}
	if _, err := c.Get(testCtx(t), kind(t, "gns"), "gns"); err != nil {
		t.Error(err)
	}
}

func TestBatchConcurrentApplies(t *testing.T) {
	c := setup(t)
	var ops []datastore.Op
	for i := range 5 {
		ops = append(ops, datastore.Op{Action: datastore.OpApply, Resource: pool(fmt.Sprint("p", i), "10.1.0.0/16", nil)})
	}
	first, err := c.Batch(testCtx(t), ops)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for range 4 {
		wg.Go(func() {
			for range 10 {
				_, err := c.Batch(testCtx(t), ops)
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	for i, r := range first {
		got, err := c.Get(testCtx(t), kind(t, "ippool"), r.GetObjectMeta().Name)
		if err != nil {
			t.Fatal(err)
		}
		if got.GetObjectMeta().UID != first[i].GetObjectMeta().UID {
			t.Errorf("%s: uid changed", r.GetObjectMeta().Name)
		}
	}
}

func TestBatchSize(t *testing.T) {
	c := setup(t)
	batch := func(prefix string, n int) []datastore.Op {
		ops := make([]datastore.Op, n)
		for i := range ops {
			ops[i] = datastore.Op{Action: datastore.OpCreate, Resource: pool(fmt.Sprintf("%s%04d", prefix, i), "10.1.0.0/16", nil)}
		}
		return ops
	}
	// The embedded etcd takes a large batch in one transaction.
	if _, err := c.Batch(testCtx(t), batch("big", 1000)); err != nil {
		t.Fatalf("batch of 1000: %v", err)
	}
	if n := len(storedNames(t, c)); n != 1000 {
		t.Errorf("stored %d pools, want 1000", n)
	}

	// An etcd with its default limit refuses it, and the error says how to
	// raise the limit; nothing is written.
	cfg := testnet.EtcdConfig(t)
	cfg.MaxTxnOps = 128
	small := testnet.NewClient(t, testnet.StartEtcdWith(t, cfg))
	_, err := small.Batch(testCtx(t), batch("big", 200))
	if err == nil || !strings.Contains(err.Error(), "--max-txn-ops") {
		t.Fatalf("batch of 200 against --max-txn-ops=128: %v", err)
	}
	if n := len(storedNames(t, small)); n != 0 {
		t.Errorf("refused batch stored %d pools", n)
	}
}
