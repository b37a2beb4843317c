package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/calyx-net/calyx/bench/report"
	"github.com/calyx-net/calyx/test/dockerd"
)

// The calyx-node requests the Calyx figures are on.
const (
	methodCreateEndpoint = "NetworkDriver.CreateEndpoint"
	methodJoin           = "NetworkDriver.Join"
)

// timeDocker runs the docker CLI against the benchmark's dockerd and
// returns its wall time.
func (w *world) timeDocker(ctx context.Context, args ...string) (time.Duration, error) {
	start := time.Now()
	_, err := w.d.Docker(ctx, args...)
	return time.Since(start), err
}

// runRound is round r's run part: n `docker run --rm` on each of the
// Calyx network, the bridge network and none, interleaved, with
// calyx-node's request histogram scraped before and after.
func (w *world) runRound(ctx context.Context, rep *report.Report, r, n int) error {
	nets := []string{oursNet, peerNet, noneNet}
	before, err := w.scrape(ctx)
	if err != nil {
		return err
	}
	times := map[string][]time.Duration{}
	for i := range n {
		for j := range nets {
			net := nets[(i+j)%len(nets)]
			d, err := w.timeDocker(ctx, "run", "--rm", "--network", net, dockerd.BusyboxImage, "true")
			if err != nil {
				return err
			}
			times[net] = append(times[net], d)
		}
	}
	after, err := w.scrape(ctx)
	if err != nil {
		return err
	}
	delta := after.sub(before)

	ours, peer, none := times[oursNet], times[peerNet], times[noneNet]
	rep.Add("run_p50_ms", p50(ours))
	rep.AddPeer("run_p50_ms", p50(peer))
	rep.Add("run_p90_ms", p90(ours))
	rep.AddPeer("run_p90_ms", p90(peer))
	rep.Add("run_net_p50_ms", p50(ours)-p50(none))
	rep.AddPeer("run_net_p50_ms", p50(peer)-p50(none))
	rep.Add("run_none_p50_ms", p50(none))
	logf("round %d run p50/p90: calyx %.1f/%.1f ms, bridge %.1f/%.1f ms, none %.1f/%.1f ms", r+1,
		p50(ours), p90(ours), p50(peer), p90(peer), p50(none), p90(none))

	ce, join := delta.ok(methodCreateEndpoint), delta.ok(methodJoin)
	if int(ce.count) != n || int(join.count) != n {
		return fmt.Errorf("calyx-node answered %v CreateEndpoint and %v Join requests in %d Calyx runs: want one each per run", ce.count, join.count, n)
	}
	rep.Add("create_endpoint_plus_join_p99_ms", 1000*(ce.quantile(0.99)+join.quantile(0.99)))
	rep.Add("join_p50_ms", 1000*join.quantile(0.50))
	rep.Add("join_p99_ms", 1000*join.quantile(0.99))
	rep.Add("create_endpoint_p50_ms", 1000*ce.quantile(0.50))
	rep.Add("create_endpoint_p99_ms", 1000*ce.quantile(0.99))
	var total float64
	var parts []string
	for _, s := range delta.sorted() {
		h := delta[s]
		if h.count == 0 {
			continue
		}
		total += h.sum
		name := s.method
		if s.result != "ok" {
			name += " (" + s.result + ")"
		}
		parts = append(parts, fmt.Sprintf("%s %.0f×%.2f ms", name, h.count, 1000*h.sum/h.count))
	}
	rep.Add("agent_ms_per_run", 1000*total/float64(n))
	logf("round %d calyx-node per request (count×mean): %s", r+1, strings.Join(parts, ", "))
	return nil
}

// connectRound is round r's connect part: n `docker network connect`
// and `disconnect` of the running container connectCtr to each of the
// Calyx and the bridge network, alternating.
func (w *world) connectRound(ctx context.Context, rep *report.Report, r, n int) error {
	if r == 0 {
		if _, err := w.d.Docker(ctx, "run", "-d", "--name", connectCtr, "--network", baseNet, dockerd.BusyboxImage, "sleep", "86400"); err != nil {
			return err
		}
	}
	nets := []string{oursNet, peerNet}
	conn, disc := map[string][]time.Duration{}, map[string][]time.Duration{}
	for i := range n {
		for j := range nets {
			net := nets[(i+j)%len(nets)]
			c, err := w.timeDocker(ctx, "network", "connect", net, connectCtr)
			if err != nil {
				return err
			}
			d, err := w.timeDocker(ctx, "network", "disconnect", net, connectCtr)
			if err != nil {
				return err
			}
			conn[net], disc[net] = append(conn[net], c), append(disc[net], d)
		}
	}
	rep.Add("connect_p50_ms", p50(conn[oursNet]))
	rep.AddPeer("connect_p50_ms", p50(conn[peerNet]))
	rep.Add("connect_p90_ms", p90(conn[oursNet]))
	rep.AddPeer("connect_p90_ms", p90(conn[peerNet]))
	rep.Add("disconnect_p50_ms", p50(disc[oursNet]))
	rep.AddPeer("disconnect_p50_ms", p50(disc[peerNet]))
	logf("round %d connect p50: calyx %.1f ms, bridge %.1f ms; disconnect p50: calyx %.1f ms, bridge %.1f ms", r+1,
		p50(conn[oursNet]), p50(conn[peerNet]), p50(disc[oursNet]), p50(disc[peerNet]))
	return nil
}

func p50(ds []time.Duration) float64 { return report.Ms(report.Percentile(ds, 0.50)) }
func p90(ds []time.Duration) float64 { return report.Ms(report.Percentile(ds, 0.90)) }
