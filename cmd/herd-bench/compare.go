package main

import (
	"fmt"
	"math"
	"strings"
)

// comparison is one layout measured against another in one scenario,
// round by round: only the rounds in which both had clean figures count,
// and each such round gives one ratio. Two runs of the same round are
// close in time, so a slow phase of the machine lowers both and leaves
// their ratio alone; the median of many such ratios is steadier than the
// ratio of two medians, and its quartiles say how far it can be trusted.
type comparison struct {
	Scenario string `json:"scenario"`
	Layout   string `json:"layout"`
	Against  string `json:"against"`
	Rounds   int    `json:"rounds"` // rounds in which both had clean figures
	// RPS is the layout's successful req/s over the other's, per round.
	RPS stat `json:"rps_ratio"`
	// PerCPU is the ratio of requests per second of each server's own CPU
	// time, per round: another job on the machine that takes CPU time from
	// the server lowers its req/s but hardly this.
	PerCPU stat `json:"per_cpu_ratio"`
	// CPUCost is the layout's server CPU time per request less the
	// other's, per round, in nanoseconds: what the layout adds to (or,
	// negative, saves on) each request.
	CPUCost stat `json:"cpu_cost_diff_ns"`
}

// roundKey finds one run in a scenario, layout and round.
type roundKey struct {
	scenario, layout string
	round            int
}

// indexRounds maps each run to its result.
func indexRounds(rounds []roundResult) map[roundKey]roundResult {
	m := make(map[roundKey]roundResult, len(rounds))
	for _, r := range rounds {
		m[roundKey{r.Scenario, r.Layout, r.Round}] = r
	}
	return m
}

// compareRounds compares layout with against in one scenario, over the
// rounds where both runs were clean and had CPU figures.
func compareRounds(byKey map[roundKey]roundResult, rounds int, scenario, layout, against string) comparison {
	c := comparison{Scenario: scenario, Layout: layout, Against: against}
	var rps, perCPU, cost []float64
	for n := 1; n <= rounds; n++ {
		a, ok1 := byKey[roundKey{scenario, layout, n}]
		b, ok2 := byKey[roundKey{scenario, against, n}]
		if !ok1 || !ok2 || !a.clean() || !b.clean() {
			continue
		}
		ar, br := a.Wrk.goodRPS(), b.Wrk.goodRPS()
		ac, bc := a.perCPU(), b.perCPU()
		if ar <= 0 || br <= 0 || ac <= 0 || bc <= 0 {
			continue
		}
		rps = append(rps, ar/br)
		perCPU = append(perCPU, ac/bc)
		cost = append(cost, 1e9/ac-1e9/bc)
	}
	c.Rounds = len(rps)
	c.RPS, c.PerCPU, c.CPUCost = newStat(rps), newStat(perCPU), newStat(cost)
	return c
}

// comparisons returns, per scenario, every layout against the baseline
// (none without one) and each step of -split against the step before.
func (rep report) comparisons() []comparison {
	byKey := indexRounds(rep.Results)
	var out []comparison
	for _, sc := range rep.Scenarios {
		if rep.Baseline != "" {
			for _, l := range rep.Layouts {
				if l != rep.Baseline {
					out = append(out, compareRounds(byKey, rep.Rounds, sc.Name, l, rep.Baseline))
				}
			}
		}
		for i := 1; i < len(rep.Split); i++ {
			out = append(out, compareRounds(byKey, rep.Rounds, sc.Name, rep.Split[i], rep.Split[i-1]))
		}
	}
	return out
}

// findComparison returns the comparison of layout against other.
func findComparison(cs []comparison, scenario, layout, against string) (comparison, bool) {
	for _, c := range cs {
		if c.Scenario == scenario && c.Layout == layout && c.Against == against {
			return c, true
		}
	}
	return comparison{}, false
}

// pairedHeader and pairedRow are the table of every layout against the
// baseline, per round.
func (rep report) pairedHeader() []string {
	return []string{"layout", "rounds", "req/s ratio", "IQR", "min–max", "req/CPU-s ratio", "IQR", "min–max",
		"server CPU/req", "Δ CPU/req", "IQR"}
}

