package selector

import (
	"slices"
	"strings"
)

// opcode says what a node tests.
type opcode uint8

const (
	opAll        opcode = iota // all(): always true
	opGlobal                   // global(): true here; callers rewrite it
	opHas                      // has(label)
	opEq                       // label == value
	opNe                       // label != value
	opContains                 // label contains value
	opStartsWith               // label starts with value
	opEndsWith                 // label ends with value
	opIn                       // label in {set}
	opNotIn                    // label not in {set}
	opNot                      // !kids[0]
	opAnd                      // kids[0] && kids[1] && ...
	opOr                       // kids[0] || kids[1] || ...
)

// String returns the operator as written in canonical selectors.
func (op opcode) String() string {
	switch op {
	case opAll:
		return "all()"
	case opGlobal:
		return "global()"
	case opHas:
		return "has()"
	case opEq:
		return "=="
	case opNe:
		return "!="
	case opContains:
		return "contains"
	case opStartsWith:
		return "starts with"
	case opEndsWith:
		return "ends with"
	case opIn:
		return "in"
	case opNotIn:
		return "not in"
	case opNot:
		return "!"
	case opAnd:
		return "&&"
	case opOr:
		return "||"
	}
	return "?"
}

// node is one vertex of a parsed, normalised selector. A single struct
// with a switch on op, rather than one type per operator behind an
// interface, keeps evaluation free of dynamic dispatch except for the
// caller's Labels.Get and makes the tree easy to walk. Nodes are never
// modified after parse returns.
type node struct {
	op    opcode
	label string   // opHas .. opNotIn
	value string   // opEq .. opEndsWith
	set   []string // opIn, opNotIn: sorted, distinct
	kids  []*node  // opNot: exactly one; opAnd, opOr: two or more, none of the same op
}

// eval reports whether labels satisfy n.
func (n *node) eval(labels Labels) bool {
	switch n.op {
	case opAll, opGlobal:
		return true
	case opHas:
		_, ok := labels.Get(n.label)
		return ok
	case opNot:
		return !n.kids[0].eval(labels)
	case opAnd:
		for _, k := range n.kids {
			if !k.eval(labels) {
				return false
			}
		}
		return true
	case opOr:
		for _, k := range n.kids {
			if k.eval(labels) {
				return true
			}
		}
		return false
	}
	v, ok := labels.Get(n.label)
	switch n.op {
	case opEq:
		return ok && v == n.value
	case opNe:
		return !ok || v != n.value
	case opContains:
		return ok && strings.Contains(v, n.value)
	case opStartsWith:
		return ok && strings.HasPrefix(v, n.value)
	case opEndsWith:
		return ok && strings.HasSuffix(v, n.value)
	case opIn:
		return ok && setContains(n.set, v)
	case opNotIn:
		return !ok || !setContains(n.set, v)
	}
	return false
}

// setContains reports whether the sorted slice set holds v. Small sets,
// the common case, are scanned; larger ones are binary-searched.
func setContains(set []string, v string) bool {
	if len(set) <= 8 {
		for _, s := range set {
			if s == v {
				return true
			}
		}
		return false
	}
	_, found := slices.BinarySearch(set, v)
	return found
}

// appendCanonical appends the canonical text of n to b.
func (n *node) appendCanonical(b []byte) []byte {
	switch n.op {
	case opAll, opGlobal:
		return append(b, n.op.String()...)
	case opHas:
		b = append(b, "has("...)
		b = append(b, n.label...)
		return append(b, ')')
	case opNot:
		b = append(b, '!')
		return n.kids[0].appendOperand(b, opNot)
	case opAnd, opOr:
		for i, k := range n.kids {
			if i > 0 {
				b = append(b, ' ')
				b = append(b, n.op.String()...)
				b = append(b, ' ')
			}
			b = k.appendOperand(b, n.op)
		}
		return b
	}
	b = append(b, n.label...)
	b = append(b, ' ')
	b = append(b, n.op.String()...)
	b = append(b, ' ')
	if n.op != opIn && n.op != opNotIn {
		return appendQuoted(b, n.value)
	}
	b = append(b, '{')
	for i, s := range n.set {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = appendQuoted(b, s)
	}
	return append(b, '}')
}

// appendOperand appends n as an operand of parent, parenthesised only if
// n binds less tightly than parent: an && or || under "!", or an || under
// &&. Because the tree is flattened, an && never sits directly under an &&
// nor an || under an ||.
func (n *node) appendOperand(b []byte, parent opcode) []byte {
	paren := (parent == opNot && (n.op == opAnd || n.op == opOr)) ||
		(parent == opAnd && n.op == opOr)
	if !paren {
		return n.appendCanonical(b)
	}
	b = append(b, '(')
	b = n.appendCanonical(b)
	return append(b, ')')
}

// appendQuoted appends s in double quotes, or in single quotes if s holds a
// double quote. The grammar has no escapes, so a parsed value never holds
// both kinds of quote.
func appendQuoted(b []byte, s string) []byte {
	q := byte('"')
	if strings.IndexByte(s, '"') >= 0 {
		q = '\''
	}
	b = append(b, q)
	b = append(b, s...)
	return append(b, q)
}

// walk calls fn for n and every node below it, parents first.
func (n *node) walk(fn func(*node)) {
	fn(n)
	for _, k := range n.kids {
		k.walk(fn)
	}
}
