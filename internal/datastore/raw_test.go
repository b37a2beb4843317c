package datastore_test

import (
	"testing"

	"github.com/calyx-net/calyx/internal/datastore"
	"github.com/google/go-cmp/cmp"
)

func TestRawCAS(t *testing.T) {
	c := setup(t)
	ctx := testCtx(t)
	block := datastore.IPAMPrefix + "assignment/ipv4/block/10.0.0.0-26"
	handle := datastore.IPAMPrefix + "handle/h1"

	val, rev, err := c.GetRaw(ctx, block)
	if err != nil || val != nil || rev != 0 {
		t.Fatalf("GetRaw of a missing key = %q, %d, %v", val, rev, err)
	}

	// Create if absent: only the first of two writers wins.
	ok, rev1, err := c.CAS(ctx, []datastore.Cond{{Key: block}}, []datastore.RawPut{{Key: block, Value: []byte(`{"v":1}`)}}, nil)
	if err != nil || !ok {
		t.Fatalf("first create: %v %v", ok, err)
	}
	ok, _, err = c.CAS(ctx, []datastore.Cond{{Key: block}}, []datastore.RawPut{{Key: block, Value: []byte(`{"v":"lost"}`)}}, nil)
	if err != nil || ok {
		t.Fatalf("second create: ok=%v err=%v, want refused", ok, err)
	}
	val, rev, err = c.GetRaw(ctx, block)
	if err != nil || string(val) != `{"v":1}` || rev != rev1 {
		t.Fatalf("after create: %q %d %v (CAS said revision %d)", val, rev, err, rev1)
	}

	// Update the block and add a handle atomically, guarded by the
	// block's revision; a stale guard writes nothing.
	ok, rev2, err := c.CAS(ctx, []datastore.Cond{{Key: block, ModRevision: rev1}, {Key: handle}},
		[]datastore.RawPut{{Key: block, Value: []byte(`{"v":2}`)}, {Key: handle, Value: []byte(`{}`)}}, nil)
	if err != nil || !ok {
		t.Fatalf("guarded update: %v %v", ok, err)
	}
	ok, _, err = c.CAS(ctx, []datastore.Cond{{Key: block, ModRevision: rev1}}, nil, []string{handle})
	if err != nil || ok {
		t.Fatalf("stale guarded delete: ok=%v err=%v", ok, err)
	}

	kvs, listRev, err := c.ListRaw(ctx, datastore.IPAMPrefix)
	if err != nil {
		t.Fatal(err)
	}
	want := []datastore.RawKV{
		{Key: block, Value: []byte(`{"v":2}`), ModRevision: rev2},
		{Key: handle, Value: []byte(`{}`), ModRevision: rev2},
	}
	if diff := cmp.Diff(want, kvs); diff != "" || listRev != rev2 {
		t.Errorf("ListRaw at %d (-want +got):\n%s", listRev, diff)
	}

	// Delete guarded by the current revision.
	ok, _, err = c.CAS(ctx, []datastore.Cond{{Key: block, ModRevision: rev2}}, nil, []string{handle})
	if err != nil || !ok {
		t.Fatalf("guarded delete: %v %v", ok, err)
	}
	if val, rev, _ := c.GetRaw(ctx, handle); val != nil || rev != 0 {
		t.Errorf("handle survived its delete")
	}
}
