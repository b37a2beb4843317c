package testnet

import (
	"testing"
	"time"
)

// WaitTimeout bounds WaitFor. It is long because it only matters when a
// test is about to fail: a condition that holds returns at once.
const WaitTimeout = 30 * time.Second

// WaitFor polls cond every 20 ms until it returns true, and fails the
// test, naming what it waited for, when it has not after WaitTimeout.
// Tests wait for states, never for durations: WaitFor is how they observe
// something another goroutine or process does.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	waitFor(t, what, WaitTimeout, cond)
}

// WaitForWithin is WaitFor with its own bound, for states that follow
// slow outside events (an etcd lease expiring, a cluster re-electing) and
// may take longer than WaitTimeout on a loaded machine.
func WaitForWithin(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	waitFor(t, what, timeout, cond)
}

func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline.C:
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
	}
}
