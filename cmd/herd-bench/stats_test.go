package main

import (
	"testing"
	"time"
)

func TestNewStat(t *testing.T) {
	tests := []struct {
		name   string
		in     []float64
		want   stat
		spread float64
	}{
		{"none", nil, stat{}, 0},
		{"one", []float64{7}, stat{N: 1, Median: 7, Min: 7, Max: 7, P25: 7, P75: 7}, 0},
		{"odd", []float64{30, 10, 20}, stat{N: 3, Median: 20, Min: 10, Max: 30, P25: 15, P75: 25}, 1},
		{"even", []float64{4, 1, 3, 2}, stat{N: 4, Median: 2.5, Min: 1, Max: 4, P25: 1.75, P75: 3.25}, 1.2},
		{"outlier barely moves the median", []float64{100, 101, 99, 102, 5}, stat{N: 5, Median: 100, Min: 5, Max: 102, P25: 99, P75: 101}, 0.97},
		{"zero median", []float64{0, 0, 1}, stat{N: 3, Median: 0, Min: 0, Max: 1, P25: 0, P75: 0.5}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := append([]float64(nil), tt.in...)
			got := newStat(tt.in)
			if got != tt.want {
				t.Errorf("newStat(%v) = %+v, want %+v", in, got, tt.want)
			}
			if d := got.spread() - tt.spread; d > 1e-9 || d < -1e-9 {
				t.Errorf("spread = %v, want %v", got.spread(), tt.spread)
			}
			for i := range in {
				if in[i] != tt.in[i] {
					t.Fatalf("newStat reordered its input: %v", tt.in)
				}
			}
		})
	}
}

func TestMedianDuration(t *testing.T) {
	ds := []time.Duration{3 * time.Millisecond, time.Millisecond, 2 * time.Millisecond}
	if got := medianDuration(ds); got != 2*time.Millisecond {
		t.Errorf("medianDuration = %v, want 2ms", got)
	}
	if got := medianDuration(nil); got != 0 {
		t.Errorf("medianDuration(nil) = %v, want 0", got)
	}
}
