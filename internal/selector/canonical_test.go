package selector

import (
	"crypto/sha256"
	"encoding/base64"
	"regexp"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var canonicalCases = []struct {
	in, want string
}{
	{``, `all()`},
	{" \t\n", `all()`},
	{`all()`, `all()`},
	{`all( )`, `all()`},
	{`global ( )`, `global()`},
	{`a=="1"`, `a == "1"`},
	{`a == '1'`, `a == "1"`},
	{`a == 'x"y'`, `a == 'x"y'`},
	{`a == "it's"`, `a == "it's"`},
	{`a!='1'`, `a != "1"`},
	{"a\n==\n\"x y\"", `a == "x y"`},
	{`calyx.dev/role=="edge"`, `calyx.dev/role == "edge"`},
	{`has( a )`, `has(a)`},
	{`has (a)`, `has(a)`},
	{`a notin {'b',"a","b"}`, `a not in {"a", "b"}`},
	{`a not  in {}`, `a not in {}`},
	{`a in{ }`, `a in {}`},
	{`a in {"y", 'x"'}`, `a in {'x"', "y"}`},
	{`a in {"b","a"}`, `a in {"a", "b"}`},
	{`a contains"x"`, `a contains "x"`},
	{`a starts   with 'x'`, `a starts with "x"`},
	{"a ends\twith \"x\"", `a ends with "x"`},
	{`!!has(a)`, `has(a)`},
	{`!!!has(a)`, `!has(a)`},
	{`!(!has(a))`, `has(a)`},
	{`!(has(a))`, `!has(a)`},
	{`!a == "1"`, `!a == "1"`},
	{`!(a == "1")`, `!a == "1"`},
	{`((a == "1"))`, `a == "1"`},
	{`a == "1" && (b == "2" || c == "3")`, `a == "1" && (b == "2" || c == "3")`},
	{`(a == "1" && b == "2") || c == "3"`, `a == "1" && b == "2" || c == "3"`},
	{`a == "1" || (b == "2" && c == "3")`, `a == "1" || b == "2" && c == "3"`},
	{`(a == "1" || b == "2") && c == "3"`, `(a == "1" || b == "2") && c == "3"`},
	{`has(a) && (has(b) && has(c))`, `has(a) && has(b) && has(c)`},
	{`(has(a) || has(b)) || has(c)`, `has(a) || has(b) || has(c)`},
	{`!(has(a) && has(b))`, `!(has(a) && has(b))`},
	{`!(has(a) || has(b))`, `!(has(a) || has(b))`},
	{`!!(has(a) || has(b))`, `has(a) || has(b)`},
	{`has(c) && !(has(a) || has(b))`, `has(c) && !(has(a) || has(b))`},
	{`((has(a) || has(b)) && (has(c) || has(d)))`, `(has(a) || has(b)) && (has(c) || has(d))`},
	{`has(z) && has(a)`, `has(z) && has(a)`},
	{`b in {"2"} && a in {"1"}`, `b in {"2"} && a in {"1"}`},
	{`all() && global()`, `all() && global()`},
	{`!global()`, `!global()`},
}

func TestCanonical(t *testing.T) {
	for _, tc := range canonicalCases {
		got, err := Canonicalize(tc.in)
		if err != nil {
			t.Errorf("Canonicalize(%q): %v", tc.in, err)
			continue
		}
		if got != tc.want {
			t.Errorf("Canonicalize(%q) = %q, want %q", tc.in, got, tc.want)
		}
		again, err := Canonicalize(got)
		if err != nil || again != got {
			t.Errorf("Canonicalize(%q) = %q, %v; want it unchanged", got, again, err)
		}
	}
}

// TestEquivalentIDs checks that spellings of one selector share their
// identifiers and that different selectors do not.
func TestEquivalentIDs(t *testing.T) {
	groups := [][]string{
		{``, `all()`, ` all ( ) `},
		{`a=="1"&&b=="2"`, `a == '1' && b == "2"`, `(a == "1") && (b == "2")`, `!!(a == "1" && b == "2")`},
		{`a notin {"x","y"}`, `a not in {'y', "x", "y"}`},
		{`has(a) || has(b) || has(c)`, `(has(a) || has(b)) || has(c)`, `has(a) || (has(b) || has(c))`},
		{`!has(a)`, `!!!has(a)`, `!(has(a))`, "!\thas( a )"},
		{`has(b) && has(a)`},
		{`has(a) && has(b)`},
		{`global()`},
	}
	seenID := map[string]string{}
	seenHash := map[string]string{}
	for _, g := range groups {
		first := MustParse(g[0])
		for _, expr := range g[1:] {
			s := MustParse(expr)
			if s.UniqueID() != first.UniqueID() || s.Hash() != first.Hash() {
				t.Errorf("%q and %q have different identifiers: (%s, %s) vs (%s, %s)",
					g[0], expr, first.UniqueID(), first.Hash(), s.UniqueID(), s.Hash())
			}
		}
		if prev, ok := seenID[first.UniqueID()]; ok {
			t.Errorf("%q and %q share UniqueID %s", prev, g[0], first.UniqueID())
		}
		if prev, ok := seenHash[first.Hash()]; ok {
			t.Errorf("%q and %q share Hash %s", prev, g[0], first.Hash())
		}
		seenID[first.UniqueID()] = g[0]
		seenHash[first.Hash()] = g[0]
	}
}

var hashRE = regexp.MustCompile(`^[0-9a-f]{12}$`)

func TestIdentifierFormat(t *testing.T) {
	for _, tc := range evalCases {
		s := MustParse(tc.expr)
		sum := sha256.Sum224([]byte("s:" + s.String()))
		if want := "s:" + base64.RawURLEncoding.EncodeToString(sum[:]); s.UniqueID() != want {
			t.Errorf("Parse(%q).UniqueID() = %q, want %q", tc.expr, s.UniqueID(), want)
		}
		if !hashRE.MatchString(s.Hash()) {
			t.Errorf("Parse(%q).Hash() = %q, want 12 lowercase hex digits", tc.expr, s.Hash())
		}
	}
}

func TestLabelKeysAndGlobal(t *testing.T) {
	for _, tc := range []struct {
		expr       string
		keys       []string
		usesGlobal bool
	}{
		{``, nil, false},
		{`all()`, nil, false},
		{`global()`, nil, true},
		{`!global() && has(a)`, []string{"a"}, true},
		{`has(b) && a == "1" || b in {"x"}`, []string{"a", "b"}, false},
		{`z != "1" && !(y contains "2" || x starts with "3") && w ends with "4" && v notin {}`,
			[]string{"v", "w", "x", "y", "z"}, false},
		{`calyx.dev/role == "edge" && app.kubernetes.io/name == "x"`,
			[]string{"app.kubernetes.io/name", "calyx.dev/role"}, false},
	} {
		s := MustParse(tc.expr)
		keys := s.LabelKeys()
		if diff := cmp.Diff(tc.keys, keys); diff != "" {
			t.Errorf("Parse(%q).LabelKeys() mismatch (-want +got):\n%s", tc.expr, diff)
		}
		if len(keys) > 0 {
			keys[0] = "mutated"
			if slices.Contains(s.LabelKeys(), "mutated") {
				t.Errorf("Parse(%q).LabelKeys() shares its slice with the Selector", tc.expr)
			}
		}
		if got := s.UsesGlobal(); got != tc.usesGlobal {
			t.Errorf("Parse(%q).UsesGlobal() = %v, want %v", tc.expr, got, tc.usesGlobal)
		}
	}
}
