package report

import (
	"math"
	"slices"
	"time"
)

// Median is the median of vs (the mean of the middle two for an even
// count), 0 for none. vs is not modified.
func Median(vs []float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Percentile is the q-quantile of ds by nearest rank (q=0.99 of 100
// samples is the 99th smallest), 0 for none. ds is not modified.
func Percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	// ceil(q*n), with a margin so that float error in q*n (0.99*100 is not
	// exactly 99) cannot push the rank up by one.
	i := int(q*float64(len(s))+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}

// Ms is d in milliseconds.
func Ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Round3 rounds v to three decimals, the precision of every reported value.
func Round3(v float64) float64 { return math.Round(v*1000) / 1000 }

func roundAll(vs []float64) []float64 {
	if len(vs) == 0 {
		return nil
	}
	out := make([]float64, len(vs))
	for i, v := range vs {
		out[i] = Round3(v)
	}
	return out
}
