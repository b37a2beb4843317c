package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/calyx-net/calyx/internal/datastore"
)

// Datastore outages. While etcd is unreachable or has no leader, requests
// that need it fail within the datastore timeout (--datastore-timeout)
// with CNI code 11 and a message naming the datastore's state, or at once
// when the health monitor already knows it is down; they never queue
// behind each other for longer (IPAM's per-node lock and the handle locks
// are waited for under the same deadline). A DEL removes the host side and
// succeeds: the endpoint and addresses it could not release are released
// by garbage collection once etcd is back.

// DefaultDatastoreTimeout bounds the datastore work of one local API
// request.
const DefaultDatastoreTimeout = 5 * time.Second

// datastoreHealth is what the local API asks about the datastore:
// Unavailable is the health monitor's verdict (nil while etcd is
// available, else why not), Check asks etcd now. *datastore.Client
// satisfies it.
type datastoreHealth interface {
	Unavailable() error
	Check(ctx context.Context, timeout time.Duration) datastore.Health
}

// diagnoseTimeout bounds the check that names the datastore's state when
// a request ran out of time before the monitor noticed an outage.
const diagnoseTimeout = time.Second

var _ datastoreHealth = (*datastore.Client)(nil)

// errDatastoreDeadline is the cause of a request context that ran out of
// its datastore timeout.
var errDatastoreDeadline = errors.New("datastore timeout")

// datastoreTimeoutError says that the datastore did not answer a request
// within the datastore timeout, while the health monitor had not (yet)
// found it down. It is retryable (code 11).
type datastoreTimeoutError struct {
	timeout time.Duration
	err     error
}

func (e *datastoreTimeoutError) Error() string {
	return fmt.Sprintf("etcd did not answer within %s (calyx-node --datastore-timeout; is etcd overloaded or losing its leader?): %v", e.timeout, e.err)
}

func (e *datastoreTimeoutError) Unwrap() error { return e.err }

// unavailable returns the health monitor's error when it finds etcd down,
// else nil.
func (s *service) unavailable() error {
	if s.ds == nil {
		return nil
	}
	return s.ds.Unavailable()
}

// datastoreContext bounds a request's datastore work by the datastore
// timeout (none when it is unset).
func (s *service) datastoreContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if s.dsTimeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeoutCause(ctx, s.dsTimeout, errDatastoreDeadline)
}

// outageError explains err when it is a datastore outage or the request
// ran out of its datastore timeout (ctx is the bounded context): the
// monitor's error when it finds etcd down, else the error of a check made
// now (at most diagnoseTimeout more) when that does, else a timeout error. Other
// errors are returned unchanged.
func (s *service) outageError(ctx context.Context, err error) error {
	if err == nil || datastore.IsUnreachable(err) || datastore.IsNoLeader(err) {
		return err
	}
	// etcd itself may say it could not commit in time (an election, a lost
	// quorum) before the monitor has noticed: name the state for that too.
	serverTimedOut := datastore.IsUnavailable(err)
	if !serverTimedOut && !errors.Is(context.Cause(ctx), errDatastoreDeadline) {
		return err
	}
	if uerr := s.unavailable(); uerr != nil {
		return fmt.Errorf("%w (%w)", uerr, err)
	}
	if s.ds != nil {
		// The monitor has not noticed (yet): ask etcd now, so that the
		// answer names its state.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), diagnoseTimeout)
		h := s.ds.Check(cctx, diagnoseTimeout)
		cancel()
		if !h.Available() {
			return fmt.Errorf("%w (%w)", h.Err, err)
		}
	}
	if serverTimedOut {
		return err
	}
	return &datastoreTimeoutError{timeout: s.dsTimeout, err: err}
}

// isOutage reports whether err is the datastore being down or too slow,
// as opposed to a refusal worth reporting.
func isOutage(err error) bool {
	var te *datastoreTimeoutError
	return datastore.IsUnavailable(err) || errors.As(err, &te) || errors.Is(err, context.DeadlineExceeded)
}

// leaveToGC logs that a failed ADD's allocation is left to the garbage
// collector: undoing it would need the datastore that just failed, and
// would hold the request past its deadline.
func (s *service) leaveToGC(handle string, why error) {
	s.log.Warn("ADD failed for want of the datastore: what it may have allocated is released by garbage collection once etcd is back",
		"handle", handle, "err", why)
}
