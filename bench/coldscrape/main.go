// Command coldscrape measures the first scrape served by a new process: what
// herd's master or herd-exporter, just started, pays to answer /metrics once,
// the page faults of its fresh heap included.
//
// The metrics package's cold benchmark (BenchmarkScrape/cold) makes a new
// DirGatherer inside a test process whose heap is already grown, so it leaves
// out what a new process pays for every page of heap it touches for the first
// time. Here every scrape measured is the first of its own process.
//
// It writes 16 workers x 5,000 counter series (http_requests_total, labels
// method, route and code) in client_python's legacy layout into a temporary
// directory, as the metrics package's scrape benchmarks do, then starts its own
// binary again -runs times, one child process after the other, on that
// directory. Each child builds
//
//	metrics.Handler(metrics.NewDirGatherer(dir, metrics.GathererOpts{}), metrics.HandlerOpts{})
//
// and serves two scrapes through it: ServeHTTP called directly, into a writer
// that counts the body's bytes and keeps none (as a server hands them on to
// its socket). For each scrape it measures the wall time, the process's CPU
// time (getrusage RUSAGE_SELF, user + system, of every thread: the garbage
// collector's work on other threads counts) and the process's minor page
// faults, and prints them as one JSON line. The parent prints the medians over
// the runs with their ranges (min-max), the body's size, and what one page
// fault of anonymous memory costs on this machine (16 MiB mapped and touched
// once per 4 KiB page), since much of a new process's first scrape is the
// faulting-in of its heap. It also prints the CPU time other processes used
// while the runs went on (from /proc/stat), so that a busy machine shows.
//
// The files are in the page cache (the parent has just written them): this
// measures a new process, not a cold disk.
//
//	go run ./bench/coldscrape              # a text 0.0.4 scrape (client_python's format)
//	go run ./bench/coldscrape -prom        # as Prometheus asks: OpenMetrics, gzip
//	go run ./bench/coldscrape -gogc off    # the children run with GOGC=off
//	go run ./bench/coldscrape -warm        # DirGatherer.Warm first, as servers do at start
//	go run ./bench/coldscrape -dir DIR     # the metric files of DIR instead
//
// make bench-cold runs the first two, -warm and -warm -prom. Flags: -runs N (9), -workers N (16),
// -series N (5000), -dir DIR, -prom, -warm, -gogc VALUE. Bad flags exit 2 with one
// line naming the problem; a failed run exits 1.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	rtmetrics "runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/herdhttp/herd/metrics"
	"github.com/herdhttp/herd/mmapstore"
)

// childEnv, set to "1" in a child's environment, makes the program measure a scrape
// instead of starting children.
const childEnv = "HERD_COLDSCRAPE_CHILD"

// The Accept headers of the two scrapes: the text format 0.0.4, and what Prometheus sends
// (with Accept-Encoding: gzip).
const (
	acceptText       = "text/plain;version=0.0.4"
	acceptPrometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)

// faultBytes is the anonymous memory touched to measure the cost of a page fault;
// faultRounds is how many times it is measured (the median is reported).
const (
	faultBytes  = 16 << 20
	faultRounds = 5
)

func main() {
	os.Exit(run(os.Args[1:], os.Getenv(childEnv) == "1", os.Stdout, os.Stderr))
}

// run is the program: a child's measurement when child is set, else the parent's runs
// and report. It returns the exit code: 0, 1 for a failure, 2 for bad flags.
func run(args []string, child bool, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "coldscrape:", err)
		return 2
	}
	if child {
		if cfg.dir == "" {
			fmt.Fprintln(stderr, "coldscrape: child: -dir is required")
			return 2
		}
		res, err := measureChild(cfg.dir, cfg.prom, cfg.warm)
		if err != nil {
			fmt.Fprintln(stderr, "coldscrape: child:", err)
			return 1
		}
		if err := json.NewEncoder(stdout).Encode(res); err != nil {
			fmt.Fprintln(stderr, "coldscrape: child:", err)
			return 1
		}
		return 0
	}
	return runParent(cfg, stdout, stderr)
}

// config is the parsed flags.
type config struct {
	runs, workers, series int
	dir                   string // existing directory of metric files; "" writes one
	prom                  bool   // scrape as Prometheus does (OpenMetrics, gzip)
	warm                  bool   // DirGatherer.Warm before the first scrape
	gogc                  string // the children's GOGC; "" leaves the environment's
}

