package ipam

import (
	"errors"
	"fmt"
	"net/netip"
)

// errCode classifies an allocator error for the Is* predicates.
type errCode int

const (
	codeInvalid errCode = iota + 1
	codePoolNotFound
	codePoolDisabled
	codeNotInPool
	codeInUse
	codeExhausted
	codeNotFound
	codeContention
)

// ipamError is every classified error this package returns; callers test
// it with the predicates below, never by matching text.
type ipamError struct {
	code errCode
	msg  string
}

func (e *ipamError) Error() string { return e.msg }

func hasCode(err error, c errCode) bool {
	var e *ipamError
	return errors.As(err, &e) && e.code == c
}

// IsInvalid reports whether err says that the request itself was wrong
// (no handle, a pool of the wrong family, ...).
func IsInvalid(err error) bool { return hasCode(err, codeInvalid) }

// IsPoolNotFound reports whether err names a requested pool that does not
// exist.
func IsPoolNotFound(err error) bool { return hasCode(err, codePoolNotFound) }

// IsPoolDisabled reports whether err names a disabled pool.
func IsPoolDisabled(err error) bool { return hasCode(err, codePoolDisabled) }

// IsNotInPool reports whether err says that an address is outside every
// pool.
func IsNotInPool(err error) bool { return hasCode(err, codeNotInPool) }

// IsInUse reports whether err says that a requested address is already
// assigned to another handle.
func IsInUse(err error) bool { return hasCode(err, codeInUse) }

// IsExhausted reports whether err says that no address was free in the
// pools the request could use.
func IsExhausted(err error) bool { return hasCode(err, codeExhausted) }

// IsNotFound reports whether err says that a handle or address has no
// allocation.
func IsNotFound(err error) bool { return hasCode(err, codeNotFound) }

// IsContention reports whether err says that the allocator gave up after
// its bounded number of compare-and-swap attempts.
func IsContention(err error) bool { return hasCode(err, codeContention) }

func invalidf(format string, args ...any) error {
	return &ipamError{code: codeInvalid, msg: fmt.Sprintf(format, args...)}
}

func poolNotFound(name string) error {
	return &ipamError{code: codePoolNotFound, msg: fmt.Sprintf("IP pool %q does not exist (give a pool name or its exact CIDR)", name)}
}

func poolDisabled(p *pool) error {
	return &ipamError{code: codePoolDisabled, msg: p.describe() + " is disabled: it keeps its allocations but gives out no new addresses"}
}

func notInPool(a netip.Addr) error {
	return &ipamError{code: codeNotInPool, msg: fmt.Sprintf("address %s is outside every IP pool", a)}
}

func inUse(a netip.Addr, holder string) error {
	return &ipamError{code: codeInUse, msg: fmt.Sprintf("address %s is already assigned to handle %q", a, holder)}
}

func exhaustedf(format string, args ...any) error {
	return &ipamError{code: codeExhausted, msg: fmt.Sprintf(format, args...)}
}

func notFoundf(format string, args ...any) error {
	return &ipamError{code: codeNotFound, msg: fmt.Sprintf(format, args...)}
}

func contention(what string, attempts int) error {
	return &ipamError{code: codeContention, msg: fmt.Sprintf("%s: gave up after %d compare-and-swap attempts, other writers kept changing the same keys", what, attempts)}
}

// AlsoConflictError says that a guard of AutoAssignArgs.Also failed (the
// endpoint it would create exists, say): nothing was written.
type AlsoConflictError struct {
	Key string
}

func (e *AlsoConflictError) Error() string {
	return fmt.Sprintf("%s changed under the allocation: nothing was written", e.Key)
}

// IsAlsoConflict reports whether err is an *AlsoConflictError.
func IsAlsoConflict(err error) bool {
	var e *AlsoConflictError
	return errors.As(err, &e)
}
