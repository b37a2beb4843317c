// Command datastore benchmarks Calyx's datastore layer side by side with the
// raw etcd client it is built on, in one run against one embedded etcd.
//
// Why: every calyx-node writes its endpoints through the Client's guarded
// single-resource writes (Create, Update, Apply: one group-committed
// transaction path) and reads the cluster through a Syncer, so the
// layer's cost over bare etcd is paid on every CNI ADD and every event on
// every host. The goal is to stay within
// 10% of the raw client (ratio >= 0.9), and for selector evaluation, which
// runs for every selector against every endpoint change, to stay within a
// small factor of hand-written Go with no allocation.
//
// How: one embedded etcd on 127.0.0.1:23791/23801 with a temporary data
// directory (fsync on, as in production). The store is cleared and
// compacted before each figure. Write figures interleave Calyx (A) and the
// peer (B) in eight chunks, A B A B ..., alternating which side starts, so
// both meet the same background noise; event figures alternate passes
// of A and B the same way. Every figure is measured in each round:
//
//   - apply_per_s: Client.Apply of N new WorkloadEndpoints from 16
//     goroutines vs clientv3 Put of the same JSON bytes from 16 goroutines;
//     apply_update_per_s re-applies the objects Apply returned (changed)
//     over existing keys.
//   - One writer: apply_seq_vs_txn_per_s is Apply from one goroutine vs a
//     raw transaction guarded by Version==0 from one goroutine, the
//     primitive Apply must use for a new key, so its ratio is the layer's
//     own overhead when nothing can be grouped. Reported without a goal:
//     apply_seq_per_s, the same Apply vs a raw put, and txn_seq_vs_put_per_s,
//     the raw guarded transaction vs the raw put, which is etcd's own
//     charge for the guard and bounds apply_seq_per_s (about 0.89 on a
//     2-vCPU machine; an unguarded write could lose a concurrent writer's
//     uid, so Apply cannot do without it).
//   - Reported without a goal: apply_vs_txn_per_s compares Apply with the
//     raw guarded transaction from 16 goroutines (group commit against one
//     transaction per write); apply_replace_per_s applies
//     fresh documents over existing keys, which costs Apply a second round
//     trip to learn the stored uid.
//   - syncer_events_per_s: a Syncer delivering N events vs a clientv3 Watch
//     on the same prefix receiving N events, with the same 16-goroutine raw
//     writer, timed from the first write to the last event, in alternating
//     passes (see events). Each watches on
//     a connection of its own, apart from the writer's, as a calyx-node
//     watches writes made by other processes: a watch that shares the
//     writer's connection has its events ride on the writer's replies and
//     costs etcd and the client markedly less per event (reported without
//     a goal as syncer_vs_shared_watch_per_s, the Syncer against a raw
//     watch on the writer's own connection).
//   - selector_ns_per_op / selector_allocs_per_op: ten typical selectors via
//     testing.Benchmark vs closures doing the same map lookups.
//
// Usage: go run ./bench/datastore [-rounds 5] [-n 2000] [-only REGEXP]
// [-cpuprofile FILE] [-memprofile FILE]. A readable table
// goes to stderr; stdout gets one JSON line of environment and then one per
// figure (bench/report), medians over the rounds.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/calyx-net/calyx/bench/report"
	"github.com/calyx-net/calyx/internal/api"
	"github.com/calyx-net/calyx/internal/datastore"
	"github.com/calyx-net/calyx/internal/pki"
	"go.etcd.io/etcd/api/v3/version"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

const (
	clientURL = "https://127.0.0.1:23791"
	peerURL   = "https://127.0.0.1:23801"
)

