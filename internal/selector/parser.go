package selector

import "slices"

// maxDepth bounds how deeply parentheses may nest. Selectors arrive from the
// datastore, i.e. from users, and both parsing and evaluation recurse once
// per level; the bound keeps a hostile selector from costing more than a
// sensible one. Real selectors rarely nest more than two or three deep.
const maxDepth = 128

// operandHint lists what may start an operand, for error messages.
const operandHint = `a label, "has(", "all()", "global()", "!" or "("`

// parser holds the state of one Parse call.
type parser struct {
	src   string // the whole selector
	pos   int    // byte offset of the next unread byte
	depth int    // current parenthesis nesting
}

// parse parses a complete selector into a normalised tree.
func parse(expr string) (*node, error) {
	p := &parser{src: expr}
	p.skipSpace()
	if p.eof() {
		return &node{op: opAll}, nil
	}
	n, err := p.parseOr()
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	if !p.eof() {
		if p.peek() == ')' {
			return nil, p.errorf(p.pos, `unexpected ")" with no matching "("`)
		}
		return nil, p.errorf(p.pos, `expected "&&", "||" or end of selector%s`, p.found())
	}
	return n, nil
}

// parseOr parses and { "||" and }.
func (p *parser) parseOr() (*node, error) {
	first, err := p.parseAnd()
	if err != nil {
		return nil, err
	}
	kids := []*node{first}
	for {
		p.skipSpace()
		if !p.consume("||") {
			return newBranch(opOr, kids), nil
		}
		n, err := p.parseAnd()
		if err != nil {
			return nil, err
		}
		kids = append(kids, n)
	}
}

// parseAnd parses op { "&&" op }.
func (p *parser) parseAnd() (*node, error) {
	first, err := p.parseNot()
	if err != nil {
		return nil, err
	}
	kids := []*node{first}
	for {
		p.skipSpace()
		if !p.consume("&&") {
			return newBranch(opAnd, kids), nil
		}
		n, err := p.parseNot()
		if err != nil {
			return nil, err
		}
		kids = append(kids, n)
	}
}

// parseNot parses { "!" } operand, collapsing the "!"s by parity.
func (p *parser) parseNot() (*node, error) {
	negate := false
	for {
		p.skipSpace()
		if !p.consume("!") {
			break
		}
		negate = !negate
	}
	n, err := p.parseOperand()
	if err != nil {
		return nil, err
	}
	if negate {
		return newNot(n), nil
	}
	return n, nil
}

// parseOperand parses a parenthesised expression, a function call or a
// label comparison. Leading whitespace has been skipped.
func (p *parser) parseOperand() (*node, error) {
	start := p.pos
	if p.eof() {
		return nil, p.errorf(start, "expected %s", operandHint)
	}
	switch c := p.peek(); {
	case c == '(':
		return p.parseParens()
	case isLabelByte(c):
		l, err := p.label()
		if err != nil {
			return nil, err
		}
		p.skipSpace()
		if p.peek() == '(' {
			switch l {
			case "has", "all", "global":
				return p.parseCall(l)
			}
			return nil, p.errorf(p.pos, `unexpected "(" after label %q: the only functions are has(), all() and global()`, l)
		}
		return p.parseComparison(l)
	default:
		return nil, p.errorf(start, "expected %s%s", operandHint, p.found())
	}
}

// parseParens parses "(" or ")".
func (p *parser) parseParens() (*node, error) {
	open := p.pos
	p.depth++
	if p.depth > maxDepth {
		return nil, p.errorf(open, "parentheses nested more than %d deep", maxDepth)
	}
	p.pos++ // "("
	n, err := p.parseOr()
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	if !p.consume(")") {
		return nil, p.errorf(p.pos, `expected ")" to close the "(" at position %d%s`, open, p.found())
	}
	p.depth--
	return n, nil
}

