package agent

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/calyx-net/calyx/internal/ipam"
	"github.com/calyx-net/calyx/internal/localapi"
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

func notFoundf(format string, args ...any) error {
	return withStatus(http.StatusNotFound, format, args...)
}

// isRetryable reports whether err is transient: the datastore is
// unreachable, without a leader or slow, the node claim lapsed in an
// outage and is being taken again, or IPAM lost a compare-and-swap race
// too often. A claim another holder took is not: calyx-node exits.
func isRetryable(err error) bool {
	return isOutage(err) || errors.Is(err, errClaimLapsed) || ipam.IsContention(err) ||
		errors.Is(err, errNotReady) || errors.Is(err, errAttachmentBusy) || errors.Is(err, errNotProgrammed)
}

// errNotReady says that calyx-node has not yet read the datastore.
var errNotReady = errors.New("calyx-node is starting: it has not yet read the datastore (retry in a moment)")

// classify returns the HTTP status and CNI code of err.
func classify(err error) (int, uint) {
	if isRetryable(err) {
		return http.StatusServiceUnavailable, cniTryAgainLater
	}
	status := http.StatusInternalServerError
	var e *apiError
	if errors.As(err, &e) {
		status = e.status
	}
	for _, r := range cniCodes {
		if r.is(err) {
			return status, r.code
		}
	}
	return status, 0
}

// cniCodes maps the kinds of error the local API answers with to the CNI
// code the plugins return for them; the first match wins, and an error
// that matches none gets no code (the plugins then return 999). Each kind
// is a typed error or a predicate, never a message. Why these codes:
//   - a pool the config names that does not exist, is disabled or does
//     not fit is the network config's fault: 7;
//   - an address taken by another attachment, or outside every pool, is
//     neither a bad config nor transient: Calyx's own codes;
//   - no free address is not "try again later" either: it lasts until an
//     operator adds a pool or containers go away, and a runtime that
//     retries at once on 11 would only repeat the failure;
//   - a request body over the limit can only come from the network config
//     (labels, pool lists, GC lists): 7; more than one address per family
//     can only come from CNI_ARGS IP=: 4.
var cniCodes = []struct {
	is   func(error) bool
	code uint
}{
	{ipam.IsPoolNotFound, localapi.CodeInvalidNetworkConfig},
	{ipam.IsPoolDisabled, localapi.CodeInvalidNetworkConfig},
	{ipam.IsInvalid, localapi.CodeInvalidNetworkConfig},
	{ipam.IsInUse, localapi.CodeAddressInUse},
	{ipam.IsNotInPool, localapi.CodeAddressNotInPool},
	{ipam.IsExhausted, localapi.CodeNoFreeAddress},
	{isA[*attachmentExistsError], localapi.CodeAttachmentExists},
	{isA[*requestTooLargeError], localapi.CodeInvalidNetworkConfig},
	{isA[*tooManyAddressesError], localapi.CodeInvalidEnvironment},
}

// isA reports whether err is, or wraps, an error of type E.
func isA[E error](err error) bool {
	var e E
	return errors.As(err, &e)
}

// attachmentExistsError says an ADD found its attachment already
// attached: the CNI spec allows one ADD per container and interface.
type attachmentExistsError struct{ msg string }

func (e *attachmentExistsError) Error() string { return e.msg }

func attachmentExistsf(format string, args ...any) error {
	return &apiError{status: http.StatusConflict, err: &attachmentExistsError{msg: fmt.Sprintf(format, args...)}}
}

// requestTooLargeError says a request body is over the local API's limit.
type requestTooLargeError struct{ op string }

func (e *requestTooLargeError) Error() string {
	return fmt.Sprintf("the %s request is larger than calyx-node accepts (%d bytes): the network config makes it so (Mesos labels, pool lists or the GC's list of valid attachments); shorten it",
		e.op, localapi.MaxRequestBytes)
}

// tooManyAddressesError says a request asked for more specific addresses
// than an attachment may have.
type tooManyAddressesError struct{ n4, n6 int }

func (e *tooManyAddressesError) Error() string {
	return fmt.Sprintf("requested IPs: asked for %d IPv4 and %d IPv6 addresses; an attachment has at most one of each (CNI_ARGS IP=a.b.c.d,x:y::z)", e.n4, e.n6)
}
