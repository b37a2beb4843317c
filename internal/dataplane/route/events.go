package route

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// RouteEvent says that a main-table route was added or replaced
// (Deleted false) or removed (Deleted true).
type RouteEvent struct {
	Route   Route
	Deleted bool
}

// WatchRoutes reports the changes of the namespace's main-table routes
// until ctx is done, then returns nil once the subscription has stopped:
// no goroutine outlives it. It is meant to run in its own goroutine
// (an errgroup's), beside the reconcile loop it wakes.
//
// ready, when not nil, is called once the subscription is in place: every
// change made after ready returns is reported. A caller that subscribes,
// then resyncs, misses nothing. changed is called for each change, from
// one goroutine, in kernel order; it should hand the event off quickly
// (netlink drops events a slow reader leaves in the socket buffer).
//
// Why events as well as the periodic resync: someone deleting a route
// Calyx owns (an operator, a script, a routing daemon that flushes
// protocols it does not know) cuts a host off from another host's blocks
// until the next resync; with events the loop resyncs and repairs at
// once. Calyx's own writes are reported too: a caller that resyncs on
// every event converges (the resync after its own write finds nothing to
// do), but Remote.Differs tells the events worth a resync apart.
//
// A non-nil error means the subscription broke (e.g. the socket buffer
// overflowed and events were lost): the caller should resync and watch
// again.
func (k *Netlink) WatchRoutes(ctx context.Context, ready func(), changed func(RouteEvent)) error {
	// Unbuffered: netlink's reader goroutine blocks on a send while
	// changed runs, and the kernel buffers meanwhile.
	ch := make(chan netlink.RouteUpdate)
	done := make(chan struct{})
	var (
		mu      sync.Mutex // guards lastErr, set by netlink's goroutine
		lastErr error
	)
	opts := netlink.RouteSubscribeOptions{
		ErrorCallback: func(err error) {
			mu.Lock()
			defer mu.Unlock()
			lastErr = err
		},
	}
	// The socket is created on a thread in the namespace and stays bound
	// to it; netlink's goroutines only read from it, from any thread.
	err := k.ns.Do(func() error { return netlink.RouteSubscribeWithOptions(ch, done, opts) })
	if err != nil {
		close(done)
		return fmt.Errorf("subscribing to route changes in %s: %w", k.ns.Path(), err)
	}
	if ready != nil {
		ready()
	}
	// Closing done closes the socket, which ends netlink's reader, which
	// closes ch: drain ch until then so the reader is never left blocked
	// on a send.
	stop := context.AfterFunc(ctx, func() { close(done) })
	defer stop()
	for u := range ch {
		if ctx.Err() != nil || u.Table != unix.RT_TABLE_MAIN {
			continue
		}
		rt, ok := fromNetlinkRoute(u.Route)
		if !ok {
			continue
		}
		changed(RouteEvent{Route: rt, Deleted: u.Type == unix.RTM_DELROUTE})
	}
	if ctx.Err() != nil {
		return nil
	}
	// The reader ended on its own: the subscription is broken. Close done
	// so that netlink's closer goroutine ends too.
	if stop() {
		close(done)
	}
	mu.Lock()
	defer mu.Unlock()
	return fmt.Errorf("watching route changes in %s: %w", k.ns.Path(), errors.Join(errSubscriptionEnded, lastErr))
}

// errSubscriptionEnded says that a netlink subscription stopped by itself.
var errSubscriptionEnded = errors.New("subscription ended")
