//go:build !race

package nft

import "testing"

// Allocation counts are exact only without the race detector, which adds
// a few either way: make test runs this file's tests in a second pass
// without -race.

// TestApplyAllocsFlat: an incremental Apply (+1 set member, +1 and -1
// endpoint, one policy edit) allocates no more with 1,000 endpoints,
// policies and 10,000 set members than with 100 and 1,000: nothing on
// its path copies, sorts or renders the whole table.
func TestApplyAllocsFlat(t *testing.T) {
	for name, change := range incrementalChanges() {
		allocs := func(n, members int) float64 {
			s := bigState(n, members)
			r := New(acceptKernel{}, Options{})
			mustResync(t, r, s)
			w, d := change(s)
			return testing.AllocsPerRun(10, func() {
				mustApply(t, r, w, d) // the change
				mustApply(t, r, s, d) // and back
			})
		}
		small, large := allocs(100, 1000), allocs(1000, 10000)
		if large > small {
			t.Errorf("%s: %v allocations at 1,000 endpoints, %v at 100: want no more", name, large, small)
		}
	}
}
