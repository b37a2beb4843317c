package ipam_test

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/calyx-net/calyx/internal/api"
	"github.com/calyx-net/calyx/internal/datastore"
	"github.com/calyx-net/calyx/internal/ipam"
	"github.com/calyx-net/calyx/internal/testnet"
)

// affinities collects what a syncer of the affinity source delivers: the
// current claims as "node cidr state" lines.
type affinities struct {
	mu  sync.Mutex
	cur map[string]string // name -> line
	got chan struct{}
}

func (a *affinities) line(r api.Resource) string {
	b := r.(*api.BlockAffinity)
	return fmt.Sprintf("%s %s %s", b.Spec.Node, b.Spec.CIDR, b.Spec.State)
}

func (a *affinities) OnSnapshot(s datastore.Snapshot) {
	a.mu.Lock()
	for _, r := range s.Resources {
		a.cur[r.GetObjectMeta().Name] = a.line(r)
	}
	a.mu.Unlock()
	a.got <- struct{}{}
}

func (a *affinities) OnEvent(e datastore.Event) {
	a.mu.Lock()
	if e.Type == datastore.EventDelete {
		delete(a.cur, e.Name)
	} else {
		a.cur[e.Name] = a.line(e.Resource)
	}
	a.mu.Unlock()
	a.got <- struct{}{}
}

func (a *affinities) lines() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Sorted(func(yield func(string) bool) {
		for _, l := range a.cur {
			if !yield(l) {
				return
			}
		}
	})
}

// The affinity source delivers every node's block claims as
// BlockAffinity resources, and their release as deletes; a value that is
// not an affinity is skipped with the others still delivered.
func TestAffinitySource(t *testing.T) {
	e := newEnv(t)
	e.apply(testnet.IPPool("p", "10.70.0.0/24", 26))
	a := e.alloc()
	ctx := testCtx(t)
	blockOf := func(r ipam.AssignResult) string {
		return netip.PrefixFrom(r.IPv4[0], 26).Masked().String()
	}
	ba := blockOf(mustAssign(t, a, v4(1, "a1", "node-a")))
	e.put(ipam.AffinityKey("node-c", mustPrefix(t, "10.71.0.0/26")), "not json")

	got := &affinities{cur: map[string]string{}, got: make(chan struct{}, 100)}
	s := datastore.NewSourceSyncer(e.c, ipam.AffinitySource(), nil)
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(rctx, got) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("syncer: %v", err)
		}
	})

	wait := func(want ...string) {
		t.Helper()
		deadline := time.After(30 * time.Second)
		for !slices.Equal(got.lines(), want) {
			select {
			case <-got.got:
			case <-deadline:
				t.Fatalf("affinities: got %q, want %q", got.lines(), want)
			}
		}
	}
	wait("node-a " + ba + " confirmed")

	bb := blockOf(mustAssign(t, a, v4(1, "b1", "node-b")))
	wait("node-a "+ba+" confirmed", "node-b "+bb+" confirmed")

	if _, err := a.ReleaseHostAffinities(ctx, "node-a", true); err != nil {
		t.Fatal(err)
	}
	wait("node-b " + bb + " confirmed")
}

func mustPrefix(t *testing.T, s string) netip.Prefix {
	t.Helper()
	p, err := netip.ParsePrefix(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
