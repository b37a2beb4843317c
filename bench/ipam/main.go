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
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/version"

	"github.com/calyx-net/calyx/internal/datastore"
)

const (
	rounds      = 3
	clientURL   = "http://127.0.0.1:23791"
	peerURL     = "http://127.0.0.1:23801"
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

// figure is one reported metric: per-round values for Calyx and the peer.
type figure struct {
	metric  string
	unit    string
	goal    string
	met     func(ours, ratio float64) bool // nil: no goal
	ours    []float64
	peer    []float64
	peerWho string
}

func run() error {
	ctx := context.Background()
	printEnv()
	dir, err := os.MkdirTemp("", "calyx-bench-ipam")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	log := slog.New(slog.DiscardHandler)
	emb, err := datastore.StartEmbedded(ctx, datastore.EmbeddedConfig{
		DataDir: dir + "/etcd", Name: "bench", ClientURL: clientURL, PeerURL: peerURL, Log: log,
	})
	if err != nil {
		return err
	}
	defer emb.Close()
	b, err := newBench(ctx, dir, log)
	if err != nil {
		return err
	}
	defer b.close()

	figs := newFigures()
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
		figs.add("alloc_p50_ms", a50)
		figs.add("alloc_p99_ms", a99)
		figs.add("release_p50_ms", r50)
		figs.add("release_p99_ms", r99)
		if haveHostLocal {
			h50, h99, d50, d99, err := hostLocalRound(dir, r)
			if err != nil {
				return fmt.Errorf("host-local: %w", err)
			}
			figs.addPeer("alloc_p50_ms", h50)
			figs.addPeer("alloc_p99_ms", h99)
			figs.addPeer("release_p50_ms", d50)
			figs.addPeer("release_p99_ms", d99)
		}
		rate, retries, err := b.crossHost(ctx, r)
		if err != nil {
			return fmt.Errorf("cross-host allocation: %w", err)
		}
		figs.add("crosshost_allocs_per_s", rate)
		figs.add("crosshost_retries_per_alloc", retries)
		prate, pretries, err := b.rawCASRound(ctx, r)
		if err != nil {
			return fmt.Errorf("raw CAS peer: %w", err)
		}
		figs.addPeer("crosshost_allocs_per_s", prate)
		figs.addPeer("crosshost_retries_per_alloc", pretries)
		c50, c99, err := b.claims(ctx, r)
		if err != nil {
			return fmt.Errorf("claims: %w", err)
		}
		figs.add("claim_p50_ms", c50)
		figs.add("claim_p99_ms", c99)
		p50, p99, err := b.calicoClaims(ctx, r)
		if err != nil {
			return fmt.Errorf("calico-style claims: %w", err)
		}
		figs.addPeer("claim_p50_ms", p50)
		figs.addPeer("claim_p99_ms", p99)
	}
	report(figs)
	return nil
}