// parseFlags parses args. -h writes the usage to usage and returns flag.ErrHelp; any other
// error is one line naming the problem.
func parseFlags(args []string, usage io.Writer) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("coldscrape", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported by the caller, in one line
	fs.IntVar(&cfg.runs, "runs", 9, "new processes to measure, one after the other")
	fs.IntVar(&cfg.workers, "workers", 16, "worker files to write")
	fs.IntVar(&cfg.series, "series", 5000, "counter series in each worker file")
	fs.StringVar(&cfg.dir, "dir", "", "scrape the metric files of this existing `directory` instead of writing some")
	fs.BoolVar(&cfg.prom, "prom", false, "scrape as Prometheus does: OpenMetrics, Accept-Encoding gzip (default: text 0.0.4)")
	fs.BoolVar(&cfg.warm, "warm", false, "warm the gatherer (DirGatherer.Warm) before the first scrape, as herd-exporter and the master do when they start")
	fs.StringVar(&cfg.gogc, "gogc", "", "the children's GOGC: `value` off or a percentage (default: this environment's)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(usage)
			fmt.Fprintln(usage, "usage: coldscrape [flags]  (measures a new process's first scrape)")
			fs.PrintDefaults()
		}
		return cfg, err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	switch {
	case fs.NArg() > 0:
		return cfg, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case cfg.runs < 1:
		return cfg, fmt.Errorf("-runs %d: want at least 1", cfg.runs)
	case cfg.workers < 1:
		return cfg, fmt.Errorf("-workers %d: want at least 1", cfg.workers)
	case cfg.series < 1:
		return cfg, fmt.Errorf("-series %d: want at least 1", cfg.series)
	case cfg.dir != "" && (set["workers"] || set["series"]):
		return cfg, errors.New("-dir scrapes files already written: -workers and -series do not apply")
	case set["gogc"] && !validGOGC(cfg.gogc):
		return cfg, fmt.Errorf("-gogc %q: want off or a percentage (an integer >= 0)", cfg.gogc)
	}
	if cfg.dir != "" {
		st, err := os.Stat(cfg.dir)
		if err != nil {
			return cfg, fmt.Errorf("-dir: %v", err)
		}
		if !st.IsDir() {
			return cfg, fmt.Errorf("-dir %s: not a directory", cfg.dir)
		}
	}
	return cfg, nil
}

// validGOGC reports whether s is a GOGC value the runtime takes as written: "off" or a
// percentage.
func validGOGC(s string) bool {
	if s == "off" {
		return true
	}
	n, err := strconv.Atoi(s)
	return err == nil && n >= 0
}

// scrapeStats is one scrape as a child measured it.
type scrapeStats struct {
	WallNs int64  `json:"wall_ns"`    // wall time
	CPUNs  int64  `json:"cpu_ns"`     // the process's user + system CPU time, every thread's
	MinFlt int64  `json:"minflt"`     // the process's minor page faults
	GCs    uint64 `json:"gcs"`        // garbage collections completed
	Body   int    `json:"body_bytes"` // the response body's size, as sent (gzipped for -prom)
}

// childResult is what a child prints: its warm-up (-warm), its first scrape and the one
// after it.
type childResult struct {
	Warm   *scrapeStats `json:"warm,omitempty"`
	First  scrapeStats  `json:"first"`
	Second scrapeStats  `json:"second"`
}

// countWriter is an http.ResponseWriter that counts the body's bytes and keeps only its
// first few hundred (for an error's message).
type countWriter struct {
	h    http.Header
	code int
	n    int
	head []byte
}

func (w *countWriter) Header() http.Header  { return w.h }
func (w *countWriter) WriteHeader(code int) { w.code = code }

func (w *countWriter) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	if room := 256 - len(w.head); room > 0 {
		w.head = append(w.head, p[:min(room, len(p))]...)
	}
	w.n += len(p)
	return len(p), nil
}

// reset readies w for another response.
func (w *countWriter) reset() {
	clear(w.h)
	w.code, w.n, w.head = 0, 0, w.head[:0]
}

// measureChild serves two scrapes of dir through a new gatherer's Handler and measures
// each. It is all a child process does, so its first scrape is its process's first.
func measureChild(dir string, prom, warm bool) (childResult, error) {
	g := metrics.NewDirGatherer(dir, metrics.GathererOpts{})
	defer g.Close()
	h := metrics.Handler(g, metrics.HandlerOpts{})
	req := httptest.NewRequest("GET", "/metrics", nil)
	req.Header.Set("Accept", acceptText)
	if prom {
		req.Header.Set("Accept", acceptPrometheus)
		req.Header.Set("Accept-Encoding", "gzip")
	}
	w := &countWriter{h: http.Header{}, head: make([]byte, 0, 256)}
	gcs := []rtmetrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}}
	var res childResult
	if warm {
		st, err := timed(g.Warm, gcs)
		if err != nil {
			return res, fmt.Errorf("warm-up: %w", err)
		}
		res.Warm = &st
	}
	var err error
	if res.First, err = timedScrape(h, req, w, gcs); err != nil {
		return res, fmt.Errorf("first scrape: %w", err)
	}
	if res.Second, err = timedScrape(h, req, w, gcs); err != nil {
		return res, fmt.Errorf("second scrape: %w", err)
	}
	return res, nil
}