// parseCall parses the rest of has(LABEL), all() or global(); the name and
// any whitespace after it have been consumed and the next byte is "(".
func (p *parser) parseCall(name string) (*node, error) {
	p.pos++ // "("
	p.skipSpace()
	var n *node
	switch name {
	case "has":
		start := p.pos
		l, err := p.label()
		if err != nil {
			return nil, err
		}
		if l == "" {
			return nil, p.errorf(start, `expected a label name inside "has()"%s`, p.found())
		}
		p.skipSpace()
		if !p.consume(")") {
			return nil, p.errorf(p.pos, `expected ")" after "has(%s"%s`, l, p.found())
		}
		return &node{op: opHas, label: l}, nil
	case "global":
		n = &node{op: opGlobal}
	default:
		n = &node{op: opAll}
	}
	if !p.consume(")") {
		return nil, p.errorf(p.pos, `expected ")" after "%s("%s`, name, p.found())
	}
	return n, nil
}

// parseComparison parses the operator and operand that follow a label.
func (p *parser) parseComparison(label string) (*node, error) {
	p.skipSpace()
	opPos := p.pos
	var op opcode
	switch {
	case p.consume("=="):
		op = opEq
	case p.consume("!="):
		op = opNe
	default:
		switch w := p.word(); w {
		case "contains":
			op = opContains
		case "in":
			op = opIn
		case "notin":
			op = opNotIn
		case "not", "starts", "ends":
			second, op2 := "in", opNotIn
			switch w {
			case "starts":
				second, op2 = "with", opStartsWith
			case "ends":
				second, op2 = "with", opEndsWith
			}
			p.skipSpace()
			at := p.pos
			if p.word() != second {
				p.pos = at
				return nil, p.errorf(at, "expected %q after %q%s", second, w, p.found())
			}
			op = op2
		default:
			p.pos = opPos
			return nil, p.errorf(opPos, "expected an operator after label %q "+
				"(==, !=, in, not in, contains, starts with or ends with)%s", label, p.found())
		}
	}
	n := &node{op: op, label: label}
	if op == opIn || op == opNotIn {
		set, err := p.parseSet(op.String())
		if err != nil {
			return nil, err
		}
		n.set = set
		return n, nil
	}
	v, err := p.quoted("after " + quoteOp(op.String()))
	if err != nil {
		return nil, err
	}
	n.value = v
	return n, nil
}

// quoteOp wraps an operator in double quotes for an error message.
func quoteOp(op string) string { return `"` + op + `"` }

// parseSet parses "{" [STR {"," STR}] "}" and returns the values sorted and
// de-duplicated; op names the operator for error messages.
func (p *parser) parseSet(op string) ([]string, error) {
	p.skipSpace()
	open := p.pos
	if !p.consume("{") {
		return nil, p.errorf(p.pos, `expected "{" after %s%s`, quoteOp(op), p.found())
	}
	p.skipSpace()
	if p.consume("}") {
		return nil, nil
	}
	var set []string
	context := `or "}" after "{"`
	for {
		v, err := p.quoted(context)
		if err != nil {
			return nil, err
		}
		set = append(set, v)
		p.skipSpace()
		if p.consume("}") {
			break
		}
		if !p.consume(",") {
			return nil, p.errorf(p.pos, `expected "," or "}" in the set opened at position %d%s`, open, p.found())
		}
		context = `after ","`
	}
	slices.Sort(set)
	return slices.Clip(slices.Compact(set)), nil
}

// newBranch returns the && or || of kids, flattening any kid that is itself
// the same operator; a single kid is returned as is.
func newBranch(op opcode, kids []*node) *node {
	if len(kids) == 1 {
		return kids[0]
	}
	flat := make([]*node, 0, len(kids))
	for _, k := range kids {
		if k.op == op {
			flat = append(flat, k.kids...)
		} else {
			flat = append(flat, k)
		}
	}
	return &node{op: op, kids: flat}
}

// newNot returns the negation of n, cancelling a double negation.
func newNot(n *node) *node {
	if n.op == opNot {
		return n.kids[0]
	}
	return &node{op: opNot, kids: []*node{n}}
}
