package datastore

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestRetryDelayJitter(t *testing.T) {
	const ms = time.Millisecond
	for _, tc := range []struct {
		name string
		rand []float64 // the random numbers drawn, in order
		want []time.Duration
	}{
		// Base 50, 100, 200, ... 2000 ms; each delay in [base/2, base*3/2).
		{"low", []float64{0, 0, 0, 0, 0, 0, 0, 0}, []time.Duration{25 * ms, 50 * ms, 100 * ms, 200 * ms, 400 * ms, 800 * ms, 1000 * ms, 1000 * ms}},
		{"middle", []float64{0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5}, []time.Duration{50 * ms, 100 * ms, 200 * ms, 400 * ms, 800 * ms, 1600 * ms, 2000 * ms}},
		{"mixed", []float64{0.9, 0.1, 0.75, 0.25}, []time.Duration{70 * ms, 60 * ms, 250 * ms, 300 * ms}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			i := 0
			r := retryDelay{min: syncerMinBackoff, max: syncerMaxBackoff, rand: func() float64 { i++; return tc.rand[i-1] }}
			var got []time.Duration
			for range tc.want {
				got = append(got, r.next())
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("delays (-want +got):\n%s", diff)
			}
		})
	}
}

// Two syncers that fail at the same moment draw different delays, and a
// reset starts again from the minimum.
func TestRetryDelaySpreadsAndResets(t *testing.T) {
	seq := func(v float64) func() float64 { return func() float64 { return v } }
	a := retryDelay{min: syncerMinBackoff, max: syncerMaxBackoff, rand: seq(0.1)}
	b := retryDelay{min: syncerMinBackoff, max: syncerMaxBackoff, rand: seq(0.9)}
	for range 3 {
		if da, db := a.next(), b.next(); da == db {
			t.Errorf("both syncers wait %s: no jitter", da)
		}
	}
	a.reset()
	if d := a.next(); d >= syncerMinBackoff*3/2 {
		t.Errorf("first delay after reset = %s, want below %s", d, syncerMinBackoff*3/2)
	}
}