// printEnv writes the first line: the environment as JSON.
func printEnv() {
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	hl := "missing"
	if out, err := exec.Command("dpkg-query", "-W", "-f=${Version}", "containernetworking-plugins").Output(); err == nil {
		hl = "containernetworking-plugins " + string(out)
	}
	env := map[string]any{
		"bench": "ipam", "kernel": strings.TrimSpace(string(kernel)), "nproc": runtime.NumCPU(),
		"go": runtime.Version(), "etcd": "embedded " + version.Version + " (fsync on)", "host-local": hl,
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(env)
}

// figures holds every metric in report order.
type figures struct {
	order []string
	byKey map[string]*figure
}

func newFigures() *figures {
	f := &figures{byKey: map[string]*figure{}}
	for _, fg := range []*figure{
		{metric: "alloc_p50_ms", unit: "ms", goal: "<= 2 ms", met: func(o, _ float64) bool { return o <= 2 }, peerWho: "host-local ADD (exec)"},
		{metric: "alloc_p99_ms", unit: "ms", goal: "<= 10 ms", met: func(o, _ float64) bool { return o <= 10 }, peerWho: "host-local ADD (exec)"},
		{metric: "release_p50_ms", unit: "ms", goal: "-", peerWho: "host-local DEL (exec)"},
		{metric: "release_p99_ms", unit: "ms", goal: "-", peerWho: "host-local DEL (exec)"},
		{metric: "crosshost_allocs_per_s", unit: "/s", goal: ">= 1000/s and >= 4x raw CAS",
			met: func(o, r float64) bool { return o >= 1000 && r >= 4 }, peerWho: "raw etcd CAS on one key, 32 contenders"},
		{metric: "crosshost_retries_per_alloc", unit: "", goal: "<= 0.1", met: func(o, _ float64) bool { return o <= 0.1 },
			peerWho: "raw etcd CAS on one key, 32 contenders"},
		{metric: "claim_p50_ms", unit: "ms", goal: "-", peerWho: "Calico-style GET-per-block claim"},
		{metric: "claim_p99_ms", unit: "ms", goal: "<= 50 ms", met: func(o, _ float64) bool { return o <= 50 },
			peerWho: "Calico-style GET-per-block claim"},
	} {
		f.order = append(f.order, fg.metric)
		f.byKey[fg.metric] = fg
	}
	return f
}

func (f *figures) add(metric string, v float64) {
	f.byKey[metric].ours = append(f.byKey[metric].ours, v)
}
func (f *figures) addPeer(metric string, v float64) {
	f.byKey[metric].peer = append(f.byKey[metric].peer, v)
}

func median(vs []float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// report prints a table, then one JSON line per figure (the last lines).
func report(f *figures) {
	fmt.Printf("%-28s %12s %22s %12s %8s  %s\n", "metric", "calyx", "calyx min..max", "peer", "ratio", "goal")
	type line struct {
		Bench   string    `json:"bench"`
		Metric  string    `json:"metric"`
		Ours    float64   `json:"ours"`
		Peer    *float64  `json:"peer"`
		Ratio   *float64  `json:"ratio"`
		Goal    string    `json:"goal"`
		Met     *bool     `json:"met,omitempty"`
		OursMin float64   `json:"ours_min"`
		OursMax float64   `json:"ours_max"`
		Rounds  []float64 `json:"ours_rounds"`
		PeerRds []float64 `json:"peer_rounds,omitempty"`
		Ratios  []float64 `json:"ratio_rounds,omitempty"`
		PeerIs  string    `json:"peer_is"`
	}
	var lines []line
	for _, k := range f.order {
		fg := f.byKey[k]
		l := line{Bench: "ipam", Metric: fg.metric, Ours: round3(median(fg.ours)), Goal: fg.goal, Rounds: roundAll(fg.ours),
			OursMin: round3(slices.Min(fg.ours)), OursMax: round3(slices.Max(fg.ours)), PeerIs: fg.peerWho}
		ratioMed := 0.0
		if len(fg.peer) == len(fg.ours) && len(fg.peer) > 0 {
			p := round3(median(fg.peer))
			l.Peer = &p
			l.PeerRds = roundAll(fg.peer)
			for i := range fg.ours {
				if fg.peer[i] != 0 {
					l.Ratios = append(l.Ratios, round3(fg.ours[i]/fg.peer[i]))
				}
			}
			ratioMed = round3(median(l.Ratios))
			l.Ratio = &ratioMed
		}
		if fg.met != nil {
			m := fg.met(l.Ours, ratioMed)
			l.Met = &m
		}
		peer, ratio := "-", "-"
		if l.Peer != nil {
			peer = fmt.Sprintf("%.3f", *l.Peer)
			ratio = fmt.Sprintf("%.3f", *l.Ratio)
		}
		fmt.Printf("%-28s %12.3f %10.3f..%-10.3f %12s %8s  %s\n", fg.metric, l.Ours, l.OursMin, l.OursMax, peer, ratio, fg.goal)
		lines = append(lines, l)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetEscapeHTML(false)
	for _, l := range lines {
		_ = enc.Encode(l)
	}
}

func round3(v float64) float64 { return float64(int64(v*1000+0.5)) / 1000 }

func roundAll(vs []float64) []float64 {
	out := make([]float64, len(vs))
	for i, v := range vs {
		out[i] = round3(v)
	}
	return out
}

// percentiles returns the p50 and p99 of ds in milliseconds.
func percentiles(ds []time.Duration) (float64, float64) {
	s := slices.Clone(ds)
	slices.Sort(s)
	at := func(q float64) float64 {
		i := int(q*float64(len(s))+0.999999) - 1
		i = max(0, min(i, len(s)-1))
		return float64(s[i].Microseconds()) / 1000
	}
	return at(0.50), at(0.99)
}
