package main

import (
	"testing"
	"time"
)

// round builds a measured round: rps successful responses per second for 1 s.
func round(sc, layout string, n int, rps float64, p99 time.Duration, workers ...uint64) roundResult {
	return roundResult{Scenario: sc, Layout: layout, Round: n, Elapsed: time.Second,
		ServerCPU: 900 * time.Millisecond, LoadCPU: 400 * time.Millisecond, OtherCPU: 10 * time.Millisecond,
		Wrk: wrkResult{Requests: int64(rps), Duration: time.Second, RPS: rps,
			P50: p99 / 4, P99: p99, P999: p99 * 2}, Workers: workers, Counted: rps}
}

func TestSummarizeRounds(t *testing.T) {
	bad := round("s", "l", 3, 50000, time.Millisecond)
	bad.Wrk.Non2xx = 20000 // wrk's Requests/sec still says 50000
	failed := roundResult{Scenario: "s", Layout: "l", Round: 4, Err: "did not start"}
	s := summarizeRounds([]roundResult{
		round("s", "l", 1, 1000, 2*time.Millisecond, 600, 400),
		round("s", "l", 2, 1200, 4*time.Millisecond, 500, 700),
		bad, failed,
		round("s", "l", 5, 1100, 3*time.Millisecond, 550, 550),
	})
	if s.Rounds != 5 || s.Failed != 1 || s.ErrorRounds != 1 || s.Errors != 20000 || s.Used != 3 || s.Dirty {
		t.Errorf("counts: %+v", s)
	}
	if s.RPS != (stat{N: 3, Median: 1100, Min: 1000, Max: 1200, P25: 1050, P75: 1150}) {
		t.Errorf("RPS = %+v: the error round must be left out", s.RPS)
	}
	if s.P99 != 3*time.Millisecond || s.P50 != 750*time.Microsecond || s.P999 != 6*time.Millisecond {
		t.Errorf("latencies p50 %v p99 %v p99.9 %v", s.P50, s.P99, s.P999)
	}
	if s.ServerCPU != 0.9 || s.LoadCPU != 0.4 || s.OtherCPU != 0.01 {
		t.Errorf("CPU server %v wrk %v other %v", s.ServerCPU, s.LoadCPU, s.OtherCPU)
	}
	if len(s.Shares) != 2 || s.Shares[0] != 0.5 || s.Shares[1] != 0.5 {
		t.Errorf("shares %v, want [0.5 0.5] (1650 of 3300 each)", s.Shares)
	}
	if got := s.perCore(); got < 1222 || got > 1223 || s.PerCPU.N != 3 || s.PerCPU.Min < 1111 || s.PerCPU.Min > 1112 {
		t.Errorf("perCore = %v, PerCPU %+v: want the median of each round's requests per CPU second, 1100/0.9", got, s.PerCPU)
	}
	// Results written before PerCPU was kept: median req/s over median cores.
	old := s
	old.PerCPU = stat{}
	if got := old.perCore(); got < 1222 || got > 1223 {
		t.Errorf("perCore without PerCPU = %v, want 1100/0.9", got)
	}
	if !s.ok() {
		t.Error("ok() = false with clean rounds")
	}

	// Only error rounds: the figures are those rounds', marked dirty.
	d := summarizeRounds([]roundResult{bad})
	if d.Used != 1 || !d.Dirty || d.ok() || d.RPS.Median != 30000 {
		t.Errorf("dirty summary %+v: want 1 used, dirty, 30000 good req/s", d)
	}
	// Nothing ran.
	f := summarizeRounds([]roundResult{failed})
	if f.Used != 0 || f.ok() || f.Failed != 1 {
		t.Errorf("failed summary %+v", f)
	}
}

func TestQuieter(t *testing.T) {
	calm := round("s", "l", 1, 1000, time.Millisecond)
	noisy := calm
	noisy.OtherCPU = 800 * time.Millisecond
	failed := roundResult{Err: "x"}
	if !quieter(calm, noisy) || quieter(noisy, calm) {
		t.Error("the attempt with less other CPU must win")
	}
	if !quieter(noisy, failed) || quieter(failed, calm) {
		t.Error("an attempt with figures must beat a failed one")
	}
}
