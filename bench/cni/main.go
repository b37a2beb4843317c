// Command cni is benchmark B1 (reference/performance.md): CNI ADD and DEL
// latency and burst throughput of Calyx's plugin against Debian's
// bridge+host-local (what Flannel's CNI delegates to), through the same
// harness in the same run.
//
// Everything runs in network namespaces named bench-* that the benchmark
// creates and removes: a "host" namespace running a real calyx-node (its
// embedded etcd on the namespace's loopback, fsync on) and 100 container
// namespaces. Every ADD and DEL is one `cnitool` process started in the
// host namespace, the way a runtime calls a plugin; its wall time is the
// figure. Per round, in alternating order:
//
//   - sequential: 100 containers ADDed one after another, then DELed;
//   - burst: 64 containers ADDed 16 at a time (ADD/s, p50, p99), then DELed
//     the same way;
//   - IPAM via CNI (B2 (b)): calyx-ipam and host-local exec'd directly, as
//     bridge execs its IPAM plugin, 100 ADDs then 100 DELs each;
//   - the harness floor: the same sequential run with the `loopback`
//     plugin, which does almost nothing, so the figures can be read with
//     cnitool's own exec and libcni cost subtracted.
//
// The time calyx-node spends in netlink per ADD comes from its
// calyx_dataplane_endpoint_program_seconds metric (host side of READY);
// its request times from calyx_cni_request_seconds. Five rounds: a
// burst's figure on a shared 2-vCPU machine moves by a fifth from one
// round to the next, and the median of five moves less than that of
// three. The report gives medians of the round figures and the ratio
// Calyx/peer. Run
// as root with `make bench BENCH=cni`; stdout gets an environment line, a
// table and one JSON line per figure.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/calyx-net/calyx/bench/report"
	"github.com/calyx-net/calyx/test/hostnode"
)

const (
	rounds      = 5
	seqN        = 100 // sequential containers per round
	burstN      = 64  // containers per burst
	burstPar    = 16  // ADDs in flight during a burst
	metricsAddr = "127.0.0.1:9091"
	refPlugins  = "/usr/lib/cni"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/cni:", err)
		os.Exit(1)
	}
}

// impl is one CNI network under test.
type impl struct {
	name string // network name
	who  string // what it is, for the report
}

