package agent

import (
	"context"
	"sync"
)

// handleLocks serialises the work on one attachment (by its IPAM handle)
// and tells garbage collection which attachments are in flight: an ADD
// holds its handle's lock from before it allocates until its endpoint is
// written, so the collector, which takes the same lock and looks again
// before releasing anything, never collects an allocation whose endpoint
// is about to appear.
type handleLocks struct {
	mu sync.Mutex // guards m
	m  map[string]*handleLock
}

type handleLock struct {
	sem  chan struct{} // holds a token while locked
	refs int           // holders and waiters
}

func newHandleLocks() *handleLocks { return &handleLocks{m: map[string]*handleLock{}} }

// lock waits for the handle's lock or the end of ctx, and returns the
// function that unlocks it.
func (h *handleLocks) lock(ctx context.Context, handle string) (func(), error) {
	h.mu.Lock()
	l := h.m[handle]
	if l == nil {
		l = &handleLock{sem: make(chan struct{}, 1)}
		h.m[handle] = l
	}
	l.refs++
	h.mu.Unlock()
	select {
	case l.sem <- struct{}{}:
		return func() {
			<-l.sem
			h.release(handle, l)
		}, nil
	case <-ctx.Done():
		h.release(handle, l)
		return nil, ctx.Err()
	}
}

func (h *handleLocks) release(handle string, l *handleLock) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if l.refs--; l.refs == 0 {
		delete(h.m, handle)
	}
}

// busy reports whether an operation on the handle is in flight.
func (h *handleLocks) busy(handle string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.m[handle] != nil
}
