package datastore_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/calyx-net/calyx/internal/api"
	"github.com/calyx-net/calyx/internal/datastore"
	"github.com/calyx-net/calyx/internal/testnet"
)

func inProcess(t *testing.T, e *datastore.Embedded) *datastore.Client {
	t.Helper()
	c, err := e.Client(testCtx(t), testnet.Logger(t))
	if err != nil {
		t.Fatalf("in-process client: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("closing the in-process client: %v", err)
		}
	})
	return c
}

// The embedded etcd's in-process client (calyx-node's own) shares the
// store with TLS clients in both directions: writes, conflicts, watches,
// claims and their leases, health and the server version.
func TestEmbeddedInProcessClient(t *testing.T) {
	e := testnet.StartEtcd(t)
	local := inProcess(t, e)
	remote := testnet.NewClient(t, e)

	mustCreate(t, local, pool("local", "10.1.0.0/16", nil))
	if _, err := remote.Get(testCtx(t), kind(t, "ippool"), "local"); err != nil {
		t.Errorf("TLS client reading the in-process client's write: %v", err)
	}
	if _, err := local.Create(testCtx(t), pool("local", "10.2.0.0/16", nil)); !datastore.IsAlreadyExists(err) {
		t.Errorf("creating it again: %v, want already exists", err)
	}

	// A syncer on the in-process client sees the TLS client's writes.
	rec := newRecorder()
	runSyncer(t, local, nil, rec)
	rec.waitFor(t, "the snapshot", func() bool { return len(rec.snaps) == 1 })
	w := newWriter(t, remote)
	w.apply(pool("remote", "10.3.0.0/16", nil))
	w.delete(api.KindIPPool, "remote")
	if got := rec.waitEvents(t, 2); strings.Join(got, "\n") != strings.Join(w.want, "\n") {
		t.Errorf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(w.want, "\n"))
	}

	// A claim held through the in-process client's lease, kept alive by
	// Run beyond its TTL, refuses another holder; its fence guards writes.
	claim, err := claimOf(t, local, "host-a", 2*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(testCtx(t))
	ran := make(chan error, 1)
	go func() { ran <- claim.Run(ctx, datastore.ClaimEvents{}) }()
	time.Sleep(3 * time.Second)
	if _, err := claimOf(t, remote, "host-b", time.Hour, nil); !datastore.IsClaimHeld(err) {
		t.Errorf("claim of host-b while host-a's is kept alive: %v, want held", err)
	}
	ok, _, err := local.CAS(testCtx(t), []datastore.Cond{claim.Fence()}, []datastore.RawPut{{Key: datastore.IPAMPrefix + "x", Value: []byte("1")}}, nil)
	if err != nil || !ok {
		t.Errorf("CAS fenced by the live claim: %v %v, want written", ok, err)
	}
	cancel()
	if err := <-ran; err != nil {
		t.Errorf("claim Run after cancel: %v", err)
	}

	if h := local.Check(testCtx(t), 0); h.State != datastore.HealthOK {
		t.Errorf("health: %v (%v), want ok", h.State, h.Err)
	}
	if v, err := local.ServerVersion(testCtx(t)); err != nil || v == "" {
		t.Errorf("server version: %q, %v", v, err)
	}

	// With the server stopped (by Close, so not "on its own"), requests
	// fail as unavailable.
	_ = e.Close()
	select {
	case <-e.Stopped():
	default:
		t.Error("Stopped is not closed after Close")
	}
	if err := e.StoppedErr(); err != nil {
		t.Errorf("StoppedErr after Close: %v, want nil", err)
	}
	if _, err := local.Get(testCtx(t), kind(t, "ippool"), "local"); !datastore.IsUnavailable(err) {
		t.Errorf("get with the server stopped: %v, want unavailable", err)
	}
}

// A server that stops on its own (not by Close) says so, naming its data
// directory; calyx-node exits with that error.
func TestEmbeddedStoppedOnItsOwn(t *testing.T) {
	cfg := testnet.EtcdConfig(t)
	e := testnet.StartEtcdWith(t, cfg)
	if err := e.StoppedErr(); err != nil {
		t.Fatalf("StoppedErr while running: %v", err)
	}
	datastore.HardStop(e)
	select {
	case <-e.Stopped():
	case <-time.After(30 * time.Second):
		t.Fatal("Stopped not closed after the server stopped")
	}
	if err := e.StoppedErr(); err == nil || !strings.Contains(err.Error(), cfg.DataDir) {
		t.Errorf("StoppedErr after the server stopped on its own: %v, want an error naming %s", err, cfg.DataDir)
	}
}
