package main

import "github.com/calyx-net/calyx/bench/report"

// newReport returns B9's report, its metrics in report order.
func newReport() *report.Report {
	atMost := func(limit float64) func(o, _ float64) bool { return func(o, _ float64) bool { return o <= limit } }
	specs := []report.Spec{
		{Metric: "run_p50_ms", Goal: "ratio <= 1.1", Met: func(_, r float64) bool { return r <= 1.1 }, PeerIs: peerIs,
			Note: "docker run --rm --network X busybox true, wall time of the CLI"},
		{Metric: "run_p90_ms", Goal: "-", PeerIs: peerIs},
		{Metric: "run_net_p50_ms", Goal: "-", PeerIs: peerIs,
			Note: "run_p50_ms less the same round's run_none_p50_ms: the network's own share of a run"},
		{Metric: "run_none_p50_ms", Goal: "-",
			Note: "docker run --network none: what every run costs without a network (CLI, API, containerd, runc)"},
		{Metric: "connect_p50_ms", Goal: "-", PeerIs: peerIs, Note: "docker network connect X c, c running"},
		{Metric: "connect_p90_ms", Goal: "-", PeerIs: peerIs},
		{Metric: "disconnect_p50_ms", Goal: "-", PeerIs: peerIs},
		{Metric: "create_endpoint_plus_join_p99_ms", Goal: "<= 50 ms", Met: atMost(50),
			Note: "p99 of CreateEndpoint plus p99 of Join, each estimated from calyx_docker_request_seconds buckets over the round's Calyx runs"},
		{Metric: "join_p50_ms", Goal: "-"},
		{Metric: "join_p99_ms", Goal: "<= 50 ms", Met: atMost(50)},
		{Metric: "create_endpoint_p50_ms", Goal: "-"},
		{Metric: "create_endpoint_p99_ms", Goal: "-"},
		{Metric: "agent_ms_per_run", Goal: "-",
			Note: "calyx-node's time in all Docker plugin requests per Calyx run (IPAM, endpoint create, join, leave, delete, release)"},
	}
	return report.New("docker", specs)
}
