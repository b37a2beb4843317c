package route

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
)

// RemoteRoute is an owned route that is not a workload's: to another
// host's IPAM block through its address or through the VXLAN device, a
// blackhole for a local block, or a route learned by BGP. It names its
// device by name, as the calculation that produces it knows names, not
// indexes. It is a plain comparable value.
type RemoteRoute struct {
	Dst netip.Prefix
	// Gw is the next hop; the zero Addr means none (a blackhole, or a
	// device route).
	Gw netip.Addr
	// Dev is the output device; empty lets the kernel find it from Gw
	// (which must then be on one of the host's subnets).
	Dev string
	// OnLink makes the kernel take Gw as on Dev's link without checking
	// (the VXLAN peer's tunnel address, which no local address covers).
	OnLink bool
	// Blackhole drops what matches Dst and has no next hop. A local block
	// has one, so that its unallocated addresses go nowhere rather than
	// to the default route.
	Blackhole bool
}

// String renders the route as `ip route` shows the kernel route it
// becomes, e.g. "10.65.2.0/26 via 10.65.2.0 dev vxlan.calyx proto 80
// onlink" or "blackhole 10.65.0.0/26 proto 80".
func (d RemoteRoute) String() string { return RouteText(d.route(0), d.Dev) }

// validate reports what makes d impossible to program.
func (d RemoteRoute) validate() error {
	switch {
	case !d.Dst.IsValid():
		return errors.New("no destination")
	case d.Dst != d.Dst.Masked():
		return fmt.Errorf("destination %s is not a network address (%s)", d.Dst, d.Dst.Masked())
	case d.Blackhole && (d.Gw.IsValid() || d.Dev != "" || d.OnLink):
		return errors.New("a blackhole route has no next hop")
	case d.Blackhole:
		return nil
	case !d.Gw.IsValid() && d.Dev == "":
		return errors.New("no gateway and no device")
	case d.Gw.IsValid() && d.Gw.Is4() != d.Dst.Addr().Is4():
		return fmt.Errorf("gateway %s is not of the destination's family", d.Gw)
	case d.OnLink && (d.Dev == "" || !d.Gw.IsValid()):
		return errors.New("an onlink route needs a gateway and a device")
	case strings.HasPrefix(d.Dev, InterfacePrefix):
		return fmt.Errorf("device %s is a workload's host interface", d.Dev)
	}
	return nil
}

// route returns the kernel route d becomes with its device at index idx
// (0: no device named).
func (d RemoteRoute) route(idx int) Route {
	if d.Blackhole {
		return Route{Dst: d.Dst, Protocol: Protocol, Type: Blackhole}
	}
	r := Route{Dst: d.Dst, LinkIndex: idx, Protocol: Protocol, Gw: d.Gw, OnLink: d.OnLink}
	if !d.Gw.IsValid() && d.Dst.Addr().Is4() {
		r.Scope = ScopeLink // a device route, as `ip route add ... dev` makes it
	}
	return r
}

// sameRoute reports whether the kernel's route cur is want, where want
// written without a device (LinkIndex 0) matches cur on any device: the
// kernel fills in the one it found from the gateway.
func sameRoute(cur, want Route) bool {
	if want.LinkIndex == 0 {
		cur.LinkIndex = 0
	}
	return cur == want
}

// RemoteOption configures a Remote.
type RemoteOption func(*Remote)

// WithRemoteGrace sets how long an inherited route nobody desires is kept
// before Apply removes it (default 0: at once). Inherited routes are the
// owned routes the first Resync found, until Apply is asked for their
// destination; every other unwanted route goes at once. The grace is for
// BGP graceful restart: a restarted calyx-node finds the routes its peers
// advertised still in the kernel, and must keep forwarding along them
// until the sessions are back and the peers have advertised them again,
// while a withdrawal after that is acted on at once.
func WithRemoteGrace(d time.Duration) RemoteOption { return func(r *Remote) { r.grace = d } }

