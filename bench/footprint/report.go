package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime/debug"
	"slices"
	"strings"

	"github.com/calyx-net/calyx/bench/report"
)

// noPeer says why the figures have no peer.
const noPeer = "no peer: no other agent runs in this harness; Cilium's scalability report (0.15% CPU, +10.5 KiB RSS per pod) is the published anchor"

// newReport returns B10's report, its metrics in report order: the goals
// first, then the same figures at 0 endpoints, then programming. With an
// external etcd (embedded false) it also has etcd's own figures.
func newReport(embedded bool) *report.Report {
	atMost := func(limit float64) func(o, _ float64) bool { return func(o, _ float64) bool { return o <= limit } }
	at := "at N endpoints, idle"
	base := "0 endpoints, with the remote routes and the policies, idle"
	etcd := "external etcd not included"
	if embedded {
		etcd = "embedded etcd included"
	}
	specs := []report.Spec{
		{Metric: "idle_cpu_pct", Goal: "<= 1 % of a core", Met: atMost(1), Note: at + "; utime+stime over the window, " + etcd},
		{Metric: "rss_mb", Goal: "<= 100 MB", Met: atMost(100), Note: at + "; median VmRSS over the window, " + etcd},
		{Metric: "per_endpoint_kib", Goal: "<= 10 KiB", Met: atMost(10), Note: "(rss at N endpoints - rss at 0) / N"},
		{Metric: "per_endpoint_heap_kib", Goal: "-", Note: "the same for the live Go heap (go_heap_live_mb)"},
	}
	for _, st := range []struct{ prefix, note string }{{"", at}, {"baseline_", base}} {
		for _, m := range []struct{ metric, note string }{
			{"idle_cpu_pct", ""},
			{"rss_mb", ""},
			{"rss_max_mb", "; highest VmRSS sampled in the window"},
			{"pss_mb", ""},
			{"rss_anon_mb", "; anonymous memory: Go heap, stacks"},
			{"rss_file_mb", "; mapped files: the binary (and with -embedded etcd's bbolt database)"},
			{"go_heap_inuse_mb", ""},
			{"go_heap_unreleased_mb", "; free heap the Go runtime has not returned to the OS"},
			{"go_heap_live_mb", "; what survived the last collection: its heap goal / (1 + GOGC/100)"},
			{"goroutines", ""},
			{"threads", ""},
			{"etcd_idle_cpu_pct", "; the external etcd server's, for information"},
			{"etcd_rss_mb", "; the external etcd server's median VmRSS, for information"},
		} {
			if embedded && strings.HasPrefix(m.metric, "etcd_") {
				continue
			}
			if st.prefix == "" && slices.ContainsFunc(specs, func(s report.Spec) bool { return s.Metric == m.metric }) {
				continue
			}
			specs = append(specs, report.Spec{Metric: st.prefix + m.metric, Goal: "-", Note: st.note + m.note})
		}
	}
	specs = append(specs,
		report.Spec{Metric: "empty_rss_mb", Goal: "-", Note: "just started, before any resource"},
	)
	if !embedded {
		specs = append(specs, report.Spec{Metric: "empty_etcd_rss_mb", Goal: "-", Note: "the external etcd server's, when calyx-node has just started"})
	}
	specs = append(specs,
		report.Spec{Metric: "programming_peak_rss_mb", Goal: "-", Note: "highest VmRSS sampled every 100 ms while the endpoints were attached"},
		report.Spec{Metric: "programming_cpu_pct", Goal: "-", Note: "calyx-node's CPU while the endpoints were attached, % of one core"},
		report.Spec{Metric: "programming_s", Goal: "-", Note: "from the first ADD until calyx-node reports every endpoint and the kernel routes to each"},
		report.Spec{Metric: "programming_add_p50_ms", Goal: "-", Note: "the calyx plugin's ADD wall time, exec included"},
	)
	return report.New("footprint", specs)
}

// writeReport prints the table, the peer note and one JSON line per figure.
func writeReport(rep *report.Report) error {
	lines := rep.Lines()
	if err := report.WriteTable(os.Stdout, lines); err != nil {
		return err
	}
	fmt.Println(noPeer)
	return report.WriteJSON(os.Stdout, lines...)
}

// printEnv writes the first line: the environment and the settings.
func printEnv(ctx context.Context, s settings) error {
	commit := "unknown"
	if out, err := exec.CommandContext(ctx, "git", "describe", "--always", "--dirty").Output(); err == nil {
		commit = strings.TrimSpace(string(out))
	}
	etcd := "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "go.etcd.io/etcd/server/v3" {
				etcd = d.Version
			}
		}
	}
	etcd += " (embedded in calyx-node)"
	mode := "embedded: calyx-node runs its own etcd in-process, counted in its figures"
	if !s.embedded {
		etcd = "unknown"
		if out, err := exec.CommandContext(ctx, "etcd", "--version").Output(); err == nil {
			if f := strings.Fields(strings.SplitN(string(out), "\n", 2)[0]); len(f) > 0 {
				etcd = f[len(f)-1]
			}
		}
		etcd += " (external: one member, TLS with client certificates, in the host namespace)"
		mode = "external: calyx-node against an etcd server of its own, as in production; etcd's figures apart"
	}
	bin := "built from this tree"
	if s.binDir != "" {
		bin = s.binDir
	}
	var goEnv []string // the Go runtime settings calyx-node inherits (test/hostnode)
	for _, k := range []string{"GOGC", "GOMEMLIMIT", "GOMAXPROCS", "GODEBUG"} {
		if v, ok := os.LookupEnv(k); ok {
			goEnv = append(goEnv, k+"="+v)
		}
	}
	return report.WriteEnv(os.Stdout, "footprint", map[string]any{
		"calyx_node_go_env": strings.Join(goEnv, " "), "binaries": bin, "commit": commit, "etcd": etcd, "etcd_mode": mode, "peer": "none",
		"endpoints": s.endpoints, "remote_routes": s.remoteRoutes, "remote_nodes": s.remoteNodes,
		"policies": s.policies, "parallel": s.parallel, "window": s.window.String(), "settle": s.settle.String(),
		"calyx_node": strings.TrimSpace("--bgp=false --log-level warn "+s.nodeArgs) + "; native routes (vxlanMode Never)",
		"load1":      load1(),
	})
}

// load1 is the one-minute load average, or "" where there is none.
func load1() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return ""
	}
	return f[0]
}
