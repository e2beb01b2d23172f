package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// report is everything a benchmark run writes: the terminal table, the
// Markdown file, the SVG chart and the JSON data.
type report struct {
	Date        time.Time     `json:"date"`
	Machine     machineInfo   `json:"machine"`
	Command     string        `json:"command"`
	Path        string        `json:"path"`
	Rounds      int           `json:"rounds"`
	Duration    time.Duration `json:"duration_ns"`
	Warmup      time.Duration `json:"warmup_ns"`
	Connections int           `json:"connections"`
	Scenarios   []scenario    `json:"scenarios"`
	Layouts     []string      `json:"layouts"`
	Baseline    string        `json:"baseline,omitempty"` // a layout name: the "vs" column
	// Split is -split: layouts whose successive differences are shown.
	Split []string `json:"split,omitempty"`
	// Keep is -keep: every server ran through all rounds of a scenario.
	Keep bool `json:"keep,omitempty"`
	// BusyBefore is the number of cores busy during the second before the
	// first round (-1: unknown): about 0 on a quiet machine.
	BusyBefore float64   `json:"busy_before_cores"`
	Summaries  []summary `json:"summaries"`
	// Comparisons are the round-by-round ratios against the baseline and
	// between the -split steps (written for readers of the JSON; the
	// tables compute them again from Results).
	Comparisons []comparison  `json:"comparisons,omitempty"`
	Results     []roundResult `json:"results"`
}

// columns of the summary tables (terminal and Markdown).
func (rep report) header() []string {
	h := []string{"layout", "processes", "req/s", "spread", "p50", "p99", "p99.9",
		"server CPU", "wrk CPU", "other CPU", "req/CPU-s", "worker shares %"}
	if rep.Baseline != "" {
		h = append(h, "vs "+rep.Baseline)
	}
	return append(h, "errors")
}

func (rep report) row(s summary) []string {
	if s.Used == 0 {
		r := []string{s.Layout, s.Shape, "failed", "", "", "", "", "", "", "", "", ""}
		if rep.Baseline != "" {
			r = append(r, "")
		}
		return append(r, fmt.Sprintf("%d of %d rounds failed", s.Failed, s.Rounds))
	}
	rps := formatCount(s.RPS.Median)
	if s.Dirty {
		rps = "⚠ " + rps
	}
	r := []string{s.Layout, s.Shape, rps, "±" + formatPercent(s.RPS.spread()/2),
		formatLatency(s.P50), formatLatency(s.P99), formatLatency(s.P999),
		fmt.Sprintf("%.2f", s.ServerCPU), fmt.Sprintf("%.2f", s.LoadCPU), fmt.Sprintf("%.2f", s.OtherCPU),
		formatCount(s.perCore()), formatShares(s.Shares)}
	if rep.Baseline != "" {
		vs := "—"
		if b, ok := find(rep.Summaries, s.Scenario, rep.Baseline); ok && b.Used > 0 && b.Layout != s.Layout {
			vs = formatRatio(rep.ratio(s, b))
		}
		r = append(r, vs)
	}
	return append(r, errorsCell(s))
}

func errorsCell(s summary) string {
	var parts []string
	if s.ErrorRounds > 0 {
		parts = append(parts, fmt.Sprintf("⚠ %d of %d rounds, %s requests", s.ErrorRounds, s.Rounds, formatCount(float64(s.Errors))))
	}
	if s.Failed > 0 {
		parts = append(parts, fmt.Sprintf("%d of %d rounds failed", s.Failed, s.Rounds))
	}
	if len(parts) == 0 {
		return "0"
	}
	return strings.Join(parts, "; ")
}

// ratio is a's req/s over b's (same scenario): the median of the rounds'
// ratios, or the ratio of the medians when no round had both clean.
func (rep report) ratio(a, b summary) float64 {
	if c := compareRounds(indexRounds(rep.Results), rep.Rounds, a.Scenario, a.Layout, b.Layout); c.Rounds > 0 {
		return c.RPS.Median
	}
	return a.RPS.Median / b.RPS.Median
}