// Remote makes the kernel hold the owned routes that are not on workload
// interfaces: routes to other hosts' blocks, blackholes for local blocks,
// routes learned by BGP (a default route included). It owns every main-table
// route with protocol Protocol that is not on an InterfacePrefix link and
// touches no other route, except that a desired route replaces whatever
// route to the same destination the kernel holds (the main table keys
// routes by destination, so two cannot coexist). It is safe for concurrent
// use; calls are serialised.
type Remote struct {
	k     Kernel
	log   *slog.Logger
	grace time.Duration

	mu sync.Mutex // guards the following fields, the cache of kernel state
	// names maps link indexes to names, from Resync and Apply's look-ups.
	names map[int]string
	// routes are the owned routes, by destination.
	routes map[netip.Prefix]Route
	// others are the main table's other routes, by destination: a
	// desired route must not replace a workload's, and replacing anyone
	// else's is logged.
	others map[netip.Prefix]Route
	// unwanted holds inherited routes Apply found undesired, with when
	// it first did.
	unwanted map[netip.Prefix]time.Time
	// inherited are the owned routes the first Resync found whose
	// destination no Apply has asked for since (see WithRemoteGrace).
	inherited map[netip.Prefix]bool
	resynced  bool
	writes    uint64
}

// NewRemote returns a Remote over k. Call Resync before the first Apply so
// that routes left by an earlier run are known.
func NewRemote(k Kernel, log *slog.Logger, opts ...RemoteOption) *Remote {
	r := &Remote{
		k: k, log: log,
		names: map[int]string{}, routes: map[netip.Prefix]Route{}, others: map[netip.Prefix]Route{},
		unwanted: map[netip.Prefix]time.Time{}, inherited: map[netip.Prefix]bool{},
	}
	for _, o := range opts {
		o(r)
	}
	return r
}

// Writes returns how many kernel writes the Remote has made.
func (r *Remote) Writes() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.writes
}

// owns reports whether rt, on the link named dev, is one of Remote's.
func owns(rt Route, dev string) bool {
	return rt.Protocol == Protocol && !strings.HasPrefix(dev, InterfacePrefix)
}

