package agent

import (
	"context"
	"log/slog"
	"maps"
	"strings"
	"time"

	"github.com/calyx-net/calyx/internal/dataplane/route"
)

// hostReconciler is the part of the route reconciler the reconcile loop
// drives.
type hostReconciler interface {
	Resync(ctx context.Context) error
	Update(ctx context.Context, ep route.Endpoint) error
	Prune(ctx context.Context, desired []route.Endpoint, now time.Time) error
	NextPrune() (time.Time, bool)
}

var _ hostReconciler = (*route.Reconciler)(nil)

// reconcileLoop keeps the kernel in step with this node's endpoints. After
// the first snapshot, and every resync interval, it re-reads the kernel
// and programs every endpoint (the reconciler writes only differences),
// correcting drift. In between, whenever the endpoints change, it programs
// only those that changed since they were last programmed, so the cost of
// a change does not grow with the number of endpoints on the host (each
// Update costs at least one netlink lookup). Each pass then prunes what
// nobody wants. An endpoint whose veth does not exist yet (ADD done, READY
// not yet) or any more (garbage collection will release it) is skipped and
// tried again on the next pass.
type reconcileLoop struct {
	host   hostReconciler
	view   *view
	m      *metrics
	log    *slog.Logger
	now    func() time.Time
	resync time.Duration
	// done holds, by endpoint name, the fingerprint of what was last
	// programmed successfully.
	done map[string]string
}

func (l *reconcileLoop) run(ctx context.Context) error {
	if err := l.view.waitReady(ctx); err != nil {
		return nil
	}
	resync := time.NewTicker(l.resync)
	defer resync.Stop()
	prune := time.NewTimer(time.Hour)
	defer prune.Stop()
	full := true
	for {
		full = !l.pass(ctx, full) && full
		if next, ok := l.host.NextPrune(); ok {
			prune.Reset(max(next.Sub(l.now()), time.Millisecond))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-l.view.changes():
		case <-prune.C:
		case <-resync.C:
			full = true
		}
	}
}

// pass reconciles once; with full it re-reads the kernel first. It
// reports false when it could not read the kernel.
func (l *reconcileLoop) pass(ctx context.Context, full bool) bool {
	start := l.now()
	kind := "incremental"
	if full {
		kind = "resync"
		if err := l.host.Resync(ctx); err != nil {
			l.log.Warn("reading kernel state", "err", err)
			return false
		}
	}
	desired := desiredEndpoints(l.view.endpoints())
	if full || l.done == nil {
		l.done = map[string]string{}
	}
	want := make(map[string]bool, len(desired))
	for _, ep := range desired {
		want[ep.Name] = true
		fp := fingerprint(ep)
		if l.done[ep.Name] == fp {
			continue
		}
		err := l.host.Update(ctx, ep)
		switch {
		case err == nil:
			l.done[ep.Name] = fp
		case !route.IsLinkNotFound(err):
			l.log.Warn("programming an endpoint", "endpoint", ep.Name, "err", err)
		}
	}
	maps.DeleteFunc(l.done, func(name, _ string) bool { return !want[name] })
	if err := l.host.Prune(ctx, desired, l.now()); err != nil {
		l.log.Warn("removing unwanted routes", "err", err)
	}
	l.m.apply.WithLabelValues(kind).Observe(l.now().Sub(start).Seconds())
	return true
}

// fingerprint identifies what programming an endpoint writes. Pure.
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
