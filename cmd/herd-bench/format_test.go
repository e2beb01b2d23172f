package main

import (
	"math"
	"testing"
	"time"
)

func TestFormat(t *testing.T) {
	counts := map[float64]string{0: "0", 999.4: "999", 1000: "1,000", 123456.7: "123,457", 1234567: "1,234,567", -4500: "-4,500", math.NaN(): "n/a"}
	for in, want := range counts {
		if got := formatCount(in); got != want {
			t.Errorf("formatCount(%v) = %q, want %q", in, got, want)
		}
	}
	lat := map[time.Duration]string{0: "n/a", 812 * time.Microsecond: "812µs", 1234 * time.Microsecond: "1.23ms",
		12345 * time.Microsecond: "12.3ms", 123456 * time.Microsecond: "123ms", 1500 * time.Millisecond: "1.50s"}
	for in, want := range lat {
		if got := formatLatency(in); got != want {
			t.Errorf("formatLatency(%v) = %q, want %q", in, got, want)
		}
	}
	ratios := map[float64]string{0.9712: "0.97x", 1: "1.00x", 31.4: "31x", 0: "n/a", math.Inf(1): "n/a"}
	for in, want := range ratios {
		if got := formatRatio(in); got != want {
			t.Errorf("formatRatio(%v) = %q, want %q", in, got, want)
		}
	}
	if got := formatShares([]float64{0.514, 0.486}); got != "51/49" {
		t.Errorf("formatShares = %q", got)
	}
	if got := formatShares([]float64{1}); got != "—" {
		t.Errorf("formatShares(one) = %q", got)
	}
	if got := formatPercent(0.034); got != "3.4%" {
		t.Errorf("formatPercent(0.034) = %q", got)
	}
}
