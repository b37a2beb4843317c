package main

import (
	"fmt"

	"github.com/calyx-net/calyx/bench/report"
)

// Who the peers are, for the report.
const (
	refIs    = "the same topology programmed by a script (ip/bridge/sysctl), no agent, no nftables"
	refCTIs  = "the reference plus conntrack and NAT hooks (an nftables table accepting established flows in forward, empty NAT chains)"
	directIs = "one veth pair between two namespaces (physical limit)"
)

// directGoal is Calyx's single-stream TCP over direct veth, per mode
// (reference/performance.md B8).
var directGoal = map[mode]float64{routed: 0.80, vxlan: 0.65}

// figures are a sample's values by metric suffix, in report order.
func figures(s sample) []struct {
	name string
	v    float64
} {
	return []struct {
		name string
		v    float64
	}{{"tcp1_gbps", s.tcp1}, {"tcp4_gbps", s.tcp4}, {"udp64_pps", s.pps}, {"ping_rtt_ms", s.rttMs}}
}

// newReport returns B8's report with every metric's spec, in report
// order: per mode, Calyx against the reference, against the reference
// with conntrack, against direct veth, then the reference against direct
// veth (the kernel's own cost of the mode).
func newReport() *report.Report {
	atLeast := func(l float64) func(_, r float64) bool { return func(_, r float64) bool { return r >= l } }
	var specs []report.Spec
	for _, m := range modes {
		for _, f := range figures(sample{}) {
			s := report.Spec{Metric: string(m) + "/" + f.name, Goal: "ratio >= 0.97", Met: atLeast(0.97), PeerIs: refIs}
			if f.name == "ping_rtt_ms" {
				s.Goal, s.Met = "info", nil
			}
			specs = append(specs, s)
		}
		for _, f := range figures(sample{}) {
			s := report.Spec{Metric: string(m) + "/" + f.name + "_vs_reference_ct", Goal: "info", PeerIs: refCTIs}
			if f.name == "udp64_pps" {
				s.Note = "what is left of the gap to the reference is Calyx's policy chains and calyx-node itself"
			}
			specs = append(specs, s)
		}
		for _, f := range figures(sample{}) {
			s := report.Spec{Metric: string(m) + "/" + f.name + "_vs_direct", Goal: "info", PeerIs: directIs}
			if f.name == "tcp1_gbps" {
				g := directGoal[m]
				s.Goal, s.Met = fmt.Sprintf("ratio >= %.2f", g), atLeast(g)
			}
			specs = append(specs, s)
		}
		specs = append(specs, report.Spec{Metric: string(m) + "/reference_tcp1_gbps_vs_direct", Goal: "info", PeerIs: directIs,
			Note: "ours is the reference here: the kernel's own cost of the mode, the ceiling of Calyx's ratio to direct veth"})
	}
	return report.New("routing", specs)
}

// record adds one mode's round: Calyx against the reference, the
// reference with conntrack and direct veth, and the reference against
// direct veth.
func record(rep *report.Report, m mode, calyx, ref, refCT, direct sample) {
	c, r, rc, d := figures(calyx), figures(ref), figures(refCT), figures(direct)
	for i := range c {
		rep.Add(string(m)+"/"+c[i].name, c[i].v)
		rep.AddPeer(string(m)+"/"+c[i].name, r[i].v)
	}
	for i := range c {
		rep.Add(string(m)+"/"+c[i].name+"_vs_reference_ct", c[i].v)
		rep.AddPeer(string(m)+"/"+c[i].name+"_vs_reference_ct", rc[i].v)
	}
	for i := range c {
		rep.Add(string(m)+"/"+c[i].name+"_vs_direct", c[i].v)
		rep.AddPeer(string(m)+"/"+c[i].name+"_vs_direct", d[i].v)
	}
	rep.Add(string(m)+"/reference_tcp1_gbps_vs_direct", ref.tcp1)
	rep.AddPeer(string(m)+"/reference_tcp1_gbps_vs_direct", direct.tcp1)
}