// scenarioSummaries returns the summaries of one scenario, in layout order.
func (rep report) scenarioSummaries(name string) []summary {
	var out []summary
	for _, s := range rep.Summaries {
		if s.Scenario == name {
			out = append(out, s)
		}
	}
	return out
}

// noiseLimit is the median CPU (in cores) used by other processes above
// which a layout's figures are called noisy.
const noiseLimit = 0.05

// noisy counts the summaries measured on a busy machine.
func (rep report) noisy() int {
	n := 0
	for _, s := range rep.Summaries {
		if s.Used > 0 && s.OtherCPU > noiseLimit {
			n++
		}
	}
	return n
}

// settings describes the load in one line.
func (rep report) settings() string {
	if rep.Keep {
		return fmt.Sprintf("wrk -c %d on GET %s, %d rounds × %s, layouts alternating within each round (in reverse every other round), every server started once per scenario and warmed up for %s",
			rep.Connections, rep.Path, rep.Rounds, rep.Duration, rep.Warmup)
	}
	return fmt.Sprintf("wrk -c %d on GET %s, %d rounds × %s (after a %s warm-up), layouts alternating within each round",
		rep.Connections, rep.Path, rep.Rounds, rep.Duration, rep.Warmup)
}

// writeTerminal prints the summary tables for a terminal.
func (rep report) writeTerminal(w io.Writer) error {
	fmt.Fprintf(w, "%s\n", rep.settings())
	for _, sc := range rep.Scenarios {
		fmt.Fprintf(w, "\n%s: %s\n", sc.Name, sc.Description)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, strings.Join(rep.header(), "\t"))
		for _, s := range rep.scenarioSummaries(sc.Name) {
			fmt.Fprintln(tw, strings.Join(rep.row(s), "\t"))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if n := rep.noisy(); n > 0 {
		fmt.Fprintf(w, "\n⚠ other processes used more than %.2f cores during %d layouts' runs: noisy figures (see \"other CPU\")\n", noiseLimit, n)
	}
	var err error
	rep.pairedTables(func(title string, header []string, rows [][]string) {
		fmt.Fprintf(w, "\n%s\n", title)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, strings.Join(header, "\t"))
		for _, r := range rows {
			fmt.Fprintln(tw, strings.Join(r, "\t"))
		}
		if ferr := tw.Flush(); ferr != nil && err == nil {
			err = ferr
		}
	})
	if err != nil {
		return err
	}
	if lines := rep.ratioLines(); len(lines) > 0 {
		fmt.Fprintln(w)
		for _, l := range lines {
			fmt.Fprintln(w, l)
		}
	}
	return nil
}

// ratioLines compares, per scenario, each herd layout with each peer in
// one line each: requests/s ratio (the median of the rounds' ratios) and
// p99 ratio.
func (rep report) ratioLines() []string {
	var out []string
	for _, sc := range rep.Scenarios {
		sums := rep.scenarioSummaries(sc.Name)
		for _, h := range sums {
			if h.Peer || h.Used == 0 {
				continue
			}
			var parts []string
			for _, p := range sums {
				if !p.Peer || p.Used == 0 {
					continue
				}
				parts = append(parts, fmt.Sprintf("%s req/s of %s (p99 %s)", formatRatio(rep.ratio(h, p)), p.Layout,
					formatRatio(float64(h.P99)/float64(p.P99))))
			}
			if len(parts) > 0 {
				out = append(out, fmt.Sprintf("%s, %s: %s", sc.Name, h.Layout, strings.Join(parts, ", ")))
			}
		}
	}
	return out
}