func main() {
	testing.Init() // registers -test.* flags, for testing.Benchmark
	rounds := flag.Int("rounds", 5, "rounds of A/B measurements (a round's ratio moves by a tenth on a 2-vCPU machine; the median of five less)")
	n := flag.Int("n", 2000, "resources or events per measurement")
	conc := flag.Int("conc", 16, "concurrent writers")
	benchtime := flag.Duration("benchtime", 200*time.Millisecond, "time per selector benchmark")
	only := flag.String("only", "", "measure only the figures whose names match this regular expression")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run (etcd included) to this file")
	memProfile := flag.String("memprofile", "", "write an allocation profile of the whole run to this file")
	flag.Parse()
	if err := flag.Set("test.benchtime", benchtime.String()); err != nil {
		fail(err)
	}
	filter, err := regexp.Compile(*only)
	if err != nil {
		fail(err)
	}
	stop, err := startProfiles(*cpuProfile, *memProfile)
	if err != nil {
		fail(err)
	}
	err = run(*rounds, *n, *conc, filter)
	if perr := stop(); err == nil {
		err = perr
	}
	if err != nil {
		fail(err)
	}
}

// startProfiles starts a CPU profile to cpu and arranges an allocation
// profile to mem (either may be ""); the function it returns writes and
// closes them.
func startProfiles(cpu, mem string) (func() error, error) {
	var cpuFile *os.File
	if cpu != "" {
		f, err := os.Create(cpu)
		if err != nil {
			return nil, err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			_ = f.Close()
			return nil, err
		}
		cpuFile = f
	}
	if mem != "" {
		runtime.MemProfileRate = 4096
	}
	return func() error {
		if cpuFile != nil {
			pprof.StopCPUProfile()
			if err := cpuFile.Close(); err != nil {
				return err
			}
		}
		if mem == "" {
			return nil
		}
		f, err := os.Create(mem)
		if err != nil {
			return err
		}
		if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
			_ = f.Close()
			return err
		}
		return f.Close()
	}, nil
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bench/datastore:", err)
	os.Exit(1)
}

// bench holds the two clients under test.
type bench struct {
	calyx *datastore.Client
	raw   *clientv3.Client
	// watcher is a second raw client, configured as raw is, for the raw
	// watch: the Syncer's watch does not share the writer's connection
	// either.
	watcher *clientv3.Client
	wep     api.KindInfo
	n       int
	conc    int
	round   int
}

func run(rounds, n, conc int, only *regexp.Regexp) error {
	ctx := context.Background()
	if err := emitEnv(rounds, n, conc); err != nil {
		return err
	}

	dir, err := os.MkdirTemp("", "calyx-bench-etcd")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	// TLS with client certificates, as calyx-node runs it.
	files, err := pki.Ensure(filepath.Join(dir, "etcd-pki"), pki.Options{})
	if err != nil {
		return err
	}
	e, err := datastore.StartEmbedded(ctx, datastore.EmbeddedConfig{
		DataDir: filepath.Join(dir, "etcd"), Name: "bench", ClientURL: clientURL, PeerURL: peerURL, Log: log,
		ServerCertFile: files.ServerCert, ServerKeyFile: files.ServerKey,
		PeerCertFile: files.PeerCert, PeerKeyFile: files.PeerKey, CAFile: files.CACert,
	})
	if err != nil {
		return err
	}
	defer e.Close()
	calyx, err := datastore.New(ctx, datastore.Config{Endpoints: e.Endpoints(), CAFile: files.CACert, CertFile: files.ClientCert, KeyFile: files.ClientKey}, log)
	if err != nil {
		return err
	}
	defer calyx.Close()
	tlsCfg, err := (transport.TLSInfo{CertFile: files.ClientCert, KeyFile: files.ClientKey, TrustedCAFile: files.CACert}).ClientConfig()
	if err != nil {
		return fmt.Errorf("loading the bench's client certificate: %w", err)
	}
	raw, err := clientv3.New(clientv3.Config{Endpoints: e.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop(), TLS: tlsCfg})
	if err != nil {
		return err
	}
	defer raw.Close()
	watcher, err := clientv3.New(clientv3.Config{Endpoints: e.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop(), TLS: tlsCfg})
	if err != nil {
		return err
	}
	defer watcher.Close()
	wep, _ := api.LookupKind(api.KindWorkloadEndpoint)
	b := &bench{calyx: calyx, raw: raw, watcher: watcher, wep: wep, n: n, conc: conc}

	rep := newReport()
	for r := range rounds {
		b.round = r
		fmt.Fprintf(os.Stderr, "round %d/%d\n", r+1, rounds)
		for _, m := range []struct {
			name string
			f    func(context.Context) (float64, float64, error)
		}{
			{"apply_per_s", b.applyNew(conc, b.put)},
			{"apply_vs_txn_per_s", b.applyNew(conc, b.txn)},
			{"apply_seq_per_s", b.applyNew(1, b.put)},
			{"apply_seq_vs_txn_per_s", b.applyNew(1, b.txn)},
			{"txn_seq_vs_put_per_s", b.txnVsPut},
			{"apply_update_per_s", b.applyUpdate},
			{"apply_replace_per_s", b.applyReplace},
			{"syncer_events_per_s", b.events(b.watcher)},
			{"syncer_vs_shared_watch_per_s", b.events(b.raw)},
		} {
			if !only.MatchString(m.name) {
				continue
			}
			if err := b.clear(ctx); err != nil {
				return err
			}
			ours, peer, err := m.f(ctx)
			if err != nil {
				return fmt.Errorf("%s: %w", m.name, err)
			}
			rep.Add(m.name, ours)
			rep.AddPeer(m.name, peer)
			fmt.Fprintf(os.Stderr, "  %-22s calyx %10.0f  raw %10.0f  ratio %.3f\n", m.name, ours, peer, ours/peer)
		}
		if only.MatchString("selector_ns_per_op") {
			runSelectors(rep)
		}
	}
	lines := rep.Lines()
	if err := report.WriteTable(os.Stderr, lines); err != nil {
		return err
	}
	return report.WriteJSON(os.Stdout, lines...)
}

