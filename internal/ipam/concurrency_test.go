package ipam_test

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/calyx-net/calyx/internal/datastore"
	"github.com/calyx-net/calyx/internal/ipam"
	"github.com/calyx-net/calyx/internal/testnet"
)

// owners is the test's own record of who holds which address. An address
// is "releasing" from the moment its handle's release starts: until the
// release returns, whether it already took effect is unknown, so another
// handle getting it then is not (provably) a double owner. Getting an
// address that a handle holds and is not releasing is.
type owners struct {
	mu sync.Mutex
	m  map[netip.Addr]ownerState
}

type ownerState struct {
	handle    string
	releasing bool
}

func (o *owners) hold(t *testing.T, handle string, ips []netip.Addr) {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, ip := range ips {
		if cur, ok := o.m[ip]; ok && cur.handle != handle && !cur.releasing {
			t.Errorf("%s is held by %q and was given to %q", ip, cur.handle, handle)
		}
		o.m[ip] = ownerState{handle: handle}
	}
}

func (o *owners) setReleasing(handle string, ips []netip.Addr) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, ip := range ips {
		if cur := o.m[ip]; cur.handle == handle {
			o.m[ip] = ownerState{handle: handle, releasing: true}
		}
	}
}

func (o *owners) released(handle string, ips []netip.Addr) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, ip := range ips {
		if cur := o.m[ip]; cur.handle == handle {
			delete(o.m, ip)
		}
	}
}

// transient reports whether err may be a lost answer (a cut connection, a
// timeout) rather than an allocator's verdict.
func transient(err error) bool {
	return !(ipam.IsExhausted(err) || ipam.IsInvalid(err) || ipam.IsInUse(err) || ipam.IsPoolNotFound(err) ||
		ipam.IsPoolDisabled(err) || ipam.IsNotInPool(err) || ipam.IsContention(err))
}

// host is one simulated calyx-node: its own etcd connection through a
// proxy that the test cuts, and its own allocator.
type host struct {
	name  string
	proxy *testnet.Proxy
	alloc *ipam.Allocator
}

// TestConcurrentHostsWithConnectionCuts runs 32 hosts that allocate and
// release 10,000 addresses at random from one /16 while their connections
// to etcd are cut and restored. On an error the owner retries with the
// same handle (AutoAssign is idempotent per handle) and, failing that,
// releases the handle. No address may ever have two owners, and after the
// last release Check must find nothing.
func TestConcurrentHostsWithConnectionCuts(t *testing.T) {
	const nHosts, total = 32, 10000
	e := testnet.StartEtcd(t)
	ev := &env{t: t, c: testnet.NewClient(t, e)}
	ev.apply(testnet.IPPool("big", "10.100.0.0/16", 26))
	target := strings.TrimPrefix(e.Endpoints()[0], "https://")
	hosts := make([]*host, nHosts)
	for i := range hosts {
		h := &host{name: fmt.Sprintf("host-%02d", i), proxy: testnet.StartProxy(t, target)}
		ev.apply(node(h.name, nil))
		cfg := testnet.ClientConfig(e)
		cfg.Endpoints, cfg.DialTimeout = []string{h.proxy.URL()}, 20*time.Second
		cl, err := datastore.New(testCtx(t), cfg,
			slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cl.Close() })
		h.alloc = ipam.New(cl)
		hosts[i] = h
	}

	track := &owners{m: map[netip.Addr]ownerState{}}
	var transients, assigned, gaveUp atomic.Int64
	stop := make(chan struct{})
	var cutter sync.WaitGroup
	cutter.Go(func() { cutConnections(stop, hosts) })
	var wg sync.WaitGroup
	for i, h := range hosts {
		quota := total / nHosts
		if i < total%nHosts {
			quota++
		}
		wg.Go(func() { runHost(t, h, i, quota, track, &transients, &assigned, &gaveUp) })
	}
	wg.Wait()
	close(stop)
	cutter.Wait()
	cuts := 0
	for _, h := range hosts {
		h.proxy.Restore()
		cuts += h.proxy.Cuts()
	}
	t.Logf("%d connection cuts, %d transient errors", cuts, transients.Load())
	if cuts < 32 {
		t.Errorf("only %d connection cuts: the test did not exercise failures", cuts)
	}
	var stats ipam.Stats
	for _, h := range hosts {
		s := h.alloc.Stats()
		stats.Allocated += s.Allocated
		stats.Retries += s.Retries
		stats.Claims += s.Claims
	}
	// An assignment whose answer was lost after it committed is counted
	// by the test (the idempotent retry returns it) but not by the
	// allocator's Stats.
	t.Logf("allocator stats: %+v; %d handles assigned (%d after a lost answer), %d given up after 20 attempts",
		stats, assigned.Load(), assigned.Load()-int64(stats.Allocated), gaveUp.Load())
	if assigned.Load()+gaveUp.Load() != total || gaveUp.Load() > total/100 {
		t.Errorf("%d handles assigned and %d given up, want %d in all and almost none given up", assigned.Load(), gaveUp.Load(), total)
	}
	checker := ev.alloc()
	mustCheckClean(t, checker)
	u, err := checker.Usage(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if u.Pools[0].InUse != 0 {
		t.Errorf("%d addresses still allocated after every release", u.Pools[0].InUse)
	}
}

