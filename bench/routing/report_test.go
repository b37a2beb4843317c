package main

import (
	"testing"
)

// TestRecord: a round becomes Calyx against the reference and against
// direct veth, and the reference against direct veth, each with the
// goal of its mode.
func TestRecord(t *testing.T) {
	rep := newReport()
	direct := sample{tcp1: 20, tcp4: 40, pps: 200000, rttMs: 0.04}
	record(rep, routed, sample{tcp1: 17, tcp4: 30, pps: 150000, rttMs: 0.08}, sample{tcp1: 17.5, tcp4: 30, pps: 150000, rttMs: 0.06},
		sample{tcp1: 17, tcp4: 30, pps: 120000, rttMs: 0.07}, direct)
	record(rep, vxlan, sample{tcp1: 12, tcp4: 20, pps: 90000, rttMs: 0.1}, sample{tcp1: 12, tcp4: 20, pps: 100000, rttMs: 0.08},
		sample{tcp1: 12, tcp4: 20, pps: 90000, rttMs: 0.09}, direct)

	type want struct {
		ours, peer, ratio float64
		goal              string
		met               *bool
	}
	yes, no := true, false
	wants := map[string]want{
		"routed/tcp1_gbps":                     {17, 17.5, 0.971, "ratio >= 0.97", &yes},
		"routed/udp64_pps":                     {150000, 150000, 1, "ratio >= 0.97", &yes},
		"routed/ping_rtt_ms":                   {0.08, 0.06, 1.333, "info", nil},
		"routed/tcp1_gbps_vs_direct":           {17, 20, 0.85, "ratio >= 0.80", &yes},
		"routed/reference_tcp1_gbps_vs_direct": {17.5, 20, 0.875, "info", nil},
		"vxlan/udp64_pps":                      {90000, 100000, 0.9, "ratio >= 0.97", &no},
		"vxlan/tcp1_gbps_vs_direct":            {12, 20, 0.6, "ratio >= 0.65", &no},
		"vxlan/tcp4_gbps_vs_direct":            {20, 40, 0.5, "info", nil},
	}
	lines := rep.Lines()
	if len(lines) != 2*13 {
		t.Errorf("%d lines, want 26 (13 per mode)", len(lines))
	}
	if lines[0].Metric != "routed/tcp1_gbps" || lines[len(lines)-1].Metric != "vxlan/reference_tcp1_gbps_vs_direct" {
		t.Errorf("lines run %s .. %s, want routed/tcp1_gbps .. vxlan/reference_tcp1_gbps_vs_direct", lines[0].Metric, lines[len(lines)-1].Metric)
	}
	for _, l := range lines {
		w, ok := wants[l.Metric]
		if !ok {
			continue
		}
		delete(wants, l.Metric)
		if l.Ours == nil || l.Peer == nil || l.Ratio == nil || *l.Ours != w.ours || *l.Peer != w.peer || *l.Ratio != w.ratio {
			t.Errorf("%s: ours %v, peer %v, ratio %v; want %v, %v, %v", l.Metric, deref(l.Ours), deref(l.Peer), deref(l.Ratio), w.ours, w.peer, w.ratio)
		}
		if l.Goal != w.goal || (l.Met == nil) != (w.met == nil) || (l.Met != nil && *l.Met != *w.met) {
			t.Errorf("%s: goal %q met %v; want %q met %v", l.Metric, l.Goal, deref(l.Met), w.goal, deref(w.met))
		}
	}
	for m := range wants {
		t.Errorf("no line for %s", m)
	}
}

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}
