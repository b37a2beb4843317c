package selector

import (
	"errors"
	"fmt"
)

// ParseError reports a selector that does not follow the grammar. Pos is
// the byte offset into Expr at which parsing failed: the offending byte, the
// start of an over-long label or unterminated string, or len(Expr) when the
// selector ended too early.
type ParseError struct {
	Expr string // the selector as given to Parse
	Pos  int    // byte offset into Expr
	Msg  string // what was expected at Pos, lowercase, no trailing period
}

// Error renders the error as, for example,
//
//	selector "a == " at position 5: expected a quoted string after "=="
func (e *ParseError) Error() string {
	return fmt.Sprintf("selector %q at position %d: %s", e.Expr, e.Pos, e.Msg)
}

// IsParseError reports whether err, or any error it wraps, is a
// *ParseError.
func IsParseError(err error) bool {
	var pe *ParseError
	return errors.As(err, &pe)
}
