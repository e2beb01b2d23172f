package main

import (
	"time"
)

// summary is one layout's figures in one scenario, over its rounds.
type summary struct {
	Scenario string `json:"scenario"`
	Layout   string `json:"layout"`
	Shape    string `json:"shape"` // "2 × 1P", "2 workers"
	Peer     bool   `json:"peer"`

	Rounds      int   `json:"rounds"`       // rounds that ran
	Failed      int   `json:"failed"`       // rounds without figures (did not start, wrk failed)
	ErrorRounds int   `json:"error_rounds"` // rounds with Non-2xx responses or socket errors
	Errors      int64 `json:"errors"`       // their total
	// Used is the number of rounds the figures come from: the clean ones,
	// or every round with figures when none was clean (then Dirty is set).
	Used  int  `json:"used"`
	Dirty bool `json:"dirty"`

	RPS stat `json:"rps"` // successful responses per second
	// PerCPU is the successful responses per second of the server's CPU
	// time, per round.
	PerCPU    stat          `json:"per_cpu_second"`
	P50       time.Duration `json:"p50_ns"`
	P99       time.Duration `json:"p99_ns"`
	P999      time.Duration `json:"p999_ns"`
	ServerCPU float64       `json:"server_cores"` // median cores busy
	LoadCPU   float64       `json:"wrk_cores"`
	OtherCPU  float64       `json:"other_cores"` // everything else on the machine: noise
	// Shares is each worker's share of the requests (by slot, summed over
	// the rounds used); nil for peers and single-process layouts.
	Shares []float64 `json:"worker_shares,omitempty"`
}

// perCore is requests per second of server CPU time: the median over the
// rounds, or for results written before that was kept, the median req/s
// over the median server cores.
func (s summary) perCore() float64 {
	if s.PerCPU.N > 0 {
		return s.PerCPU.Median
	}
	if s.ServerCPU <= 0 {
		return 0
	}
	return s.RPS.Median / s.ServerCPU
}

// ok reports whether the layout has figures from clean rounds.
func (s summary) ok() bool { return s.Used > 0 && !s.Dirty }

// summarize groups rounds by scenario and layout, in the given orders.
func summarize(rounds []roundResult, scenarios []scenario, layouts []layout) []summary {
	var out []summary
	for _, sc := range scenarios {
		for _, l := range layouts {
			var rs []roundResult
			for _, r := range rounds {
				if r.Scenario == sc.Name && r.Layout == l.Name {
					rs = append(rs, r)
				}
			}
			s := summarizeRounds(rs)
			s.Scenario, s.Layout, s.Shape, s.Peer = sc.Name, l.Name, l.shape(sc.Cores), l.Peer
			out = append(out, s)
		}
	}
	return out
}

// summarizeRounds computes one layout's figures. Rounds with errors are
// left out of the figures when at least one clean round exists: wrk counts
// error responses as requests.
func summarizeRounds(rs []roundResult) summary {
	s := summary{Rounds: len(rs)}
	var clean, withFigures []roundResult
	for _, r := range rs {
		if r.failed() {
			s.Failed++
			continue
		}
		withFigures = append(withFigures, r)
		if n := r.Wrk.errors(); n > 0 {
			s.ErrorRounds++
			s.Errors += n
			continue
		}
		clean = append(clean, r)
	}
	used := clean
	if len(clean) == 0 {
		used, s.Dirty = withFigures, len(withFigures) > 0
	}
	s.Used = len(used)
	if len(used) == 0 {
		return s
	}
	var rps, perCPU, server, load, other []float64
	var p50, p99, p999 []time.Duration
	var perSlot []uint64
	for _, r := range used {
		rps = append(rps, r.Wrk.goodRPS())
		if c := r.perCPU(); c > 0 {
			perCPU = append(perCPU, c)
		}
		server = append(server, r.serverCores())
		load = append(load, r.loadCores())
		other = append(other, r.otherCores())
		p50 = append(p50, r.Wrk.P50)
		p99 = append(p99, r.Wrk.P99)
		p999 = append(p999, r.Wrk.P999)
		for slot, n := range r.Workers {
			for len(perSlot) <= slot {
				perSlot = append(perSlot, 0)
			}
			perSlot[slot] += n
		}
	}
	s.RPS = newStat(rps)
	s.PerCPU = newStat(perCPU)
	s.ServerCPU = newStat(server).Median
	s.LoadCPU = newStat(load).Median
	s.OtherCPU = newStat(other).Median
	s.P50, s.P99, s.P999 = medianDuration(p50), medianDuration(p99), medianDuration(p999)
	var total uint64
	for _, n := range perSlot {
		total += n
	}
	if len(perSlot) > 1 && total > 0 {
		for _, n := range perSlot {
			s.Shares = append(s.Shares, float64(n)/float64(total))
		}
	}
	return s
}

// find returns the summary of layout in scenario.
func find(sums []summary, scenario, layout string) (summary, bool) {
	for _, s := range sums {
		if s.Scenario == scenario && s.Layout == layout {
			return s, true
		}
	}
	return summary{}, false
}
