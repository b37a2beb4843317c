package selector

import (
	"strings"
	"testing"
)

// pod is a typical endpoint's labels, including awkward keys and values.
var pod = map[string]string{
	"app":                    "web",
	"role":                   "db",
	"env":                    "prod",
	"tier":                   "",
	"calyx.dev/role":         "edge",
	"app.kubernetes.io/name": "nginx-ingress",
	"under_score":            "x_y",
	"dash-ed":                "a-b",
	"a":                      "1",
	"b":                      "2",
	"c":                      "3",
	"quote":                  `say "hi"`,
	"apos":                   "it's",
	"in":                     "yes",
	"inside":                 "out",
	"contains":               "c",
	"name":                   "web-api-prod",
}

// none has no labels at all; blank has labels whose values are empty.
var (
	none  = map[string]string{}
	blank = map[string]string{"a": "", "b": ""}
)

// longKey is a label name of exactly the maximum length.
var longKey = strings.Repeat("k", maxLabelLen)

// bigSet returns an in-set body with more than eight values, so that
// evaluation takes the binary-search path; extra is added to the set.
func bigSet(extra string) string {
	return `{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "` + extra + `"}`
}

type evalCase struct {
	expr   string
	labels map[string]string
	want   bool
}

var evalCases = []evalCase{
	// ==
	{`role == "db"`, pod, true},
	{`role == "web"`, pod, false},
	{`role == 'db'`, pod, true},
	{`role=="db"`, pod, true},
	{`role   ==   "db"`, pod, true},
	{"role\t==\n\"db\"", pod, true},
	{`role == "db"`, none, false},
	{`role == ""`, none, false},
	{`tier == ""`, pod, true},
	{`tier == "x"`, pod, false},
	{`role == "DB"`, pod, false},
	{`calyx.dev/role == "edge"`, pod, true},
	{`app.kubernetes.io/name == "nginx-ingress"`, pod, true},
	{`under_score == "x_y"`, pod, true},
	{`dash-ed == 'a-b'`, pod, true},
	{`quote == 'say "hi"'`, pod, true},
	{`apos == "it's"`, pod, true},
	{`a == "1"`, nil, false},

	// !=
	{`role != "db"`, pod, false},
	{`role != "web"`, pod, true},
	{`role != "db"`, none, true},
	{`tier != ""`, pod, false},
	{`tier != "x"`, pod, true},
	{`role!='db'`, pod, false},
	{`calyx.dev/role != "core"`, pod, true},
	{`missing != ""`, pod, true},
	{`a != "1"`, nil, true},

	// has()
	{`has(role)`, pod, true},
	{`has(missing)`, pod, false},
	{`has(tier)`, pod, true},
	{`has( role )`, pod, true},
	{"has(\trole\n)", pod, true},
	{`has (role)`, pod, true},
	{`has(calyx.dev/role)`, pod, true},
	{`has(app.kubernetes.io/name)`, pod, true},
	{`has(in)`, pod, true},
	{`has(inside)`, pod, true},
	{`has(role)`, none, false},
	{`!has(role)`, pod, false},
	{`!has(missing)`, pod, true},
	{`!has(role)`, none, true},

	// all(), global() and the empty selector
	{`all()`, pod, true},
	{`all()`, none, true},
	{`all( )`, none, true},
	{`all()`, nil, true},
	{`!all()`, pod, false},
	{`global()`, pod, true},
	{`global()`, none, true},
	{`!global()`, none, false},
	{``, pod, true},
	{``, none, true},
	{"   ", none, true},
	{"\t\n ", pod, true},
	{`all() && role == "db"`, pod, true},
	{`global() && role == "web"`, pod, false},
	{`all() || has(missing)`, none, true},

	// in
	{`role in {"db"}`, pod, true},
	{`role in {"db", "web"}`, pod, true},
	{`role in {"web", "cache"}`, pod, false},
	{`role in {'db'}`, pod, true},
	{`role in {"web",'db'}`, pod, true},
	{`role in{"db"}`, pod, true},
	{"role in {\n\t\"x\",\n\t\"db\"\n}", pod, true},
	{`role in {}`, pod, false},
	{`role in {}`, none, false},
	{`role in {"db"}`, none, false},
	{`role in {""}`, none, false},
	{`tier in {""}`, pod, true},
	{`tier in {"x"}`, pod, false},
	{`role in {"db","db","db"}`, pod, true},
	{`role in ` + bigSet("db"), pod, true},
	{`role in ` + bigSet("k"), pod, false},
	{`calyx.dev/role in {"edge"}`, pod, true},
	{`quote in {'say "hi"', "x"}`, pod, true},
	{`in in {"yes"}`, pod, true},
	{`inside in {"out"}`, pod, true},

	// not in / notin
	{`role not in {"db"}`, pod, false},
	{`role not in {"web"}`, pod, true},
	{`role notin {"web"}`, pod, true},
	{`role notin {"db"}`, pod, false},
	{`role not in {}`, pod, true},
	{`role not in {}`, none, true},
	{`role not in {"db"}`, none, true},
	{`role not   in {"db"}`, pod, false},
	{"role not\tin {\"db\"}", pod, false},
	{`tier not in {""}`, pod, false},
	{`role notin{"x"}`, pod, true},
	{`role not in ` + bigSet("db"), pod, false},
	{`role not in ` + bigSet("k"), pod, true},
	{`role  notin  {'db', "web"}`, pod, false},

	// contains
	{`name contains "api"`, pod, true},
	{`name contains "API"`, pod, false},
	{`name contains ""`, pod, true},
	{`name contains ""`, none, false},
	{`tier contains ""`, pod, true},
	{`tier contains "a"`, pod, false},
	{`name contains 'web-api-prod'`, pod, true},
	{`name contains"api"`, pod, true},
	{`contains contains "c"`, pod, true},
	{`name contains "x"`, none, false},

	// starts with
	{`name starts with "web-"`, pod, true},
	{`name starts with "api"`, pod, false},
	{`name starts with ""`, pod, true},
	{`name starts with ""`, none, false},
	{`name starts   with 'web'`, pod, true},
	{"name starts\n\twith \"web\"", pod, true},
	{`name starts with "web-api-prod-x"`, pod, false},
	{`missing starts with "a"`, pod, false},
	{`apos starts with "it'"`, pod, true},

	// ends with
	{`name ends with "-prod"`, pod, true},
	{`name ends with "-dev"`, pod, false},
	{`name ends with ""`, pod, true},
	{`name ends with ""`, none, false},
	{`name ends   with 'prod'`, pod, true},
	{`missing ends with ""`, pod, false},
	{`quote ends with '"'`, pod, true},

	// negation
	{`!role == "db"`, pod, false},
	{`!role == "web"`, pod, true},
	{`!role == "db"`, none, true},
	{`!!role == "db"`, pod, true},
	{`!!!role == "db"`, pod, false},
	{`! ! role == "db"`, pod, true},
	{`!!!!has(role)`, pod, true},
	{`!(role == "db")`, pod, false},
	{`!(!(role == "db"))`, pod, true},
	{`!role != "db"`, none, false},
	{`!role in {"db"}`, none, true},
	{`!role not in {"db"}`, none, false},
	{`!name contains "api"`, pod, false},
	{`!name starts with "x"`, pod, true},
	{`!name ends with "x"`, none, true},

	// precedence: ! over && over ||
	{`has(missing) || has(role) && has(app)`, pod, true},
	{`has(role) || has(missing) && has(missing2)`, pod, true},
	{`has(missing) && has(role) || has(app)`, pod, true},
	{`(has(role) || has(missing)) && has(missing2)`, pod, false},
	{`!has(missing) && has(missing2)`, pod, false},
	{`!has(role) || has(app)`, pod, true},
	{`!(has(role) || has(app))`, pod, false},
	{`!(has(missing) || has(missing2))`, pod, true},
	{`!(has(role) && has(missing))`, pod, true},
	{`((role == "db"))`, pod, true},
	{`(((has(role) && (has(app)))))`, pod, true},
	{`has(role) && (has(missing) || has(app))`, pod, true},
	{`has(role) && (has(missing) || has(missing2))`, pod, false},
	{`(has(missing) || has(role)) && (has(app) || has(missing))`, pod, true},
	{`has(missing) || has(missing2) || has(app)`, pod, true},
	{`has(missing) || has(missing2) || has(missing3)`, pod, false},
	{`has(role) && has(app) && has(env)`, pod, true},
	{`has(role) && has(app) && has(missing)`, pod, false},
	{`a == "1" && b == "2" && c == "3"`, pod, true},
	{`a == "1" && b == "2" && c == "4"`, pod, false},
	{`(a == "1" || b == "x") && !has(missing)`, pod, true},
	{`(a == "x" || b == "x") && !has(missing)`, pod, false},
	{`role == "db" || role == "web" && env == "dev"`, pod, true},
	{`role == "web" || role == "db" && env == "dev"`, pod, false},
	{`(role == "web" || role == "db") && env == "prod"`, pod, true},
	{`!(role == "db" && env == "prod") || app == "web"`, pod, true},
	{`!(role == "db" && env == "prod") || app == "x"`, pod, false},

	// whitespace
	{`has(role)&&has(app)`, pod, true},
	{`has(role)||has(missing)`, pod, true},
	{"  has(role)\n&&\n\thas(app)  ", pod, true},
	{"(\nrole\t==\t'db'\n)", pod, true},
	{"\r\nrole == \"db\"\r\n", pod, true},
	{`role=="db"&&app=="web"||env=="dev"`, pod, true},
	{`!(role=="db")&&!has(x)`, pod, false},

	// operator and function words used as label names
	{`inside == "out"`, pod, true},
	{`in == "yes"`, pod, true},
	{`contains == "c"`, pod, true},
	{`not == "x"`, map[string]string{"not": "x"}, true},
	{`starts == "x"`, map[string]string{"starts": "x"}, true},
	{`all == "x"`, map[string]string{"all": "x"}, true},
	{`has == "x"`, map[string]string{"has": "x"}, true},
	{`global != "x"`, none, true},
	{`has(all)`, map[string]string{"all": ""}, true},
	{`notin notin {"x"}`, map[string]string{"notin": "y"}, true},

	// unusual but legal label names
	{`0 == "zero"`, map[string]string{"0": "zero"}, true},
	{`.hidden == ""`, map[string]string{".hidden": ""}, true},
	{`-x == "y"`, map[string]string{"-x": "y"}, true},
	{`a/b/c == "d"`, map[string]string{"a/b/c": "d"}, true},
	{longKey + ` == "v"`, map[string]string{longKey: "v"}, true},
	{`has(` + longKey + `)`, map[string]string{longKey: ""}, true},

	// present labels with empty values
	{`a == ""`, blank, true},
	{`a != ""`, blank, false},
	{`a in {"", "x"}`, blank, true},
	{`a not in {"", "x"}`, blank, false},
	{`a starts with ""`, blank, true},
	{`a ends with ""`, blank, true},
	{`a contains ""`, blank, true},
	{`has(a) && has(b) && !has(c)`, blank, true},

	// values holding syntax, whitespace and non-ASCII
	{`x == "a b` + "\t" + `c"`, map[string]string{"x": "a b\tc"}, true},
	{`x == "&& || ()"`, map[string]string{"x": "&& || ()"}, true},
	{`x in {"}", "{"}`, map[string]string{"x": "}"}, true},
	{`x == "é"`, map[string]string{"x": "é"}, true},
	{`x == "e"`, map[string]string{"x": "é"}, false},
}

