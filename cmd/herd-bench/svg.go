package main

import (
	"fmt"
	"html"
	"io"
	"math"
	"strings"
)

// Chart geometry, in SVG user units (pixels).
const (
	svgWidth   = 1120
	svgLabelW  = 270 // layout names, right-aligned before the bars
	svgBarX    = 280
	svgBarMaxW = 500
	svgRowH    = 24
	svgBarH    = 14
	svgTitleH  = 54
	svgPanelH  = 28 // a scenario's heading
	svgAxisH   = 26 // tick labels under a panel
	svgGap     = 14
)

// writeSVG draws the median requests/s of every layout as horizontal bars,
// one panel per scenario, on one common scale, with min–max whiskers and
// the p99 beside each bar. Hand-written SVG 1.1, no scripts, no fonts.
func (rep report) writeSVG(w io.Writer) error {
	maxRPS := 0.0
	for _, s := range rep.Summaries {
		maxRPS = max(maxRPS, s.RPS.Max)
	}
	scaleMax, step := niceScale(maxRPS)
	x := func(v float64) float64 { return svgBarX + v/scaleMax*svgBarMaxW }

	height := svgTitleH
	for _, sc := range rep.Scenarios {
		height += svgPanelH + len(rep.scenarioSummaries(sc.Name))*svgRowH + svgAxisH + svgGap
	}

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		svgWidth, height, svgWidth, height)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="#ffffff"/>`+"\n", svgWidth, height)
	fmt.Fprintf(&b, `<text x="10" y="22" font-size="16" font-weight="bold">%s</text>`+"\n",
		esc(fmt.Sprintf("Requests/s on GET %s (median of %d rounds; whiskers: min–max)", rep.Path, rep.Rounds)))
	fmt.Fprintf(&b, `<text x="10" y="42" fill="#555555">%s</text>`+"\n",
		esc(fmt.Sprintf("%s · %s · wrk -c %d, %s per round", rep.Date.UTC().Format("2006-01-02"), rep.Machine.String(), rep.Connections, rep.Duration)))

	y := float64(svgTitleH)
	for _, sc := range rep.Scenarios {
		sums := rep.scenarioSummaries(sc.Name)
		fmt.Fprintf(&b, `<text x="10" y="%.0f" font-size="13" font-weight="bold">%s</text>`+"\n",
			y+18, esc(sc.Name+": "+sc.Description))
		top := y + svgPanelH
		bottom := top + float64(len(sums)*svgRowH)
		for v := 0.0; v <= scaleMax*1.0000001; v += step {
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%.0f" x2="%.1f" y2="%.0f" stroke="#dddddd"/>`+"\n", x(v), top, x(v), bottom)
			fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" text-anchor="middle" fill="#555555">%s</text>`+"\n", x(v), bottom+16, esc(formatCount(v)))
		}
		for i, s := range sums {
			rowY := top + float64(i*svgRowH)
			mid := rowY + svgRowH/2
			fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end" dominant-baseline="middle">%s</text>`+"\n",
				svgLabelW, mid, esc(s.Layout+" ("+s.Shape+")"))
			if s.Used == 0 {
				fmt.Fprintf(&b, `<text x="%d" y="%.1f" dominant-baseline="middle" fill="#d62728">failed</text>`+"\n", svgBarX+4, mid)
				continue
			}
			fill := "#1f77b4"
			if s.Peer {
				fill = "#9e9e9e"
			}
			stroke := ""
			if s.Dirty || s.ErrorRounds > 0 {
				stroke = ` stroke="#d62728" stroke-width="2"`
			}
			fmt.Fprintf(&b, `<rect x="%d" y="%.1f" width="%.1f" height="%d" fill="%s"%s/>`+"\n",
				svgBarX, mid-svgBarH/2, x(s.RPS.Median)-svgBarX, svgBarH, fill, stroke)
			if s.RPS.N > 1 {
				x0, x1 := x(s.RPS.Min), x(s.RPS.Max)
				fmt.Fprintf(&b, `<path d="M%.1f %.1fH%.1fM%.1f %.1fV%.1fM%.1f %.1fV%.1f" stroke="#222222" fill="none"/>`+"\n",
					x0, mid, x1, x0, mid-4, mid+4, x1, mid-4, mid+4)
			}
			label := formatCount(s.RPS.Median) + " req/s · p99 " + formatLatency(s.P99)
			if b, ok := find(rep.Summaries, s.Scenario, rep.Baseline); ok && b.Used > 0 && b.Layout != s.Layout {
				label += " · " + formatRatio(rep.ratio(s, b)) + " " + rep.Baseline
			}
			if s.Dirty || s.ErrorRounds > 0 {
				label += " · ⚠ errors"
			}
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" dominant-baseline="middle">%s</text>`+"\n",
				max(x(s.RPS.Median), x(s.RPS.Max))+6, mid, esc(label))
		}
		y = bottom + svgAxisH + svgGap
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// niceScale returns an axis maximum at or above v and a tick step, both
// round numbers (1, 2 or 5 times a power of ten), with 4 to 10 ticks.
func niceScale(v float64) (top, step float64) {
	if v <= 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return 1, 0.25
	}
	pow := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{0.1, 0.2, 0.25, 0.5, 1, 2, 5, 10} {
		step = m * pow
		if v/step <= 8 {
			break
		}
	}
	return math.Ceil(v/step) * step, step
}

func esc(s string) string { return html.EscapeString(s) }
