package main

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// B7 sees a route arrive in the receiving host's kernel from netlink
// route events, never by polling: a subscription opened inside the
// host's namespace, read on its own goroutine, whose reader stamps each
// event with the time it came. The tracker keeps what the events say.

// routeEvent is one route of interest appearing or going away.
type routeEvent struct {
	add bool
	dst netip.Prefix
	at  time.Time
}

// eventOf turns a netlink route update into a routeEvent: IPv4 unicast
// routes of the main table inside within; ok is false for the rest.
func eventOf(u netlink.RouteUpdate, within netip.Prefix, at time.Time) (routeEvent, bool) {
	// u.Type is the message (RTM_*), u.Route.Type the route's (RTN_*).
	if u.Table != unix.RT_TABLE_MAIN || u.Route.Type != unix.RTN_UNICAST || u.Dst == nil {
		return routeEvent{}, false
	}
	a, ok := netip.AddrFromSlice(u.Dst.IP)
	if !ok {
		return routeEvent{}, false
	}
	bits, _ := u.Dst.Mask.Size()
	dst := netip.PrefixFrom(a.Unmap(), bits)
	if !dst.IsValid() || !within.Contains(dst.Addr()) || dst.Bits() < within.Bits() {
		return routeEvent{}, false
	}
	switch u.Type {
	case unix.RTM_NEWROUTE:
		return routeEvent{add: true, dst: dst, at: at}, true
	case unix.RTM_DELROUTE:
		return routeEvent{dst: dst, at: at}, true
	}
	return routeEvent{}, false
}

// tracker is the set of watched routes one host's kernel holds, from
// its route events, with when each came or went. Pure: fed by apply.
type tracker struct {
	counted netip.Prefix // count covers the routes inside it

	mu      sync.Mutex // guards following fields
	present map[netip.Prefix]time.Time
	gone    map[netip.Prefix]time.Time
	count   int       // present routes inside counted
	countAt time.Time // when count last changed
	firstAt time.Time // when count last went from 0 to 1
	err     error     // events may have been lost
	wake    chan struct{}
}

func newTracker(counted netip.Prefix) *tracker {
	return &tracker{counted: counted, present: map[netip.Prefix]time.Time{}, gone: map[netip.Prefix]time.Time{},
		wake: make(chan struct{})}
}

// apply records one event. A route announced again while present (a
// replace) keeps the time it first appeared.
func (t *tracker) apply(e routeEvent) {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, had := t.present[e.dst]
	switch {
	case e.add && !had:
		t.present[e.dst] = e.at
		delete(t.gone, e.dst)
		if t.counted.Contains(e.dst.Addr()) {
			t.count++
			t.countAt = e.at
			if t.count == 1 {
				t.firstAt = e.at
			}
		}
	case !e.add && had:
		delete(t.present, e.dst)
		t.gone[e.dst] = e.at
		if t.counted.Contains(e.dst.Addr()) {
			t.count--
			t.countAt = e.at
		}
	default:
		return
	}
	t.wakeLocked()
}

// fail records that events may have been lost (netlink's buffer ran
// over): every wait fails from then on.
func (t *tracker) fail(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.err == nil {
		t.err = err
	}
	t.wakeLocked()
}

func (t *tracker) wakeLocked() {
	close(t.wake)
	t.wake = make(chan struct{})
}

// wait waits up to limit until cond holds and returns the time it gives.
func (t *tracker) wait(ctx context.Context, limit time.Duration, what string, cond func() (time.Time, bool)) (time.Time, error) {
	timer := time.NewTimer(limit)
	defer timer.Stop()
	for {
		t.mu.Lock()
		at, ok := cond()
		err, wake := t.err, t.wake
		t.mu.Unlock()
		switch {
		case err != nil:
			return time.Time{}, fmt.Errorf("waiting for %s: route events lost: %w", what, err)
		case ok:
			return at, nil
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-timer.C:
			return time.Time{}, fmt.Errorf("no %s within %v", what, limit)
		case <-wake:
		}
	}
}

// waitPresent returns when p appeared, once it is present since since.
func (t *tracker) waitPresent(ctx context.Context, p netip.Prefix, since time.Time, limit time.Duration) (time.Time, error) {
	return t.wait(ctx, limit, "route "+p.String(), func() (time.Time, bool) {
		at, ok := t.present[p]
		return at, ok && !at.Before(since)
	})
}

// waitGone returns when p went away, once it has gone since since.
func (t *tracker) waitGone(ctx context.Context, p netip.Prefix, since time.Time, limit time.Duration) (time.Time, error) {
	return t.wait(ctx, limit, "withdrawal of "+p.String(), func() (time.Time, bool) {
		at, ok := t.gone[p]
		return at, ok && !at.Before(since)
	})
}

// waitCount returns when the count of routes inside counted became n,
// once it is n.
func (t *tracker) waitCount(ctx context.Context, n int, limit time.Duration) (time.Time, error) {
	return t.wait(ctx, limit, fmt.Sprintf("%d routes in %s", n, t.counted), func() (time.Time, bool) {
		return t.countAt, t.count == n
	})
}

// first returns when the count last went from 0 to 1.
func (t *tracker) first() time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.firstAt
}

// size is how many routes inside counted are present.
func (t *tracker) size() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.count
}

// routeWatch feeds a tracker from the route events of one namespace.
type routeWatch struct {
	*tracker
	done    chan struct{}
	stopped chan struct{}
	closing sync.Once
}

// watchRoutes subscribes to n's route events (the socket is opened inside
// n) and tracks the routes inside within, counting those inside counted.
// The receive buffer is forced to 64 MiB so that 10,000 routes at once
// do not overrun it; if it is overrun anyway, waits fail.
func watchRoutes(n *netNS, within, counted netip.Prefix) (*routeWatch, error) {
	w := &routeWatch{tracker: newTracker(counted), done: make(chan struct{}), stopped: make(chan struct{})}
	ch := make(chan netlink.RouteUpdate, 1<<16)
	opts := netlink.RouteSubscribeOptions{
		ReceiveBufferSize: 64 << 20, ReceiveBufferForceSize: true,
		ErrorCallback: func(err error) {
			select {
			case <-w.done: // the socket was closed by close
			default:
				w.fail(err)
			}
		},
	}
	if err := n.ns.Do(func(ns.NetNS) error { return netlink.RouteSubscribeWithOptions(ch, w.done, opts) }); err != nil {
		return nil, fmt.Errorf("subscribing to route events in %s: %w", n.name, err)
	}
	go func() {
		defer close(w.stopped)
		for u := range ch {
			if e, ok := eventOf(u, within, time.Now()); ok {
				w.apply(e)
			}
		}
	}()
	return w, nil
}

// close ends the subscription and waits for its reader.
func (w *routeWatch) close() {
	w.closing.Do(func() { close(w.done) })
	select {
	case <-w.stopped:
	case <-time.After(5 * time.Second):
		logf("route watch: the reader did not stop")
	}
}
