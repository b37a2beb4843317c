package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/calyx-net/calyx/bench/report"
)

// Metrics of the harness floor: loopback ADD and DEL p50 per round, ms.
const (
	floorAdd = "harness_floor_add_p50_ms"
	floorDel = "harness_floor_del_p50_ms" // only subtracted from del_p50_ms; not printed
)

// newReport returns B1's report, its metrics in report order; peerIs says
// what the peer is.
func newReport(peerIs string) *report.Report {
	ratioAtMost := func(limit float64) func(_, r float64) bool { return func(_, r float64) bool { return r <= limit } }
	specs := []report.Spec{
		{Metric: "add_p50_ms", Goal: "ratio <= 0.85", Met: ratioAtMost(0.85)},
		{Metric: "add_p99_ms", Goal: "-"},
		{Metric: "del_p50_ms", Goal: "ratio <= 0.85", Met: ratioAtMost(0.85)},
		{Metric: "del_p99_ms", Goal: "-"},
		{Metric: "burst_add_per_s", Goal: "ratio >= 1.5", Met: func(_, r float64) bool { return r >= 1.5 }},
		{Metric: "burst_add_p50_ms", Goal: "-"},
		{Metric: "burst_add_p99_ms", Goal: "-"},
		{Metric: "burst_cpu_per_add_ms", Goal: "-", Note: "the machine's busy CPU time during the burst's ADDs (/proc/stat, every process), per ADD: the CPUs are saturated, so this bounds the rate"},
		{Metric: "burst_del_per_s", Goal: "-"},
		{Metric: "ipam_add_p50_ms", Goal: "ratio <= 1.5", Met: ratioAtMost(1.5), Note: "calyx-ipam vs host-local, exec'd alone as bridge does (B2 via CNI)"},
		{Metric: "ipam_del_p50_ms", Goal: "-"},
		{Metric: "netlink_per_add_ms", Goal: "<= 1 ms", Met: func(o, _ float64) bool { return o <= 1 }},
		{Metric: "agent_add_ms", Goal: "-"},
		{Metric: "agent_ready_ms", Goal: "-"},
		{Metric: "agent_del_ms", Goal: "-"},
		{Metric: "plugin_add_took_p50_ms", Goal: "-", Note: "the calyx plugin's own time in an ADD, from its log (the rest of add_p50_ms is exec and cnitool)"},
		{Metric: "plugin_add_agent_add_p50_ms", Goal: "-", Note: "ADD request, with the veth created (host end up) meanwhile"},
		{Metric: "plugin_add_host_p50_ms", Goal: "-", Note: "host end renamed or MTU set, only when calyx-node answered other than the plugin created"},
		{Metric: "plugin_add_container_ready_p50_ms", Goal: "-", Note: "container side set up while READY waits for calyx-node's host side"},
		{Metric: "plugin_del_took_p50_ms", Goal: "-"},
		{Metric: "plugin_del_agent_del_p50_ms", Goal: "-"},
		{Metric: "veth_reap_after_seq_del_ms", Goal: "-", Note: "from the last of 100 sequential DELs until calyx-node had deleted every veth; the next measurement waits for it"},
		{Metric: floorAdd, Goal: "-", Note: "cnitool + loopback plugin: the cost every figure above includes"},
	}
	for i := range specs {
		specs[i].PeerIs = peerIs
		if strings.HasPrefix(specs[i].Metric, "ipam_") {
			specs[i].PeerIs = "host-local, exec'd alone"
		}
	}
	return report.New("cni", specs)
}

// writeReport prints a table, then one JSON line per figure (the last
// lines): the figures, the harness floor, and ADD/DEL p50 with the floor
// subtracted (cnitool's own exec and libcni work; reference/performance.md
// §5).
func writeReport(rep *report.Report, ours, peer impl) error {
	var lines []report.Line
	for _, l := range rep.Lines() {
		if l.Metric != floorDel {
			lines = append(lines, l)
		}
	}
	for _, sub := range []struct{ metric, from, floor string }{
		{"add_p50_minus_floor_ms", "add_p50_ms", floorAdd},
		{"del_p50_minus_floor_ms", "del_p50_ms", floorDel},
	} {
		fg, fl := rep.Figure(sub.from), rep.Figure(sub.floor)
		if fg == nil || fl == nil || len(fg.Ours) == 0 || len(fg.Peer) == 0 {
			continue
		}
		floor := report.Median(fl.Ours)
		o, p := report.Median(fg.Ours)-floor, report.Median(fg.Peer)-floor
		l := report.Line{Bench: "cni", Metric: sub.metric, Ours: report.Ptr(report.Round3(o)),
			Peer: report.Ptr(report.Round3(p)), Goal: "-", PeerIs: peer.who}
		if p > 0 {
			l.Ratio = report.Ptr(report.Round3(o / p))
		}
		lines = append(lines, l)
	}
	if err := report.WriteTable(os.Stdout, lines); err != nil {
		return err
	}
	fmt.Printf("calyx = %s; peer = %s\n", ours.who, peer.who)
	return report.WriteJSON(os.Stdout, lines...)
}