// timedScrape serves one scrape into w and measures it (see timed).
func timedScrape(h http.Handler, req *http.Request, w *countWriter, gcs []rtmetrics.Sample) (scrapeStats, error) {
	w.reset()
	st, err := timed(func() error {
		h.ServeHTTP(w, req)
		if w.code != http.StatusOK {
			return fmt.Errorf("status %d: %s", w.code, strings.TrimSpace(string(w.head)))
		}
		if w.n == 0 {
			return errors.New("empty body")
		}
		return nil
	}, gcs)
	st.Body = w.n
	return st, err
}

// timed runs fn and measures it. gcs holds the sample of completed GC cycles, read before
// and after.
func timed(fn func() error, gcs []rtmetrics.Sample) (scrapeStats, error) {
	rtmetrics.Read(gcs)
	gc0 := gcs[0].Value.Uint64()
	var r0, r1 syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &r0); err != nil {
		return scrapeStats{}, fmt.Errorf("getrusage: %w", err)
	}
	start := time.Now()
	ferr := fn()
	wall := time.Since(start)
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &r1); err != nil {
		return scrapeStats{}, fmt.Errorf("getrusage: %w", err)
	}
	rtmetrics.Read(gcs)
	if ferr != nil {
		return scrapeStats{}, ferr
	}
	return scrapeStats{
		WallNs: wall.Nanoseconds(),
		CPUNs:  cpuNs(&r1) - cpuNs(&r0),
		MinFlt: int64(r1.Minflt - r0.Minflt),
		GCs:    gcs[0].Value.Uint64() - gc0,
	}, nil
}

// cpuNs is the user + system CPU time of ru, in nanoseconds.
func cpuNs(ru *syscall.Rusage) int64 {
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// runParent writes the files (unless -dir names some), runs the children and reports.
func runParent(cfg config, stdout, stderr io.Writer) int {
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(stderr, "coldscrape:", err)
		return 1
	}
	dir := cfg.dir
	if dir == "" {
		d, err := os.MkdirTemp("", "coldscrape-")
		if err != nil {
			fmt.Fprintln(stderr, "coldscrape:", err)
			return 1
		}
		defer os.RemoveAll(d)
		if err := writeWorkers(d, cfg.workers, cfg.series); err != nil {
			fmt.Fprintln(stderr, "coldscrape: writing the files:", err)
			return 1
		}
		dir = d
	}
	results := make([]childResult, 0, cfg.runs)
	before := takeCPU()
	for i := range cfg.runs {
		res, err := runChild(self, dir, cfg)
		if err != nil {
			fmt.Fprintf(stderr, "coldscrape: run %d: %v\n", i+1, err)
			return 1
		}
		results = append(results, res)
	}
	other := takeCPU().otherSince(before)
	perFault, faults, err := faultCost()
	if err != nil {
		fmt.Fprintln(stderr, "coldscrape: page-fault cost:", err)
		return 1
	}
	report(stdout, cfg, results, other, perFault, faults)
	return 0
}

// writeWorkers writes one legacy-layout counter file per worker into dir, ids "0a",
// "1a", ..., with series series each, as the metrics package's writeWorkers does (the
// same series in every worker, with values), and unmaps each Registry once written.
func writeWorkers(dir string, workers, series int) error {
	methods := [...]string{"GET", "POST", "PUT", "DELETE"}
	for w := range workers {
		reg, err := metrics.NewRegistry(metrics.Options{Dir: dir, ID: strconv.Itoa(w) + "a", Layout: mmapstore.Legacy})
		if err != nil {
			return err
		}
		v, err := reg.NewCounterVec(metrics.CounterOpts{Name: "http_requests_total", Help: "Requests served."}, "method", "route", "code")
		if err != nil {
			return errors.Join(err, reg.Unmap())
		}
		for i := range series {
			v.With(methods[i%4], fmt.Sprintf("/api/v1/items/%d/{id}", i/4), "200").Add(float64(i + w))
		}
		if err := reg.Unmap(); err != nil {
			return err
		}
	}
	return nil
}

