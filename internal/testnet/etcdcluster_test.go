package testnet_test

import (
	"context"
	"testing"
	"time"

	"github.com/calyx-net/calyx/internal/testnet"
)

func TestEtcdClusterLeaderAndQuorum(t *testing.T) {
	c := testnet.StartEtcdCluster(t, 3, testnet.EtcdClusterOptions{})
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	leader, err := c.WaitLeader(ctx)
	if err != nil {
		t.Fatal(err)
	}

	// A killed leader is replaced by another member.
	c.Kill(leader)
	next, err := c.WaitLeader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if next == leader {
		t.Fatalf("member %d still reported as leader after it was killed", leader)
	}
	c.Restart(leader)

	// Two of three members stopped: the last one has no leader.
	a, b := (next+1)%3, (next+2)%3
	c.Stop(next)
	c.Stop(a)
	deadline := time.Now().Add(30 * time.Second)
	for c.Leader(ctx) >= 0 {
		if time.Now().After(deadline) {
			t.Fatalf("member %d still reports a leader with two of three members stopped", b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.Restart(next)
	if _, err := c.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
}
