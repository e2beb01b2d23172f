package main

import (
	"fmt"
	"io"
	"time"
)

// progress prints one line per run: rewritten in place on a terminal,
// appended (with each run's result) otherwise.
type progress struct {
	w       io.Writer
	tty     bool
	verbose bool // on a terminal too, keep a line per finished run

	total, done int
	began       time.Time
	perRun      time.Duration // estimate before the first run ends
	label       string
}

func (p *progress) start(total int, perRun time.Duration) {
	p.total, p.perRun, p.began = total, perRun, time.Now()
}

// begin shows the run about to start.
func (p *progress) begin(label string) {
	p.label = label
	line := fmt.Sprintf("[%*d/%d] %s · %s elapsed, ~%s left", width(p.total), p.done+1, p.total, label,
		roundSecond(time.Since(p.began)), roundSecond(p.left()))
	if p.tty {
		fmt.Fprintf(p.w, "\r\x1b[K%s", line)
	} else {
		fmt.Fprintln(p.w, line)
	}
}

// end reports a finished run.
func (p *progress) end(r roundResult) {
	p.done++
	if !p.tty && !p.verbose {
		fmt.Fprintf(p.w, "    %s\n", roundLine(r))
		return
	}
	if p.verbose {
		fmt.Fprintf(p.w, "\r\x1b[K%s: %s\n", p.label, roundLine(r))
	}
}

func (p *progress) finish() {
	if p.tty {
		fmt.Fprint(p.w, "\r\x1b[K")
	}
}

// left estimates the remaining time from the runs timed so far.
func (p *progress) left() time.Duration {
	per := p.perRun
	if p.done > 0 {
		per = time.Since(p.began) / time.Duration(p.done)
	}
	return per * time.Duration(p.total-p.done)
}

// roundLine is one run's result in a few words.
func roundLine(r roundResult) string {
	if r.failed() {
		return "FAILED: " + firstLine(r.Err)
	}
	s := fmt.Sprintf("%s req/s, p99 %s, server %.2f cores, wrk %.2f cores", formatCount(r.Wrk.goodRPS()),
		formatLatency(r.Wrk.P99), r.serverCores(), r.loadCores())
	if n := r.Wrk.errors(); n > 0 {
		s += fmt.Sprintf(" — %d errors (Non-2xx %d, socket %d)", n, r.Wrk.Non2xx, r.Wrk.socketErrors())
	}
	return s
}

func width(n int) int { return len(fmt.Sprint(n)) }

func roundSecond(d time.Duration) time.Duration { return d.Round(time.Second) }