// runChild runs self as a child on dir and returns what it measured.
func runChild(self, dir string, cfg config) (childResult, error) {
	args := []string{"-dir", dir}
	if cfg.prom {
		args = append(args, "-prom")
	}
	if cfg.warm {
		args = append(args, "-warm")
	}
	cmd := exec.Command(self, args...)
	cmd.Env = append(os.Environ(), childEnv+"=1") // the last of duplicate keys is used
	if cfg.gogc != "" {
		cmd.Env = append(cmd.Env, "GOGC="+cfg.gogc)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return childResult{}, fmt.Errorf("child: %v: %s", err, strings.TrimSpace(errb.String()))
	}
	var res childResult
	dec := json.NewDecoder(&out)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&res); err != nil {
		return childResult{}, fmt.Errorf("child's output %q: %v", out.String(), err)
	}
	if res.First.WallNs <= 0 || res.First.Body <= 0 || res.Second.Body <= 0 || cfg.warm != (res.Warm != nil) {
		return childResult{}, fmt.Errorf("child's output %q: a missing figure", out.String())
	}
	return res, nil
}

// summary returns the median, least and greatest of xs (zeros when empty).
func summary(xs []float64) (med, lo, hi float64) {
	if len(xs) == 0 {
		return 0, 0, 0
	}
	s := slices.Sorted(slices.Values(xs))
	med = s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return med, s[0], s[len(s)-1]
}

// report writes the figures over the runs: a line saying what was measured, the first
// and the second scrape (medians, ranges in brackets), the body, the CPU other processes
// used meanwhile (when known) and the cost of a page fault.
func report(w io.Writer, cfg config, results []childResult, other otherCPU, perFault time.Duration, faults int64) {
	files := fmt.Sprintf("%d workers x %d series (legacy layout), written for this run", cfg.workers, cfg.series)
	if cfg.dir != "" {
		files = "the files of " + cfg.dir
	}
	request := "text 0.0.4"
	if cfg.prom {
		request = "OpenMetrics, gzip (as Prometheus asks)"
	}
	gogc := "GOGC=" + cfg.gogc
	if cfg.gogc == "" {
		gogc = "GOGC=" + os.Getenv("GOGC")
		if os.Getenv("GOGC") == "" {
			gogc = "GOGC unset (100)"
		}
	}
	runs := fmt.Sprintf("%d runs, each a new process", len(results))
	if len(results) == 1 {
		runs = "1 run, a new process"
	}
	fmt.Fprintf(w, "coldscrape: %s; %s; %s; %s: medians (min-max)\n", files, request, gogc, runs)

	column := func(get func(childResult) float64) (med, lo, hi float64) {
		xs := make([]float64, len(results))
		for i, r := range results {
			xs[i] = get(r)
		}
		return summary(xs)
	}
	ms := func(ns int64) float64 { return float64(ns) / 1e6 }
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
	line := func(label string, s func(childResult) scrapeStats) {
		wm, wl, wh := column(func(r childResult) float64 { return ms(s(r).WallNs) })
		cm, cl, ch := column(func(r childResult) float64 { return ms(s(r).CPUNs) })
		fm, fl, fh := column(func(r childResult) float64 { return float64(s(r).MinFlt) })
		gm, _, _ := column(func(r childResult) float64 { return float64(s(r).GCs) })
		fmt.Fprintf(tw, "%s\t%s ms wall (%s-%s),\t%s CPU-ms (%s-%s),\t%.0f minor faults (%.0f-%.0f),\t%.0f GCs\n",
			label, fmtMs(wm), fmtMs(wl), fmtMs(wh), fmtMs(cm), fmtMs(cl), fmtMs(ch), fm, fl, fh, gm)
	}
	first := "first scrape (new process):"
	if cfg.warm {
		line("warm-up (new process):", func(r childResult) scrapeStats { return *r.Warm })
		first = "first scrape after it:"
	}
	line(first, func(r childResult) scrapeStats { return r.First })
	line("second scrape:", func(r childResult) scrapeStats { return r.Second })
	tw.Flush()

	bm, bl, bh := column(func(r childResult) float64 { return float64(r.First.Body) })
	body := fmt.Sprintf("body: %.0f B", bm)
	if bl != bh {
		body += fmt.Sprintf(" (%.0f-%.0f)", bl, bh)
	}
	fmt.Fprintln(w, body+", as sent")
	if other.known {
		fmt.Fprintf(w, "other processes used %.2f CPU-s during the runs' %.2f s (a busy machine widens the ranges)\n",
			other.cpu.Seconds(), other.wall.Seconds())
	}
	fmt.Fprintf(w, "page faults here: %.1f µs each (%d MiB of anonymous memory touched: %d faults; median of %d)\n",
		float64(perFault)/1e3, faultBytes>>20, faults, faultRounds)
}

// fmtMs formats milliseconds with a precision to suit: 70.1, 3.31, 0.042.
func fmtMs(v float64) string {
	switch {
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case v >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
	return strconv.FormatFloat(v, 'f', 3, 64)
}
