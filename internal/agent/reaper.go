package agent

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"github.com/calyx-net/calyx/internal/dataplane/route"
)

// linkDeleter is the part of the kernel the reaper uses. It must be safe
// to use alongside the reconcile loop's kernel: the real one has a netlink
// socket of its own, so that a slow deletion holds up no other request.
type linkDeleter interface {
	LinkByName(name string) (route.Link, error)
	DeleteLink(l route.Link) error
}

// reaper deletes the veths of released endpoints after their DEL has
// answered. The kernel's deletion of a veth (its namespace teardown and RCU
// grace periods) takes 10-15 ms, most of a DEL, yet nothing waits on it
// once the endpoint's routes are gone and it is released: no route points
// at the veth, the container's runtime is about to delete its namespace,
// and an address released meanwhile reaches its next container over that
// container's own veth. So DEL (DelRequest.DeferVethDelete) unroutes and
// releases, answers, and hands the veth here.
//
// Deletions run one at a time (the kernel serialises them on the rtnl lock
// anyway) on a goroutine of their own. An ADD of the same attachment
// waits for its old veth's deletion (wait), which it moves to the front of
// the queue, since the new one has the same names. A veth left queued when
// calyx-node is killed goes with its container's namespace, and the next
// ADD of its attachment replaces it (the plugin's stale host end case).
type reaper struct {
	k   linkDeleter
	log *slog.Logger

	mu      sync.Mutex
	pending map[string]chan struct{} // by host interface name; closed when deleted
	queue   []string
	wake    chan struct{}
}

func newReaper(k linkDeleter, log *slog.Logger) *reaper {
	return &reaper{k: k, log: log, pending: map[string]chan struct{}{}, wake: make(chan struct{}, 1)}
}

// reap queues the deletion of the veth whose host end is ifName.
func (r *reaper) reap(ifName string) {
	r.mu.Lock()
	if _, ok := r.pending[ifName]; !ok {
		r.pending[ifName] = make(chan struct{})
		r.queue = append(r.queue, ifName)
	}
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// wait returns once no deletion of ifName is queued or running. A queued
// one goes first: an ADD waits on it, and should not wait for a whole
// teardown's worth of other veths.
func (r *reaper) wait(ctx context.Context, ifName string) error {
	r.mu.Lock()
	ch := r.pending[ifName]
	if i := slices.Index(r.queue, ifName); i > 0 {
		r.queue = slices.Insert(slices.Delete(r.queue, i, i+1), 0, ifName)
	}
	r.mu.Unlock()
	if ch == nil {
		return nil
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for the deletion of the old veth %s: %w", ifName, context.Cause(ctx))
	}
}

// run deletes queued veths until ctx ends, then the ones still queued, so
// that a calyx-node that stops leaves none of its DELs half done.
func (r *reaper) run(ctx context.Context) {
	for {
		r.drain()
		select {
		case <-ctx.Done():
			r.drain()
			return
		case <-r.wake:
		}
	}
}

func (r *reaper) drain() {
	for {
		r.mu.Lock()
		if len(r.queue) == 0 {
			r.mu.Unlock()
			return
		}
		name := r.queue[0]
		r.queue = r.queue[1:]
		r.mu.Unlock()
		if err := r.delete(name); err != nil {
			// The garbage collector and the namespace's deletion are the
			// fallbacks; an ADD of the attachment replaces the veth.
			r.log.Warn("deleting the veth of a released endpoint", "hostIf", name, "err", err)
		}
		r.mu.Lock()
		close(r.pending[name])
		delete(r.pending, name)
		r.mu.Unlock()
	}
}

func (r *reaper) delete(name string) error {
	l, err := r.k.LinkByName(name)
	if route.IsLinkNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := r.k.DeleteLink(l); err != nil && !route.IsLinkNotFound(err) {
		return err
	}
	return nil
}
