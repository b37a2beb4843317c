package main

import (
	"time"

	"github.com/calyx-net/calyx/bench/report"
)

// What each B7 figure's two sides are, for the report.
const (
	newRouteIs = "BIRD: a blackhole /32 added to b1's kernel, learned by BIRD's kernel protocol (netlink event), " +
		"iBGP to BIRD on b2, installed in b2's kernel"
	newRouteNote = "calyx: IPAM claims a new /32 block for h1 in etcd, h1's calyx-node sees it (watch, calc), " +
		"its GoBGP speaker advertises it, h2's calyx-node installs it; the datastore write is part of Calyx's path and not of BIRD's"
	speakerIs = "BIRD: a static protocol enabled/disabled over b1's control socket, iBGP to BIRD on b2, " +
		"installed in/removed from b2's kernel"
	speakerNote = "calyx: the bench speaker (internal/bgp in a process on h1) handed the path (SetPaths), " +
		"iBGP to h2's calyx-node, installed/removed by its reconcile loop"
)

// b7Legend is printed under B7's table.
var b7Legend = []string{
	"new_route: " + newRouteNote + "; " + newRouteIs,
	"new_route_origin: calyx = the IPAM claim until AutoAssign returns; bird = the netlink route add" +
		" (the block is in etcd before AutoAssign returns, so Calyx's origin can exceed its whole path: it is not a prefix of it)",
	"route_*, 10k_*: " + speakerNote + "; " + speakerIs,
}

// newB7Report returns B7's report with every metric's spec, in report
// order.
func newB7Report() *report.Report {
	atMost := func(ms float64) func(ours, _ float64) bool { return func(ours, _ float64) bool { return ours <= ms } }
	p99 := func(metric, is, note string) report.Spec {
		return report.Spec{Metric: metric, Goal: "<= 20 ms", Met: atMost(20), PeerIs: is, Note: note}
	}
	info := func(metric, is, note string) report.Spec {
		return report.Spec{Metric: metric, Goal: "info", PeerIs: is, Note: note}
	}
	return report.New("routing", []report.Spec{
		info("bgp/new_route_p50_ms", newRouteIs, newRouteNote),
		p99("bgp/new_route_p99_ms", newRouteIs, newRouteNote),
		info("bgp/new_route_origin_p50_ms", "BIRD: the netlink route add", "calyx: the IPAM claim, until AutoAssign returns (which can be after h2 has the route)"),
		info("bgp/route_add_p50_ms", speakerIs, speakerNote),
		p99("bgp/route_add_p99_ms", speakerIs, speakerNote),
		info("bgp/route_withdraw_p50_ms", speakerIs, speakerNote),
		p99("bgp/route_withdraw_p99_ms", speakerIs, speakerNote),
		{Metric: "bgp/10k_add_ms", Goal: "ratio <= 1.5", Met: func(_, r float64) bool { return r <= 1.5 }, PeerIs: speakerIs,
			Note: "until the last of 10,000 /32s is in the receiver's kernel; " + speakerNote},
		info("bgp/10k_first_ms", speakerIs, "until the first of the 10,000 is in the receiver's kernel"),
		info("bgp/10k_sender_call_ms", speakerIs, "until the sender's call returned: calyx SetPaths (GoBGP AddPath of 10,000 paths); BIRD's enable answered"),
		info("bgp/10k_withdraw_ms", speakerIs, "until the last of the 10,000 is gone"),
	})
}

// recordB7 adds one round: per figure, the round's percentile of each
// side's samples.
func recordB7(rep *report.Report, calyx, bird *b7Sample) {
	add := func(metric string, c, b float64) {
		rep.Add(metric, c)
		rep.AddPeer(metric, b)
	}
	for _, f := range []struct {
		metric string
		c, b   []time.Duration
		q      float64
	}{
		{"bgp/new_route_p50_ms", calyx.newRoute, bird.newRoute, 0.5},
		{"bgp/new_route_p99_ms", calyx.newRoute, bird.newRoute, 0.99},
		{"bgp/new_route_origin_p50_ms", calyx.origin, bird.origin, 0.5},
		{"bgp/route_add_p50_ms", calyx.add, bird.add, 0.5},
		{"bgp/route_add_p99_ms", calyx.add, bird.add, 0.99},
		{"bgp/route_withdraw_p50_ms", calyx.withdraw, bird.withdraw, 0.5},
		{"bgp/route_withdraw_p99_ms", calyx.withdraw, bird.withdraw, 0.99},
	} {
		add(f.metric, pct(f.c, f.q), pct(f.b, f.q))
	}
	add("bgp/10k_add_ms", report.Ms(calyx.bulkAdd), report.Ms(bird.bulkAdd))
	add("bgp/10k_first_ms", report.Ms(calyx.bulkFirst), report.Ms(bird.bulkFirst))
	add("bgp/10k_sender_call_ms", report.Ms(calyx.bulkCall), report.Ms(bird.bulkCall))
	add("bgp/10k_withdraw_ms", report.Ms(calyx.bulkWithdraw), report.Ms(bird.bulkWithdraw))
}