// clear deletes every resource and compacts the history, so that each
// measurement starts from the same small store.
func (b *bench) clear(ctx context.Context) error {
	if _, err := b.raw.Delete(ctx, datastore.Prefix, clientv3.WithPrefix()); err != nil {
		return err
	}
	resp, err := b.raw.Get(ctx, "compact-probe")
	if err != nil {
		return err
	}
	_, err = b.raw.Compact(ctx, resp.Header.Revision, clientv3.WithCompactPhysical())
	return err
}

// Sides of an interleaved measurement; each writes its own keys.
const (
	sideOurs = iota
	sidePeer
)

// endpoint returns side's i-th WorkloadEndpoint of this round: the size and
// shape of one a CNI ADD writes.
func (b *bench) endpoint(side, i int) *api.WorkloadEndpoint {
	cid := fmt.Sprintf("%08x%04x%04x%048x", i, b.round, side, i*7919) // unique in name and interface
	return &api.WorkloadEndpoint{
		TypeMeta: api.TypeMeta{Kind: api.KindWorkloadEndpoint, APIVersion: api.APIVersion},
		Metadata: api.ObjectMeta{
			Name: fmt.Sprintf("node-1-mesos-%s-eth0", cid[:24]),
			Labels: map[string]string{
				"app": "web", "env": "prod", "calyx.dev/network": "blue",
				"projectcalico.org/orchestrator": "mesos", "projectcalico.org/namespace": "default",
			},
		},
		Spec: api.WorkloadEndpointSpec{
			Orchestrator: api.OrchestratorMesos, Workload: "task-" + cid[:12], Node: "node-1",
			ContainerID: cid, Endpoint: "eth0", InterfaceName: "calyx" + cid[54:],
			MAC:        fmt.Sprintf("ee:ee:ee:%02x:%02x:%02x", i>>16&0xff, i>>8&0xff, i&0xff),
			IPNetworks: []string{fmt.Sprintf("10.65.%d.%d/32", i>>8&0xff, i&0xff)},
			Profiles:   []string{"blue"},
		},
	}
}

// endpoints returns side's n endpoints.
func (b *bench) endpoints(side int) []api.Resource {
	out := make([]api.Resource, b.n)
	for i := range out {
		out[i] = b.endpoint(side, i)
	}
	return out
}

