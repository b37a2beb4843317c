package datastore

// SetClaimWatchHook makes cl call f with the start revision of each watch
// of its key.
func SetClaimWatchHook(cl *Claim, f func(from int64)) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	cl.watching = f
}

// HoldGroup stops c's group commit from sending anything (as if every
// in-flight slot were taken) until release is called, so that a test can
// queue writes and have them sent together. queued returns how many writes
// wait. c must be idle when it is called.
func HoldGroup(c *Client) (queued func() int, release func()) {
	g := &c.group
	g.mu.Lock()
	g.inFlight += groupInFlight
	g.mu.Unlock()
	queued = func() int {
		g.mu.Lock()
		defer g.mu.Unlock()
		return len(g.queue)
	}
	release = func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		g.inFlight -= groupInFlight
		g.scheduleLocked()
	}
	return queued, release
}

// HardStop stops e's server the way a fatal error would, without Close.
func HardStop(e *Embedded) { e.etcd.Server.HardStop() }
