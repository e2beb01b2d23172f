package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// formatCount writes n rounded to a whole number with thousands separators:
// 123456.7 -> "123,457".
func formatCount(n float64) string {
	if math.IsNaN(n) || math.IsInf(n, 0) {
		return "n/a"
	}
	s := strconv.FormatInt(int64(math.Round(math.Abs(n))), 10)
	var b strings.Builder
	if n < 0 && s != "0" {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// formatLatency writes a latency with three significant digits: "812µs",
// "1.23ms", "12.3ms", "123ms", "1.23s"; "n/a" for zero (unknown).
func formatLatency(d time.Duration) string {
	if d <= 0 {
		return "n/a"
	}
	us := float64(d) / float64(time.Microsecond)
	switch {
	case us < 1000:
		return fmt.Sprintf("%.0fµs", us)
	case us < 10_000:
		return fmt.Sprintf("%.2fms", us/1000)
	case us < 100_000:
		return fmt.Sprintf("%.1fms", us/1000)
	case us < 1_000_000:
		return fmt.Sprintf("%.0fms", us/1000)
	default:
		return fmt.Sprintf("%.2fs", us/1e6)
	}
}

// formatRatio writes a ratio as "0.97x", or "31x" from 10 up.
func formatRatio(r float64) string {
	switch {
	case r <= 0 || math.IsNaN(r) || math.IsInf(r, 0):
		return "n/a"
	case r >= 10:
		return fmt.Sprintf("%.0fx", r)
	default:
		return fmt.Sprintf("%.2fx", r)
	}
}

// formatPercent writes a fraction as a percentage: 0.034 -> "3.4%".
func formatPercent(f float64) string {
	if f >= 0.1 {
		return fmt.Sprintf("%.0f%%", f*100)
	}
	return fmt.Sprintf("%.1f%%", f*100)
}

// formatShares writes each worker's share of requests: "51/49".
func formatShares(shares []float64) string {
	if len(shares) < 2 {
		return "—"
	}
	parts := make([]string, len(shares))
	for i, s := range shares {
		parts[i] = fmt.Sprintf("%.0f", s*100)
	}
	return strings.Join(parts, "/")
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