// storedKVs returns the keys and the exact bytes Calyx stores for side's
// endpoints (uid and creationTimestamp included), for the raw peer.
func (b *bench) storedKVs(side int) ([]string, []string, error) {
	keys, vals := make([]string, b.n), make([]string, b.n)
	for i := range b.n {
		w := b.endpoint(side, i)
		w.Metadata.UID = fmt.Sprintf("00000000-0000-4000-8000-%012x", i)
		w.Metadata.CreationTimestamp = time.Now().UTC().Format(time.RFC3339)
		v, err := api.MarshalStored(w)
		if err != nil {
			return nil, nil, err
		}
		keys[i], vals[i] = datastore.ResourceKey(b.wep, w.Metadata.Name), string(v)
	}
	return keys, vals, nil
}

// parallel runs f(i) for i in [lo, hi) on conc goroutines.
func parallel(lo, hi, conc int, f func(i int) error) error {
	next := atomic.Int64{}
	next.Store(int64(lo))
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for range conc {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= hi {
					return
				}
				if err := f(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	return first
}

// interleaveChunks is how many slices of N each side's work is cut into.
const interleaveChunks = 8

// interleave runs ours(i) and peer(i) for i in [0, n), a chunk of one side
// then the same chunk of the other (the side going first alternates), so
// that both meet the same background work of the shared etcd (snapshots,
// compaction, a neighbour's CPU); it returns each side's operations per
// second over its own time.
func (b *bench) interleave(conc int, ours, peer func(i int) error) (float64, float64, error) {
	size := (b.n + interleaveChunks - 1) / interleaveChunks
	var spent [2]time.Duration
	fs := [2]func(int) error{ours, peer}
	for c := range interleaveChunks {
		lo, hi := c*size, min((c+1)*size, b.n)
		for k := range 2 {
			side := (k + c + b.round) % 2
			start := time.Now()
			if err := parallel(lo, hi, conc, fs[side]); err != nil {
				return 0, 0, err
			}
			spent[side] += time.Since(start)
		}
	}
	return float64(b.n) / spent[sideOurs].Seconds(), float64(b.n) / spent[sidePeer].Seconds(), nil
}

// peerWrite is a raw write of the peer side's i-th key.
type peerWrite func(ctx context.Context, key, val string) error

func (b *bench) put(ctx context.Context, key, val string) error {
	_, err := b.raw.Put(ctx, key, val)
	return err
}

// txn is the etcd primitive Apply must use for a new key: a transaction
// guarded by Version(key)==0. Against it the ratio is the layer's own
// overhead.
func (b *bench) txn(ctx context.Context, key, val string) error {
	resp, err := b.raw.Txn(ctx).
		If(clientv3.Compare(clientv3.Version(key), "=", 0)).
		Then(clientv3.OpPut(key, val)).
		Else(clientv3.OpGet(key)).Commit()
	if err == nil && !resp.Succeeded {
		return fmt.Errorf("raw transaction: %s exists already, so nothing was written", key)
	}
	return err
}

// applyNew: Apply of new endpoints vs the peer writing the same bytes.
func (b *bench) applyNew(conc int, write peerWrite) func(context.Context) (float64, float64, error) {
	return func(ctx context.Context) (float64, float64, error) {
		objs := b.endpoints(sideOurs)
		keys, vals, err := b.storedKVs(sidePeer)
		if err != nil {
			return 0, 0, err
		}
		return b.interleave(conc,
			func(i int) error { _, err := b.calyx.Apply(ctx, objs[i]); return err },
			func(i int) error { return write(ctx, keys[i], vals[i]) })
	}
}

// txnVsPut: the raw guarded transaction against a raw put of the same
// bytes, one writer each: what etcd itself charges for the guard.
func (b *bench) txnVsPut(ctx context.Context) (float64, float64, error) {
	var keys, vals [2][]string
	for side := range 2 {
		var err error
		if keys[side], vals[side], err = b.storedKVs(side); err != nil {
			return 0, 0, err
		}
	}
	return b.interleave(1,
		func(i int) error { return b.txn(ctx, keys[sideOurs][i], vals[sideOurs][i]) },
		func(i int) error { return b.put(ctx, keys[sidePeer][i], vals[sidePeer][i]) })
}

// seed stores both sides' endpoints: ours through Apply (returning what it
// returned), the peer's with Put (returning keys and values).
func (b *bench) seed(ctx context.Context) ([]api.Resource, []string, []string, error) {
	objs := b.endpoints(sideOurs)
	out := make([]api.Resource, len(objs))
	err := parallel(0, b.n, b.conc, func(i int) error {
		var err error
		out[i], err = b.calyx.Apply(ctx, objs[i])
		return err
	})
	if err != nil {
		return nil, nil, nil, err
	}
	keys, vals, err := b.storedKVs(sidePeer)
	if err != nil {
		return nil, nil, nil, err
	}
	err = parallel(0, b.n, b.conc, func(i int) error { return b.put(ctx, keys[i], vals[i]) })
	return out, keys, vals, err
}

// applyUpdate re-applies changed copies of the objects Apply returned (the
// agent's pattern when it updates its own endpoints) vs Put over existing
// keys.
func (b *bench) applyUpdate(ctx context.Context) (float64, float64, error) {
	objs, keys, vals, err := b.seed(ctx)
	if err != nil {
		return 0, 0, err
	}
	for _, o := range objs {
		o.(*api.WorkloadEndpoint).Spec.Profiles = []string{"blue", "green"}
	}
	return b.interleave(b.conc,
		func(i int) error { _, err := b.calyx.Apply(ctx, objs[i]); return err },
		func(i int) error { return b.put(ctx, keys[i], vals[i]) })
}

// applyReplace applies fresh documents over existing keys (calyxctl apply
// of a file whose resources exist) vs Put over existing keys.
func (b *bench) applyReplace(ctx context.Context) (float64, float64, error) {
	_, keys, vals, err := b.seed(ctx)
	if err != nil {
		return 0, 0, err
	}
	objs := b.endpoints(sideOurs)
	return b.interleave(b.conc,
		func(i int) error { _, err := b.calyx.Apply(ctx, objs[i]); return err },
		func(i int) error { return b.put(ctx, keys[i], vals[i]) })
}

// eventPasses is how many passes of N/eventPasses writes each side of an
// event figure is measured over.
const eventPasses = 4

// events measures a Syncer and a raw watch receiving the same N writes. A
// watcher cannot share a pass of the writer with the other (both would
// load etcd and the CPU at once), so each side watches passes of its own:
// eventPasses each, alternating, the side going first alternating by pass
// and round, so that both meet the same noise and the same growing store.
// Each pass starts its watcher, waits for it to be current, then times
// from the first write to the pass's last event, so each side's fixed
// cost per pass (the writers starting, the last event's delivery) is in
// its figure four times, the same for both. The raw side watches through
// w.
func (b *bench) events(w *clientv3.Client) func(context.Context) (float64, float64, error) {
	return func(ctx context.Context) (float64, float64, error) {
		return b.eventsVs(ctx, w)
	}
}

func (b *bench) eventsVs(ctx context.Context, w *clientv3.Client) (float64, float64, error) {
	var keys, vals [2][]string
	for side := range 2 {
		var err error
		if keys[side], vals[side], err = b.storedKVs(side); err != nil {
			return 0, 0, err
		}
	}
	watch := func(ctx context.Context, keys, vals []string) (time.Duration, error) {
		return b.watchEvents(ctx, w, keys, vals)
	}
	fs := [2]func(context.Context, []string, []string) (time.Duration, error){b.syncerEvents, watch}
	size := (b.n + eventPasses - 1) / eventPasses
	var spent [2]time.Duration
	for p := range eventPasses {
		lo, hi := p*size, min((p+1)*size, b.n)
		for k := range 2 {
			side := (k + p + b.round) % 2
			d, err := fs[side](ctx, keys[side][lo:hi], vals[side][lo:hi])
			if err != nil {
				return 0, 0, err
			}
			spent[side] += d
		}
	}
	return float64(b.n) / spent[sideOurs].Seconds(), float64(b.n) / spent[sidePeer].Seconds(), nil
}

// write is the event benchmarks' writer: raw puts from conc goroutines.
func (b *bench) write(ctx context.Context, keys, vals []string) error {
	return parallel(0, len(keys), b.conc, func(i int) error { return b.put(ctx, keys[i], vals[i]) })
}

// counter is a Handler that counts events and signals the n-th.
type counter struct {
	n        int64
	seen     atomic.Int64
	snapshot chan struct{}
	done     chan struct{}
}

func (c *counter) OnSnapshot(datastore.Snapshot) { close(c.snapshot) }

func (c *counter) OnEvent(datastore.Event) {
	if c.seen.Add(1) == c.n {
		close(c.done)
	}
}

// syncerEvents times a Syncer's delivery of the events of writing keys.
func (b *bench) syncerEvents(ctx context.Context, keys, vals []string) (time.Duration, error) {
	ctx, cancel := context.WithCancel(ctx)
	h := &counter{n: int64(len(keys)), snapshot: make(chan struct{}), done: make(chan struct{})}
	s := datastore.NewSyncer(b.calyx, nil, nil)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		_ = s.Run(ctx, h) // nil once cancelled; a failure shows as missing events
	}()
	defer func() { cancel(); <-stopped }()
	<-h.snapshot
	start := time.Now()
	if err := b.write(ctx, keys, vals); err != nil {
		return 0, err
	}
	select {
	case <-h.done:
	case <-time.After(time.Minute):
		return 0, fmt.Errorf("syncer delivered %d of %d events", h.seen.Load(), len(keys))
	}
	return time.Since(start), nil
}

// watchEvents is the raw peer of syncerEvents, watching through w.
func (b *bench) watchEvents(ctx context.Context, w *clientv3.Client, keys, vals []string) (time.Duration, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	resp, err := b.raw.Get(ctx, datastore.Prefix, clientv3.WithPrefix())
	if err != nil {
		return 0, err
	}
	wch := w.Watch(clientv3.WithRequireLeader(ctx), datastore.Prefix, clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1))
	done := make(chan struct{})
	go func() {
		defer close(done)
		seen := 0
		for wr := range wch {
			if seen += len(wr.Events); seen >= len(keys) {
				return
			}
		}
	}()
	start := time.Now()
	if err := b.write(ctx, keys, vals); err != nil {
		return 0, err
	}
	select {
	case <-done:
	case <-time.After(time.Minute):
		return 0, fmt.Errorf("watch did not deliver %d events", len(keys))
	}
	return time.Since(start), nil
}

