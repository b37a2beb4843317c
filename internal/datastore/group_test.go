package datastore_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/calyx-net/calyx/internal/api"
	"github.com/calyx-net/calyx/internal/datastore"
	"github.com/calyx-net/calyx/internal/testnet"
)

// held queues the writes of fs (run concurrently) behind a held group
// commit, then releases it so that they are sent together, and returns
// each write's result.
func held(t *testing.T, c *datastore.Client, fs ...func() (api.Resource, error)) ([]api.Resource, []error) {
	t.Helper()
	queued, release := datastore.HoldGroup(c)
	out, errs := make([]api.Resource, len(fs)), make([]error, len(fs))
	var wg sync.WaitGroup
	for i, f := range fs {
		wg.Go(func() { out[i], errs[i] = f() })
	}
	testnet.WaitFor(t, "the writes to queue", func() bool { return queued() == len(fs) })
	release()
	wg.Wait()
	return out, errs
}

// TestGroupCommit checks that writes queued together are written in one
// transaction, that a write whose guard fails ends with its own error
// without failing the others, and that two writes of one key are both
// written, one after the other.
func TestGroupCommit(t *testing.T) {
	c := setup(t)
	ctx := testCtx(t)
	k := kind(t, api.KindIPPool)
	existing := mustCreate(t, c, pool("existing", "10.1.0.0/16", nil))
	stale := existing.DeepCopyResource()
	if _, err := c.Update(ctx, existing); err != nil {
		t.Fatal(err)
	}

	const n = 8
	var fs []func() (api.Resource, error)
	for i := range n {
		p := pool(fmt.Sprintf("p%d", i), fmt.Sprintf("10.%d.0.0/16", 100+i), nil)
		if i%2 == 0 {
			fs = append(fs, func() (api.Resource, error) { return c.Apply(ctx, p) })
		} else {
			fs = append(fs, func() (api.Resource, error) { return c.Create(ctx, p) })
		}
	}
	fs = append(fs,
		func() (api.Resource, error) { return c.Create(ctx, pool("existing", "10.2.0.0/16", nil)) },
		func() (api.Resource, error) { return c.Update(ctx, stale) },
		func() (api.Resource, error) { return c.Apply(ctx, pool("twice", "10.3.0.0/16", nil)) },
		func() (api.Resource, error) { return c.Apply(ctx, pool("twice", "10.4.0.0/16", nil)) },
	)
	out, errs := held(t, c, fs...)

	revs := map[string]bool{}
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("write %d: %v", i, errs[i])
		}
		revs[out[i].GetObjectMeta().ResourceVersion] = true
		got, err := c.Get(ctx, k, out[i].GetObjectMeta().Name)
		if err != nil {
			t.Fatal(err)
		}
		if got.GetObjectMeta().ResourceVersion != out[i].GetObjectMeta().ResourceVersion || cidrOf(got) != cidrOf(out[i]) {
			t.Errorf("write %d returned %s at %s, stored %s at %s", i, cidrOf(out[i]), out[i].GetObjectMeta().ResourceVersion, cidrOf(got), got.GetObjectMeta().ResourceVersion)
		}
	}
	if len(revs) != 1 {
		t.Errorf("the %d new pools were written at revisions %v, want one transaction", n, revs)
	}
	if !datastore.IsAlreadyExists(errs[n]) {
		t.Errorf("create of an existing pool: %v, want IsAlreadyExists", errs[n])
	}
	if !datastore.IsConflict(errs[n+1]) {
		t.Errorf("update at a stale revision: %v, want IsConflict", errs[n+1])
	}
	for _, i := range []int{n + 2, n + 3} {
		if errs[i] != nil {
			t.Fatalf("apply %d of one key: %v", i-n-1, errs[i])
		}
	}
	a, b := out[n+2].GetObjectMeta(), out[n+3].GetObjectMeta()
	if a.ResourceVersion == b.ResourceVersion || a.UID != b.UID {
		t.Errorf("two applies of one key: revisions %s and %s, uids %s and %s; want two writes of one resource", a.ResourceVersion, b.ResourceVersion, a.UID, b.UID)
	}
	got, err := c.Get(ctx, k, "twice")
	if err != nil {
		t.Fatal(err)
	}
	last := out[n+2]
	if b.ResourceVersion > a.ResourceVersion {
		last = out[n+3]
	}
	if cidrOf(got) != cidrOf(last) {
		t.Errorf("after two applies of one key the store has %s, want the later write's %s", cidrOf(got), cidrOf(last))
	}
}

