package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/calyx-net/calyx/internal/api"
	"github.com/calyx-net/calyx/internal/calc"
	"github.com/calyx-net/calyx/internal/dataplane/route"
)

// hostReconciler is the part of the route reconciler the reconcile loop
// drives.
type hostReconciler interface {
	Resync(ctx context.Context) error
	Update(ctx context.Context, ep route.Endpoint) error
	Delete(ctx context.Context, ep route.Endpoint) error
	Unroute(ctx context.Context, ep route.Endpoint) error
	Prune(ctx context.Context, desired []route.Endpoint, now time.Time) error
	NextPrune() (time.Time, bool)
}

// policyDataplane is the nftables reconciler as the loop drives it: Apply
// writes one delta in one transaction, Resync compares everything with
// the kernel and repairs drift, Unchanged says cheaply that there can be
// no drift (nothing but the reconciler changed nftables since it last
// compared).
type policyDataplane interface {
	Apply(ctx context.Context, s *calc.State, d calc.Delta) error
	Resync(ctx context.Context, s *calc.State) error
	Unchanged(ctx context.Context) bool
}

// calculator is calc.Calc as the loop uses it.
type calculator interface {
	Replace(rs []api.Resource)
	Update(kind, name string, r api.Resource)
	State() *calc.State
	TakeDelta() calc.Delta
}

var (
	_ hostReconciler = (*route.Reconciler)(nil)
	_ calculator     = (*calc.Calc)(nil)
)

// Retry delays after a failed nftables transaction.
const (
	minPolicyRetry = 100 * time.Millisecond
	maxPolicyRetry = 10 * time.Second
)

// reconcileLoop is the only writer of the dataplane. It drains the view's
// changes into calc, hands calc's delta to the nftables reconciler (one
// transaction) and programs the routes of the endpoints that changed,
// then publishes how far it got so that READY can wait for its endpoint.
// After the first snapshot, and every resync interval, it re-reads the
// kernel and compares everything, correcting drift. An endpoint whose veth
// does not exist yet (ADD done, READY not yet) or any more (garbage
// collection will release it) is tried again on every pass. Requests to
// remove an endpoint's host side (DEL) run on the loop too, between
// passes.
type reconcileLoop struct {
	host     hostReconciler
	policy   policyDataplane
	calc     calculator
	view     *view
	progress *progress
	m        *metrics
	log      *slog.Logger
	now      func() time.Time
	resync   time.Duration
	// programTimeout bounds waitProgrammed.
	programTimeout time.Duration
	ops            chan loopOp
	// done holds, by endpoint name, the fingerprint of the routes last
	// programmed successfully; the others are tried on every pass.
	done map[string]string
	// removed holds the endpoints a DEL took off the host while the view
	// still has them (their deletion from the datastore follows): no pass
	// programs them again, until they leave the view or an ADD touches
	// them.
	removed map[string]bool
	// pending is calc's delta not yet applied to nftables; policyErr is
	// the last transaction's failure and retries how many failed in a
	// row.
	pending   calc.Delta
	policyErr error
	retries   int
	// routing programs routes between hosts and the VXLAN devices (nil:
	// none, in tests of other parts). routesDirty says calc changed them
	// since they were last programmed; routeDrift receives a token when
	// the kernel's routes changed under the loop (route events), which
	// the next pass re-reads; routingErr is the last attempt's failure.
	routing     routingDataplane
	routesDirty bool
	routeDrift  chan struct{}
	routingErr  error
	// routingRetries counts routing failures in a row.
	routingRetries int
	// bgp runs the BGP speaker (nil: BGP off); learned receives a token
	// when its best paths changed.
	bgp     *bgpRunner
	learned chan struct{}
}

// loopOp is work another goroutine runs on the loop, waiting for errc.
type loopOp struct {
	fn   func(ctx context.Context) error
	errc chan error
}