// sliceLabels is a Labels that is not a map, like an endpoint's labels
// layered over its profiles'.
type sliceLabels []string // key, value, key, value, ...

func (s sliceLabels) Get(key string) (string, bool) {
	for i := 0; i+1 < len(s); i += 2 {
		if s[i] == key {
			return s[i+1], true
		}
	}
	return "", false
}

func toSliceLabels(m map[string]string) sliceLabels {
	var s sliceLabels
	for k, v := range m {
		s = append(s, k, v)
	}
	return s
}

func TestEvaluate(t *testing.T) {
	if len(evalCases) < 150 {
		t.Fatalf("only %d evaluation cases; want at least 150", len(evalCases))
	}
	for i, tc := range evalCases {
		sel, err := Parse(tc.expr)
		if err != nil {
			t.Errorf("%d: Parse(%q): %v", i, tc.expr, err)
			continue
		}
		if got := sel.Evaluate(tc.labels); got != tc.want {
			t.Errorf("%d: Parse(%q).Evaluate(%v) = %v, want %v", i, tc.expr, tc.labels, got, tc.want)
		}
		if got := sel.EvaluateLabels(toSliceLabels(tc.labels)); got != tc.want {
			t.Errorf("%d: Parse(%q).EvaluateLabels(%v) = %v, want %v", i, tc.expr, tc.labels, got, tc.want)
		}
		canon, err := Parse(sel.String())
		if err != nil {
			t.Errorf("%d: canonical form %q of %q does not parse: %v", i, sel.String(), tc.expr, err)
			continue
		}
		if canon.String() != sel.String() {
			t.Errorf("%d: %q: canonical %q re-parses to %q", i, tc.expr, sel.String(), canon.String())
		}
		if got := canon.Evaluate(tc.labels); got != tc.want {
			t.Errorf("%d: canonical %q of %q evaluates to %v, want %v", i, sel.String(), tc.expr, got, tc.want)
		}
	}
}

