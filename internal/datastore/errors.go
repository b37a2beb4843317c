package datastore

import (
	"context"
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
	codeNoLeader
	codeTimedOut
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

// IsNoLeader reports whether err says that etcd answered but has no leader
// (it lost quorum or is electing one), so it can neither read nor write.
func IsNoLeader(err error) bool { return hasCode(err, codeNoLeader) }

// IsUnavailable reports whether err says that etcd is down for now:
// unreachable, without a leader, or failing to commit requests in time.
// Such errors are worth retrying later.
func IsUnavailable(err error) bool {
	return IsUnreachable(err) || IsNoLeader(err) || hasCode(err, codeTimedOut)
}

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
	var cause error = &hintError{err: err, hint: envHint}
	if err == nil {
		cause = nil
	}
	return &storeError{
		code: codeUnreachable,
		msg:  "etcd at " + strings.Join(endpoints, ", ") + " unreachable",
		err:  cause,
	}
}

// noLeader is the error of a reachable etcd that has no leader; err (may be
// nil) is the cause.
func noLeader(endpoints []string, err error) error {
	return &storeError{
		code: codeNoLeader,
		msg: "etcd at " + strings.Join(endpoints, ", ") + " has no leader " +
			"(its members answer but cannot elect one: is a quorum of members up and able to reach each other?)",
		err: err,
	}
}

// leaderLost reports whether err is etcd saying that it has no leader or
// lost it while serving the request.
func leaderLost(err error) bool {
	return errors.Is(err, rpctypes.ErrNoLeader) || errors.Is(err, rpctypes.ErrLeaderChanged) ||
		errors.Is(err, rpctypes.ErrTimeoutDueToLeaderFail)
}

// serverTimedOut reports whether err is etcd saying that it could not
// commit the request in time (a leader election, a lost peer, overload).
// That includes the server giving up at the request's own deadline, which
// reaches the client as a status with code Unknown and the context's
// message rather than as DeadlineExceeded.
func serverTimedOut(err error) bool {
	if errors.Is(err, rpctypes.ErrTimeout) || errors.Is(err, rpctypes.ErrTimeoutDueToConnectionLost) {
		return true
	}
	st, ok := status.FromError(err)
	return ok && st.Code() == codes.Unknown && st.Message() == context.DeadlineExceeded.Error()
}

// timedOut is the error of a request etcd did not commit in time.
func timedOut(endpoints []string, err error) error {
	return &storeError{
		code: codeTimedOut,
		msg:  "etcd at " + strings.Join(endpoints, ", ") + " did not complete the request in time (is it overloaded, or electing a leader?)",
		err:  err,
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
// "etcd is down" as unreachable or without a leader and explaining the two
// server limits a big batch can hit. A request that ran out of time while
// the health monitor finds etcd unavailable gets the monitor's error.
func (c *Client) wrapErr(what string, err error) error {
	switch {
	case errors.Is(err, rpctypes.ErrTooManyOps):
		return fmt.Errorf("%s: the transaction has more operations than the etcd server allows "+
			"(raise it with etcd --max-txn-ops, e.g. --max-txn-ops=%d; the embedded etcd already does): %w",
			what, DefaultMaxTxnOps, err)
	case errors.Is(err, rpctypes.ErrRequestTooLarge):
		return fmt.Errorf("%s: the transaction is larger than the etcd server accepts "+
			"(raise it with etcd --max-request-bytes): %w", what, err)
	case leaderLost(err):
		return fmt.Errorf("%s: %w", what, noLeader(c.endpoints, err))
	case serverTimedOut(err):
		if h := c.Health(); !h.Available() {
			return fmt.Errorf("%s: %w (%w)", what, h.Err, err)
		}
		return fmt.Errorf("%s: %w", what, timedOut(c.endpoints, err))
	case status.Code(err) == codes.Unavailable, errors.Is(err, rpctypes.ErrStopped):
		return fmt.Errorf("%s: %w", what, unreachable(c.endpoints, err))
	case errors.Is(err, context.DeadlineExceeded), status.Code(err) == codes.DeadlineExceeded:
		if h := c.Health(); !h.Available() {
			return fmt.Errorf("%s: %w (%w)", what, h.Err, err)
		}
	}
	return fmt.Errorf("%s: %w", what, err)
}
