package selector

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// maxLabelLen is the longest label name the grammar accepts, as in Calico.
const maxLabelLen = 512

// The scanning half of the parser. The grammar is context-sensitive (the
// word "in" is an operator after a label and a label anywhere else), so
// rather than produce a token slice up front, the parser pulls exactly the
// kind of token it expects next from the current position. That also gives
// every error an exact byte offset for free.

// isSpace reports whether c is whitespace that may separate tokens.
func isSpace(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\r', '\v', '\f':
		return true
	}
	return false
}

// isLabelByte reports whether c may appear in a label: [A-Za-z0-9_./-].
func isLabelByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return c == '_' || c == '.' || c == '/' || c == '-'
}

// eof reports whether the whole input has been consumed.
func (p *parser) eof() bool { return p.pos >= len(p.src) }

// peek returns the byte at the current position, or 0 at end of input.
// Callers that must tell a NUL byte from the end use eof.
func (p *parser) peek() byte {
	if p.eof() {
		return 0
	}
	return p.src[p.pos]
}

// skipSpace advances past any whitespace.
func (p *parser) skipSpace() {
	for p.pos < len(p.src) && isSpace(p.src[p.pos]) {
		p.pos++
	}
}

// consume advances past s if the input continues with it.
func (p *parser) consume(s string) bool {
	if strings.HasPrefix(p.src[p.pos:], s) {
		p.pos += len(s)
		return true
	}
	return false
}

// word advances past a maximal run of label bytes and returns it, which is
// "" if the current byte is not a label byte. Reading the maximal run is
// what makes operator words end at a word boundary: "inside" is one word,
// never the operator "in" followed by "side".
func (p *parser) word() string {
	start := p.pos
	for p.pos < len(p.src) && isLabelByte(p.src[p.pos]) {
		p.pos++
	}
	return p.src[start:p.pos]
}

// label reads a label name; it returns "" without error if there is none.
func (p *parser) label() (string, error) {
	start := p.pos
	l := p.word()
	if len(l) > maxLabelLen {
		return "", p.errorf(start, "label is %d bytes long; the limit is %d", len(l), maxLabelLen)
	}
	return l, nil
}

// quoted reads a single- or double-quoted string after optional whitespace.
// context completes the message "expected a quoted string ..." if there is
// no string here.
func (p *parser) quoted(context string) (string, error) {
	p.skipSpace()
	q := p.peek()
	if p.eof() || (q != '"' && q != '\'') {
		return "", p.errorf(p.pos, "expected a quoted string %s%s", context, p.found())
	}
	start := p.pos
	end := strings.IndexByte(p.src[start+1:], q)
	if end < 0 {
		return "", p.errorf(start, "unterminated string: no closing %c", q)
	}
	p.pos = start + 1 + end + 1
	return p.src[start+1 : start+1+end], nil
}

// found describes what is at the current position for the tail of an error
// message, e.g. `, found "xyz"`. At end of input it returns "": the position
// already says the selector ended.
func (p *parser) found() string {
	if p.eof() {
		return ""
	}
	rest := p.src[p.pos:]
	if isLabelByte(rest[0]) {
		n := 0
		for n < len(rest) && isLabelByte(rest[n]) {
			n++
		}
		const maxShown = 32
		if n > maxShown {
			return fmt.Sprintf(", found %q...", rest[:maxShown])
		}
		return fmt.Sprintf(", found %q", rest[:n])
	}
	r, size := utf8.DecodeRuneInString(rest)
	if r == utf8.RuneError && size <= 1 {
		return fmt.Sprintf(", found byte %#02x", rest[0])
	}
	return fmt.Sprintf(", found %q", string(r))
}

// errorf builds a *ParseError at byte offset pos.
func (p *parser) errorf(pos int, format string, args ...any) *ParseError {
	return &ParseError{Expr: p.src, Pos: pos, Msg: fmt.Sprintf(format, args...)}
}
