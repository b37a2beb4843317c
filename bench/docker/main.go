// Command docker is benchmark B9 (reference/performance.md): how long
// Docker takes to start a container on a Calyx network, beside Docker's
// built-in bridge driver on the same dockerd in the same run.
//
// Everything runs in one network namespace named bench-<pid>-docker that
// the benchmark creates and removes, standing for a Docker host: a private
// dockerd (Debian's docker.io, test/dockerd: its own mount namespace with
// a tmpfs /run, data under a temporary directory, --bridge=none
// --iptables=false, containers' cgroups under a parent of its own) and a
// real calyx-node in the same network and mount namespaces, serving the
// calyx and calyx-ipam plugins to it (test/hostnode), its embedded etcd on
// the namespace's loopback. Nothing outside the namespaces is changed; the
// daemon, its containers, mounts and cgroups, calyx-node and the
// namespace are removed at the end, after an error or ^C too.
//
// Three networks on that dockerd: bench-calyx (-d calyx --ipam-driver
// calyx-ipam, on an IPPool applied with calyxctl), bench-bridge (Docker's
// own bridge driver and IPAM: a user-defined bridge network; the daemon's
// default bridge is off) and bench-base (a bridge network the connect
// test's container lives on). Before measuring, it checks that a
// container on each of the first two gets an address of the network's
// subnet and pings another. Per round:
//
//   - run: `docker run --rm --network X busybox true`, wall time of the
//     docker CLI, -runs times for each of X = bench-calyx, bench-bridge and
//     none, interleaved (calyx, bridge, none, then rotated by one), so all
//     three meet the same background. A run covers the whole container
//     life: create, IPAM, CreateEndpoint, Join, start, exit, Leave,
//     DeleteEndpoint, address release and removal. none (no network at
//     all) is the cost every run pays, so run_net_p50_ms, a network's p50
//     less the round's none p50, is the network's own share;
//   - connect: `docker network connect X c` then `docker network
//     disconnect X c` on a running container c (on bench-base), -runs
//     times for each of bench-calyx and bench-bridge, alternating.
//
// The calyx-node side comes from its calyx_docker_request_seconds
// histogram, scraped before and after each round's run part (the bridge
// and none runs do not reach calyx-node, so the difference is the Calyx
// runs'): p50 and p99 of NetworkDriver.CreateEndpoint and of
// NetworkDriver.Join (result ok), each estimated from the bucket counts as
// Prometheus's histogram_quantile does (linear within the bucket holding
// the rank; buckets double from 25 µs, so an estimate is within a factor
// of two of the true value). Their sum, create_endpoint_plus_join_p99_ms,
// is the figure B9's 50 ms goal is on: the histograms keep no pairs, so
// the p99 of each request's CreateEndpoint+Join time is bounded by the sum
// of the two p99s rather than measured. agent_ms_per_run is calyx-node's
// time in every Docker request (the histogram's _sum over all methods)
// per Calyx run, to set against run_net_p50_ms.
//
// -rounds rounds (default 3); the report gives medians over the rounds
// and the ratio Calyx/bridge per round (goal: run_p50_ms ratio <= 1.1).
// -only run or -only connect runs one part. Run as root with `make bench
// BENCH=docker`; stdout gets an environment line, a table and one JSON
// line per figure.
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
	"github.com/calyx-net/calyx/test/dockerd"
	"github.com/calyx-net/calyx/test/hostnode"
)

