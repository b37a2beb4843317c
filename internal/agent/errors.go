package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/calyx-net/calyx/internal/datastore"
	"github.com/calyx-net/calyx/internal/ipam"
)

// cniTryAgainLater is the CNI error code for a transient failure
// ("try again later", CNI spec error code 11).
const cniTryAgainLater = 11

// apiError is an error with the HTTP status it is answered with.
type apiError struct {
	status int
	err    error
}

func (e *apiError) Error() string { return e.err.Error() }
func (e *apiError) Unwrap() error { return e.err }

func withStatus(status int, format string, args ...any) error {
	return &apiError{status: status, err: fmt.Errorf(format, args...)}
}

func badRequestf(format string, args ...any) error {
	return withStatus(http.StatusBadRequest, format, args...)
}

func conflictf(format string, args ...any) error {
	return withStatus(http.StatusConflict, format, args...)
}

func notFoundf(format string, args ...any) error {
	return withStatus(http.StatusNotFound, format, args...)
}

// isConflict reports whether err is answered with 409.
func isConflict(err error) bool {
	var e *apiError
	return errors.As(err, &e) && e.status == http.StatusConflict
}

// isRetryable reports whether err is transient: the datastore is
// unreachable or slow, or IPAM lost a compare-and-swap race too often.
func isRetryable(err error) bool {
	return datastore.IsUnreachable(err) || ipam.IsContention(err) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, errNotReady) ||
		errors.Is(err, errAttachmentBusy)
}

// errNotReady says that calyx-node has not yet read the datastore.
var errNotReady = errors.New("calyx-node is starting: it has not yet read the datastore (retry in a moment)")

// classify returns the HTTP status and CNI code of err.
func classify(err error) (int, uint) {
	if isRetryable(err) {
		return http.StatusServiceUnavailable, cniTryAgainLater
	}
	var e *apiError
	if errors.As(err, &e) {
		return e.status, 0
	}
	return http.StatusInternalServerError, 0
}