// newReport returns the report, its metrics in report order. The goals
// are on the ratio calyx/peer except for allocations, judged on ours alone.
func newReport() *report.Report {
	return report.New("datastore", []report.Spec{
		{Metric: "apply_per_s", Goal: ">=0.9"},
		{Metric: "apply_vs_txn_per_s", Goal: "info"},
		{Metric: "apply_seq_per_s", Goal: "info"},
		{Metric: "apply_seq_vs_txn_per_s", Goal: ">=0.9"},
		{Metric: "txn_seq_vs_put_per_s", Goal: "info"},
		{Metric: "apply_update_per_s", Goal: ">=0.9"},
		{Metric: "apply_replace_per_s", Goal: "info"},
		{Metric: "syncer_events_per_s", Goal: ">=0.9"},
		{Metric: "syncer_vs_shared_watch_per_s", Goal: "info"},
		{Metric: "selector_ns_per_op", Goal: "<=3"},
		{Metric: "selector_allocs_per_op", Goal: "==0"},
	})
}

// emitEnv prints the environment line.
func emitEnv(rounds, n, conc int) error {
	return report.WriteEnv(os.Stdout, "datastore", map[string]any{
		"etcd": version.Version, "rounds": rounds, "n": n, "conc": conc,
		"etcd_mode": "embedded single member, fsync on, " + clientURL,
	})
}
