package datastore_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/calyx-net/calyx/internal/datastore"
	"github.com/calyx-net/calyx/internal/testnet"
)

// waitFor polls cond for up to 30 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A 3-member etcd that loses its leader, then its quorum, then every
// member: the health monitor tells each state apart, the syncer stops
// claiming to be in sync, the log says so once per change, and New names
// the state too.
func TestHealthLeaderQuorumAndUnreachable(t *testing.T) {
	cl := testnet.StartEtcdCluster(t, 3, testnet.EtcdClusterOptions{})
	var logs testnet.SyncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	c, err := datastore.New(testCtx(t), cl.ClientConfig(), log)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() {
		if err := c.MonitorHealth(ctx, datastore.HealthConfig{Interval: 100 * time.Millisecond, Timeout: time.Second}); err != nil {
			t.Errorf("MonitorHealth: %v", err)
		}
	})
	s := datastore.NewSyncer(c, nil, nil)
	rec := newRecorder()
	wg.Go(func() {
		if err := s.Run(ctx, rec); err != nil {
			t.Errorf("syncer: %v", err)
		}
	})
	state := func(want datastore.HealthState) func() bool {
		return func() bool { return c.Health().State == want }
	}
	waitFor(t, "health ok", state(datastore.HealthOK))
	waitFor(t, "the syncer in sync", func() bool { return s.Status().InSync })

	// The leader dies: another member takes over; the datastore stays (or
	// quickly becomes again) available.
	leader, err := cl.WaitLeader(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	cl.Kill(leader)
	if _, err := cl.WaitLeader(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "health ok after a new leader", state(datastore.HealthOK))
	cl.Restart(leader)

	// Two of three members down: the last answers but has no leader.
	last := (leader + 1) % 3
	for i := range 3 {
		if i != last {
			cl.Stop(i)
		}
	}
	waitFor(t, "health to report no leader", state(datastore.HealthNoLeader))
	h := c.Health()
	if !datastore.IsNoLeader(h.Err) || !datastore.IsUnavailable(h.Err) || datastore.IsUnreachable(h.Err) {
		t.Errorf("health error %v: want IsNoLeader and not IsUnreachable", h.Err)
	}
	wantNames := func(what, msg, state string) {
		t.Helper()
		if !strings.Contains(msg, state) || strings.Contains(msg, "\n") {
			t.Errorf("%s %q: want one line saying %q", what, msg, state)
		}
		for _, ep := range cl.Endpoints() {
			if !strings.Contains(msg, ep) {
				t.Errorf("%s %q does not name endpoint %s", what, msg, ep)
			}
		}
	}
	wantNames("no-leader error", h.Err.Error(), "has no leader")
	if c.Unavailable() == nil {
		t.Error("Unavailable() = nil without a leader")
	}
	waitFor(t, "the syncer to drop out of sync", func() bool { return !s.Status().InSync })
	// New says "no leader" rather than "cannot reach".
	nctx, ncancel := context.WithTimeout(t.Context(), 30*time.Second)
	ncfg := cl.ClientConfig()
	ncfg.DialTimeout = 2 * time.Second
	_, err = datastore.New(nctx, ncfg, nil)
	ncancel()
	if !datastore.IsNoLeader(err) {
		t.Errorf("New without a leader: %v, want IsNoLeader", err)
	} else {
		wantNames("New's error", err.Error(), "has no leader")
	}

	// Every member down: unreachable.
	cl.Stop(last)
	waitFor(t, "health to report unreachable", state(datastore.HealthUnreachable))
	h = c.Health()
	if !datastore.IsUnreachable(h.Err) {
		t.Errorf("health error %v: want IsUnreachable", h.Err)
	}
	wantNames("unreachable error", h.Err.Error(), "unreachable")

	// Back: available and in sync again.
	for i := range 3 {
		if err := cl.Start(i); err != nil { // not Restart: a lone member is not healthy
			t.Fatal(err)
		}
	}
	waitFor(t, "health ok after the restart", state(datastore.HealthOK))
	waitFor(t, "the syncer back in sync", func() bool { return s.Status().InSync })
	// In sync means delivering: a change made now arrives.
	mustCreate(t, c, pool("after-outage", "10.99.0.0/16", nil))
	rec.waitFor(t, "the pool created after the outage", func() bool {
		for _, e := range rec.events {
			if strings.Contains(e, "IPPool/after-outage=") {
				return true
			}
		}
		return false
	})

	out := logs.String()
	for _, want := range []string{"has no leader", "unreachable", "is available again"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	// Once per change, not once per check.
	n := 0
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "level=ERROR") && strings.Contains(line, "has no leader") {
			n++
		}
	}
	if n != 1 {
		t.Errorf("the log says %d times that etcd has no leader, want once:\n%s", n, out)
	}
}
