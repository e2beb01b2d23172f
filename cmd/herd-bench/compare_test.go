package main

import (
	"math"
	"testing"
	"time"
)

func TestCompareRounds(t *testing.T) {
	withCPU := func(r roundResult, cpu time.Duration) roundResult {
		r.ServerCPU = cpu
		return r
	}
	errRound := round("s", "base", 3, 1000, time.Millisecond)
	errRound.Wrk.Read = 1
	rounds := []roundResult{
		// 1: a normal round: 0.9x.
		round("s", "a", 1, 900, time.Millisecond), round("s", "base", 1, 1000, time.Millisecond),
		// 2: a failed, 3: the baseline had an error: both left out.
		{Scenario: "s", Layout: "a", Round: 2, Err: "did not start"}, round("s", "base", 2, 1000, time.Millisecond),
		round("s", "a", 3, 900, time.Millisecond), errRound,
		// 4: the whole machine slow for a while: both halved, still 0.9x.
		withCPU(round("s", "a", 4, 450, time.Millisecond), 450*time.Millisecond),
		withCPU(round("s", "base", 4, 500, time.Millisecond), 450*time.Millisecond),
		// 5: another job took CPU time from a's run only: req/s 0.6x, per CPU second still 0.9x.
		withCPU(round("s", "a", 5, 600, time.Millisecond), 600*time.Millisecond),
		round("s", "base", 5, 1000, time.Millisecond),
		// Another scenario's rounds do not count.
		round("other", "a", 1, 1, time.Millisecond), round("other", "base", 1, 1000, time.Millisecond),
	}
	c := compareRounds(indexRounds(rounds), 5, "s", "a", "base")
	near := func(got, want float64) bool { return math.Abs(got-want) < 1e-9*math.Max(1, math.Abs(want)) }
	if c.Rounds != 3 {
		t.Fatalf("%d rounds compared, want 3 (1, 4, 5)", c.Rounds)
	}
	if !near(c.RPS.Median, 0.9) || !near(c.RPS.Min, 0.6) || !near(c.RPS.Max, 0.9) || !near(c.RPS.P25, 0.75) {
		t.Errorf("req/s ratio %+v, want median 0.9, min 0.6, P25 0.75", c.RPS)
	}
	if !near(c.PerCPU.Min, 0.9) || !near(c.PerCPU.Max, 0.9) {
		t.Errorf("per-CPU ratio %+v, want 0.9 in every round", c.PerCPU)
	}
	// a needs 1 ms of CPU per request (1000 per CPU second), base 0.9 ms.
	if !near(c.CPUCost.Min, 1e5) || !near(c.CPUCost.Max, 1e5) {
		t.Errorf("CPU cost difference %+v ns, want 100,000 in every round", c.CPUCost)
	}
	if c := compareRounds(indexRounds(rounds), 5, "s", "a", "nope"); c.Rounds != 0 || c.RPS.N != 0 {
		t.Errorf("against a layout that never ran: %+v", c)
	}
}

func TestFormatMicros(t *testing.T) {
	for _, tt := range []struct {
		ns     float64
		signed bool
		want   string
	}{
		{21300, false, "21.3µs"},
		{412, true, "+0.412µs"},
		{-1750, true, "-1.75µs"},
		{225000, false, "225µs"},
		{math.NaN(), false, "n/a"},
	} {
		if got := formatMicros(tt.ns, tt.signed); got != tt.want {
			t.Errorf("formatMicros(%v, %v) = %q, want %q", tt.ns, tt.signed, got, tt.want)
		}
	}
}
