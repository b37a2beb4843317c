package api

import (
	"errors"
	"fmt"
	"strings"
)

// FieldError is one invalid field: its path in the document (as written in
// YAML, e.g. "spec.ingress[0].destination.ports[1]"), what was wrong, and
// what was expected.
type FieldError struct {
	Path string
	Msg  string
}

func (e FieldError) Error() string {
	if e.Path == "" {
		return e.Msg
	}
	return e.Path + ": " + e.Msg
}

// ValidationError lists every invalid field of one resource.
type ValidationError struct {
	Kind   string
	Name   string
	Fields []FieldError
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Error()
	}
	who := e.Kind
	if e.Name != "" {
		who += fmt.Sprintf(" %q", e.Name)
	}
	return fmt.Sprintf("invalid %s: %s", who, strings.Join(parts, "; "))
}

// IsInvalid reports whether err is, or wraps, a *ValidationError.
func IsInvalid(err error) bool {
	var v *ValidationError
	return errors.As(err, &v)
}

// fieldErrors collects FieldErrors while a resource is validated.
type fieldErrors []FieldError

func (fe *fieldErrors) add(path, format string, args ...any) {
	*fe = append(*fe, FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
}

// result turns the collected errors into a *ValidationError, or nil.
func (fe fieldErrors) result(r Resource) error {
	if len(fe) == 0 {
		return nil
	}
	return &ValidationError{Kind: r.GetKind(), Name: r.GetObjectMeta().Name, Fields: fe}
}