func newReconcileLoop(host hostReconciler, policy policyDataplane, c calculator, v *view, m *metrics, log *slog.Logger, now func() time.Time, resync time.Duration) *reconcileLoop {
	return &reconcileLoop{
		host: host, policy: policy, calc: c, view: v, progress: newProgress(), m: m, log: log, now: now, resync: resync,
		programTimeout: DefaultProgramTimeout,
		ops:            make(chan loopOp), done: map[string]string{}, removed: map[string]bool{},
		routeDrift: make(chan struct{}, 1),
		learned:    make(chan struct{}, 1),
	}
}

// learnedRoutes tells the loop that the BGP speaker's best paths changed.
// Safe from any goroutine.
func (l *reconcileLoop) learnedRoutes() {
	select {
	case l.learned <- struct{}{}:
	default:
	}
}

// driftedRoutes tells the loop that the kernel's routes changed under it:
// the next pass re-reads them and repairs what differs. Safe from any
// goroutine.
func (l *reconcileLoop) driftedRoutes() {
	select {
	case l.routeDrift <- struct{}{}:
	default:
	}
}

// do runs fn on the loop and returns its error.
func (l *reconcileLoop) do(ctx context.Context, fn func(ctx context.Context) error) error {
	op := loopOp{fn: fn, errc: make(chan error, 1)}
	select {
	case l.ops <- op:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-op.errc:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// removeEndpoint removes an endpoint's host side (veth, routes,
// neighbours) on the loop; what is already gone is not an error.
func (l *reconcileLoop) removeEndpoint(ctx context.Context, ep route.Endpoint) error {
	return l.do(ctx, func(ctx context.Context) error {
		delete(l.done, ep.Name)
		l.removed[ep.Name] = true
		return l.host.Delete(ctx, ep)
	})
}

// unrouteEndpoint removes an endpoint's routes, leaving its veth to the
// CNI plugin, which deletes it meanwhile.
func (l *reconcileLoop) unrouteEndpoint(ctx context.Context, ep route.Endpoint) error {
	return l.do(ctx, func(ctx context.Context) error {
		delete(l.done, ep.Name)
		l.removed[ep.Name] = true
		return l.host.Unroute(ctx, ep)
	})
}

// waitProgrammed waits until the loop has programmed the view up to seq
// with endpoint name in it, for at most the loop's program timeout.
func (l *reconcileLoop) waitProgrammed(ctx context.Context, name string, seq uint64) error {
	wctx, cancel := context.WithTimeout(ctx, l.programTimeout)
	defer cancel()
	err := l.progress.wait(wctx, name, seq)
	if err != nil && !route.IsLinkNotFound(err) && ctx.Err() == nil {
		return fmt.Errorf("%w: not programmed within %s: %w", errNotProgrammed, l.programTimeout, err)
	}
	return err
}

// programmedSince implements dataplaneWriter.
func (l *reconcileLoop) programmedSince(ctx context.Context, name string, seq uint64) bool {
	wctx, cancel := context.WithTimeout(ctx, l.programTimeout)
	defer cancel()
	return l.progress.programmedSince(wctx, name, seq)
}

// errNotProgrammed says that the loop did not program an endpoint in
// time: a transient failure, answered with CNI code 11.
var errNotProgrammed = errors.New("the dataplane is failing")

// DefaultProgramTimeout bounds how long READY waits for the loop.
const DefaultProgramTimeout = 10 * time.Second

func (l *reconcileLoop) run(ctx context.Context) error {
	for !l.view.ready() {
		select {
		case <-ctx.Done():
			return nil
		case op := <-l.ops:
			op.errc <- op.fn(ctx)
		case <-l.view.syncedCh:
		}
	}
	resync := time.NewTicker(l.resync)
	defer resync.Stop()
	prune := time.NewTimer(time.Hour)
	defer prune.Stop()
	retry := time.NewTimer(time.Hour)
	defer retry.Stop()
	full := true
	drift := false
	for {
		full = !l.pass(ctx, full, drift) && full
		drift = false
		if next, ok := l.nextPrune(); ok {
			prune.Reset(max(next.Sub(l.now()), time.Millisecond))
		}
		if l.policyErr != nil || l.routingErr != nil {
			retry.Reset(min(minPolicyRetry<<min(max(l.retries, l.routingRetries), 10), maxPolicyRetry))
		}
		select {
		case <-ctx.Done():
			return nil
		case op := <-l.ops:
			op.errc <- op.fn(ctx)
		case <-l.view.changes():
		case <-l.routeDrift:
			drift = true
		case <-l.learned:
			l.routesDirty = true
		case <-prune.C:
		case <-retry.C:
		case <-resync.C:
			full = true
		}
	}
}

// nextPrune is when the earliest route reconciler wants to remove routes
// nobody desires.
func (l *reconcileLoop) nextPrune() (time.Time, bool) {
	next, ok := l.host.NextPrune()
	if l.routing != nil {
		if n, rok := l.routing.NextPrune(); rok && (!ok || n.Before(next)) {
			next, ok = n, true
		}
	}
	return next, ok
}

// pass reconciles once; with full it re-reads the kernel first, with
// drift it re-reads the routes between hosts. It reports false when it
// could not read the kernel's routes.
func (l *reconcileLoop) pass(ctx context.Context, full, drift bool) bool {
	start := l.now()
	kind := "incremental"
	if full {
		kind = "resync"
	}
	dr := l.view.drain()
	if dr.reload {
		rs := make([]api.Resource, 0, len(dr.changes))
		for _, c := range dr.changes {
			rs = append(rs, c.res)
		}
		l.calc.Replace(rs)
	} else {
		for _, c := range dr.changes {
			l.calc.Update(c.kind, c.name, c.res)
		}
	}
	d := l.calc.TakeDelta()
	if len(d.Routes) > 0 || d.VXLAN {
		l.routesDirty = true
	}
	if l.bgp != nil && (d.BGP || dr.reload) {
		l.bgp.set(l.calc.State().BGP)
	}
	l.pending = mergeDelta(l.pending, d)
	st := l.calc.State()

	// Policy first: a new endpoint's interface is unknown to nftables,
	// and so dropped, until its chains are in place.
	l.programPolicy(ctx, st, full)
	l.programRouting(ctx, st, full || drift)

	// Then routes: every endpoint on a full pass; otherwise those whose
	// routes changed, those READY touched (the veth may be new) and those
	// that failed.
	ok := true
	if full {
		if err := l.host.Resync(ctx); err != nil {
			l.log.Warn("reading kernel state", "err", err)
			ok = false
		}
		clear(l.done)
	}
	for _, name := range dr.touched {
		delete(l.done, name)
		delete(l.removed, name)
	}
	for _, c := range dr.changes {
		if c.kind == api.KindWorkloadEndpoint && st.Endpoints[c.name] == nil {
			l.progress.forget(c.name)
		}
	}
	desired := make([]route.Endpoint, 0, len(st.Endpoints))
	status := map[string]error{}
	for _, name := range slices.Sorted(maps.Keys(st.Endpoints)) {
		if l.removed[name] {
			continue
		}
		rep := routeEndpoint(st.Endpoints[name])
		desired = append(desired, rep)
		fp := fingerprint(rep)
		if !ok || l.done[name] == fp {
			continue
		}
		err := l.host.Update(ctx, rep)
		status[name] = err
		switch {
		case err == nil:
			l.done[name] = fp
		case !route.IsLinkNotFound(err):
			l.m.dataplaneFailures.WithLabelValues("routes").Inc()
			l.log.Warn("programming an endpoint", "endpoint", name, "err", err)
		}
	}
	for name := range l.done {
		if st.Endpoints[name] == nil {
			delete(l.done, name)
		}
	}
	for name := range l.removed {
		if st.Endpoints[name] == nil {
			delete(l.removed, name)
		}
	}
	if ok {
		if err := l.host.Prune(ctx, desired, l.now()); err != nil {
			l.log.Warn("removing unwanted routes", "err", err)
		}
	}
	l.progress.publish(dr.seq, status, l.policyErr)
	l.m.apply.WithLabelValues(kind).Observe(l.now().Sub(start).Seconds())
	return ok
}

// programPolicy applies the pending delta to nftables (or, on a full pass,
// compares the whole table), keeping the delta for a retry on failure. A
// full pass finding that nothing else changed nftables since the last
// comparison applies only the delta: there is no drift to repair, and
// rendering and listing the whole table is a resync's main cost.
func (l *reconcileLoop) programPolicy(ctx context.Context, st *calc.State, full bool) {
	if full && l.policyErr == nil && l.policy.Unchanged(ctx) {
		full = false
	}
	var err error
	switch {
	case full:
		err = l.policy.Resync(ctx, st)
	case !l.pending.Policy() && l.policyErr == nil:
		return
	case l.policyErr != nil:
		// The last transaction failed: what the kernel holds is uncertain.
		err = l.policy.Resync(ctx, st)
	default:
		err = l.policy.Apply(ctx, st, l.pending)
	}
	if err != nil {
		if l.policyErr == nil {
			l.log.Error("programming nftables failed: the previous ruleset stays in force; retrying", "err", err)
		}
		l.policyErr = fmt.Errorf("programming nftables: %w", err)
		l.retries++
		l.m.dataplaneFailures.WithLabelValues("nftables").Inc()
		return
	}
	if l.policyErr != nil {
		l.log.Info("programming nftables works again", "failedAttempts", l.retries)
	}
	l.pending, l.policyErr, l.retries = calc.Delta{}, nil, 0
}

// programRouting programs the routes between hosts and the VXLAN devices
// when calc changed them, when the last attempt failed, when a route is
// due to be pruned, and (re-reading the kernel first) on a full pass or
// after route events. A failure is retried with the policy's backoff;
// it does not fail READY, which is about local endpoints.
func (l *reconcileLoop) programRouting(ctx context.Context, st *calc.State, reread bool) {
	if l.routing == nil {
		return
	}
	next, due := l.routing.NextPrune()
	due = due && !next.After(l.now())
	if !reread && !l.routesDirty && l.routingErr == nil && !due {
		return
	}
	var err error
	if reread || l.routingErr != nil {
		err = l.routing.Resync(ctx)
	}
	if err == nil {
		err = l.routing.Apply(ctx, st, l.now())
	}
	if err != nil {
		if l.routingErr == nil || l.routingErr.Error() != err.Error() {
			l.log.Warn("programming routes between hosts failed; retrying", "err", err)
		}
		l.routingErr = err
		l.routingRetries++
		l.m.dataplaneFailures.WithLabelValues("routing").Inc()
		return
	}
	if l.routingErr != nil {
		l.log.Info("programming routes between hosts works again")
	}
	l.routesDirty, l.routingErr, l.routingRetries = false, nil, 0
}

// mergeDelta returns the union of two deltas. Pure.
func mergeDelta(a, b calc.Delta) calc.Delta {
	return calc.Delta{
		Endpoints:     union(a.Endpoints, b.Endpoints),
		HostEndpoints: union(a.HostEndpoints, b.HostEndpoints),
		Chains:        union(a.Chains, b.Chains),
		Sets:          union(a.Sets, b.Sets),
		Config:        a.Config || b.Config,
		Routes:        slices.Concat(a.Routes, b.Routes),
		VXLAN:         a.VXLAN || b.VXLAN,
	}
}

func union(a, b []string) []string {
	if len(a) == 0 {
		return b
	}
	seen := make(map[string]bool, len(a)+len(b))
	out := make([]string, 0, len(a)+len(b))
	for _, s := range append(a, b...) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// routeEndpoint is the route reconciler's part of a desired endpoint.
// Pure.
func routeEndpoint(ep *calc.Endpoint) route.Endpoint {
	return route.Endpoint{Name: ep.Name, IfName: ep.IfName, MAC: ep.MAC, Addrs: ep.Addrs}
}

// fingerprint identifies what programming an endpoint's routes writes.
// Pure.
func fingerprint(ep route.Endpoint) string {
	var b strings.Builder
	b.WriteString(ep.IfName)
	b.WriteByte('|')
	b.WriteString(ep.MAC.String())
	for _, a := range ep.Addrs {
		b.WriteByte('|')
		b.WriteString(a.String())
	}
	return b.String()
}
