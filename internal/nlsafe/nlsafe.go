// Package nlsafe wraps the netlink dump calls Calyx uses so that an
// interrupted dump is retried instead of silently returning a partial
// result.
//
// Why: the kernel marks a netlink dump NLM_F_DUMP_INTR when the table
// changed while it was being read (a container started, a route was
// added). vishvananda/netlink then returns what it read together with
// netlink.ErrDumpInterrupted. A reconciler that treats that partial list as
// the truth would re-add or delete the wrong things, and one that ignores
// the error would act on stale data. Every dump in Calyx goes through this
// package, which retries a few times and otherwise returns a wrapped error
// that IsInterrupted recognises. Raw dump calls elsewhere are rejected by
// test/hygiene.
//
// It also reads links, routes and neighbours itself, on sockets of its own
// (Links, LinkByName, MainRoutes, Neighs), decoding only the few fields
// calyx-node's resync and collector use: vishvananda/netlink decodes every
// attribute of every object, which at 1,000 endpoints and 10,000 routes
// was most of what calyx-node allocated at rest (raw.go says more).
package nlsafe

import (
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
)

// maxAttempts bounds the retries of one dump. Interruptions come from
// concurrent changes; a handful of attempts gets a consistent read on any
// host that is not changing its tables continuously.
const maxAttempts = 5

// IsInterrupted reports whether err says that a dump kept being interrupted
// by concurrent changes and no consistent result was read.
func IsInterrupted(err error) bool { return errors.Is(err, netlink.ErrDumpInterrupted) }

// retry runs dump until it is not interrupted, at most maxAttempts times.
func retry[T any](what string, dump func() (T, error)) (T, error) {
	var err error
	var zero T
	for range maxAttempts {
		var out T
		out, err = dump()
		if err == nil {
			return out, nil
		}
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return zero, fmt.Errorf("listing %s: %w", what, err)
		}
	}
	return zero, fmt.Errorf("listing %s: interrupted %d times by concurrent changes: %w", what, maxAttempts, err)
}

// LinkList lists every link of h's namespace.
func LinkList(h *netlink.Handle) ([]netlink.Link, error) {
	return retry("links", h.LinkList)
}

// AddrList lists the addresses of link (nil: of every link) in family.
func AddrList(h *netlink.Handle, link netlink.Link, family int) ([]netlink.Addr, error) {
	return retry("addresses", func() ([]netlink.Addr, error) { return h.AddrList(link, family) })
}

// RouteListFiltered lists the routes of family that match filter under
// filterMask (netlink.RT_FILTER_*); with no table in the mask, only the
// main table. filter must not be nil (netlink v1.3.1 dereferences it): pass
// &netlink.Route{} and a zero mask for every route.
func RouteListFiltered(h *netlink.Handle, family int, filter *netlink.Route, filterMask uint64) ([]netlink.Route, error) {
	return retry("routes", func() ([]netlink.Route, error) { return h.RouteListFiltered(family, filter, filterMask) })
}

// Routes is RouteListFiltered converting each route with conv as it is
// read (keeping those conv accepts), so that no list of netlink.Route (a
// few hundred bytes each) is built: for callers that keep a few fields of
// thousands of routes.
func Routes[T any](h *netlink.Handle, family int, filter *netlink.Route, filterMask uint64, conv func(netlink.Route) (T, bool)) ([]T, error) {
	return retry("routes", func() ([]T, error) {
		var out []T
		err := h.RouteListFilteredIter(family, filter, filterMask, func(r netlink.Route) bool {
			if t, ok := conv(r); ok {
				out = append(out, t)
			}
			return true
		})
		return out, err
	})
}

// NeighList lists the neighbour entries of family on linkIndex (0: every
// link).
func NeighList(h *netlink.Handle, linkIndex, family int) ([]netlink.Neigh, error) {
	return retry("neighbours", func() ([]netlink.Neigh, error) { return h.NeighList(linkIndex, family) })
}