// Resync re-reads the kernel's links and main-table routes, replacing the
// cache. It writes nothing, and keeps the grace clocks of unwanted routes
// running (a resync is no reason to keep a route longer).
func (r *Remote) Resync(_ context.Context) error {
	st, err := r.k.Dump()
	if err != nil {
		return fmt.Errorf("resyncing remote routes: %w", err)
	}
	names := make(map[int]string, len(st.Links))
	for _, l := range st.Links {
		names[l.Index] = l.Name
	}
	// Most of a host's routes are usually Remote's (one a remote block):
	// a map of their number, not its doublings.
	routes, others := make(map[netip.Prefix]Route, len(st.Routes)), map[netip.Prefix]Route{}
	for _, rt := range st.Routes {
		if owns(rt, names[rt.LinkIndex]) {
			routes[rt.Dst] = rt
		} else {
			others[rt.Dst] = rt
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.names, r.routes, r.others = names, routes, others
	if !r.resynced {
		r.resynced = true
		for p := range routes {
			r.inherited[p] = true
		}
	}
	return nil
}

// Apply makes the kernel hold desired and nothing else among the routes
// Remote owns. It writes only what differs from the cache: a route is
// replaced when the kernel holds another one to its destination, and an
// owned route no desired one has the destination of is deleted once it
// has been unwanted for the grace period (time is an input: now).
//
// A route that cannot be programmed (invalid, its device missing, its
// gateway unreachable, or a second one to the same destination) is an
// error that does not stop the others; the route the kernel holds to its
// destination, if any, is kept. The errors are joined, each with the
// route's text; IsLinkNotFound recognises a missing device.
func (r *Remote) Apply(_ context.Context, desired []RemoteRoute, now time.Time) error {
	links, linkErrs := r.lookUpDevices(desired)
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, l := range links {
		r.names[l.Index] = l.Name
	}
	var errs []error
	wanted := make(map[netip.Prefix]bool, len(desired))
	// In the caller's order: sorting 10,000 learned routes on every pass
	// costs more than the comparisons themselves.
	if !slices.IsSortedFunc(desired, compareRemote) {
		desired = slices.SortedFunc(slices.Values(desired), compareRemote)
	}
	for _, d := range desired {
		if wanted[d.Dst] {
			errs = append(errs, fmt.Errorf("adding route %s: another desired route has the same destination", d))
			continue
		}
		wanted[d.Dst] = true
		delete(r.inherited, d.Dst)
		if err := r.applyLocked(d, links, linkErrs); err != nil {
			errs = append(errs, fmt.Errorf("adding route %s: %w", d, err))
		}
	}
	errs = append(errs, r.pruneLocked(wanted, now)...)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("applying remote routes: %w", err)
	}
	return nil
}

// lookUpDevices looks up the devices desired routes name, once each.
func (r *Remote) lookUpDevices(desired []RemoteRoute) (map[string]Link, map[string]error) {
	links, errs := map[string]Link{}, map[string]error{}
	for _, d := range desired {
		if d.Dev == "" || d.Blackhole {
			continue
		}
		if _, ok := links[d.Dev]; ok {
			continue
		}
		if _, ok := errs[d.Dev]; ok {
			continue
		}
		l, err := r.k.LinkByName(d.Dev)
		if err != nil {
			errs[d.Dev] = err
			continue
		}
		links[d.Dev] = l
	}
	return links, errs
}

// applyLocked programs d unless the kernel holds it already.
func (r *Remote) applyLocked(d RemoteRoute, links map[string]Link, linkErrs map[string]error) error {
	if err := d.validate(); err != nil {
		return err
	}
	idx := 0
	if d.Dev != "" {
		if err := linkErrs[d.Dev]; err != nil {
			return err
		}
		idx = links[d.Dev].Index
	}
	want := d.route(idx)
	delete(r.unwanted, d.Dst)
	if cur, ok := r.routes[d.Dst]; ok && sameRoute(cur, want) {
		return nil
	}
	other, isOther := r.others[d.Dst]
	if isOther && strings.HasPrefix(r.names[other.LinkIndex], InterfacePrefix) {
		return fmt.Errorf("the kernel routes %s to a workload (%s)", d.Dst, r.textLocked(other))
	}
	if err := r.k.ReplaceRoute(want); err != nil {
		return err
	}
	r.writes++
	if isOther {
		r.log.Info("replaced a route Calyx did not own", "old", r.textLocked(other), "new", d.String())
		delete(r.others, d.Dst)
	}
	r.routes[d.Dst] = want
	return nil
}

// pruneLocked deletes the owned routes not in wanted that have been
// unwanted for the grace period.
func (r *Remote) pruneLocked(wanted map[netip.Prefix]bool, now time.Time) []error {
	var errs []error
	seen := map[netip.Prefix]bool{}
	var unwanted []Route
	for _, rt := range r.routes {
		if !wanted[rt.Dst] {
			unwanted = append(unwanted, rt)
		}
	}
	slices.SortFunc(unwanted, compareRoutes)
	for _, rt := range unwanted {
		if r.inherited[rt.Dst] {
			seen[rt.Dst] = true
			first, ok := r.unwanted[rt.Dst]
			if !ok {
				r.unwanted[rt.Dst] = now
				first = now
			}
			if now.Sub(first) < r.grace {
				continue
			}
		}
		text := r.textLocked(rt)
		if err := r.k.DeleteRoute(rt); err != nil {
			errs = append(errs, fmt.Errorf("deleting route %s: %w", text, err))
			continue
		}
		r.writes++
		r.log.Info("removed an unwanted route", "route", text)
		delete(r.routes, rt.Dst)
		delete(r.unwanted, rt.Dst)
		delete(r.inherited, rt.Dst)
	}
	maps.DeleteFunc(r.unwanted, func(p netip.Prefix, _ time.Time) bool { return !seen[p] })
	return errs
}

// NextPrune returns when the earliest unwanted route's grace period ends,
// so that a caller can Apply then rather than at the next resync.
func (r *Remote) NextPrune() (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return pruneDue(r.unwanted, r.grace)
}

// Differs reports whether ev shows the kernel holding something other
// than the cache says about a route Remote owns: one it holds deleted or
// replaced, or an owned route it does not know added. Its own writes do
// not differ (the cache is updated under the same lock as the write), so
// a caller can Resync and Apply on the events that do without looping.
func (r *Remote) Differs(ev RouteEvent) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	cur, held := r.routes[ev.Route.Dst]
	if ev.Deleted {
		return held && sameRoute(ev.Route, cur)
	}
	if held {
		return !sameRoute(ev.Route, cur)
	}
	dev, known := r.names[ev.Route.LinkIndex]
	if !known && ev.Route.Protocol == Protocol && ev.Route.LinkIndex != 0 {
		// A link newer than the last resync: most often a new endpoint's
		// veth, whose route is not ours to judge. One lookup, not a
		// resync of every route.
		if l, err := r.k.LinkByIndex(ev.Route.LinkIndex); err == nil {
			dev = l.Name
			r.names[l.Index] = l.Name
		}
	}
	return owns(ev.Route, dev)
}

func (r *Remote) textLocked(rt Route) string { return RouteText(rt, r.names[rt.LinkIndex]) }

func compareRemote(a, b RemoteRoute) int {
	if c := comparePrefix(a.Dst, b.Dst); c != 0 {
		return c
	}
	return cmp.Compare(a.String(), b.String())
}