// TestGroupCommitFenced checks that a fenced write whose claim is lost
// fails alone in its group.
func TestGroupCommitFenced(t *testing.T) {
	c := setup(t)
	ctx := testCtx(t)
	lost := datastore.Cond{Key: datastore.ClaimPrefix + "nodes/gone", ModRevision: 1}
	_, errs := held(t, c,
		func() (api.Resource, error) { return c.CreateFenced(ctx, pool("fenced", "10.1.0.0/16", nil), lost) },
		func() (api.Resource, error) { return c.Create(ctx, pool("plain", "10.2.0.0/16", nil)) },
	)
	if !datastore.IsClaimLost(errs[0]) {
		t.Errorf("fenced create with a lost claim: %v, want IsClaimLost", errs[0])
	}
	if errs[1] != nil {
		t.Errorf("create beside it: %v", errs[1])
	}
	if _, err := c.Get(ctx, kind(t, api.KindIPPool), "fenced"); !datastore.IsNotFound(err) {
		t.Errorf("the fenced pool: %v, want IsNotFound", err)
	}
}

// TestGroupCommitCancelled checks that a caller whose context ends while
// its write waits returns at once and that the write is never sent.
func TestGroupCommitCancelled(t *testing.T) {
	c := setup(t)
	queued, release := datastore.HoldGroup(c)
	ctx, cancel := context.WithCancel(testCtx(t))
	done := make(chan error)
	go func() {
		_, err := c.Apply(ctx, pool("cancelled", "10.1.0.0/16", nil))
		done <- err
	}()
	testnet.WaitFor(t, "the write to queue", func() bool { return queued() == 1 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("apply whose context was cancelled while queued: %v, want context.Canceled", err)
	}
	release()
	if _, err := c.Get(testCtx(t), kind(t, api.KindIPPool), "cancelled"); !datastore.IsNotFound(err) {
		t.Errorf("the cancelled pool: %v, want IsNotFound", err)
	}
}

// TestGroupCommitTooLarge checks that a group etcd refuses as too large is
// written one write at a time.
func TestGroupCommitTooLarge(t *testing.T) {
	cfg := testnet.EtcdConfig(t)
	cfg.MaxTxnOps = 2
	c := testnet.NewClient(t, testnet.StartEtcdWith(t, cfg))
	ctx := testCtx(t)
	var fs []func() (api.Resource, error)
	for i := range 3 {
		fs = append(fs, func() (api.Resource, error) {
			return c.Create(ctx, pool(fmt.Sprintf("p%d", i), fmt.Sprintf("10.%d.0.0/16", i), nil))
		})
	}
	_, errs := held(t, c, fs...)
	for i, err := range errs {
		if err != nil {
			t.Errorf("create %d: %v", i, err)
		}
	}
}

// TestGroupCommitNoLostUpdates checks that read-modify-write loops of many
// goroutines on one resource, whose updates share transactions with other
// writes, lose no increment.
func TestGroupCommitNoLostUpdates(t *testing.T) {
	c := setup(t)
	ctx := testCtx(t)
	k := kind(t, api.KindIPPool)
	mustCreate(t, c, pool("counter", "10.1.0.0/16", map[string]string{"n": "0"}))
	const writers, each = 16, 8
	var wg sync.WaitGroup
	errs := make(chan error, 2*writers)
	for g := range writers {
		wg.Go(func() {
			for range each {
				for {
					cur, err := c.Get(ctx, k, "counter")
					if err != nil {
						errs <- err
						return
					}
					var n int
					_, _ = fmt.Sscan(cur.GetObjectMeta().Labels["n"], &n)
					cur.GetObjectMeta().Labels["n"] = fmt.Sprint(n + 1)
					if _, err = c.Update(ctx, cur); err == nil {
						break
					} else if !datastore.IsConflict(err) {
						errs <- err
						return
					}
				}
			}
		})
		wg.Go(func() {
			for i := range each {
				if _, err := c.Apply(ctx, pool(fmt.Sprintf("w%d-%d", g, i), "10.2.0.0/16", nil)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got, err := c.Get(ctx, k, "counter")
	if err != nil {
		t.Fatal(err)
	}
	if n := got.GetObjectMeta().Labels["n"]; n != fmt.Sprint(writers*each) {
		t.Errorf("counter is %s after %d increments", n, writers*each)
	}
}
