package main

import (
	"bufio"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// wrkScript is the Lua script passed to every wrk run: its done callback
// prints one machine-readable line with exact counts and the p99.9 that
// wrk's --latency table lacks. Latencies are in microseconds.
const wrkScript = `-- herd-bench: one machine-readable summary line (latencies in microseconds).
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "herd-bench: duration_us=%d requests=%d bytes=%d connect=%d read=%d write=%d status=%d timeout=%d mean_us=%.1f p50_us=%d p90_us=%d p99_us=%d p999_us=%d max_us=%d\n",
    summary.duration, summary.requests, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9), latency.max))
end
`

// wrkResult is what one wrk run measured.
type wrkResult struct {
	Requests int64         `json:"requests"`    // completed responses, errors included (as wrk counts them)
	Duration time.Duration `json:"duration_ns"` // wrk's own measured duration
	RPS      float64       `json:"rps"`         // wrk's Requests/sec: every completed response, errors included
	Bytes    int64         `json:"bytes"`

	Mean time.Duration `json:"mean_ns"`
	P50  time.Duration `json:"p50_ns"`
	P90  time.Duration `json:"p90_ns"`
	P99  time.Duration `json:"p99_ns"`
	P999 time.Duration `json:"p999_ns"` // zero when unknown
	Max  time.Duration `json:"max_ns"`

	// Non2xx counts responses with a status of 400 or more (wrk's "Non-2xx
	// or 3xx responses" line); the others are its "Socket errors" line.
	Non2xx   int64 `json:"non2xx"`
	Connect  int64 `json:"connect_errors"`
	Read     int64 `json:"read_errors"`
	Write    int64 `json:"write_errors"`
	Timeouts int64 `json:"timeouts"`
}

// socketErrors is the total of wrk's "Socket errors" line.
func (w wrkResult) socketErrors() int64 { return w.Connect + w.Read + w.Write + w.Timeouts }

// errors is every request that did not succeed as far as wrk can tell.
func (w wrkResult) errors() int64 { return w.Non2xx + w.socketErrors() }

// goodRPS is the rate of successful responses, the figure worth quoting:
// wrk's Requests/sec counts error responses too.
func (w wrkResult) goodRPS() float64 {
	if w.Duration <= 0 {
		return w.RPS
	}
	return float64(w.good()) / w.Duration.Seconds()
}

// good is the number of successful responses.
func (w wrkResult) good() int64 { return max(0, w.Requests-w.Non2xx) }

var errNoWrkSummary = errors.New("wrk output has no Requests/sec line")

// parseWrk reads wrk's output (run with --latency and wrkScript). The
// text lines are always read; the script's line, when present, supplies exact
// values and p99.9. Both Non-2xx and Socket errors lines are honoured.
func parseWrk(out string) (wrkResult, error) {
	var r wrkResult
	var haveRPS, haveScript, inDist bool
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "herd-bench:"):
			if err := parseScriptLine(line, &r); err != nil {
				return r, err
			}
			haveScript = true
		case strings.HasPrefix(line, "Requests/sec:"):
			v, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimPrefix(line, "Requests/sec:")), 64)
			if err != nil {
				return r, fmt.Errorf("wrk Requests/sec line %q: %w", line, err)
			}
			r.RPS, haveRPS = v, true
		case strings.HasPrefix(line, "Non-2xx or 3xx responses:"):
			v, err := strconv.ParseInt(strings.TrimSpace(strings.TrimPrefix(line, "Non-2xx or 3xx responses:")), 10, 64)
			if err != nil {
				return r, fmt.Errorf("wrk Non-2xx line %q: %w", line, err)
			}
			r.Non2xx = max(r.Non2xx, v)
		case strings.HasPrefix(line, "Socket errors:"):
			if err := parseSocketErrors(line, &r); err != nil {
				return r, err
			}
		case strings.Contains(line, " requests in "):
			// "50000 requests in 1.00s, 6.00MB read"
			f := strings.Fields(line)
			if n, err := strconv.ParseInt(f[0], 10, 64); err == nil && !haveScript {
				r.Requests = n
				if len(f) >= 4 {
					if d, err := parseWrkTime(strings.TrimSuffix(f[3], ",")); err == nil {
						r.Duration = d
					}
				}
			}
		case line == "Latency Distribution":
			inDist = true
			continue
		case inDist && !haveScript:
			// "50%  100.00us"
			f := strings.Fields(line)
			if len(f) != 2 || !strings.HasSuffix(f[0], "%") {
				break
			}
			d, err := parseWrkTime(f[1])
			if err != nil {
				return r, fmt.Errorf("wrk latency line %q: %w", line, err)
			}
			switch f[0] {
			case "50%":
				r.P50 = d
			case "90%":
				r.P90 = d
			case "99%":
				r.P99 = d
			}
			continue
		}
		inDist = false
	}
	if !haveRPS {
		return r, errNoWrkSummary
	}
	return r, nil
}

