package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"sync"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/calyx-net/calyx/internal/api"
	"github.com/calyx-net/calyx/internal/datastore"
	"github.com/calyx-net/calyx/internal/ipam"
	"github.com/calyx-net/calyx/internal/pki"
)

// bench holds the connections shared by the rounds. Every simulated host
// has its own etcd connection, as separate calyx-nodes would.
type bench struct {
	dir   string
	log   *slog.Logger
	admin *datastore.Client
	hosts []*datastore.Client // one per simulated host
	raw   []*clientv3.Client  // one per raw-etcd contender
	seq   *ipam.Allocator     // the one long-running host of (a)
}

func newBench(ctx context.Context, dir string, log *slog.Logger, files *pki.Files) (*bench, error) {
	b := &bench{dir: dir, log: log}
	cfg := datastore.Config{Endpoints: []string{clientURL}, CAFile: files.CACert, CertFile: files.ClientCert, KeyFile: files.ClientKey}
	tlsCfg, err := (transport.TLSInfo{CertFile: files.ClientCert, KeyFile: files.ClientKey, TrustedCAFile: files.CACert}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("loading the bench's client certificate: %w", err)
	}
	if b.admin, err = datastore.New(ctx, cfg, log); err != nil {
		return nil, err
	}
	for range crossHosts {
		c, err := datastore.New(ctx, cfg, log)
		if err != nil {
			return nil, err
		}
		b.hosts = append(b.hosts, c)
		rc, err := clientv3.New(clientv3.Config{Endpoints: []string{clientURL}, DialTimeout: 5 * time.Second, TLS: tlsCfg})
		if err != nil {
			return nil, err
		}
		b.raw = append(b.raw, rc)
	}
	if err := b.pool(ctx, "seq", "10.200.0.0/16"); err != nil {
		return nil, err
	}
	if err := b.pool(ctx, "claim", "10.230.0.0/16"); err != nil {
		return nil, err
	}
	if err := b.preclaim(ctx); err != nil {
		return nil, err
	}
	b.seq = ipam.New(b.hosts[0])
	// Warm up: the host's first allocation loads its view and claims a block.
	if _, err := b.seq.AutoAssign(ctx, ipam.AutoAssignArgs{Num4: 1, Handle: "seq.warmup", Node: "seq-host", IPv4Pools: []string{"seq"}}); err != nil {
		return nil, err
	}
	return b, b.seq.ReleaseByHandle(ctx, "seq.warmup")
}

func (b *bench) close() {
	for _, c := range b.hosts {
		_ = c.Close()
	}
	for _, c := range b.raw {
		_ = c.Close()
	}
	_ = b.admin.Close()
}

func (b *bench) pool(ctx context.Context, name, cidr string) error {
	p := &api.IPPool{Metadata: api.ObjectMeta{Name: name}, Spec: api.IPPoolSpec{CIDR: cidr, BlockSize: 26}}
	p.SetDefaults()
	if err := p.Validate(); err != nil {
		return err
	}
	_, err := b.admin.Apply(ctx, p)
	return err
}

// sequential is (a): seqN allocations one after the other on one host,
// then their releases, each timed. It returns alloc and release p50, p99.
func (b *bench) sequential(ctx context.Context, r int) (float64, float64, float64, float64, error) {
	allocs := make([]time.Duration, 0, seqN)
	releases := make([]time.Duration, 0, seqN)
	handles := make([]string, seqN)
	for i := range seqN {
		handles[i] = fmt.Sprintf("seq.r%d-%d.eth0", r, i)
		t0 := time.Now()
		if _, err := b.seq.AutoAssign(ctx, ipam.AutoAssignArgs{Num4: 1, Handle: handles[i], Node: "seq-host", IPv4Pools: []string{"seq"}}); err != nil {
			return 0, 0, 0, 0, err
		}
		allocs = append(allocs, time.Since(t0))
	}
	for _, h := range handles {
		t0 := time.Now()
		if err := b.seq.ReleaseByHandle(ctx, h); err != nil {
			return 0, 0, 0, 0, err
		}
		releases = append(releases, time.Since(t0))
	}
	a50, a99 := percentiles(allocs)
	r50, r99 := percentiles(releases)
	fmt.Fprintf(os.Stderr, "  (a) calyx in-process: alloc p50 %.3f p99 %.3f ms, release p50 %.3f p99 %.3f ms\n", a50, a99, r50, r99)
	return a50, a99, r50, r99, nil
}

