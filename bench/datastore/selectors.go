package main

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/calyx-net/calyx/bench/report"
	"github.com/calyx-net/calyx/internal/selector"
)

// benchLabels are an endpoint's labels, typical in number and size.
var benchLabels = map[string]string{
	"role": "db", "app": "b", "calyx.dev/network": "blue", "env": "dev",
	"a": "1", "b": "2", "c": "3", "name": "web-api-prod",
	"projectcalico.org/orchestrator": "mesos", "projectcalico.org/namespace": "default",
}

// selectorCase is a selector and a closure that computes the same result
// with the same map lookups written out by hand: the floor for evaluation.
type selectorCase struct {
	expr string
	peer func(map[string]string) bool
}

var selectorCases = []selectorCase{
	{`role == "db"`, func(l map[string]string) bool { v, ok := l["role"]; return ok && v == "db" }},
	{`app in {"a","b","c"}`, func(l map[string]string) bool {
		v, ok := l["app"]
		return ok && (v == "a" || v == "b" || v == "c")
	}},
	{`has(calyx.dev/network) && env != "prod"`, func(l map[string]string) bool {
		_, ok := l["calyx.dev/network"]
		return ok && l["env"] != "prod"
	}},
	{`!has(x)`, func(l map[string]string) bool { _, ok := l["x"]; return !ok }},
	{`a == "1" && b == "2" && c == "3"`, func(l map[string]string) bool {
		a, okA := l["a"]
		if !okA || a != "1" {
			return false
		}
		b, okB := l["b"]
		if !okB || b != "2" {
			return false
		}
		c, okC := l["c"]
		return okC && c == "3"
	}},
	{`(a == "1" || b == "2") && !has(c)`, func(l map[string]string) bool {
		a, okA := l["a"]
		b, okB := l["b"]
		if !(okA && a == "1") && !(okB && b == "2") {
			return false
		}
		_, okC := l["c"]
		return !okC
	}},
	{`name starts with "web-"`, func(l map[string]string) bool { v, ok := l["name"]; return ok && strings.HasPrefix(v, "web-") }},
	{`name ends with "-prod"`, func(l map[string]string) bool { v, ok := l["name"]; return ok && strings.HasSuffix(v, "-prod") }},
	{`name contains "api"`, func(l map[string]string) bool { v, ok := l["name"]; return ok && strings.Contains(v, "api") }},
	{`all()`, func(map[string]string) bool { return true }},
}

// runSelectors measures every case once (one round) into rep.
func runSelectors(rep *report.Report) {
	for _, sc := range selectorCases {
		sel, err := selector.Parse(sc.expr)
		if err != nil {
			fail(fmt.Errorf("selector %q: %w", sc.expr, err))
		}
		if got, want := sel.Evaluate(benchLabels), sc.peer(benchLabels); got != want {
			fail(fmt.Errorf("selector %q evaluates to %v, its closure to %v", sc.expr, got, want))
		}
		ours := testing.Benchmark(func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				sel.Evaluate(benchLabels) // b.Loop keeps the call from being optimised away
			}
		})
		peer := testing.Benchmark(func(b *testing.B) {
			b.ReportAllocs()
			f := sc.peer
			for b.Loop() {
				f(benchLabels)
			}
		})
		ons, pns := nsPerOp(ours), nsPerOp(peer)
		rep.AddSelector("selector_ns_per_op", sc.expr, ons, pns)
		rep.AddSelector("selector_allocs_per_op", sc.expr, float64(ours.AllocsPerOp()), float64(peer.AllocsPerOp()))
		fmt.Fprintf(os.Stderr, "  selector %-42s calyx %7.2f ns %d allocs  closure %7.2f ns  ratio %.2f\n",
			sc.expr, ons, ours.AllocsPerOp(), pns, ons/pns)
	}
}

func nsPerOp(r testing.BenchmarkResult) float64 {
	if r.N == 0 {
		return 0
	}
	return float64(r.T.Nanoseconds()) / float64(r.N)
}
