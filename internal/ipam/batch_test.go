package ipam_test

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/calyx-net/calyx/internal/datastore"
	"github.com/calyx-net/calyx/internal/ipam"
	"github.com/calyx-net/calyx/internal/testnet"
)

// slowStore makes every compare-and-swap take a while, as a loaded etcd
// does, and counts them.
type slowStore struct {
	*datastore.Client
	delay time.Duration
	cas   atomic.Int32
}

func (s *slowStore) CASRead(ctx context.Context, conds []datastore.Cond, puts []datastore.RawPut, deletes []string) (bool, int64, []datastore.RawKV, error) {
	s.cas.Add(1)
	time.Sleep(s.delay)
	return s.Client.CASRead(ctx, conds, puts, deletes)
}

// TestGroupCommit: concurrent requests of one node are committed
// together, fewer transactions than requests, each handle getting its own
// addresses; a request that fails (its Also key exists, its pool does not)
// fails alone.
func TestGroupCommit(t *testing.T) {
	e := newEnv(t)
	e.apply(testnet.IPPool("v4", "10.65.0.0/16", 26), testnet.IPPool("v6", "fd65::/48", 122), node("node-a", nil))
	st := &slowStore{Client: e.c, delay: 20 * time.Millisecond}
	a := ipam.New(st)
	first := mustAssign(t, a, v4(1, "net.c0.eth0", "node-a")) // claims a block, loads the view
	ctx := testCtx(t)
	if ok, _, err := e.c.CAS(ctx, nil, []datastore.RawPut{{Key: "/test/taken", Value: []byte("x")}}, nil); !ok || err != nil {
		t.Fatal(ok, err)
	}
	st.cas.Store(0)

	const n = 24
	type outcome struct {
		res ipam.AssignResult
		err error
	}
	out := make([]outcome, n)
	var wg sync.WaitGroup
	for i := range n {
		args := ipam.AutoAssignArgs{Num4: 1, Handle: fmt.Sprintf("net.c%d.eth0", i+1), Node: "node-a"}
		switch i % 8 {
		case 3:
			args.Num6 = 1
		case 5:
			args.Also = func(ipam.AssignResult) ([]datastore.RawPut, []datastore.Cond, error) {
				return []datastore.RawPut{{Key: "/test/taken", Value: []byte("y")}}, []datastore.Cond{{Key: "/test/taken"}}, nil
			}
		case 7:
			args.IPv4Pools = []string{"no-such-pool"}
		}
		wg.Go(func() {
			res, err := a.AutoAssign(ctx, args)
			out[i] = outcome{res, err}
		})
	}
	wg.Wait()
	seen := map[netip.Addr]string{}
	for i, o := range out {
		handle := fmt.Sprintf("net.c%d.eth0", i+1)
		switch i % 8 {
		case 5:
			if !ipam.IsAlsoConflict(o.err) {
				t.Errorf("%s, whose Also key exists: %v, want an Also conflict", handle, o.err)
			}
			continue
		case 7:
			if !ipam.IsPoolNotFound(o.err) {
				t.Errorf("%s, from a missing pool: %v, want pool not found", handle, o.err)
			}
			continue
		}
		if o.err != nil {
			t.Errorf("%s: %v", handle, o.err)
			continue
		}
		want6 := 0
		if i%8 == 3 {
			want6 = 1
		}
		if len(o.res.IPv4) != 1 || len(o.res.IPv6) != want6 || o.res.Revision == 0 {
			t.Errorf("%s: %+v", handle, o.res)
		}
		for _, ip := range append(o.res.IPv4, o.res.IPv6...) {
			if other, dup := seen[ip]; dup {
				t.Errorf("%s given to %s and %s", ip, other, handle)
			}
			seen[ip] = handle
		}
		held, err := a.IPsByHandle(ctx, handle)
		if err != nil || len(held) != 1+want6 {
			t.Errorf("%s holds %v (%v)", handle, held, err)
		}
	}
	if c := st.cas.Load(); c >= n-n/4 {
		t.Errorf("%d transactions for %d concurrent requests: not committed together", c, n)
	}
	t.Logf("%d requests, %d transactions", n, st.cas.Load())
	// Failed requests left nothing behind.
	for i := 5; i < n; i += 8 {
		if ips, err := a.IPsByHandle(ctx, fmt.Sprintf("net.c%d.eth0", i+1)); !ipam.IsNotFound(err) || len(ips) != 0 {
			t.Errorf("handle of a failed request holds %v (%v)", ips, err)
		}
	}
	seen[first.IPv4[0]] = "net.c0.eth0"
	r, err := a.Check(ctx, allocationsHeldBy(seen)...)
	if err != nil {
		t.Fatal(err)
	}
	if r.Problems() != 0 {
		t.Errorf("ipam check: %+v", r)
	}
}

// allocationsHeldBy turns the test's addresses into the endpoints that
// hold them, for Check.
func allocationsHeldBy(seen map[netip.Addr]string) []ipam.Endpoint {
	by := map[string]*ipam.Endpoint{}
	for ip, h := range seen {
		if by[h] == nil {
			by[h] = &ipam.Endpoint{Name: h, Node: "node-a", Handle: h}
		}
		by[h].IPs = append(by[h].IPs, ip)
	}
	var out []ipam.Endpoint
	for _, ep := range by {
		out = append(out, *ep)
	}
	return out
}
