package datastore_test

import (
	"testing"

	"github.com/calyx-net/calyx/internal/datastore"
	"github.com/google/go-cmp/cmp"
)

func TestReadRanges(t *testing.T) {
	c := setup(t)
	ctx := testCtx(t)
	pre := datastore.IPAMPrefix + "rr/"
	ok, rev, err := c.CAS(ctx, nil, []datastore.RawPut{
		{Key: pre + "a/1", Value: []byte("1")},
		{Key: pre + "a/2", Value: []byte("2")},
		{Key: pre + "b", Value: []byte("b")},
	}, nil)
	if err != nil || !ok {
		t.Fatalf("seeding: %v %v", ok, err)
	}
	got, readRev, err := c.ReadRanges(ctx, []datastore.RawRange{
		{Key: pre + "a/", Prefix: true, KeysOnly: true},
		{Key: pre + "b"},
		{Key: pre + "missing"},
		{Key: pre + "a/", Prefix: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := [][]datastore.RawKV{
		{{Key: pre + "a/1", ModRevision: rev}, {Key: pre + "a/2", ModRevision: rev}},
		{{Key: pre + "b", Value: []byte("b"), ModRevision: rev}},
		{},
		{{Key: pre + "a/1", Value: []byte("1"), ModRevision: rev}, {Key: pre + "a/2", Value: []byte("2"), ModRevision: rev}},
	}
	if diff := cmp.Diff(want, got); diff != "" || readRev != rev {
		t.Errorf("ReadRanges at %d (want %d) (-want +got):\n%s", readRev, rev, diff)
	}
	if _, _, err := c.ReadRanges(ctx, nil); err == nil {
		t.Error("ReadRanges of nothing succeeded")
	}
}

func TestCASRead(t *testing.T) {
	c := setup(t)
	ctx := testCtx(t)
	block := datastore.IPAMPrefix + "casread/block"
	handle := datastore.IPAMPrefix + "casread/handle"

	ok, rev1, cur, err := c.CASRead(ctx, []datastore.Cond{{Key: block}}, []datastore.RawPut{{Key: block, Value: []byte("v1")}}, nil)
	if err != nil || !ok || cur != nil {
		t.Fatalf("create: %v %v %v", ok, cur, err)
	}
	// A stale guard on the block and a "must not exist" guard on the
	// missing handle: nothing is written and both keys' current state
	// comes back in the same answer.
	ok, _, cur, err = c.CASRead(ctx,
		[]datastore.Cond{{Key: block, ModRevision: rev1 - 1}, {Key: handle}},
		[]datastore.RawPut{{Key: block, Value: []byte("lost")}, {Key: handle, Value: []byte("lost")}}, nil)
	if err != nil || ok {
		t.Fatalf("stale CASRead: ok=%v err=%v", ok, err)
	}
	want := []datastore.RawKV{{Key: block, Value: []byte("v1"), ModRevision: rev1}, {Key: handle}}
	if diff := cmp.Diff(want, cur); diff != "" {
		t.Errorf("current (-want +got):\n%s", diff)
	}
	// With the revisions it was given, the retry succeeds.
	ok, rev2, _, err := c.CASRead(ctx,
		[]datastore.Cond{{Key: block, ModRevision: cur[0].ModRevision}, {Key: handle, ModRevision: cur[1].ModRevision}},
		[]datastore.RawPut{{Key: block, Value: []byte("v2")}, {Key: handle, Value: []byte("h")}}, nil)
	if err != nil || !ok {
		t.Fatalf("retry: %v %v", ok, err)
	}
	ok, _, _, err = c.CASRead(ctx, []datastore.Cond{{Key: handle, ModRevision: rev2}}, nil, []string{handle})
	if err != nil || !ok {
		t.Fatalf("guarded delete: %v %v", ok, err)
	}
	if v, r, _ := c.GetRaw(ctx, handle); v != nil || r != 0 {
		t.Errorf("handle survived its delete")
	}
	if _, _, _, err := c.CASRead(ctx, nil, nil, nil); err == nil {
		t.Error("CASRead with nothing to write succeeded")
	}
}
