package api

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"
)

// convertYAML parses one YAML document and converts it as Decode does.
func convertYAML(t *testing.T, in string) (any, *yamlConverter, error) {
	t.Helper()
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(in), &n); err != nil {
		t.Fatalf("parsing %q: %v", in, err)
	}
	c := &yamlConverter{}
	v, err := c.value(n.Content[0], 1)
	return v, c, err
}

// TestYAMLMerge checks the merge key: explicit keys win over merged ones,
// and an earlier merge source wins over a later one.
func TestYAMLMerge(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want any
	}{
		{"single", "a: &a {x: 1, q: 2}\nb: {<<: *a, q: 3}\n",
			map[string]any{"a": map[string]any{"x": json.Number("1"), "q": json.Number("2")}, "b": map[string]any{"x": json.Number("1"), "q": json.Number("3")}}},
		{"list", "a: &a {x: 1}\nb: &b {x: 2, q: 2}\nc: {<<: [*a, *b], z: 3}\n",
			map[string]any{
				"a": map[string]any{"x": json.Number("1")},
				"b": map[string]any{"x": json.Number("2"), "q": json.Number("2")},
				"c": map[string]any{"x": json.Number("1"), "q": json.Number("2"), "z": json.Number("3")},
			}},
		{"nested merges", "a: &a {x: 1}\nb: &b {<<: *a, q: 2}\nc: {<<: [*b, *a], x: 0}\n",
			map[string]any{
				"a": map[string]any{"x": json.Number("1")},
				"b": map[string]any{"x": json.Number("1"), "q": json.Number("2")},
				"c": map[string]any{"x": json.Number("0"), "q": json.Number("2")},
			}},
		{"inline mapping", "<<: {a: 1}\nb: 2\n", map[string]any{"a": json.Number("1"), "b": json.Number("2")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, _, err := convertYAML(t, tc.in)
			if err != nil {
				t.Fatalf("converting: %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("converted (-want +got):\n%s", diff)
			}
		})
	}
	_, _, err := convertYAML(t, "a: &a [1]\nb: {<<: *a}\n")
	if err == nil || !strings.Contains(err.Error(), "a merge (<<) needs a mapping or a list of mappings") {
		t.Errorf("merging a list: error = %v, want the merge error", err)
	}
}

// mergeBomb is a chain of maps, each merging the previous one ten times:
// a few hundred bytes whose merges, followed naively, visit 10^levels keys
// that all turn out to be set already.
func mergeBomb(levels int) string {
	in := "a0: &a0 {k: v}\n"
	for i := 1; i <= levels; i++ {
		prev := fmt.Sprintf("*a%d", i-1)
		in += fmt.Sprintf("a%d: &a%d {<<: [%s]}\n", i, i, strings.TrimSuffix(strings.Repeat(prev+", ", 10), ", "))
	}
	return in
}

// TestDecodeMergeBomb checks that merges of merges are charged against the
// document's value limit, so decoding them costs work linear in the
// limit rather than exponential in the input.
func TestDecodeMergeBomb(t *testing.T) {
	// Six levels visit a million merged keys; before merges were
	// counted they went through (slowly) and the decoder failed only
	// later, for the document not being a resource.
	for _, levels := range []int{6, 10} {
		in := []byte(mergeBomb(levels))
		_, err := Decode(in)
		if err == nil || !strings.Contains(err.Error(), "more than the limit of 262144 values") {
			t.Fatalf("%d levels (%d bytes): error = %v, want the value limit", levels, len(in), err)
		}
	}
	// The work done before refusing is bounded by the limit.
	_, c, err := convertYAML(t, mergeBomb(10))
	if err == nil {
		t.Fatal("converting a 10-level merge bomb: no error, want the value limit")
	}
	if c.values != maxDocumentValues+1 {
		t.Errorf("converter counted %d nodes, want to stop at %d", c.values, maxDocumentValues+1)
	}
	// At most one allocation per counted node (a merged key's string
	// boxed as it is read).
	in := []byte(mergeBomb(10))
	allocs := testing.AllocsPerRun(2, func() { _, _ = Decode(in) })
	if allocs > maxDocumentValues {
		t.Errorf("refusing a 10-level merge bomb made %.0f allocations, want at most %d", allocs, maxDocumentValues)
	}
}

// TestDecodeEmptyMergeBomb checks that "<<" entries merging nothing are
// counted too: a map of them, repeated through aliases, is work even
// though it adds no values.
func TestDecodeEmptyMergeBomb(t *testing.T) {
	in := "e: &e {" + strings.TrimSuffix(strings.Repeat("<<: [], ", 1000), ", ") + "}\n"
	in += "l: &l [" + strings.TrimSuffix(strings.Repeat("*e, ", 1000), ", ") + "]\n"
	_, err := Decode([]byte(in))
	if err == nil || !strings.Contains(err.Error(), "more than the limit of 262144 values") {
		t.Fatalf("error = %v, want the value limit", err)
	}
}
