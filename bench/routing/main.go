// Command routing runs benchmarks B7 and B8 (reference/performance.md),
// each side by side with its peer in the same run, rounds interleaved:
//
//   - B7, BGP (b7*.go): how fast a route reaches the peer's kernel,
//     Calyx's speaker (GoBGP in calyx-node) against BIRD 2 in the same
//     two-host topology: a single new route (p50, p99), a single route
//     added and withdrawn, and 10,000 routes at once;
//   - B8, pod-to-pod throughput (below).
//
// `-only b7` or `-only b8` runs one of them (make bench BENCH=routing
// BENCHFLAGS="-only b7"); by default both run, B7 first.
//
// B8 measures pod-to-pod throughput between containers on two hosts,
// Calyx against a hand-built kernel reference of the same topology, in
// routed and VXLAN mode, and against one direct veth pair (the physical
// limit).
//
// Everything runs in network namespaces named bench-<pid>-* that the
// benchmark creates and removes; nothing is sent or changed outside them.
// Per mode two "hosts" are joined by a veth underlay (192.0.2.11/24 and
// 192.0.2.12/24, MTU 1500), each with one container:
//
//   - calyx: calyx-node on each host (h1's with the embedded etcd on its
//     underlay address, h2's joining it with h1's client certificate), an
//     IPPool applied with calyxctl (vxlanMode Never: native routes on the
//     one subnet; Always: VXLAN), the containers attached by the real
//     calyx CNI plugin, exec'd as Mesos does, with a network config that
//     sets no MTU, so calyx-node derives it (underlay − 50 under VXLAN);
//   - reference: the same hosts, addresses, MTUs, routes, neighbour and
//     FDB entries and VXLAN device, programmed by a script of ip, bridge
//     and sysctl commands (reference.go), with no agent and no nftables.
//     Calyx's hosts also carry Calyx's nftables table (policy: conntrack,
//     the forward chain's dispatch maps and NAT hooks): that cost is part
//     of Calyx's figures, not the reference's;
//   - reference_ct: the reference plus a table with only what any
//     stateful ruleset costs (conntrack on in forward, empty NAT chains),
//     so that the gap left is Calyx's policy chains and calyx-node;
//
// plus direct: two namespaces joined by one veth pair, MTU 1500.
//
// Per round, the seven paths (Calyx, reference and reference_ct in both
// modes, direct) are measured in an order rotated every round: iperf3 TCP
// with one and four streams (Gbit/s received), iperf3 UDP 64-byte
// datagrams as fast as the client sends (datagrams/s received) and ping
// (median round trip of pingCount echoes). The report gives medians over
// the rounds: Calyx over the reference (goal ≥ 0.97), over reference_ct
// (info), over direct veth (single-stream TCP goal ≥ 0.80 routed, ≥ 0.65
// VXLAN) and the reference over direct veth (the kernel's own ceiling
// for the mode).
//
// Run as root with `make bench BENCH=routing`; stdout gets, per part, an
// environment line, a table and one JSON line per figure.
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
	rounds       = 3
	testTime     = 3 * time.Second // per iperf3 test
	pingCount    = 50
	pingInterval = "0.01" // seconds between echoes
)

func main() {
	if os.Getenv(speakerEnv) == "1" {
		os.Exit(speakerMain()) // the bench speaker B7 starts in h1 (b7speaker.go)
	}
	fs := flag.NewFlagSet("routing", flag.ExitOnError)
	only := fs.String("only", "", "run one part only: b7 (BGP) or b8 (throughput); empty: both")
	_ = fs.Parse(os.Args[1:]) // ExitOnError
	if *only != "" && *only != "b7" && *only != "b8" {
		fmt.Fprintf(os.Stderr, "bench/routing: -only %q: want b7 or b8\n", *only)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, *only)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/routing:", err)
		os.Exit(1)
	}
}

// path is one of the paths measured every round.
type path struct {
	key  string // "calyx/routed", "reference/vxlan", "reference_ct/vxlan", "direct"
	topo *topology
}

func run(ctx context.Context, only string) error {
	if os.Geteuid() != 0 {
		return errors.New("needs root: it creates network namespaces")
	}
	var tools []string
	if only != "b8" {
		tools = append(tools, "ip", "bird")
	}
	if only != "b7" {
		tools = append(tools, "ip", "bridge", "sysctl", "ss", "ping", "iperf3")
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found (make deps installs bird2 and iperf3): %w", tool, err)
		}
	}
	work, err := os.MkdirTemp("", "bench-routing-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(work) }()
	binDir := filepath.Join(work, "bin")
	logf("building the binaries")
	if err := hostnode.Build(ctx, binDir); err != nil {
		return err
	}
	if only != "b8" {
		if err := runB7(ctx, binDir, work); err != nil {
			return err
		}
	}
	if only != "b7" {
		return runB8(ctx, binDir, work)
	}
	return nil
}