func TestEvaluateNilLabels(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want bool
	}{
		{`has(a)`, false},
		{`a != "x"`, true},
		{`a not in {"x"}`, true},
		{`all()`, true},
	} {
		if got := MustParse(tc.expr).EvaluateLabels(nil); got != tc.want {
			t.Errorf("Parse(%q).EvaluateLabels(nil) = %v, want %v", tc.expr, got, tc.want)
		}
	}
}

func TestZeroSelector(t *testing.T) {
	var zero Selector
	all := MustParse("")
	if !zero.Evaluate(none) || !zero.EvaluateLabels(nil) {
		t.Error("zero Selector does not match everything")
	}
	if zero.String() != all.String() || zero.UniqueID() != all.UniqueID() || zero.Hash() != all.Hash() {
		t.Errorf("zero Selector = (%q, %q, %q), want (%q, %q, %q)",
			zero.String(), zero.UniqueID(), zero.Hash(), all.String(), all.UniqueID(), all.Hash())
	}
	if zero.LabelKeys() != nil || zero.UsesGlobal() {
		t.Error("zero Selector has label keys or uses global()")
	}
}

func TestMaxNesting(t *testing.T) {
	expr := strings.Repeat("(", maxDepth) + `a == "1"` + strings.Repeat(")", maxDepth)
	sel, err := Parse(expr)
	if err != nil {
		t.Fatalf("Parse(%d nested parentheses): %v", maxDepth, err)
	}
	if !sel.Evaluate(pod) || sel.String() != `a == "1"` {
		t.Errorf("Parse(%d nested parentheses) = %q", maxDepth, sel.String())
	}
}
