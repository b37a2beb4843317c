package selector

import (
	"errors"
	"testing"
)

// FuzzParse checks that Parse never panics, that errors are well-formed
// *ParseErrors, and that the canonical form of anything that parses is a
// fixed point that evaluates exactly like the original.
func FuzzParse(f *testing.F) {
	for _, tc := range evalCases {
		f.Add(tc.expr)
	}
	for _, tc := range errorCases {
		f.Add(tc.expr)
	}
	for _, tc := range canonicalCases {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		sel, err := Parse(expr)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("Parse(%q) error %v is a %T, want *ParseError", expr, err, err)
			}
			if pe.Pos < 0 || pe.Pos > len(expr) || pe.Expr != expr || pe.Msg == "" {
				t.Fatalf("Parse(%q) gave malformed error %#v", expr, pe)
			}
			return
		}
		canon := sel.String()
		again, err := Parse(canon)
		if err != nil {
			t.Fatalf("canonical form %q of %q does not parse: %v", canon, expr, err)
		}
		if again.String() != canon {
			t.Fatalf("canonical form %q of %q re-parses to %q", canon, expr, again.String())
		}
		if again.UniqueID() != sel.UniqueID() || again.Hash() != sel.Hash() {
			t.Fatalf("%q and its canonical form %q have different identifiers", expr, canon)
		}
		for _, labels := range fuzzLabelSets(sel) {
			if a, b := sel.Evaluate(labels), again.Evaluate(labels); a != b {
				t.Fatalf("on %v, %q gives %v but its canonical form %q gives %v", labels, expr, a, canon, b)
			}
			if a, b := sel.Evaluate(labels), sel.EvaluateLabels(toSliceLabels(labels)); a != b {
				t.Fatalf("on %v, %q: Evaluate gives %v but EvaluateLabels gives %v", labels, expr, a, b)
			}
		}
	})
}

// fuzzLabelSets returns label maps likely to exercise s: none, every key
// present and empty, and every key set to each of the selector's own
// literal values in rotation, so that ==, in and friends can match.
func fuzzLabelSets(s *Selector) []map[string]string {
	keys := s.LabelKeys()
	var values []string
	if s.root != nil {
		s.root.walk(func(n *node) {
			if n.value != "" {
				values = append(values, n.value)
			}
			values = append(values, n.set...)
		})
	}
	sets := []map[string]string{nil}
	empty := map[string]string{}
	for _, k := range keys {
		empty[k] = ""
	}
	sets = append(sets, empty)
	for i := range min(len(values), 6) {
		m := map[string]string{}
		for j, k := range keys {
			if (i+j)%3 != 2 { // leave some keys out
				m[k] = values[(i+j)%len(values)]
			}
		}
		sets = append(sets, m)
	}
	return sets
}
