package datastore_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/calyx-net/calyx/internal/api"
	"github.com/calyx-net/calyx/internal/datastore"
	"github.com/calyx-net/calyx/internal/testnet"
)

const claimKey = datastore.ClaimPrefix + "nodes/n1"

func claimOf(t *testing.T, c *datastore.Client, value string, ttl time.Duration, replace func([]byte) bool) (*datastore.Claim, error) {
	t.Helper()
	return c.Claim(testCtx(t), datastore.ClaimSpec{Key: claimKey, Value: []byte(value), TTL: ttl, Replace: replace})
}

func storedClaim(t *testing.T, c *datastore.Client) string {
	t.Helper()
	v, _, err := c.GetRaw(testCtx(t), claimKey)
	if err != nil {
		t.Fatal(err)
	}
	return string(v)
}

// A live claim of another holder is refused, naming the holder and
// writing nothing; a holder Replace accepts takes it at once, and the
// replaced holder sees that it lost it.
func TestClaimHeldAndReplaced(t *testing.T) {
	c := setup(t)
	a, err := claimOf(t, c, "host-a", time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Check(testCtx(t)); err != nil {
		t.Fatalf("check of a fresh claim: %v", err)
	}
	before := mustRevision(t, c)
	_, err = claimOf(t, c, "host-b", time.Hour, func(h []byte) bool { return string(h) == "host-b" })
	var held *datastore.ClaimHeldError
	if !errors.As(err, &held) || !datastore.IsClaimHeld(err) || string(held.Holder) != "host-a" || held.TTL <= 0 {
		t.Fatalf("second claim: %v (%+v), want held by host-a with a TTL", err, held)
	}
	if after := mustRevision(t, c); after != before {
		t.Errorf("a refused claim wrote: revision %d -> %d", before, after)
	}
	if _, err := c.Claim(testCtx(t), datastore.ClaimSpec{Key: "/calyx/v1/node/n1", Value: []byte("x"), TTL: time.Second}); err == nil {
		t.Error("a claim outside ClaimPrefix was accepted")
	}

	// The same host restarting: replaced at once, although the lease has
	// an hour left.
	fenceA := a.Fence()
	a2, err := claimOf(t, c, "host-a restarted", time.Hour, func(h []byte) bool { return string(h) == "host-a" })
	if err != nil {
		t.Fatalf("replacing a claim Replace accepts: %v", err)
	}
	if got := storedClaim(t, c); got != "host-a restarted" {
		t.Errorf("stored claim %q", got)
	}
	if err := a.Check(testCtx(t)); !datastore.IsClaimLost(err) {
		t.Errorf("check of the replaced claim: %v, want lost", err)
	}
	if err := a2.Check(testCtx(t)); err != nil {
		t.Errorf("check of the new claim: %v", err)
	}
	ok, _, err := c.CAS(testCtx(t), []datastore.Cond{fenceA}, []datastore.RawPut{{Key: datastore.IPAMPrefix + "x", Value: []byte("1")}}, nil)
	if err != nil || ok {
		t.Errorf("CAS fenced by the replaced claim: %v %v, want refused", ok, err)
	}
	ok, _, err = c.CAS(testCtx(t), []datastore.Cond{a2.Fence()}, []datastore.RawPut{{Key: datastore.IPAMPrefix + "x", Value: []byte("1")}}, nil)
	if err != nil || !ok {
		t.Errorf("CAS fenced by the live claim: %v %v, want written", ok, err)
	}
	// Deletes fenced by a claim: refused by the replaced one, done by the
	// live one.
	ns := mustCreate(t, c, netSet("fenced", "10.0.0.0/8"))
	k := kind(t, api.KindGlobalNetworkSet)
	if _, err := c.DeleteFenced(testCtx(t), k, "fenced", fenceA); !datastore.IsClaimLost(err) {
		t.Errorf("delete fenced by the replaced claim: %v, want lost", err)
	}
	if _, err := c.Get(testCtx(t), k, "fenced"); err != nil {
		t.Errorf("after the refused delete: %v", err)
	}
	if got, err := c.DeleteFenced(testCtx(t), k, "fenced", a2.Fence()); err != nil || got.GetObjectMeta().Name != ns.GetObjectMeta().Name {
		t.Errorf("delete fenced by the live claim: %v, %v", got, err)
	}
	if _, err := c.DeleteFenced(testCtx(t), k, "fenced", a2.Fence()); !datastore.IsNotFound(err) {
		t.Errorf("fenced delete of a missing resource: %v, want not found", err)
	}
	// The replaced holder's Run notices (its lease was revoked) and
	// reports the new holder instead of taking the key back.
	err = a.Run(testCtx(t), datastore.ClaimEvents{})
	var lost *datastore.ClaimLostError
	if !errors.As(err, &lost) || string(lost.Holder) != "host-a restarted" {
		t.Errorf("Run of the replaced claim: %v, want lost to host-a restarted", err)
	}
	if got := storedClaim(t, c); got != "host-a restarted" {
		t.Errorf("stored claim after the loser's Run: %q", got)
	}
}

// A claim whose holder stopped without releasing it can be taken by
// another holder once its lease expired.
func TestClaimExpires(t *testing.T) {
	c := setup(t)
	if _, err := claimOf(t, c, "host-a", time.Second, nil); err != nil {
		t.Fatal(err)
	}
	// Never kept alive, as after kill -9.
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := claimOf(t, c, "host-b", time.Hour, nil)
		if err == nil {
			break
		}
		if !datastore.IsClaimHeld(err) || time.Now().After(deadline) {
			t.Fatalf("claiming after the holder stopped: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := storedClaim(t, c); got != "host-b" {
		t.Errorf("stored claim %q, want host-b", got)
	}
}

// Run keeps the claim alive; when its lease ends and nobody else holds the
// key, it takes the key again; when another holder writes the key, Run
// returns that it lost it.
func TestClaimRunRetakesAndLoses(t *testing.T) {
	c := setup(t)
	a, err := claimOf(t, c, "host-a", 2*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	retaken := make(chan struct{}, 10)
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, datastore.ClaimEvents{Retaken: func() { retaken <- struct{}{} }}) }()

	// Kept alive past several TTLs.
	time.Sleep(5 * time.Second)
	if err := a.Check(testCtx(t)); err != nil {
		t.Fatalf("claim after 5 s of Run with a 2 s TTL: %v", err)
	}
	// The lease ends (as when etcd was out of reach past the TTL).
	old := a.Fence()
	if err := a.Release(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-retaken:
	case err := <-done:
		t.Fatalf("Run returned %v, want it to take the key again", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the claim was not taken again")
	}
	if err := a.Check(testCtx(t)); err != nil || a.Fence() == old {
		t.Errorf("claim after the re-take: %v, fence %v (was %v)", err, a.Fence(), old)
	}
	// Another holder writes the key: Run stops with the holder.
	if ok, _, err := c.CAS(testCtx(t), nil, []datastore.RawPut{{Key: claimKey, Value: []byte("host-b")}}, nil); err != nil || !ok {
		t.Fatal(ok, err)
	}
	select {
	case err := <-done:
		var lost *datastore.ClaimLostError
		if !errors.As(err, &lost) || string(lost.Holder) != "host-b" {
			t.Errorf("Run: %v, want lost to host-b", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not notice the claim was taken")
	}
	if got := storedClaim(t, c); got != "host-b" {
		t.Errorf("stored claim %q, want host-b left alone", got)
	}
}

// A claim whose holder loses etcd's quorum for longer than the TTL is not
// given up: while the surviving member answers "no leader" or "timed
// out", Run keeps trying, and it takes the claim again once the quorum is
// back.
func TestClaimRunSurvivesLostQuorum(t *testing.T) {
	cl := testnet.StartEtcdCluster(t, 3, testnet.EtcdClusterOptions{})
	c, err := datastore.New(testCtx(t), cl.ClientConfig(), testnet.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	a, err := claimOf(t, c, "host-a", 2*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var mu sync.Mutex
	var failures []error
	retaken := make(chan struct{}, 10)
	done := make(chan error, 1)
	go func() {
		done <- a.Run(ctx, datastore.ClaimEvents{
			Retaken: func() { retaken <- struct{}{} },
			Retrying: func(err error) {
				mu.Lock()
				defer mu.Unlock()
				failures = append(failures, err)
			},
		})
	}()
	old := a.Fence()

	// Two of three members stop: the last answers, without a leader.
	for i := 1; i < 3; i++ {
		cl.Stop(i)
	}
	// The keepalive gets no answer for a TTL, so Run tries to take the
	// claim again, which fails while there is no quorum: after the lease
	// lapses and one attempt (bounded at 10 s) fails, which on a loaded
	// machine can take longer than WaitFor's bound.
	testnet.WaitForWithin(t, "Run to fail to re-take the claim without a quorum", 2*time.Minute, func() bool {
		select {
		case err := <-done:
			t.Fatalf("Run returned %v without a quorum, want it to keep trying", err)
		default:
		}
		mu.Lock()
		defer mu.Unlock()
		return len(failures) > 0
	})
	mu.Lock()
	first := failures[0]
	mu.Unlock()
	if !datastore.IsUnavailable(first) && !errors.Is(first, context.DeadlineExceeded) {
		t.Errorf("re-take without a quorum failed with %v, want an unavailable datastore or a deadline", first)
	}

	// The quorum is back: the claim is taken again.
	for i := 1; i < 3; i++ {
		if err := cl.Start(i); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-retaken:
	case err := <-done:
		t.Fatalf("Run returned %v after the quorum came back, want it to take the claim again", err)
	case <-time.After(2 * time.Minute):
		t.Fatal("the claim was not taken again after the quorum came back")
	}
	if err := a.Check(testCtx(t)); err != nil || a.Fence() == old {
		t.Errorf("claim after the re-take: %v, fence %v (was %v)", err, a.Fence(), old)
	}
	if got := storedClaim(t, c); got != "host-a" {
		t.Errorf("stored claim %q, want host-a", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run after cancel: %v", err)
	}
}

// Once etcd compacted past the revision the claim was written at, a
// restarted watch of the claim starts from a revision etcd still has,
// instead of failing with "compacted" again every second.
func TestClaimWatchAfterCompaction(t *testing.T) {
	c := setup(t)
	a, err := claimOf(t, c, "host-a", time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if ok, _, err := c.CAS(testCtx(t), nil, []datastore.RawPut{{Key: datastore.IPAMPrefix + "x", Value: []byte{byte('0' + i)}}}, nil); err != nil || !ok {
			t.Fatal(ok, err)
		}
	}
	compacted := mustRevision(t, c)
	if err := c.Compact(testCtx(t), compacted); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var starts []int64
	datastore.SetClaimWatchHook(a, func(from int64) {
		mu.Lock()
		defer mu.Unlock()
		starts = append(starts, from)
	})
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, datastore.ClaimEvents{}) }()

	// The first watch, from just after the claim, fails as compacted; the
	// next starts after the revision the claim was checked at.
	testnet.WaitFor(t, "the claim's watch to restart", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(starts) >= 2
	})
	mu.Lock()
	got := append([]int64(nil), starts[:2]...)
	mu.Unlock()
	if want := a.Fence().ModRevision + 1; got[0] != want {
		t.Errorf("first watch from %d, want %d", got[0], want)
	}
	if got[1] <= compacted {
		t.Errorf("restarted watch from %d, want after the compaction at %d", got[1], compacted)
	}
	// The restarted watch works: another holder's write ends Run.
	if ok, _, err := c.CAS(testCtx(t), nil, []datastore.RawPut{{Key: claimKey, Value: []byte("host-b")}}, nil); err != nil || !ok {
		t.Fatal(ok, err)
	}
	select {
	case err := <-done:
		var lost *datastore.ClaimLostError
		if !errors.As(err, &lost) || string(lost.Holder) != "host-b" {
			t.Errorf("Run: %v, want lost to host-b", err)
		}
	case <-time.After(testnet.WaitTimeout):
		t.Fatal("Run did not notice the claim was taken")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(starts) != 2 {
		t.Errorf("watch started %d times (from %v), want twice", len(starts), starts)
	}
}

// Creates and updates fenced by a claim write while the claim holds, with
// the errors of Create and Update; once another holder replaced the claim
// they fail naming it and write nothing, and once the claim is gone they
// fail with no holder.
func TestCreateAndUpdateFenced(t *testing.T) {
	c := setup(t)
	ctx := testCtx(t)
	a, err := claimOf(t, c, "host-a", time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	k := kind(t, api.KindGlobalNetworkSet)
	fenceA := a.Fence()

	// Held: the same results and errors as Create and Update.
	out, err := c.CreateFenced(ctx, netSet("f1", "10.0.0.0/8"), fenceA)
	if err != nil {
		t.Fatalf("fenced create with the live claim: %v", err)
	}
	if got, err := c.Get(ctx, k, "f1"); err != nil || got.GetObjectMeta().ResourceVersion != out.GetObjectMeta().ResourceVersion || got.GetObjectMeta().UID == "" {
		t.Fatalf("after the fenced create: %v, %v", got, err)
	}
	_, plain := c.Create(ctx, netSet("f1", "10.0.0.0/8"))
	_, err = c.CreateFenced(ctx, netSet("f1", "10.0.0.0/8"), fenceA)
	if !datastore.IsAlreadyExists(err) || datastore.IsClaimLost(err) || plain == nil || err.Error() != plain.Error() {
		t.Errorf("fenced create of an existing resource: %v, want %v", err, plain)
	}
	stale := out.DeepCopyResource()
	upd := out.DeepCopyResource().(*api.GlobalNetworkSet)
	upd.Spec.Nets = []string{"10.1.0.0/16"}
	out2, err := c.UpdateFenced(ctx, upd, fenceA)
	if err != nil {
		t.Fatalf("fenced update with the live claim: %v", err)
	}
	if got, err := c.Get(ctx, k, "f1"); err != nil || got.(*api.GlobalNetworkSet).Spec.Nets[0] != "10.1.0.0/16" ||
		got.GetObjectMeta().ResourceVersion != out2.GetObjectMeta().ResourceVersion || got.GetObjectMeta().UID != out.GetObjectMeta().UID {
		t.Fatalf("after the fenced update: %v, %v", got, err)
	}
	_, plain = c.Update(ctx, stale)
	_, err = c.UpdateFenced(ctx, stale, fenceA)
	if !datastore.IsConflict(err) || datastore.IsClaimLost(err) || plain == nil || err.Error() != plain.Error() {
		t.Errorf("fenced update at a stale revision: %v, want %v", err, plain)
	}
	missing := out2.DeepCopyResource()
	missing.GetObjectMeta().Name = "f-missing"
	if _, err := c.UpdateFenced(ctx, missing, fenceA); !datastore.IsNotFound(err) {
		t.Errorf("fenced update of a missing resource: %v, want not found", err)
	}

	// Another holder replaced the claim: refused, naming it, whatever
	// else the write would have run into.
	b, err := claimOf(t, c, "host-b", time.Hour, func([]byte) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	before := mustRevision(t, c)
	wantLost := func(what string, err error, holder string) {
		t.Helper()
		var lost *datastore.ClaimLostError
		if !errors.As(err, &lost) || lost.Key != claimKey || (holder == "") != (lost.Holder == nil) || string(lost.Holder) != holder {
			t.Errorf("%s: %v (%+v), want the claim lost to %q", what, err, lost, holder)
		}
	}
	_, err = c.CreateFenced(ctx, netSet("f2", "10.2.0.0/16"), fenceA)
	wantLost("fenced create after the claim was replaced", err, "host-b")
	_, err = c.CreateFenced(ctx, netSet("f1", "10.2.0.0/16"), fenceA)
	wantLost("fenced create of an existing resource after the claim was replaced", err, "host-b")
	upd = out2.DeepCopyResource().(*api.GlobalNetworkSet)
	upd.Spec.Nets = []string{"10.3.0.0/16"}
	_, err = c.UpdateFenced(ctx, upd, fenceA)
	wantLost("fenced update after the claim was replaced", err, "host-b")
	_, err = c.UpdateFenced(ctx, stale, fenceA)
	wantLost("fenced update at a stale revision after the claim was replaced", err, "host-b")
	if after := mustRevision(t, c); after != before {
		t.Errorf("refused fenced writes wrote: revision %d -> %d", before, after)
	}
	if _, err := c.Get(ctx, k, "f2"); !datastore.IsNotFound(err) {
		t.Errorf("a refused fenced create stored its resource: %v", err)
	}
	// The new holder's fence lets the same update through.
	if _, err := c.UpdateFenced(ctx, upd, b.Fence()); err != nil {
		t.Errorf("fenced update with the new holder's claim: %v", err)
	}

	// The claim is gone (its lease ended): refused, with no holder.
	if err := b.Release(ctx); err != nil {
		t.Fatal(err)
	}
	before = mustRevision(t, c)
	_, err = c.CreateFenced(ctx, netSet("f3", "10.4.0.0/16"), b.Fence())
	wantLost("fenced create after the claim was deleted", err, "")
	if after := mustRevision(t, c); after != before {
		t.Errorf("a fenced create after the claim was deleted wrote: revision %d -> %d", before, after)
	}
}
