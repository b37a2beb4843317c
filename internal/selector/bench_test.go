package selector

import "testing"

// typical are selectors of the shapes that policies and pools use.
var typical = []string{
	`role == "db"`,
	`app in {"a", "b", "c"}`,
	`has(calyx.dev/network) && env != "prod"`,
	`!has(x)`,
	`a == "1" && b == "2" && c == "3"`,
	`(a == "1" || b == "2") && !has(c)`,
	`name starts with "web-"`,
	`name ends with "-prod"`,
	`name contains "api"`,
	`all()`,
}

// benchLabels is a typical endpoint's labels.
var benchLabels = map[string]string{
	"role":              "db",
	"app":               "b",
	"calyx.dev/network": "blue",
	"env":               "dev",
	"a":                 "1",
	"b":                 "2",
	"c":                 "3",
	"name":              "web-api-prod",
	"kubernetes.io/os":  "linux",
}

func TestEvaluateDoesNotAllocate(t *testing.T) {
	// Convert to the interface once: boxing a slice header allocates, and
	// that cost belongs to the caller, not to EvaluateLabels.
	var sl Labels = toSliceLabels(benchLabels)
	exprs := append([]string{`x in ` + bigSet("y"), `x not in {"a"} || !(y ends with "z")`}, typical...)
	for _, expr := range exprs {
		s := MustParse(expr)
		if n := testing.AllocsPerRun(100, func() { s.Evaluate(benchLabels) }); n != 0 {
			t.Errorf("Parse(%q).Evaluate allocates %v times per call, want 0", expr, n)
		}
		if n := testing.AllocsPerRun(100, func() { s.Evaluate(nil) }); n != 0 {
			t.Errorf("Parse(%q).Evaluate(nil) allocates %v times per call, want 0", expr, n)
		}
		if n := testing.AllocsPerRun(100, func() { s.EvaluateLabels(sl) }); n != 0 {
			t.Errorf("Parse(%q).EvaluateLabels allocates %v times per call, want 0", expr, n)
		}
		if n := testing.AllocsPerRun(100, func() { s.EvaluateLabels(nil) }); n != 0 {
			t.Errorf("Parse(%q).EvaluateLabels(nil) allocates %v times per call, want 0", expr, n)
		}
	}
}

var sink bool

func BenchmarkEvaluate(b *testing.B) {
	for _, expr := range typical {
		s := MustParse(expr)
		b.Run(expr, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				sink = s.Evaluate(benchLabels)
			}
		})
	}
}

func BenchmarkEvaluateLabels(b *testing.B) {
	var sl Labels = toSliceLabels(benchLabels)
	for _, expr := range typical {
		s := MustParse(expr)
		b.Run(expr, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				sink = s.EvaluateLabels(sl)
			}
		})
	}
}

func BenchmarkParse(b *testing.B) {
	for _, expr := range typical {
		b.Run(expr, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Parse(expr); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