// writeMarkdown writes the report as Markdown; chart is the SVG's file
// name, linked as an image ("" for none).
func (rep report) writeMarkdown(w io.Writer, chart string) error {
	var b strings.Builder
	b.WriteString("# herd-bench results\n\n")
	b.WriteString("| | |\n|---|---|\n")
	fmt.Fprintf(&b, "| date | %s |\n", rep.Date.UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "| machine | %s |\n", mdCell(rep.Machine.String()))
	fmt.Fprintf(&b, "| tools | %s |\n", mdCell(rep.Machine.tools()))
	fmt.Fprintf(&b, "| command | `%s` |\n", strings.ReplaceAll(rep.Command, "|", `\|`))
	fmt.Fprintf(&b, "| load | %s |\n", mdCell(rep.settings()))
	if rep.BusyBefore >= 0 {
		fmt.Fprintf(&b, "| machine busy before the run | %.2f cores |\n", rep.BusyBefore)
	}
	if n := rep.noisy(); n > 0 {
		fmt.Fprintf(&b, "\n⚠ Other processes used more than %.2f cores during %d of the layouts' runs (median \"other CPU\" below): those figures are noisy.\n", noiseLimit, n)
	}
	if chart != "" {
		fmt.Fprintf(&b, "\n![requests/s by layout](%s)\n", chart)
	}
	for _, sc := range rep.Scenarios {
		fmt.Fprintf(&b, "\n## %s: %s\n\n", sc.Name, sc.Description)
		mdTable(&b, rep.header(), func(add func([]string)) {
			for _, s := range rep.scenarioSummaries(sc.Name) {
				add(rep.row(s))
			}
		})
	}
	rep.pairedTables(func(title string, header []string, rows [][]string) {
		fmt.Fprintf(&b, "\n### %s\n\n", title)
		mdTable(&b, header, func(add func([]string)) {
			for _, r := range rows {
				add(r)
			}
		})
	})
	rep.writeRatiosMarkdown(&b)
	b.WriteString("\n## How to read this\n\n")
	b.WriteString(legend)
	rep.writeRoundsMarkdown(&b)
	_, err := io.WriteString(w, b.String())
	return err
}

const legend = `- **req/s**: successful responses per second, median over the clean rounds. wrk counts error
  responses as requests, so rounds with Non-2xx responses or socket errors are left out and
  counted under **errors**; ⚠ before a figure means no round was clean and it includes errors.
- **spread**: ±half the range (max−min) of the rounds' req/s, relative to the median.
- **p50, p99, p99.9**: wrk's latency percentiles (p99.9 from a wrk Lua done callback), median
  over the rounds.
- **server CPU, wrk CPU**: cores busy (CPU time ÷ wall time) during the measured run: the
  server's whole process tree, master and workers, to the nanosecond from their threads'
  /proc/PID/task/TID/schedstat (plus reaped children's time from /proc/PID/stat, in 10 ms
  ticks), wrk's own rusage; **other CPU** is every other process on the machine (from /proc/stat): above about
  0.05 the machine was not quiet and the figures are noisy. **req/CPU-s** is successful
  responses per second of the server's own CPU time (median over the rounds): another job on
  the machine that takes CPU time from the server lowers req/s, but hardly this.
- **vs** the baseline: the median of the rounds' ratios (each round's req/s over the
  baseline's in the same round), over the rounds in which both were clean.
- **round by round**: each round in which both the layout and the baseline were clean gives one
  ratio of req/s and one of req/CPU-s; the tables show the median, the interquartile range (half
  the rounds lie in it) and the extremes. **server CPU/req** is the server's CPU time per request
  (1 ÷ req/CPU-s), **Δ CPU/req** the layout's less the baseline's, per round: what the layout
  adds to every request. The cost split compares each step with the one before in the same way.
- **processes**: "2 × 1P" is two serving processes with GOMAXPROCS 1 each; the herd master is not
  counted (it idles).
- **worker shares**: each herd worker's share of the requests, from the master's GET /workers.
- **timeouts**: the Go peers of bench/ (bench-nethttp, bench-chi, bench-chiherd) have herd's
  default read timeouts when their command says ` + "`-timeouts herd`" + ` (read-header 10s, read 60s,
  idle 120s, as herd's workers), ReadHeaderTimeout alone with ` + "`-timeouts header`" + `.
`

