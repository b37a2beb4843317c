package selector

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

type errorCase struct {
	expr string
	pos  int    // want ParseError.Pos
	msg  string // want a substring of ParseError.Msg
}

var errorCases = []errorCase{
	// missing or malformed values
	{`a == `, 5, `expected a quoted string after "=="`},
	{`a ==`, 4, `expected a quoted string after "=="`},
	{`a != `, 5, `expected a quoted string after "!="`},
	{`a == x`, 5, `expected a quoted string after "==", found "x"`},
	{`a contains`, 10, `expected a quoted string after "contains"`},
	{`a starts with`, 13, `expected a quoted string after "starts with"`},
	{`a ends with {`, 12, `expected a quoted string after "ends with", found "{"`},
	{`a == "x`, 5, `unterminated string: no closing "`},
	{`a == 'x`, 5, `unterminated string: no closing '`},
	{`a == 'x"`, 5, `unterminated string`},

	// operators
	{`a`, 1, `expected an operator after label "a"`},
	{`a = "x"`, 2, `expected an operator after label "a"`},
	{`a === "x"`, 4, `expected a quoted string after "==", found "="`},
	{`a startswith "x"`, 2, `found "startswith"`},
	{`a inside {"x"}`, 2, `found "inside"`},
	{`a in-x {"x"}`, 2, `found "in-x"`},
	{`a not "x"`, 6, `expected "in" after "not"`},
	{`a not inside {}`, 6, `expected "in" after "not", found "inside"`},
	{`a starts "x"`, 9, `expected "with" after "starts"`},
	{`a ends wit "x"`, 7, `expected "with" after "ends", found "wit"`},
	{`foo(x)`, 3, `unexpected "(" after label "foo"`},

	// sets
	{`a in "x"`, 5, `expected "{" after "in"`},
	{`a not in`, 8, `expected "{" after "not in"`},
	{`a in {`, 6, `expected a quoted string or "}" after "{"`},
	{`a in {"x"`, 9, `expected "," or "}" in the set opened at position 5`},
	{`a in {"x",}`, 10, `expected a quoted string after ",", found "}"`},
	{`a in {"x" "y"}`, 10, `expected "," or "}"`},
	{`a in {"x`, 6, `unterminated string`},
	{`a in {x}`, 6, `expected a quoted string or "}" after "{", found "x"`},

	// functions
	{`has()`, 4, `expected a label name inside "has()", found ")"`},
	{`has( )`, 5, `expected a label name inside "has()"`},
	{`has(`, 4, `expected a label name inside "has()"`},
	{`has(a`, 5, `expected ")" after "has(a"`},
	{`has(a b)`, 6, `expected ")" after "has(a", found "b"`},
	{`has("a")`, 4, `expected a label name inside "has()"`},
	{`all(x)`, 4, `expected ")" after "all(", found "x"`},
	{`global(`, 7, `expected ")" after "global("`},

	// parentheses
	{`(a == "x"`, 9, `expected ")" to close the "(" at position 0`},
	{`((a == "x")`, 11, `expected ")" to close the "(" at position 0`},
	{`a == "x" || (b == "y"`, 21, `expected ")" to close the "(" at position 12`},
	{`a == "x")`, 8, `unexpected ")" with no matching "("`},
	{`a == "x")(`, 8, `unexpected ")"`},
	{`)`, 0, `expected a label, "has(", "all()", "global()", "!" or "(", found ")"`},
	{`()`, 1, `found ")"`},
	{strings.Repeat("(", maxDepth+1) + `a == "1"` + strings.Repeat(")", maxDepth+1), maxDepth, `nested more than 128 deep`},

	// operands and connectives
	{`a == "x" b == "y"`, 9, `expected "&&", "||" or end of selector, found "b"`},
	{`a == "x" & b == "y"`, 9, `found "&"`},
	{`a == "x" | b == "y"`, 9, `found "|"`},
	{`a == "x" &&`, 11, `expected a label, "has(", "all()", "global()", "!" or "("`},
	{`a == "x" || `, 12, `expected a label`},
	{`a == "x" && && b == "y"`, 12, `found "&"`},
	{`!`, 1, `expected a label`},
	{`!!`, 2, `expected a label`},
	{`!= "x"`, 1, `found "="`},
	{`a == "x" @`, 9, `found "@"`},
	{`á == "x"`, 0, `found "á"`},
	{"\xff", 0, `found byte 0xff`},
	{`"a" == "x"`, 0, `expected a label`},

	// label length
	{longKey + `k == "v"`, 0, `label is 513 bytes long; the limit is 512`},
	{`has(` + longKey + `k)`, 4, `label is 513 bytes long`},
	{`x == "1" && ` + longKey + `k == "v"`, 12, `label is 513 bytes long`},
}

func TestParseErrors(t *testing.T) {
	if len(errorCases) < 25 {
		t.Fatalf("only %d error cases; want at least 25", len(errorCases))
	}
	for i, tc := range errorCases {
		sel, err := Parse(tc.expr)
		if err == nil {
			t.Errorf("%d: Parse(%q) = %q, want an error", i, tc.expr, sel)
			continue
		}
		var pe *ParseError
		if !errors.As(err, &pe) {
			t.Errorf("%d: Parse(%q) error %v is a %T, want *ParseError", i, tc.expr, err, err)
			continue
		}
		if pe.Expr != tc.expr {
			t.Errorf("%d: ParseError.Expr = %q, want %q", i, pe.Expr, tc.expr)
		}
		if pe.Pos != tc.pos {
			t.Errorf("%d: Parse(%q): error at position %d, want %d (%v)", i, tc.expr, pe.Pos, tc.pos, err)
		}
		if !strings.Contains(pe.Msg, tc.msg) {
			t.Errorf("%d: Parse(%q): message %q does not contain %q", i, tc.expr, pe.Msg, tc.msg)
		}
		if _, err := Canonicalize(tc.expr); !IsParseError(err) {
			t.Errorf("%d: Canonicalize(%q) error = %v, want a *ParseError", i, tc.expr, err)
		}
	}
}

func TestParseErrorString(t *testing.T) {
	_, err := Parse(`a == `)
	want := `selector "a == " at position 5: expected a quoted string after "=="`
	if err == nil || err.Error() != want {
		t.Errorf("Parse(`a == `) error = %v, want %s", err, want)
	}
}

func TestIsParseError(t *testing.T) {
	_, err := Parse(`a ==`)
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{err, true},
		{fmt.Errorf("parsing policy selector: %w", err), true},
		{errors.New("other"), false},
		{nil, false},
	} {
		if got := IsParseError(tc.err); got != tc.want {
			t.Errorf("IsParseError(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestMustParsePanics(t *testing.T) {
	defer func() {
		err, ok := recover().(error)
		if !ok || !IsParseError(err) {
			t.Errorf("MustParse(`a ==`) panicked with %v, want an error wrapping a *ParseError", err)
		}
	}()
	MustParse(`a ==`)
}