// cutConnections cuts a few hosts' connections, and now and then all of
// them, for a short while, again and again until stop.
func cutConnections(stop <-chan struct{}, hosts []*host) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := 0; ; round++ {
		select {
		case <-stop:
			return
		case <-time.After(time.Duration(100+rng.IntN(300)) * time.Millisecond):
		}
		var cut []*host
		if round%5 == 4 {
			cut = hosts
		} else {
			for _, i := range rng.Perm(len(hosts))[:8] {
				cut = append(cut, hosts[i])
			}
		}
		for _, h := range cut {
			h.proxy.Cut()
		}
		time.Sleep(time.Duration(50+rng.IntN(200)) * time.Millisecond)
		for _, h := range cut {
			h.proxy.Restore()
		}
	}
}

// runHost allocates quota addresses, one handle each, releasing a random
// held handle about as often, then releases what it still holds.
func runHost(t *testing.T, h *host, seed, quota int, track *owners, transients, assigned, gaveUp *atomic.Int64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(uint64(seed), 7))
	held := map[string][]netip.Addr{}
	var handles []string
	for n := 0; n < quota || len(handles) > 0; {
		if n < quota && (len(handles) == 0 || rng.IntN(100) < 55) {
			handle := fmt.Sprintf("net.%s-%d.eth0", h.name, n)
			n++
			ips, ok := assignWithRetry(t, h, handle, transients)
			if !ok {
				gaveUp.Add(1)
				releaseWithRetry(t, h, handle, transients)
				continue
			}
			assigned.Add(1)
			track.hold(t, handle, ips)
			held[handle] = ips
			handles = append(handles, handle)
			continue
		}
		i := rng.IntN(len(handles))
		handle := handles[i]
		handles[i] = handles[len(handles)-1]
		handles = handles[:len(handles)-1]
		track.setReleasing(handle, held[handle])
		if releaseWithRetry(t, h, handle, transients) {
			track.released(handle, held[handle])
		}
		delete(held, handle)
	}
}

func assignWithRetry(t *testing.T, h *host, handle string, transients *atomic.Int64) ([]netip.Addr, bool) {
	t.Helper()
	for attempt := 0; attempt < 20; attempt++ {
		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
		res, err := h.alloc.AutoAssign(ctx, ipam.AutoAssignArgs{Num4: 1, Handle: handle, Node: h.name})
		cancel()
		if err == nil {
			if len(res.IPv4) != 1 {
				t.Errorf("%s: AutoAssign gave %v", handle, res)
			}
			return res.IPv4, true
		}
		if !transient(err) {
			t.Errorf("%s: %v", handle, err)
			return nil, false
		}
		transients.Add(1)
		time.Sleep(20 * time.Millisecond)
	}
	return nil, false
}

func releaseWithRetry(t *testing.T, h *host, handle string, transients *atomic.Int64) bool {
	t.Helper()
	for attempt := 0; attempt < 100; attempt++ {
		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
		err := h.alloc.ReleaseByHandle(ctx, handle)
		cancel()
		if err == nil {
			return true
		}
		if !transient(err) {
			t.Errorf("releasing %s: %v", handle, err)
			return false
		}
		transients.Add(1)
		time.Sleep(20 * time.Millisecond)
	}
	t.Errorf("releasing %s: still failing after 100 attempts", handle)
	return false
}

// TestClaimRace starts 40 hosts at once on a new pool with fewer blocks
// than hosts (the Calico 2.6 "already claimed" failure): every host gets a
// block or borrows an address, none fails, and no address is given twice.
func TestClaimRace(t *testing.T) {
	const nHosts = 40
	e := newEnv(t)
	// 16 blocks of 16 addresses for 40 hosts.
	e.apply(testnet.IPPool("late", "10.101.0.0/24", 28))
	var mu sync.Mutex
	seen := map[netip.Addr]string{}
	var wg sync.WaitGroup
	start := make(chan struct{})
	allocs := make([]*ipam.Allocator, nHosts)
	for i := range nHosts {
		allocs[i] = e.alloc()
		name := fmt.Sprintf("racer-%02d", i)
		e.apply(node(name, nil))
		wg.Go(func() {
			<-start
			res, err := allocs[i].AutoAssign(testCtx(t), v4(1, "h-"+name, name))
			if err != nil {
				t.Errorf("%s: %v", name, err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if prev, dup := seen[res.IPv4[0]]; dup {
				t.Errorf("%s given to %s and %s", res.IPv4[0], prev, name)
			}
			seen[res.IPv4[0]] = name
		})
	}
	close(start)
	wg.Wait()
	var claims, borrowed uint64
	for _, a := range allocs {
		claims += a.Stats().Claims
		borrowed += a.Stats().Borrowed
	}
	t.Logf("%d claims, %d borrowed", claims, borrowed)
	if claims != 16 || borrowed != nHosts-16 {
		t.Errorf("%d claims and %d borrowed: want every block claimed once and the rest borrowed", claims, borrowed)
	}
	var eps []ipam.Endpoint
	for ip, name := range seen {
		eps = append(eps, ipam.Endpoint{Name: name, Node: name, IPs: []netip.Addr{ip}})
	}
	mustCheckClean(t, e.alloc(), eps...)
}
