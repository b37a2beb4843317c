package main

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"time"
)

// figure is one reported metric: per-round values for Calyx and the peer.
type figure struct {
	metric     string
	goal       string
	met        func(ours, ratio float64) bool // nil: informational
	ours, peer []float64
}

// figures holds every metric in report order, and the harness floor.
type figures struct {
	order           []string
	byKey           map[string]*figure
	floor, floorDel []float64 // loopback ADD and DEL p50 per round, ms
}

func newFigures() *figures {
	f := &figures{byKey: map[string]*figure{}}
	for _, fg := range []*figure{
		{metric: "add_p50_ms", goal: "ratio <= 1.0", met: func(_, r float64) bool { return r <= 1.0 }},
		{metric: "add_p99_ms", goal: "-"},
		{metric: "del_p50_ms", goal: "ratio <= 1.0", met: func(_, r float64) bool { return r <= 1.0 }},
		{metric: "del_p99_ms", goal: "-"},
		{metric: "burst_add_per_s", goal: "ratio >= 1.2", met: func(_, r float64) bool { return r >= 1.2 }},
		{metric: "burst_add_p50_ms", goal: "-"},
		{metric: "burst_add_p99_ms", goal: "-"},
		{metric: "burst_del_per_s", goal: "-"},
		{metric: "netlink_per_add_ms", goal: "<= 1 ms", met: func(o, _ float64) bool { return o <= 1 }},
		{metric: "agent_add_ms", goal: "-"},
		{metric: "agent_ready_ms", goal: "-"},
	} {
		f.order = append(f.order, fg.metric)
		f.byKey[fg.metric] = fg
	}
	return f
}

func (f *figures) add(metric string, v float64) {
	f.byKey[metric].ours = append(f.byKey[metric].ours, v)
}
func (f *figures) addPeer(metric string, v float64) {
	f.byKey[metric].peer = append(f.byKey[metric].peer, v)
}

// line is one JSON line of the report.
type line struct {
	Bench    string    `json:"bench"`
	Metric   string    `json:"metric"`
	Ours     *float64  `json:"ours"`
	Peer     *float64  `json:"peer"`
	Ratio    *float64  `json:"ratio"`
	Goal     string    `json:"goal"`
	Met      *bool     `json:"met,omitempty"`
	Rounds   []float64 `json:"ours_rounds,omitempty"`
	PeerRds  []float64 `json:"peer_rounds,omitempty"`
	Ratios   []float64 `json:"ratio_rounds,omitempty"`
	PeerIs   string    `json:"peer_is,omitempty"`
	Comments string    `json:"note,omitempty"`
}

// report prints a table, then one JSON line per figure (the last lines).
func report(f *figures, ours, peer impl) {
	var lines []line
	for _, k := range f.order {
		fg := f.byKey[k]
		if len(fg.ours) == 0 && len(fg.peer) == 0 {
			continue
		}
		l := line{Bench: "cni", Metric: fg.metric, Goal: fg.goal, Rounds: roundAll(fg.ours), PeerRds: roundAll(fg.peer)}
		if len(fg.ours) > 0 {
			l.Ours = ptr(round3(median(fg.ours)))
		}
		ratio := 0.0
		if len(fg.peer) > 0 {
			l.Peer = ptr(round3(median(fg.peer)))
			l.PeerIs = peer.who
			for i := range min(len(fg.ours), len(fg.peer)) {
				if fg.peer[i] != 0 {
					l.Ratios = append(l.Ratios, round3(fg.ours[i]/fg.peer[i]))
				}
			}
			if len(l.Ratios) > 0 {
				ratio = round3(median(l.Ratios))
				l.Ratio = &ratio
			}
		}
		if fg.met != nil && l.Ours != nil {
			m := fg.met(*l.Ours, ratio)
			l.Met = &m
		}
		lines = append(lines, l)
	}
	// The harness floor, and ADD/DEL p50 with it subtracted (cnitool's own
	// exec and libcni work; reference/performance.md §5).
	floor, floorDel := median(f.floor), median(f.floorDel)
	lines = append(lines, line{Bench: "cni", Metric: "harness_floor_add_p50_ms", Ours: ptr(round3(floor)), Goal: "-",
		Rounds: roundAll(f.floor), Comments: "cnitool + loopback plugin: the cost every figure above includes"})
	for _, sub := range []struct {
		metric, from string
		fl           float64
	}{{"add_p50_minus_floor_ms", "add_p50_ms", floor}, {"del_p50_minus_floor_ms", "del_p50_ms", floorDel}} {
		fg := f.byKey[sub.from]
		if len(fg.ours) == 0 || len(fg.peer) == 0 {
			continue
		}
		o, p := median(fg.ours)-sub.fl, median(fg.peer)-sub.fl
		l := line{Bench: "cni", Metric: sub.metric, Ours: ptr(round3(o)), Peer: ptr(round3(p)), Goal: "-", PeerIs: peer.who}
		if p > 0 {
			l.Ratio = ptr(round3(o / p))
		}
		lines = append(lines, l)
	}

	fmt.Printf("%-26s %10s %10s %8s  %-14s %s\n", "metric", "calyx", "peer", "ratio", "goal", "met")
	for _, l := range lines {
		fmt.Printf("%-26s %10s %10s %8s  %-14s %s\n", l.Metric, fmtp(l.Ours), fmtp(l.Peer), fmtp(l.Ratio), l.Goal, fmtMet(l.Met))
	}
	fmt.Printf("calyx = %s; peer = %s\n", ours.who, peer.who)
	enc := json.NewEncoder(os.Stdout)
	enc.SetEscapeHTML(false)
	for _, l := range lines {
		_ = enc.Encode(l)
	}
}

func ptr(v float64) *float64 { return &v }

func fmtp(v *float64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%.3f", *v)
}

func fmtMet(m *bool) string {
	switch {
	case m == nil:
		return ""
	case *m:
		return "yes"
	default:
		return "NO"
	}
}

func median(vs []float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// pct is the q-quantile of ds (nearest rank).
func pct(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func round3(v float64) float64 { return float64(int64(v*1000+0.5)) / 1000 }

func roundAll(vs []float64) []float64 {
	if len(vs) == 0 {
		return nil
	}
	out := make([]float64, len(vs))
	for i, v := range vs {
		out[i] = round3(v)
	}
	return out
}