func run(ctx context.Context) error {
	fs := flag.NewFlagSet("bench/cni", flag.ContinueOnError)
	nodeArgs := fs.String("node-args", "", "extra calyx-node flags, space-separated (e.g. --gomaxprocs=0)")
	bin := fs.String("bin", "", "use the calyx, calyx-ipam and calyx-node in this directory instead of building them (e.g. to keep them for perf's symbols)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return errors.New("needs root: it creates network namespaces")
	}
	tool, err := findCnitool()
	if err != nil {
		return err
	}
	for _, p := range []string{"bridge", "host-local", "loopback"} {
		if _, err := os.Stat(filepath.Join(refPlugins, p)); err != nil {
			return fmt.Errorf("the peer needs Debian's containernetworking-plugins (%s/%s): %w", refPlugins, p, err)
		}
	}
	work, err := os.MkdirTemp("", "bench-cni-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(work) }()
	binDir, err := hostnode.Binaries(ctx, *bin, work, logf)
	if err != nil {
		return err
	}
	w, err := newWorld(ctx, work, binDir, tool, strings.Fields(*nodeArgs))
	if err != nil {
		return err
	}
	defer w.close()

	ours := impl{name: "bench-calyx", who: "calyx (calyx-node on embedded etcd)"}
	peer := impl{name: "bench-bridge", who: "bridge+host-local (Flannel's delegate)"}
	floor := impl{name: "bench-lo", who: "loopback (harness floor)"}
	if err := w.writeConfs(ours, peer, floor); err != nil {
		return err
	}
	if err := printEnv(tool, *nodeArgs); err != nil {
		return err
	}
	// Warm up both: the first Calyx ADD claims an IPAM block, the first
	// bridge ADD creates the bridge.
	for _, im := range []impl{ours, peer, floor} {
		if _, err := w.sequential(ctx, im, 2); err != nil {
			return fmt.Errorf("warming up %s: %w", im.name, err)
		}
	}

	rep := newReport(peer.who)
	for r := range rounds {
		order := []impl{ours, peer}
		if r%2 == 1 {
			order = []impl{peer, ours}
		}
		for _, im := range order {
			before, err := w.scrape(ctx)
			if err != nil {
				return err
			}
			seq, err := w.sequential(ctx, im, seqN)
			if err != nil {
				return fmt.Errorf("round %d, %s sequential: %w", r+1, im.name, err)
			}
			after, err := w.scrape(ctx)
			if err != nil {
				return err
			}
			burst, err := w.burst(ctx, im, burstN, burstPar)
			if err != nil {
				return fmt.Errorf("round %d, %s burst: %w", r+1, im.name, err)
			}
			add := rep.AddPeer
			if im == ours {
				add = rep.Add
				d := after.sub(before)
				if d.programCount > 0 {
					rep.Add("netlink_per_add_ms", 1000*d.programSum/d.programCount)
				}
				if d.addCount > 0 && d.readyCount > 0 {
					rep.Add("agent_add_ms", 1000*d.addSum/d.addCount)
					rep.Add("agent_ready_ms", 1000*d.readySum/d.readyCount)
				}
				if d.delCount > 0 {
					rep.Add("agent_del_ms", 1000*d.delSum/d.delCount)
				}
				// DEL answers before calyx-node deletes the veth; the
				// next measurement starts once it has (settle).
				rep.Add("veth_reap_after_seq_del_ms", report.Ms(seq.reap))
				for _, st := range pluginStepFigures {
					if ds := seq.steps[st.step]; len(ds) > 0 {
						rep.Add(st.metric, p50(ds))
					}
				}
			}
			record(add, seq, burst)
			logf("round %d %-12s seq ADD p50 %.1f ms, DEL p50 %.1f ms; burst %.0f ADD/s", r+1, im.name,
				p50(seq.add), p50(seq.del), burst.addRate)
		}
		ipamOurs, ipamPeer, err := w.ipamConfs()
		if err != nil {
			return err
		}
		for _, side := range []struct {
			plugin string
			conf   []byte
			add    func(string, float64)
		}{{"calyx-ipam", ipamOurs, rep.Add}, {"host-local", ipamPeer, rep.AddPeer}} {
			adds, dels, err := w.ipamOnly(ctx, side.plugin, side.conf, seqN)
			if err != nil {
				return fmt.Errorf("round %d, IPAM via CNI: %w", r+1, err)
			}
			side.add("ipam_add_p50_ms", p50(adds))
			side.add("ipam_del_p50_ms", p50(dels))
		}
		fl, err := w.sequential(ctx, floor, seqN)
		if err != nil {
			return fmt.Errorf("round %d, floor: %w", r+1, err)
		}
		rep.Add(floorAdd, p50(fl.add))
		rep.Add(floorDel, p50(fl.del))
	}
	return writeReport(rep, ours, peer)
}

// pluginStepFigures are the calyx plugin's own step times reported, as
// p50s over a round's sequential calls.
var pluginStepFigures = []struct{ metric, step string }{
	{"plugin_add_took_p50_ms", "add took"},
	{"plugin_add_agent_add_p50_ms", "add agent_add"},
	{"plugin_add_host_p50_ms", "add host"},
	{"plugin_add_container_ready_p50_ms", "add container"},
	{"plugin_del_took_p50_ms", "del took"},
	{"plugin_del_agent_del_p50_ms", "del agent_del"},
}

// record adds one implementation's round to the figures.
func record(add func(string, float64), seq seqResult, b burstResult) {
	add("add_p50_ms", p50(seq.add))
	add("add_p99_ms", p99(seq.add))
	add("del_p50_ms", p50(seq.del))
	add("del_p99_ms", p99(seq.del))
	add("burst_add_per_s", b.addRate)
	add("burst_add_p50_ms", p50(b.add))
	add("burst_add_p99_ms", p99(b.add))
	add("burst_cpu_per_add_ms", report.Ms(b.addCPU))
	add("burst_del_per_s", b.delRate)
}

func p50(ds []time.Duration) float64 { return report.Ms(report.Percentile(ds, 0.50)) }
func p99(ds []time.Duration) float64 { return report.Ms(report.Percentile(ds, 0.99)) }

func findCnitool() (string, error) {
	if p, err := exec.LookPath("cnitool"); err == nil {
		return p, nil
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		p := filepath.Join(strings.TrimSpace(string(out)), "bin", "cnitool")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("cnitool not found in PATH or $(go env GOPATH)/bin: go install github.com/containernetworking/cni/cnitool@v1.3.0")
}

// printEnv writes the first line: the environment as JSON.
func printEnv(tool, nodeArgs string) error {
	plugins := "missing"
	if out, err := exec.Command("dpkg-query", "-W", "-f=${Version}", "containernetworking-plugins").Output(); err == nil {
		plugins = "containernetworking-plugins " + string(out)
	}
	return report.WriteEnv(os.Stdout, "cni", map[string]any{
		"cnitool": tool, "peer": plugins, "rounds": rounds,
		"sequential": seqN, "burst": fmt.Sprintf("%d containers, %d at a time", burstN, burstPar),
		"node_args": nodeArgs,
	})
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}
