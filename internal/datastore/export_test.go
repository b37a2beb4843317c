package datastore

// SetClaimWatchHook makes cl call f with the start revision of each watch
// of its key.
func SetClaimWatchHook(cl *Claim, f func(from int64)) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	cl.watching = f
}