// crossHost is (b): crossHosts fresh hosts allocate crossPerHst addresses
// each, all at once, from a new pool. It returns allocations/s and CAS
// retries per allocation.
func (b *bench) crossHost(ctx context.Context, r int) (float64, float64, error) {
	pool := fmt.Sprintf("cross-%d", r)
	if err := b.pool(ctx, pool, fmt.Sprintf("10.%d.0.0/16", 201+r)); err != nil {
		return 0, 0, err
	}
	allocs := make([]*ipam.Allocator, crossHosts)
	for i := range allocs {
		allocs[i] = ipam.New(b.hosts[i])
	}
	start := make(chan struct{})
	errs := make(chan error, crossHosts)
	var wg sync.WaitGroup
	for i, a := range allocs {
		wg.Go(func() {
			<-start
			for j := range crossPerHst {
				_, err := a.AutoAssign(ctx, ipam.AutoAssignArgs{Num4: 1, Handle: fmt.Sprintf("x.r%d-h%d-%d.eth0", r, i, j),
					Node: fmt.Sprintf("cross-h%02d", i), IPv4Pools: []string{pool}})
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	wall := time.Since(t0)
	close(errs)
	if err := <-errs; err != nil {
		return 0, 0, err
	}
	var retries, claims uint64
	for _, a := range allocs {
		retries += a.Stats().Retries
		claims += a.Stats().Claims
	}
	n := float64(crossHosts * crossPerHst)
	rate, perAlloc := n/wall.Seconds(), float64(retries)/n
	fmt.Fprintf(os.Stderr, "  (b) calyx %d hosts x %d: %.0f allocs/s, %.3f retries/alloc (%d claims) in %v\n",
		crossHosts, crossPerHst, rate, perAlloc, claims, wall.Round(time.Millisecond))
	return rate, perAlloc, nil
}

// preclaim fills 90% of the claim pool's 1,024 blocks with blocks of 922
// other hosts, placed the way those hosts would have claimed them (Calico
// and Calyx alike): each from the block at FNV-1a(name) mod 1,024, taking
// the first free one after it. That clusters the claimed blocks like
// linear probing in a hash table, which is what a GET-per-block search
// walks through.
func (b *bench) preclaim(ctx context.Context) error {
	pool := netip.MustParsePrefix("10.230.0.0/16")
	taken := make([]bool, claimBlocks)
	var ops []clientv3.Op
	flush := func() error {
		if len(ops) == 0 {
			return nil
		}
		_, err := b.raw[0].Txn(ctx).Then(ops...).Commit()
		ops = ops[:0]
		return err
	}
	for n := range claimBlocks * 9 / 10 {
		host := fmt.Sprintf("other-%03d", n)
		i := fnvIndex(host)
		for taken[i] {
			i = (i + 1) % claimBlocks
		}
		taken[i] = true
		cidr := blockAt(pool, i)
		ops = append(ops, clientv3.OpPut(ipam.BlockKey(cidr), blockJSON(cidr, host)),
			clientv3.OpPut(ipam.AffinityKey(host, cidr), `{"state":"confirmed"}`))
		if len(ops) >= 500 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

// claims is (c) for Calyx: claimHosts new hosts, one after the other, each
// make their first allocation, which claims a block (the node's view is
// loaded, the pool's block keys listed, a block created, the address
// written). Their blocks are released afterwards so every round starts at
// 90%.
func (b *bench) claims(ctx context.Context, r int) (float64, float64, error) {
	var ds []time.Duration
	var names []string
	for i := range claimHosts {
		name := fmt.Sprintf("claim-r%d-%02d", r, i)
		names = append(names, name)
		a := ipam.New(b.hosts[i%len(b.hosts)])
		t0 := time.Now()
		if _, err := a.AutoAssign(ctx, ipam.AutoAssignArgs{Num4: 1, Handle: "c." + name, Node: name, IPv4Pools: []string{"claim"}}); err != nil {
			return 0, 0, err
		}
		ds = append(ds, time.Since(t0))
	}
	cleaner := ipam.New(b.admin)
	for _, n := range names {
		if _, err := cleaner.ReleaseHostAffinities(ctx, n, true); err != nil {
			return 0, 0, err
		}
	}
	p50, p99 := percentiles(ds)
	fmt.Fprintf(os.Stderr, "  (c) calyx claim in a 90%%-claimed pool of %d blocks: p50 %.3f p99 %.3f ms\n", claimBlocks, p50, p99)
	return p50, p99, nil
}
