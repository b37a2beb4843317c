package datastore

import (
	"errors"
	"fmt"
	"strings"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// errCode classifies a datastore error for the Is* predicates.
type errCode int

const (
	codeNotFound errCode = iota + 1
	codeConflict
	codeAlreadyExists
	codeUnreachable
)

// storeError is every classified error this package returns. Callers test
// it with the predicates, never by matching text.
type storeError struct {
	code errCode
	msg  string
	err  error // wrapped cause, may be nil
}

func (e *storeError) Error() string {
	if e.err == nil {
		return e.msg
	}
	return e.msg + ": " + e.err.Error()
}

func (e *storeError) Unwrap() error { return e.err }

func hasCode(err error, c errCode) bool {
	var se *storeError
	return errors.As(err, &se) && se.code == c
}

// IsNotFound reports whether err says that the resource or key does not
// exist.
func IsNotFound(err error) bool { return hasCode(err, codeNotFound) }

// IsConflict reports whether err says that a guarded write was refused
// because the stored object changed since the caller read it (its
// resourceVersion is stale). Re-read and retry.
func IsConflict(err error) bool { return hasCode(err, codeConflict) }

// IsAlreadyExists reports whether err says that a create found the resource
// already stored.
func IsAlreadyExists(err error) bool { return hasCode(err, codeAlreadyExists) }

// IsUnreachable reports whether err says that etcd could not be reached.
func IsUnreachable(err error) bool { return hasCode(err, codeUnreachable) }

func notFound(kind, name string) error {
	return &storeError{code: codeNotFound, msg: fmt.Sprintf("%s %q not found", kind, name)}
}

func alreadyExists(kind, name string) error {
	return &storeError{code: codeAlreadyExists, msg: fmt.Sprintf("%s %q already exists", kind, name)}
}

func conflict(kind, name string, stored int64, given string) error {
	return &storeError{code: codeConflict, msg: fmt.Sprintf(
		"%s %q was changed concurrently: stored resourceVersion is %d, the write was based on %s (read it again and retry)",
		kind, name, stored, given)}
}

// envHint tells the operator how to point Calyx at etcd.
const envHint = "set --etcd-endpoints or " + EnvEndpoints + "; for TLS also " +
	EnvCAFile + ", " + EnvCertFile + ", " + EnvKeyFile

func unreachable(endpoints []string, err error) error {
	return &storeError{
		code: codeUnreachable,
		msg:  "cannot reach etcd at " + strings.Join(endpoints, ", "),
		err:  &hintError{err: err, hint: envHint},
	}
}

// hintError appends an operator hint in parentheses after the cause, so the
// message reads "...: context deadline exceeded (set --etcd-endpoints ...)".
type hintError struct {
	err  error
	hint string
}

func (e *hintError) Error() string { return e.err.Error() + " (" + e.hint + ")" }
func (e *hintError) Unwrap() error { return e.err }

// wrapErr adds context to an error from the etcd client, classifying
// "etcd is down" as unreachable and explaining the two server limits a big
// batch can hit.
func (c *Client) wrapErr(what string, err error) error {
	switch {
	case errors.Is(err, rpctypes.ErrTooManyOps):
		return fmt.Errorf("%s: the transaction has more operations than the etcd server allows "+
			"(raise it with etcd --max-txn-ops, e.g. --max-txn-ops=%d; the embedded etcd already does): %w",
			what, DefaultMaxTxnOps, err)
	case errors.Is(err, rpctypes.ErrRequestTooLarge):
		return fmt.Errorf("%s: the transaction is larger than the etcd server accepts "+
			"(raise it with etcd --max-request-bytes): %w", what, err)
	case status.Code(err) == codes.Unavailable, errors.Is(err, rpctypes.ErrNoLeader):
		return fmt.Errorf("%s: %w", what, unreachable(c.endpoints, err))
	}
	return fmt.Errorf("%s: %w", what, err)
}