func (rep report) writeRatiosMarkdown(b *strings.Builder) {
	var peers []string
	for _, s := range rep.Summaries {
		if s.Peer && !slices.Contains(peers, s.Layout) {
			peers = append(peers, s.Layout)
		}
	}
	if len(peers) == 0 {
		return
	}
	b.WriteString("\n## herd against the peers\n\n")
	b.WriteString("Each cell: herd's req/s as a multiple of the peer's (the median of the rounds' ratios), then herd's p99 as a multiple of the peer's (below 1: herd is faster).\n")
	for _, sc := range rep.Scenarios {
		fmt.Fprintf(b, "\n%s:\n\n", sc.Name)
		mdTable(b, append([]string{"herd layout"}, peers...), func(add func([]string)) {
			for _, h := range rep.scenarioSummaries(sc.Name) {
				if h.Peer {
					continue
				}
				row := []string{h.Layout}
				for _, name := range peers {
					p, ok := find(rep.Summaries, sc.Name, name)
					if !ok || p.Used == 0 || h.Used == 0 {
						row = append(row, "n/a")
						continue
					}
					row = append(row, fmt.Sprintf("%s req/s, %s p99", formatRatio(rep.ratio(h, p)),
						formatRatio(float64(h.P99)/float64(p.P99))))
				}
				add(row)
			}
		})
	}
}

func (rep report) writeRoundsMarkdown(b *strings.Builder) {
	b.WriteString("\n## Every round\n\n")
	mdTable(b, []string{"scenario", "round", "layout", "req/s", "p50", "p99", "p99.9", "server CPU", "wrk CPU", "other CPU",
		"Non-2xx", "socket errors", "worker requests", "counted by herd", "note"}, func(add func([]string)) {
		for _, r := range rep.Results {
			if r.failed() {
				add([]string{r.Scenario, fmt.Sprint(r.Round), r.Layout, "", "", "", "", "", "", "", "", "", "", "", "failed: " + firstLine(r.Err)})
				continue
			}
			var notes []string
			if r.Wrk.errors() > 0 {
				notes = append(notes, "⚠ errors")
			}
			if r.Attempts > 1 {
				notes = append(notes, fmt.Sprintf("quietest of %d attempts", r.Attempts))
			}
			note := strings.Join(notes, ", ")
			var workers []string
			for _, n := range r.Workers {
				workers = append(workers, formatCount(float64(n)))
			}
			counted := ""
			if r.Counted >= 0 {
				counted = formatCount(r.Counted)
			}
			add([]string{r.Scenario, fmt.Sprint(r.Round), r.Layout, formatCount(r.Wrk.goodRPS()),
				formatLatency(r.Wrk.P50), formatLatency(r.Wrk.P99), formatLatency(r.Wrk.P999),
				fmt.Sprintf("%.2f", r.serverCores()), fmt.Sprintf("%.2f", r.loadCores()), fmt.Sprintf("%.2f", r.otherCores()),
				fmt.Sprint(r.Wrk.Non2xx), fmt.Sprint(r.Wrk.socketErrors()), strings.Join(workers, " / "), counted, note})
		}
	})
}

// mdTable writes a Markdown table; rows are added through the callback.
func mdTable(b *strings.Builder, header []string, rows func(add func([]string))) {
	line := func(cells []string) {
		b.WriteString("|")
		for _, c := range cells {
			b.WriteString(" " + mdCell(c) + " |")
		}
		b.WriteString("\n")
	}
	line(header)
	sep := make([]string, len(header))
	for i := range sep {
		sep[i] = "---"
	}
	b.WriteString("|" + strings.Join(sep, "|") + "|\n")
	rows(line)
}

// mdCell escapes what would break a table cell.
func mdCell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.ReplaceAll(s, "\n", " ")
}