func (rep report) pairedRow(c comparison) []string {
	if c.Rounds == 0 {
		return []string{c.Layout, "0", "n/a", "", "", "n/a", "", "", "", "", ""}
	}
	cpuPerReq := ""
	if s, ok := find(rep.Summaries, c.Scenario, c.Layout); ok && s.perCore() > 0 {
		cpuPerReq = formatMicros(1e9/s.perCore(), false)
	}
	return []string{c.Layout, fmt.Sprint(c.Rounds),
		formatRatio(c.RPS.Median), ratioRange(c.RPS.P25, c.RPS.P75), ratioRange(c.RPS.Min, c.RPS.Max),
		formatRatio(c.PerCPU.Median), ratioRange(c.PerCPU.P25, c.PerCPU.P75), ratioRange(c.PerCPU.Min, c.PerCPU.Max),
		cpuPerReq, formatMicros(c.CPUCost.Median, true),
		formatMicros(c.CPUCost.P25, true) + " … " + formatMicros(c.CPUCost.P75, true)}
}

// splitHeader and splitRow are the table of -split: each step against
// the one before.
func splitHeader() []string {
	return []string{"step", "rounds", "Δ CPU/req", "IQR", "min–max", "req/CPU-s ratio", "IQR", "req/s ratio", "IQR"}
}

func splitRow(c comparison) []string {
	step := c.Against + " → " + c.Layout
	if c.Rounds == 0 {
		return []string{step, "0", "n/a", "", "", "n/a", "", "n/a", ""}
	}
	return []string{step, fmt.Sprint(c.Rounds),
		formatMicros(c.CPUCost.Median, true),
		formatMicros(c.CPUCost.P25, true) + " … " + formatMicros(c.CPUCost.P75, true),
		formatMicros(c.CPUCost.Min, true) + " … " + formatMicros(c.CPUCost.Max, true),
		formatRatio(c.PerCPU.Median), ratioRange(c.PerCPU.P25, c.PerCPU.P75),
		formatRatio(c.RPS.Median), ratioRange(c.RPS.P25, c.RPS.P75)}
}

// pairedTables calls table once per scenario and table: a title, a
// header and rows. The tables are the per-round comparison with the
// baseline and the -split steps.
func (rep report) pairedTables(table func(title string, header []string, rows [][]string)) {
	cs := rep.comparisons()
	for _, sc := range rep.Scenarios {
		if rep.Baseline != "" {
			var rows [][]string
			for _, l := range rep.Layouts {
				if c, ok := findComparison(cs, sc.Name, l, rep.Baseline); ok {
					rows = append(rows, rep.pairedRow(c))
				}
			}
			table(fmt.Sprintf("%s: against %s, round by round (median of the rounds' ratios, interquartile range, min–max)", sc.Name, rep.Baseline),
				rep.pairedHeader(), rows)
		}
		if len(rep.Split) > 1 {
			var rows [][]string
			for i := 1; i < len(rep.Split); i++ {
				if c, ok := findComparison(cs, sc.Name, rep.Split[i], rep.Split[i-1]); ok {
					rows = append(rows, splitRow(c))
				}
			}
			table(fmt.Sprintf("%s: where the cost goes (server CPU per request, each step against the one before, round by round)", sc.Name),
				splitHeader(), rows)
		}
	}
}

// ratioRange writes two ratios as "0.95–0.98".
func ratioRange(lo, hi float64) string {
	return strings.TrimSuffix(formatRatio(lo), "x") + "–" + formatRatio(hi)
}

// formatMicros writes nanoseconds as microseconds with three significant
// digits ("21.3µs", "0.412µs"), with a sign when signed.
func formatMicros(ns float64, signed bool) string {
	if math.IsNaN(ns) || math.IsInf(ns, 0) {
		return "n/a"
	}
	us := ns / 1e3
	var s string
	switch a := math.Abs(us); {
	case a >= 100:
		s = fmt.Sprintf("%.0f", us)
	case a >= 10:
		s = fmt.Sprintf("%.1f", us)
	case a >= 1:
		s = fmt.Sprintf("%.2f", us)
	default:
		s = fmt.Sprintf("%.3f", us)
	}
	if signed && us >= 0 {
		s = "+" + s
	}
	return s + "µs"
}
