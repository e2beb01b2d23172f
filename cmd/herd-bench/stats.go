package main

import (
	"slices"
	"time"
)

// stat is the median, quartiles and range of one measure over rounds.
type stat struct {
	N      int     // number of values
	Median float64 // middle value; mean of the two middle ones for even N
	Min    float64
	Max    float64
	// P25 and P75 are the lower and upper quartiles, interpolated
	// linearly between the closest values (the 25th and 75th
	// percentiles); half the values lie between them.
	P25 float64 `json:",omitempty"`
	P75 float64 `json:",omitempty"`
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
	return stat{N: len(s), Median: median(s), Min: s[0], Max: s[len(s)-1],
		P25: quantile(s, 0.25), P75: quantile(s, 0.75)}
}

// quantile of sorted values, q in [0, 1], interpolated linearly between
// the two closest ranks (R's and NumPy's default); 0 for none.
func quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	pos := q * float64(len(sorted)-1)
	i := int(pos)
	if i >= len(sorted)-1 {
		return sorted[len(sorted)-1]
	}
	frac := pos - float64(i)
	return sorted[i] + frac*(sorted[i+1]-sorted[i])
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
