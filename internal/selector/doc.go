// Package selector parses and evaluates Calico's label-selector language.
//
// Why: policies, IP pools and BGP peers choose the endpoints and nodes they
// apply to by label selector, e.g.
//
//	role == "db" && calyx.dev/network in {"blue", "green"} && !has(quarantine)
//
// Users migrating from Calico bring their selectors with them, so Calyx
// accepts the same grammar with the same semantics. The agent evaluates every
// selector against every endpoint's labels whenever either changes, so
// evaluation sits on a hot path and must not allocate. Selectors are also
// stored, compared and used to name kernel objects (nftables sets), so each
// one has a canonical text form and stable identifiers derived from it.
//
// How: [Parse] turns the text into an immutable [Selector]. Parsing is a
// hand-written recursive-descent pass directly over the bytes (no separate
// token slice), so errors carry the exact byte offset of the problem in a
// [*ParseError]. The tree is normalised while it is built (a run of "!"
// collapses by parity, nested "&&" or "||" chains are flattened, sets are
// sorted and de-duplicated) and then frozen: the canonical string, the
// [Selector.UniqueID], the [Selector.Hash] and the referenced label keys are
// all computed once at parse time. Evaluation walks the frozen tree with a
// switch per node and no allocation, so a *Selector is safe for concurrent
// use by any number of goroutines.
//
// # Grammar
//
//	selector := ε | or        or := and { "||" and }        and := op { "&&" op }
//	op       := { "!" } ( "has(" LABEL ")" | "all()" | "global()" | "(" or ")"
//	           | LABEL ("==" | "!=" | "contains" | "starts with" | "ends with") STR
//	           | LABEL ("in" | "not in") "{" [STR {"," STR}] "}" )
//	LABEL    := [A-Za-z0-9_./-]+ (at most 512 bytes)
//	STR      := "…" | '…'   (no escapes)
//
// "!" binds tightest, then "&&", then "||". Whitespace (space, tab, CR, LF,
// VT, FF) may appear between any two tokens, including inside "has( x )" and
// between "has" and "(". An empty or all-whitespace selector means all().
// "not in" may also be written "notin". The word operators (contains,
// starts with, ends with, in, not in) are recognised only directly after a
// label and must end at a word boundary, that is, not be followed by a label
// byte: "inside == 'x'" compares the label inside, and "has(in)" tests for
// the label in. "startswith" and "endswith" are not accepted; write
// "starts with" and "ends with". Parentheses may nest at most 128 deep.
//
// # Semantics
//
// ==, in, contains, starts with, ends with and has() are false when the label
// is missing; != and not in are true when it is missing. all() is always
// true. global() also evaluates true: its "non-namespaced endpoints only"
// meaning is a rewrite done by the caller, which can use
// [Selector.UsesGlobal] to tell whether that rewrite is needed. Comparison
// is byte-wise and case-sensitive.
//
// # Canonical form
//
// [Selector.String] returns the canonical form, which re-parses to itself:
// single spaces around binary operators, "has(x)", "all()", "global()";
// values in double quotes unless they contain a double quote, then in single
// quotes (a parsed value can never contain both); "notin" becomes "not in";
// "!!x" becomes "x"; the empty selector becomes "all()". Operands are never
// reordered, because their order is meaningful to the people reading them,
// but redundant parentheses are dropped and nested chains of the same
// operator are flattened, so "(a == 'x')" prints as a == "x" and
// "a || (b || c)" as "a || b || c". Parentheses are printed only where
// precedence requires them, e.g. a == "1" && (b == "2" || c == "3"), and
// around the operand of "!" when it is an && or || expression. The values
// of an in or not in set are printed sorted and de-duplicated, since a set
// has no order: a in {"b", "a", "b"} prints as a in {"a", "b"}.
//
// Calyx's canonical form therefore differs from Calico's, which wraps every
// && and || group in parentheses, so a UniqueID computed by Calyx does not
// equal Calico's for selectors that contain && or ||.
//
// # Errors
//
// Parse returns a *ParseError naming the expression, the byte offset where
// parsing failed and what was expected there. Use [IsParseError] or
// errors.As to detect one.
package selector