// runB8 builds B8's topologies and measures them.
func runB8(ctx context.Context, binDir, work string) error {
	var paths []path
	defer func() {
		for i := len(paths) - 1; i >= 0; i-- {
			paths[i].topo.close()
		}
	}()
	for _, m := range modes {
		logf("building %s: Calyx (two calyx-nodes, containers attached by the calyx plugin)", m)
		c, err := newCalyx(ctx, m, binDir, work)
		if err != nil {
			return fmt.Errorf("%s, calyx: %w", m, err)
		}
		paths = append(paths, path{"calyx/" + string(m), c})
		logf("building %s: the reference script, without and with conntrack", m)
		r, err := newReference(ctx, m, false)
		if err != nil {
			return fmt.Errorf("%s, reference: %w", m, err)
		}
		paths = append(paths, path{"reference/" + string(m), r})
		rc, err := newReference(ctx, m, true)
		if err != nil {
			return fmt.Errorf("%s, reference with conntrack: %w", m, err)
		}
		paths = append(paths, path{"reference_ct/" + string(m), rc})
	}
	d, err := newDirect(ctx)
	if err != nil {
		return fmt.Errorf("direct veth: %w", err)
	}
	paths = append(paths, path{"direct", d})
	env, err := checkSame(ctx, paths)
	if err != nil {
		return err
	}
	if err := report.WriteEnv(os.Stdout, "routing", env); err != nil {
		return err
	}

	rep := newReport()
	for r := range rounds {
		got := map[string]sample{}
		for i := range paths {
			p := paths[(i+r)%len(paths)]
			s, err := measure(ctx, p.topo.pair)
			if err != nil {
				return fmt.Errorf("round %d, %s: %w", r+1, p.key, err)
			}
			got[p.key] = s
			logf("round %d %-19s tcp1 %6.2f Gbit/s, tcp4 %6.2f Gbit/s, udp64 %8.0f pps, rtt %.3f ms",
				r+1, p.key, s.tcp1, s.tcp4, s.pps, s.rttMs)
		}
		for _, m := range modes {
			record(rep, m, got["calyx/"+string(m)], got["reference/"+string(m)], got["reference_ct/"+string(m)], got["direct"])
		}
	}
	lines := rep.Lines()
	if err := report.WriteTable(os.Stdout, lines); err != nil {
		return err
	}
	fmt.Printf("calyx = %s; reference = %s; reference_ct = %s; direct = %s\n", paths[0].topo.who, refIs, refCTIs, directIs)
	return report.WriteJSON(os.Stdout, lines...)
}

// checkSame checks what must be equal between Calyx and the reference
// before anything is measured: the container MTU (Calyx's derived one
// must be the reference's: the underlay's, less 50 under VXLAN) and the
// VXLAN device's settings; it returns the environment line's settings.
func checkSame(ctx context.Context, paths []path) (map[string]any, error) {
	byKey := map[string]*topology{}
	for _, p := range paths {
		byKey[p.key] = p.topo
	}
	mtus := map[string]int{}
	for _, p := range paths {
		mtus[p.key] = p.topo.mtu
	}
	for _, m := range modes {
		c, r := byKey["calyx/"+string(m)], byKey["reference/"+string(m)]
		if c.mtu != refMTU(m) {
			return nil, fmt.Errorf("%s: Calyx gave the container MTU %d, want %d (the underlay's %d%s)", m, c.mtu, refMTU(m),
				underlayMTU, map[bool]string{true: " less VXLAN's 50", false: ""}[m == vxlan])
		}
		if m != vxlan {
			continue
		}
		var details [2]string
		for i, t := range []*topology{c, r} {
			out, err := t.spaces[0].output(ctx, "ip", "-d", "link", "show", "dev", vxlanDev)
			if err != nil {
				return nil, err
			}
			if details[i] = vxlanDetails(out); details[i] == "" {
				return nil, fmt.Errorf("no VXLAN details in %s's %q", t.spaces[0].name, firstLines(out, 4))
			}
		}
		if details[0] != details[1] {
			return nil, fmt.Errorf("the reference's %s differs from Calyx's:\ncalyx:     %s\nreference: %s", vxlanDev, details[0], details[1])
		}
	}
	return map[string]any{
		"part": "b8", "rounds": rounds, "test_seconds": testTime.Seconds(), "ping": fmt.Sprintf("%d echoes, %s s apart", pingCount, pingInterval),
		"iperf3": toolVersion("iperf3", "--version"), "underlay_mtu": underlayMTU, "container_mtu": mtus,
		"nftables": "Calyx's hosts carry Calyx's nftables table (conntrack, policy dispatch, NAT hooks); reference_ct's carry conntrack and NAT hooks only; reference and direct none",
	}, nil
}

// vxlanDetails is the VXLAN line of `ip -d link show`: VNI, local
// address, ports, learning, checksums, TTL.
func vxlanDetails(ipLink string) string {
	for _, l := range strings.Split(ipLink, "\n") {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, "vxlan ") {
			return l
		}
	}
	return ""
}

func toolVersion(name string, args ...string) string {
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		return "missing"
	}
	return strings.SplitN(strings.TrimSpace(string(out)), "\n", 2)[0]
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}
