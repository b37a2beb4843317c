// Package report is the reporting half of every benchmark in bench/: the
// figures a run collects, and the JSON lines it prints from them.
//
// Why one package: every benchmark must report the same JSON shape, so that
// results compare across runs (and across benchmarks) with one reader.
// Each line is a Line: the median over the rounds for Calyx ("ours") and
// its peer, the median of the per-round ratios ours/peer, the goal and
// whether it was met, the per-round values and their min/max. The first
// line of a run is its environment (WriteEnv). The benchmarks keep only
// what they measure; how a figure becomes a line is decided here, once.
package report

import (
	"cmp"
	"math"
	"slices"
)

// Spec describes one metric before it is measured.
type Spec struct {
	Metric string
	// Goal is what the figure is judged against, for people: "ratio <= 1.0",
	// "<= 2 ms"; "-" or "info" when it is reported without a goal.
	Goal string
	// Met judges the printed (rounded) medians against Goal; nil: no
	// verdict. ratio is NaN when the figure has no ratio, so a goal on the
	// ratio is not met without a peer.
	Met func(ours, ratio float64) bool
	// PeerIs says what the peer is; printed when the figure has peer values.
	PeerIs string
	// Note is a remark printed with the figure.
	Note string
}

// Figure is one metric's per-round values for Calyx and for the peer.
type Figure struct {
	Spec
	// Selector is the input the figure was measured on, for a metric
	// reported once per input (bench/datastore: per selector); "" if none.
	Selector   string
	Ours, Peer []float64
}

// Report collects the figures of one benchmark run.
type Report struct {
	bench string
	specs []Spec
	figs  []*Figure // in the order they were first added
}

// New returns an empty report for the benchmark named bench. Its lines
// follow the order of specs; a metric without a spec is reported after
// them, with goal "-".
func New(bench string, specs []Spec) *Report {
	return &Report{bench: bench, specs: specs}
}

// Add appends one round's value of Calyx for metric.
func (r *Report) Add(metric string, ours float64) {
	f := r.figure(metric, "")
	f.Ours = append(f.Ours, ours)
}

// AddPeer appends one round's value of the peer for metric.
func (r *Report) AddPeer(metric string, peer float64) {
	f := r.figure(metric, "")
	f.Peer = append(f.Peer, peer)
}

// AddSelector appends one round's values of both sides for metric
// measured on selector.
func (r *Report) AddSelector(metric, selector string, ours, peer float64) {
	f := r.figure(metric, selector)
	f.Ours, f.Peer = append(f.Ours, ours), append(f.Peer, peer)
}

// Figure returns metric's figure (the one without a selector), or nil if
// nothing was added to it.
func (r *Report) Figure(metric string) *Figure {
	for _, f := range r.figs {
		if f.Metric == metric && f.Selector == "" {
			return f
		}
	}
	return nil
}

func (r *Report) figure(metric, selector string) *Figure {
	for _, f := range r.figs {
		if f.Metric == metric && f.Selector == selector {
			return f
		}
	}
	f := &Figure{Spec: Spec{Metric: metric, Goal: "-"}, Selector: selector}
	if i := r.specIndex(metric); i < len(r.specs) {
		f.Spec = r.specs[i]
	}
	r.figs = append(r.figs, f)
	return f
}

// specIndex is metric's position in the specs, len(specs) if it has none.
func (r *Report) specIndex(metric string) int {
	if i := slices.IndexFunc(r.specs, func(s Spec) bool { return s.Metric == metric }); i >= 0 {
		return i
	}
	return len(r.specs)
}

// Lines returns one line per figure with values, in spec order, then in
// the order figures were first added.
func (r *Report) Lines() []Line {
	figs := slices.Clone(r.figs)
	slices.SortStableFunc(figs, func(a, b *Figure) int {
		return cmp.Compare(r.specIndex(a.Metric), r.specIndex(b.Metric))
	})
	var lines []Line
	for _, f := range figs {
		if len(f.Ours) == 0 && len(f.Peer) == 0 {
			continue
		}
		lines = append(lines, f.line(r.bench))
	}
	return lines
}

// Line is one JSON line of a report: a figure's medians over the rounds,
// with the per-round values. Values are rounded to three decimals.
type Line struct {
	Bench    string   `json:"bench"`
	Metric   string   `json:"metric"`
	Selector string   `json:"selector,omitempty"`
	Ours     *float64 `json:"ours"`  // median over the rounds; null without values
	Peer     *float64 `json:"peer"`  // median over the rounds; null without a peer
	Ratio    *float64 `json:"ratio"` // median of the per-round ours/peer; null without one
	Goal     string   `json:"goal"`
	Met      *bool    `json:"met,omitempty"`
	Spread
	PeerIs string `json:"peer_is,omitempty"`
	Note   string `json:"note,omitempty"`
}

// Spread is how a figure varied over the rounds: the per-round values and
// their extremes. It is part of Line, flattened into the same JSON object.
type Spread struct {
	OursMin     *float64  `json:"ours_min,omitempty"`
	OursMax     *float64  `json:"ours_max,omitempty"`
	RatioMin    *float64  `json:"ratio_min,omitempty"`
	RatioMax    *float64  `json:"ratio_max,omitempty"`
	OursRounds  []float64 `json:"ours_rounds,omitempty"`
	PeerRounds  []float64 `json:"peer_rounds,omitempty"`
	RatioRounds []float64 `json:"ratio_rounds,omitempty"`
}

// line computes f's line. The ratio of a round is ours/peer, for every
// round both sides have and the peer is not zero.
func (f *Figure) line(bench string) Line {
	l := Line{Bench: bench, Metric: f.Metric, Selector: f.Selector, Goal: f.Goal, Note: f.Note}
	if len(f.Ours) > 0 {
		l.Ours = Ptr(Round3(Median(f.Ours)))
		l.OursMin, l.OursMax = Ptr(Round3(slices.Min(f.Ours))), Ptr(Round3(slices.Max(f.Ours)))
		l.OursRounds = roundAll(f.Ours)
	}
	ratio := math.NaN()
	if len(f.Peer) > 0 {
		l.Peer = Ptr(Round3(Median(f.Peer)))
		l.PeerRounds = roundAll(f.Peer)
		l.PeerIs = f.PeerIs
		var ratios []float64
		for i := range min(len(f.Ours), len(f.Peer)) {
			if f.Peer[i] != 0 {
				ratios = append(ratios, f.Ours[i]/f.Peer[i])
			}
		}
		if len(ratios) > 0 {
			ratio = Round3(Median(ratios))
			l.Ratio = &ratio
			l.RatioMin, l.RatioMax = Ptr(Round3(slices.Min(ratios))), Ptr(Round3(slices.Max(ratios)))
			l.RatioRounds = roundAll(ratios)
		}
	}
	if f.Met != nil && l.Ours != nil {
		l.Met = Ptr(f.Met(*l.Ours, ratio))
	}
	return l
}

// Ptr returns a pointer to v, for Line's optional values.
func Ptr[T any](v T) *T { return &v }
