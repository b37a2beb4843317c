package main

import (
	"github.com/calyx-net/calyx/bench/report"
)

const (
	b4Metric   = "b4/udp64_pps_10k_selected"
	b4CtMetric = "b4/udp64_pps_vs_conntrack_only"
)

// newReport returns the report with every metric's spec, in report order:
// per scale, full programming and each change kind's p50 and p99 against
// each peer, calc's own times; then the flatness of the incremental p99
// with size, and B4.
func newReport() *report.Report {
	ratioAtMost := func(l float64) func(_, r float64) bool { return func(_, r float64) bool { return r <= l } }
	oursAtMost := func(l float64) func(o, _ float64) bool { return func(o, _ float64) bool { return o <= l } }
	var specs []report.Spec
	for _, sc := range scales {
		for _, p := range peers() {
			s := report.Spec{Metric: sc.name + "/full_ms/" + p.name, Goal: "-", PeerIs: p.who}
			if sc.name == "large" {
				switch p.name {
				case "iptables_nft":
					s.Goal, s.Met = "ratio <= 0.5", ratioAtMost(0.5)
				case "iptables_legacy":
					s.Goal, s.Met = "ratio <= 1.0", ratioAtMost(1.0)
				}
			}
			specs = append(specs, s)
		}
		for _, k := range changeKinds {
			for _, p := range peers() {
				specs = append(specs,
					report.Spec{Metric: sc.name + "/" + k + "_p50_ms/" + p.name, Goal: "-", PeerIs: p.who},
					report.Spec{Metric: sc.name + "/" + k + "_p99_ms/" + p.name, Goal: "<= 5 ms", Met: oursAtMost(5), PeerIs: p.who})
			}
		}
		specs = append(specs,
			report.Spec{Metric: sc.name + "/calc_replace_ms", Goal: "info", Note: "calc.Replace of every resource, not part of full_ms"},
			report.Spec{Metric: sc.name + "/calc_update_p99_ms", Goal: "info", Note: "calc.Update + TakeDelta per change, not part of the change figures"})
	}
	for _, k := range changeKinds {
		specs = append(specs, report.Spec{Metric: "flat/" + k + "_p99_large_over_small", Goal: "<= 1.2", Met: oursAtMost(1.2),
			Note: "Calyx's incremental p99 at large over small, per round"})
	}
	specs = append(specs, report.Spec{Metric: b4Metric, Goal: "ratio >= 0.9", Met: func(_, r float64) bool { return r >= 0.9 },
		PeerIs: "the same path without a ruleset", Note: "iperf3 -u -l 64 received datagrams/s; the ruleset accepts established flows before policy"},
		report.Spec{Metric: b4CtMetric, Goal: "info", PeerIs: "the same path with only a ct state established,related accept table",
			Note: "the ratio is the cost of Calyx's policy beyond conntrack"})
	specs = append(specs, b5Specs()...)
	return report.New("policy", specs)
}

// record adds one scale's round: every peer against Calyx. Without a
// result of Calyx (it failed), only the peers' figures.
func record(rep *report.Report, scale string, res map[string]implResult) {
	o, haveOurs := res[oursName]
	for _, p := range peers() {
		pr := res[p.name]
		add := func(metric string, ours, peer float64) {
			if haveOurs {
				rep.Add(metric, ours)
			}
			rep.AddPeer(metric, peer)
		}
		add(scale+"/full_ms/"+p.name, report.Ms(o.full), report.Ms(pr.full))
		for _, k := range changeKinds {
			add(scale+"/"+k+"_p50_ms/"+p.name, report.Ms(report.Percentile(o.changes[k], 0.5)), report.Ms(report.Percentile(pr.changes[k], 0.5)))
			add(scale+"/"+k+"_p99_ms/"+p.name, report.Ms(report.Percentile(o.changes[k], 0.99)), report.Ms(report.Percentile(pr.changes[k], 0.99)))
		}
	}
}

// recordFlat adds, per change kind and round, Calyx's p99 at the largest
// scale over its p99 at the smallest.
func recordFlat(rep *report.Report) {
	first, last := scales[0].name, scales[len(scales)-1].name
	p := peers()[0].name
	for _, k := range changeKinds {
		small := rep.Figure(first + "/" + k + "_p99_ms/" + p)
		large := rep.Figure(last + "/" + k + "_p99_ms/" + p)
		if small == nil || large == nil {
			continue
		}
		for i := range min(len(small.Ours), len(large.Ours)) {
			if small.Ours[i] > 0 {
				rep.Add("flat/"+k+"_p99_large_over_small", large.Ours[i]/small.Ours[i])
			}
		}
	}
}
