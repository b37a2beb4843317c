// Command ipam is benchmark B2 (reference/performance.md): Calyx's IPAM
// allocator against its real peers, side by side in one run.
//
//	(a) in-process allocate and release latency, sequential, one host;
//	    peer: Debian's host-local IPAM plugin, exec'd per call (d);
//	(b) 32 simulated hosts allocating at once: allocations/s and CAS
//	    retries per allocation; peer: raw etcd compare-and-swap on one key
//	    holding the next free address (Get + Txn If ModRevision);
//	(c) new-block claim in a pool of 1,024 blocks, 90% claimed by other
//	    hosts; peer: Calico's claim, a GET per block from the host's FNV
//	    offset until one is missing, then a create.
//
// Calyx and the peers alternate within each round (A B A B ...), over
// three rounds; the report gives the median and min/max of the round
// medians and the ratio Calyx/peer per round. etcd runs embedded on
// 127.0.0.1:23791/23801 with its data (fsync on) in a temporary directory.
// Run with `make bench BENCH=ipam`.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"time"

	"go.etcd.io/etcd/api/v3/version"

	"github.com/calyx-net/calyx/bench/report"
	"github.com/calyx-net/calyx/internal/datastore"
	"github.com/calyx-net/calyx/internal/pki"
)

const (
	rounds      = 3
	clientURL   = "https://127.0.0.1:23791"
	peerURL     = "https://127.0.0.1:23801"
	hostLocal   = "/usr/lib/cni/host-local"
	seqN        = 500  // sequential allocations per round (a)
	hostLocalN  = 100  // host-local ADDs per round (d)
	crossHosts  = 32   // simulated hosts (b)
	crossPerHst = 100  // allocations per host per round (b)
	casPerHost  = 30   // raw CAS allocations per contender per round (b, peer)
	claimHosts  = 40   // new hosts claiming per round (c)
	claimBlocks = 1024 // blocks in the claim pool (c)
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench/ipam:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx := context.Background()
	if err := printEnv(); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "calyx-bench-ipam")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	log := slog.New(slog.DiscardHandler)
	// TLS with client certificates, as calyx-node runs it.
	files, err := pki.Ensure(dir+"/etcd-pki", pki.Options{})
	if err != nil {
		return err
	}
	emb, err := datastore.StartEmbedded(ctx, datastore.EmbeddedConfig{
		DataDir: dir + "/etcd", Name: "bench", ClientURL: clientURL, PeerURL: peerURL, Log: log,
		ServerCertFile: files.ServerCert, ServerKeyFile: files.ServerKey,
		PeerCertFile: files.PeerCert, PeerKeyFile: files.PeerKey, CAFile: files.CACert,
	})
	if err != nil {
		return err
	}
	defer emb.Close()
	b, err := newBench(ctx, dir, log, files)
	if err != nil {
		return err
	}
	defer b.close()

	rep := newReport()
	haveHostLocal := true
	if _, err := os.Stat(hostLocal); err != nil {
		haveHostLocal = false
		fmt.Fprintf(os.Stderr, "%s is missing: install it with `apt-get install containernetworking-plugins`; "+
			"the host-local figures are skipped\n", hostLocal)
	}
	for r := range rounds {
		fmt.Fprintf(os.Stderr, "round %d/%d\n", r+1, rounds)
		a50, a99, r50, r99, err := b.sequential(ctx, r)
		if err != nil {
			return fmt.Errorf("sequential allocation: %w", err)
		}
		rep.Add("alloc_p50_ms", a50)
		rep.Add("alloc_p99_ms", a99)
		rep.Add("release_p50_ms", r50)
		rep.Add("release_p99_ms", r99)
		if haveHostLocal {
			h50, h99, d50, d99, err := hostLocalRound(dir, r)
			if err != nil {
				return fmt.Errorf("host-local: %w", err)
			}
			rep.AddPeer("alloc_p50_ms", h50)
			rep.AddPeer("alloc_p99_ms", h99)
			rep.AddPeer("release_p50_ms", d50)
			rep.AddPeer("release_p99_ms", d99)
		}
		rate, retries, err := b.crossHost(ctx, r)
		if err != nil {
			return fmt.Errorf("cross-host allocation: %w", err)
		}
		rep.Add("crosshost_allocs_per_s", rate)
		rep.Add("crosshost_retries_per_alloc", retries)
		prate, pretries, err := b.rawCASRound(ctx, r)
		if err != nil {
			return fmt.Errorf("raw CAS peer: %w", err)
		}
		rep.AddPeer("crosshost_allocs_per_s", prate)
		rep.AddPeer("crosshost_retries_per_alloc", pretries)
		c50, c99, err := b.claims(ctx, r)
		if err != nil {
			return fmt.Errorf("claims: %w", err)
		}
		rep.Add("claim_p50_ms", c50)
		rep.Add("claim_p99_ms", c99)
		p50, p99, err := b.calicoClaims(ctx, r)
		if err != nil {
			return fmt.Errorf("calico-style claims: %w", err)
		}
		rep.AddPeer("claim_p50_ms", p50)
		rep.AddPeer("claim_p99_ms", p99)
	}
	lines := rep.Lines()
	if err := report.WriteTable(os.Stdout, lines); err != nil {
		return err
	}
	return report.WriteJSON(os.Stdout, lines...)
}

// printEnv writes the first line: the environment as JSON.
func printEnv() error {
	hl := "missing"
	if out, err := exec.Command("dpkg-query", "-W", "-f=${Version}", "containernetworking-plugins").Output(); err == nil {
		hl = "containernetworking-plugins " + string(out)
	}
	return report.WriteEnv(os.Stdout, "ipam", map[string]any{
		"etcd": "embedded " + version.Version + " (fsync on)", "host-local": hl,
	})
}

// newReport returns B2's report, its metrics in report order.
func newReport() *report.Report {
	const (
		hostLocalAdd = "host-local ADD (exec)"
		hostLocalDel = "host-local DEL (exec)"
		rawCAS       = "raw etcd CAS on one key, 32 contenders"
		calicoClaim  = "Calico-style GET-per-block claim"
	)
	atMost := func(limit float64) func(o, _ float64) bool { return func(o, _ float64) bool { return o <= limit } }
	return report.New("ipam", []report.Spec{
		{Metric: "alloc_p50_ms", Goal: "<= 2 ms", Met: atMost(2), PeerIs: hostLocalAdd},
		{Metric: "alloc_p99_ms", Goal: "<= 10 ms", Met: atMost(10), PeerIs: hostLocalAdd},
		{Metric: "release_p50_ms", Goal: "-", PeerIs: hostLocalDel},
		{Metric: "release_p99_ms", Goal: "-", PeerIs: hostLocalDel},
		{Metric: "crosshost_allocs_per_s", Goal: ">= 1000/s and >= 4x raw CAS",
			Met: func(o, r float64) bool { return o >= 1000 && r >= 4 }, PeerIs: rawCAS},
		{Metric: "crosshost_retries_per_alloc", Goal: "<= 0.1", Met: atMost(0.1), PeerIs: rawCAS},
		{Metric: "claim_p50_ms", Goal: "-", PeerIs: calicoClaim},
		{Metric: "claim_p99_ms", Goal: "<= 50 ms", Met: atMost(50), PeerIs: calicoClaim},
	})
}

// percentiles returns the p50 and p99 of ds in milliseconds.
func percentiles(ds []time.Duration) (float64, float64) {
	return report.Ms(report.Percentile(ds, 0.50)), report.Ms(report.Percentile(ds, 0.99))
}
