// Command footprint is benchmark B10 (reference/performance.md): what
// calyx-node costs its host at steady state, idle, with 1,000 local
// endpoints, 10,000 routes to other hosts' blocks and 1,000 policies.
// Goals (issue 11, B10): idle CPU ≤ 1% of one core, RSS ≤ 100 MB,
// ≤ 10 KiB of RSS per endpoint.
//
// Everything runs in network namespaces named bench-<pid>-* that the
// benchmark creates and removes: a "host" namespace running a real
// calyx-node built from cmd/calyx-node (--bgp=false) and, by default, an
// etcd server of its own (Debian's etcd-server, one member, TLS with
// client certificates, on the namespace's loopback, started by
// internal/testnet's EtcdCluster), and one namespace per container. That is
// how production runs calyx-node ("embedded single member by default; an
// external etcd cluster in production", DESIGN), and what the published
// anchor measures (an agent's RSS without its kvstore): the goal figures
// are calyx-node's alone, and the etcd server's CPU and RSS are reported
// apart, for information (etcd_*). With -embedded, calyx-node runs its
// embedded etcd instead, so that the etcd server's memory and CPU (every
// block affinity, endpoint and policy) are part of every figure, as on a
// host that runs calyx-node alone. The environment line says which mode
// ran (etcd_mode). In order:
//
//  1. calyx-node starts; its RSS a few seconds later is the empty figure;
//  2. calyxctl applies two IPPools, the remote Nodes (on the host's
//     subnet) and the policies (GlobalNetworkPolicies selecting the local
//     endpoints by label, with rules on label selectors, nets and ports);
//     then one block affinity per remote route (a /26 of another node,
//     written to etcd as IPAM writes it, round robin over the remote
//     Nodes). With BGP off, calc turns each into a native route via its
//     node, which calyx-node installs; the benchmark waits until the
//     kernel has them all;
//  3. baseline: after -settle, one -window of measurement at 0 endpoints;
//  4. the endpoints are attached by the real calyx CNI plugin, exec'd as
//     Mesos runs it (-parallel at a time), each container in its own
//     namespace with Mesos labels the policies select on; an ADD returns
//     once calyx-node has programmed the host side (route, neighbour,
//     policy). Meanwhile the benchmark samples calyx-node every 100 ms:
//     its peak RSS and CPU while programming;
//  5. once calyx-node reports every endpoint and the kernel has every
//     endpoint route, after -settle, one -window at N endpoints.
//
// A window reads /proc/<pid>/stat (utime+stime) at its start and end (idle
// CPU, % of one core), samples /proc/<pid>/status and smaps_rollup (RSS,
// PSS; the median of the samples is reported) and, after the window,
// calyx-node's /metrics (goroutines, Go heap), so that the scrape's own
// cost is outside it; it reads the external etcd's /proc files likewise. Per endpoint is the RSS (and the live Go heap, as
// of the last collection) at N endpoints less that at 0 endpoints of the
// same run, divided by N. The
// window's default is calyx-node's full-resync interval, so that each
// window holds one periodic resync, the main periodic cost.
//
// -node-args passes extra flags to calyx-node (the environment line
// shows them), e.g. to measure a setting's cost. The Go runtime's
// settings in the benchmark's environment (GOGC, GOMEMLIMIT, GOMAXPROCS,
// GODEBUG) reach calyx-node too, and the environment line names them
// (calyx_node_go_env): `GOGC=100 make bench BENCH=footprint` measures
// calyx-node without its GC tuning.
//
// Each window also reports what calyx-node allocated in it (KiB/s, from
// its metrics at the window's start and end): the garbage its periodic
// work makes at rest, which sets how far its heap grows past what is live.
//
// -profile DIR also saves calyx-node's CPU profile of each window, its
// allocations at the start of the window (<name>-allocs-start.pprof: with
// `go tool pprof -sample_index=alloc_space -base` it gives what the window
// allocated, by caller), and its heap (after a collection) and goroutines
// at the end of it, for a
// calyx-node that serves net/http/pprof on its metrics address (the
// released one does not: build one that does and pass its directory as
// -bin).
//
// There is no peer: no other agent runs in this harness (Cilium's report,
// 0.15% CPU and 10.5 KiB per pod, is the published anchor). One run, one
// value per figure. Run as root with `make bench BENCH=footprint`; stdout
// gets an environment line, a table and one JSON line per figure.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/calyx-net/calyx/bench/report"
	"github.com/calyx-net/calyx/test/hostnode"
)

// settings are the benchmark's flags.
type settings struct {
	endpoints    int
	remoteRoutes int
	remoteNodes  int
	policies     int
	parallel     int
	window       time.Duration
	settle       time.Duration
	binDir       string
	profileDir   string
	embedded     bool
	nodeArgs     string
}