func main() {
	fs := flag.NewFlagSet("docker", flag.ExitOnError)
	var o options
	fs.IntVar(&o.rounds, "rounds", 3, "rounds; figures are medians over them")
	fs.IntVar(&o.runs, "runs", 30, "docker runs (and connects) per network per round")
	fs.StringVar(&o.only, "only", "", "run one part only: run (docker run) or connect (docker network connect); empty: both")
	_ = fs.Parse(os.Args[1:]) // ExitOnError
	if o.only != "" && o.only != "run" && o.only != "connect" {
		fmt.Fprintf(os.Stderr, "bench/docker: -only %q: want run or connect\n", o.only)
		os.Exit(2)
	}
	if o.rounds < 1 || o.runs < 1 {
		fmt.Fprintln(os.Stderr, "bench/docker: -rounds and -runs must be at least 1")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, o)
	if err != nil && ctx.Err() != nil {
		err = fmt.Errorf("interrupted: %w", err)
	}
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/docker:", err)
		os.Exit(1)
	}
}

// options are the benchmark's flags.
type options struct {
	rounds, runs int
	only         string // "", "run" or "connect"
}

func (o options) part(p string) bool { return o.only == "" || o.only == p }

func run(ctx context.Context, o options) error {
	if os.Geteuid() != 0 {
		return errors.New("needs root: it creates a network namespace and runs dockerd")
	}
	work, err := os.MkdirTemp("", "bench-docker-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(work) }()
	binDir := filepath.Join(work, "bin")
	logf("building the binaries")
	if err := hostnode.Build(ctx, binDir); err != nil {
		return err
	}
	w, err := newWorld(ctx, binDir, work)
	if err != nil {
		return err
	}
	defer w.close()
	env, err := w.env(ctx, o)
	if err != nil {
		return err
	}
	if err := report.WriteEnv(os.Stdout, "docker", env); err != nil {
		return err
	}

	rep := newReport()
	for r := range o.rounds {
		if o.part("run") {
			if err := w.runRound(ctx, rep, r, o.runs); err != nil {
				return fmt.Errorf("round %d, docker run: %w", r+1, err)
			}
		}
		if o.part("connect") {
			if err := w.connectRound(ctx, rep, r, o.runs); err != nil {
				return fmt.Errorf("round %d, docker network connect: %w", r+1, err)
			}
		}
	}
	lines := rep.Lines()
	if err := report.WriteTable(os.Stdout, lines); err != nil {
		return err
	}
	fmt.Printf("calyx = %s; peer = %s\n", oursIs, peerIs)
	return report.WriteJSON(os.Stdout, lines...)
}

// env is the environment line's settings: the run's shape and the
// versions of dockerd, its components and the client.
func (w *world) env(ctx context.Context, o options) (map[string]any, error) {
	server, err := w.d.Docker(ctx, "version", "--format",
		"{{.Server.Version}} ({{range $i, $c := .Server.Components}}{{if $i}}, {{end}}{{$c.Name}} {{$c.Version}}{{end}})")
	if err != nil {
		return nil, err
	}
	client, err := w.d.Docker(ctx, "version", "--format", "{{.Client.Version}} (API {{.Client.APIVersion}})")
	if err != nil {
		return nil, err
	}
	info, err := w.d.Docker(ctx, "info", "--format", "storage {{.Driver}}, cgroup {{.CgroupDriver}} v{{.CgroupVersion}}, runtime {{.DefaultRuntime}}")
	if err != nil {
		return nil, err
	}
	flags, err := w.dockerdFlags()
	if err != nil {
		return nil, err
	}
	busybox := "missing"
	if out, err := exec.CommandContext(ctx, "/bin/busybox").Output(); err == nil || len(out) > 0 {
		busybox = strings.SplitN(strings.TrimSpace(string(out)), "\n", 2)[0]
	}
	load, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return nil, err
	}
	parts := "run, connect"
	if o.only != "" {
		parts = o.only
	}
	return map[string]any{
		"rounds": o.rounds, "runs": o.runs, "parts": parts, "loadavg": strings.Join(strings.Fields(string(load))[:3], " "),
		"dockerd": strings.TrimSpace(server), "docker_cli": strings.TrimSpace(client), "docker_info": strings.TrimSpace(info),
		"dockerd_flags": flags, "image": dockerd.BusyboxImage + " from " + busybox,
	}, nil
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}
