package main

import (
	"slices"
	"time"
)

// stat is the median and range of one measure over rounds.
type stat struct {
	N      int     // number of values
	Median float64 // middle value; mean of the two middle ones for even N
	Min    float64
	Max    float64
}

// spread is the range relative to the median ((max-min)/median), 0 when
// there is fewer than two values or the median is zero.
func (s stat) spread() float64 {
	if s.N < 2 || s.Median == 0 {
		return 0
	}
	return (s.Max - s.Min) / s.Median
}

// newStat summarises vs; the zero stat when vs is empty. vs is not modified.
func newStat(vs []float64) stat {
	if len(vs) == 0 {
		return stat{}
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	return stat{N: len(s), Median: median(s), Min: s[0], Max: s[len(s)-1]}
}

// median of sorted values; 0 for none.
func median(sorted []float64) float64 {
	n := len(sorted)
	switch {
	case n == 0:
		return 0
	case n%2 == 1:
		return sorted[n/2]
	default:
		return (sorted[n/2-1] + sorted[n/2]) / 2
	}
}

// medianDuration is the median of ds; 0 for none.
func medianDuration(ds []time.Duration) time.Duration {
	fs := make([]float64, len(ds))
	for i, d := range ds {
		fs[i] = float64(d)
	}
	return time.Duration(newStat(fs).Median)
}