func main() {
	var s settings
	fs := flag.NewFlagSet("footprint", flag.ExitOnError)
	fs.IntVar(&s.endpoints, "endpoints", 1000, "local endpoints, attached by the calyx CNI plugin")
	fs.IntVar(&s.remoteRoutes, "remote-routes", 10000, "routes to other hosts' blocks (one /26 block each)")
	fs.IntVar(&s.remoteNodes, "remote-nodes", 100, "other hosts the remote blocks belong to (at most 150)")
	fs.IntVar(&s.policies, "policies", 1000, "GlobalNetworkPolicies; each endpoint is selected by 10 of them")
	fs.IntVar(&s.parallel, "parallel", 8, "CNI ADDs in flight while attaching the endpoints")
	fs.DurationVar(&s.window, "window", 90*time.Second, "measurement window at each size (default: calyx-node's resync interval)")
	fs.DurationVar(&s.settle, "settle", 30*time.Second, "pause before each window, after programming")
	fs.StringVar(&s.binDir, "bin", "", "use the calyx, calyx-node and calyxctl in this directory instead of building them (e.g. a calyx-node built with profiling)")
	fs.BoolVar(&s.embedded, "embedded", false, "run calyx-node with its embedded etcd, whose memory and CPU then count in its figures, instead of against an etcd server of its own")
	fs.StringVar(&s.nodeArgs, "node-args", "", "extra calyx-node flags, space-separated (e.g. --resync-interval=30s)")
	fs.StringVar(&s.profileDir, "profile", "", "save calyx-node's CPU profile of each window and its heap and goroutines after it in this directory (needs a calyx-node serving /debug/pprof on its metrics address; see -bin)")
	_ = fs.Parse(os.Args[1:]) // ExitOnError
	if err := s.validate(); err != nil {
		fmt.Fprintln(os.Stderr, "bench/footprint:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, s)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/footprint:", err)
		os.Exit(1)
	}
}

func (s settings) validate() error {
	switch {
	case s.endpoints < 1 || s.endpoints > 10000:
		return fmt.Errorf("-endpoints %d: want 1..10000", s.endpoints)
	case s.remoteNodes < 1 || s.remoteNodes > maxRemoteNodes:
		return fmt.Errorf("-remote-nodes %d: want 1..%d", s.remoteNodes, maxRemoteNodes)
	case s.remoteRoutes < 0 || s.remoteRoutes > 60000:
		return fmt.Errorf("-remote-routes %d: want 0..60000", s.remoteRoutes)
	case s.policies < 0 || s.policies%policiesPerEndpoint != 0:
		return fmt.Errorf("-policies %d: want a multiple of %d", s.policies, policiesPerEndpoint)
	case s.parallel < 1:
		return fmt.Errorf("-parallel %d: want >= 1", s.parallel)
	case s.window < time.Second || s.settle < 0:
		return fmt.Errorf("-window %s, -settle %s: want a window of at least 1s and no negative settle", s.window, s.settle)
	}
	return nil
}

func run(ctx context.Context, s settings) error {
	if os.Geteuid() != 0 {
		return errors.New("needs root: it creates network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return fmt.Errorf("ip (iproute2) not found: %w", err)
	}
	if s.profileDir != "" {
		if err := os.MkdirAll(s.profileDir, 0o755); err != nil {
			return err
		}
	}
	work, err := os.MkdirTemp("", "bench-footprint-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(work) }()
	binDir, err := hostnode.Binaries(ctx, s.binDir, work, logf)
	if err != nil {
		return err
	}
	w, err := newWorld(ctx, work, binDir, s.embedded, strings.Fields(s.nodeArgs))
	if err != nil {
		return err
	}
	defer w.close()
	if err := printEnv(ctx, s); err != nil {
		return err
	}
	rep := newReport(s.embedded)
	if err := measureAll(ctx, w, s, rep); err != nil {
		return err
	}
	return writeReport(rep)
}

// measureAll loads calyx-node step by step and measures it at each step.
func measureAll(ctx context.Context, w *world, s settings, rep *report.Report) error {
	if err := sleep(ctx, startPause); err != nil {
		return err
	}
	empty, err := readProc(w.pid)
	if err != nil {
		return err
	}
	rep.Add("empty_rss_mb", mb(empty.rss))
	if w.etcdPID != 0 {
		e, err := readProc(w.etcdPID)
		if err != nil {
			return err
		}
		rep.Add("empty_etcd_rss_mb", mb(e.rss))
	}

	logf("applying %d policies, %d remote nodes and %d remote blocks", s.policies, s.remoteNodes, s.remoteRoutes)
	start := time.Now()
	if err := w.loadCluster(ctx, s); err != nil {
		return err
	}
	logf("calyx-node has the %d remote routes in the kernel after %s", s.remoteRoutes, time.Since(start).Round(time.Millisecond))

	logf("settling %s, then measuring %s at 0 endpoints", s.settle, s.window)
	if err := sleep(ctx, s.settle); err != nil {
		return err
	}
	base, err := w.measure(ctx, s.window, s.profileDir, "baseline")
	if err != nil {
		return err
	}
	base.record(rep, "baseline_")

	logf("creating %d container namespaces", s.endpoints)
	if err := w.addContainers(ctx, s.endpoints, s.parallel); err != nil {
		return err
	}
	logf("attaching %d endpoints, %d at a time", s.endpoints, s.parallel)
	prog, err := w.attachAll(ctx, s)
	if err != nil {
		return err
	}
	prog.record(rep)
	logf("attached in %s (ADD p50 %.1f ms); peak RSS %.1f MB, CPU %.0f%% of a core",
		prog.wall.Round(time.Millisecond), prog.addP50, mb(prog.peakRSS), prog.cpuPct)

	logf("settling %s, then measuring %s at %d endpoints", s.settle, s.window, s.endpoints)
	if err := sleep(ctx, s.settle); err != nil {
		return err
	}
	full, err := w.measure(ctx, s.window, s.profileDir, "endpoints")
	if err != nil {
		return err
	}
	full.record(rep, "")
	n := float64(s.endpoints)
	rep.Add("per_endpoint_kib", (float64(full.rss)-float64(base.rss))/n/1024)
	rep.Add("per_endpoint_heap_kib", (liveHeap(full.metrics)-liveHeap(base.metrics))/n/1024)
	return nil
}

// startPause is how long after calyx-node is ready its empty RSS is read.
const startPause = 5 * time.Second

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}
