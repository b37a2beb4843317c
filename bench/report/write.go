package report

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
)

// WriteJSON writes each of vs as one JSON line, with "<" and "&" left as
// they are (goals such as "<= 2 ms", selectors such as "a && b").
func WriteJSON[T any](w io.Writer, vs ...T) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for _, v := range vs {
		if err := enc.Encode(v); err != nil {
			return fmt.Errorf("writing a report line: %w", err)
		}
	}
	return nil
}

// WriteEnv writes a run's first line: bench, "env": true, the kernel, the
// CPU count and the Go version, plus extra (the benchmark's own settings
// and the versions of its peers).
func WriteEnv(w io.Writer, bench string, extra map[string]any) error {
	return WriteJSON(w, Env(bench, extra))
}

// Env is the environment line WriteEnv writes.
func Env(bench string, extra map[string]any) map[string]any {
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease") // "" where there is none
	env := map[string]any{
		"bench": bench, "env": true, "kernel": strings.TrimSpace(string(kernel)),
		"nproc": runtime.NumCPU(), "go": runtime.Version(),
	}
	maps.Copy(env, extra)
	return env
}

// WriteTable writes lines as a table for people: the medians, the range
// over the rounds, the goal and the verdict.
func WriteTable(w io.Writer, lines []Line) error {
	sel := slices.ContainsFunc(lines, func(l Line) bool { return l.Selector != "" })
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(cells ...string) {
		if !sel {
			cells = slices.Delete(cells, 1, 2)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	row("metric", "selector", "calyx", "calyx min..max", "peer", "ratio", "ratio min..max", "goal", "met")
	for _, l := range lines {
		row(l.Metric, l.Selector, num(l.Ours), span(l.OursMin, l.OursMax), num(l.Peer),
			num(l.Ratio), span(l.RatioMin, l.RatioMax), l.Goal, verdict(l.Met))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("writing the report table: %w", err)
	}
	return nil
}

func num(v *float64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%.3f", *v)
}

func span(lo, hi *float64) string {
	if lo == nil || hi == nil {
		return "-"
	}
	return num(lo) + ".." + num(hi)
}

func verdict(m *bool) string {
	switch {
	case m == nil:
		return ""
	case *m:
		return "yes"
	default:
		return "NO"
	}
}