// parseScriptLine reads wrkScript's "herd-bench: key=value ..." line.
func parseScriptLine(line string, r *wrkResult) error {
	us := func(v float64) time.Duration { return time.Duration(math.Round(v * float64(time.Microsecond))) }
	for _, kv := range strings.Fields(strings.TrimPrefix(line, "herd-bench:")) {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return fmt.Errorf("wrk script line: bad field %q", kv)
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return fmt.Errorf("wrk script line: field %q: %w", kv, err)
		}
		switch k {
		case "duration_us":
			r.Duration = us(f)
		case "requests":
			r.Requests = int64(f)
		case "bytes":
			r.Bytes = int64(f)
		case "connect":
			r.Connect = int64(f)
		case "read":
			r.Read = int64(f)
		case "write":
			r.Write = int64(f)
		case "status":
			r.Non2xx = max(r.Non2xx, int64(f))
		case "timeout":
			r.Timeouts = int64(f)
		case "mean_us":
			r.Mean = us(f)
		case "p50_us":
			r.P50 = us(f)
		case "p90_us":
			r.P90 = us(f)
		case "p99_us":
			r.P99 = us(f)
		case "p999_us":
			r.P999 = us(f)
		case "max_us":
			r.Max = us(f)
		}
	}
	return nil
}

// parseSocketErrors reads "Socket errors: connect 0, read 0, write 0, timeout 0".
func parseSocketErrors(line string, r *wrkResult) error {
	rest := strings.TrimSpace(strings.TrimPrefix(line, "Socket errors:"))
	for part := range strings.SplitSeq(rest, ",") {
		f := strings.Fields(part)
		if len(f) != 2 {
			return fmt.Errorf("wrk Socket errors line %q: bad part %q", line, part)
		}
		n, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			return fmt.Errorf("wrk Socket errors line %q: %w", line, err)
		}
		switch f[0] {
		case "connect":
			r.Connect = max(r.Connect, n)
		case "read":
			r.Read = max(r.Read, n)
		case "write":
			r.Write = max(r.Write, n)
		case "timeout":
			r.Timeouts = max(r.Timeouts, n)
		}
	}
	return nil
}

// parseWrkTime reads wrk's time format: "812.00us", "1.23ms", "2.00s", "1.50m".
func parseWrkTime(s string) (time.Duration, error) {
	units := []struct {
		suffix string
		unit   time.Duration
	}{{"us", time.Microsecond}, {"ms", time.Millisecond}, {"s", time.Second}, {"m", time.Minute}, {"h", time.Hour}}
	for _, u := range units {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.ParseFloat(num, 64)
			if err != nil {
				return 0, fmt.Errorf("wrk time %q: %w", s, err)
			}
			return time.Duration(math.Round(v * float64(u.unit))), nil
		}
	}
	return 0, fmt.Errorf("wrk time %q: unknown unit", s)
}
