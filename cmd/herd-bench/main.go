package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// config is herd-bench's command line.
type config struct {
	app          string
	layouts      []layout // herd layouts, then peers
	baseline     string
	path         string
	duration     time.Duration
	warmup       time.Duration
	rounds       int
	connections  int
	threads      int
	pin          string
	serverCPUs   string
	wrkCPUs      string
	out          string
	wrk          string
	readyTimeout time.Duration
	verbose      bool
	from         string // re-render this results.json instead of running
	retries      int
	quietWait    time.Duration
	keep         bool     // start each server once per scenario, measure it every round
	split        []string // layouts whose successive differences are reported
}

type peerFlags []layout

func (p *peerFlags) String() string { return "" }
func (p *peerFlags) Set(s string) error {
	l, err := parsePeer(s)
	if err != nil {
		return err
	}
	*p = append(*p, l)
	return nil
}

// parseFlags reads the command line into a config; errors are one line.
func parseFlags(args []string, stderr io.Writer) (config, error) {
	var cfg config
	var layouts, split string
	var peers peerFlags
	fs := flag.NewFlagSet("herd-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.app, "app", "bin/hello", "the herd app binary (takes herd's -bind, -workers, -metrics-bind, -metrics-dir, -listener-mode)")
	fs.StringVar(&layouts, "layouts", "single,reuseport,shared", "herd layouts: single, reuseport, shared, or MODE/WORKERSxGOMAXPROCS; empty for none")
	fs.Var(&peers, "peer", "a peer server `NAME=COMMAND ARGS` ({addr}, {port}, {workers} replaced; must answer GET /healthz); repeatable")
	fs.StringVar(&cfg.baseline, "baseline", "", "a layout or peer name: adds a column of req/s relative to it")
	fs.StringVar(&cfg.path, "path", "/hello", "the path requested")
	fs.DurationVar(&cfg.duration, "duration", 2*time.Second, "measured wrk run per layout and round (whole seconds)")
	fs.DurationVar(&cfg.warmup, "warmup", time.Second, "discarded wrk run before each measured one (whole seconds, 0 for none)")
	fs.IntVar(&cfg.rounds, "rounds", 5, "rounds; each runs every layout once")
	fs.IntVar(&cfg.connections, "connections", 64, "wrk connections")
	fs.IntVar(&cfg.threads, "threads", 0, "wrk threads; 0: one per CPU wrk may use")
	fs.StringVar(&cfg.pin, "pin", "", "both, on or off: run pinned (server and wrk on separate CPUs), unpinned, or both (default both on 2+ CPUs)")
	fs.StringVar(&cfg.serverCPUs, "server-cpus", "", "CPUs of the server when pinned (taskset list); default: all but wrk's")
	fs.StringVar(&cfg.wrkCPUs, "wrk-cpus", "", "CPUs of wrk when pinned; default: the first half (at least one)")
	fs.StringVar(&cfg.out, "out", "bench-results", "directory for results.md, results.svg, results.json")
	fs.StringVar(&cfg.wrk, "wrk", "wrk", "the wrk binary")
	fs.DurationVar(&cfg.readyTimeout, "ready-timeout", 30*time.Second, "how long a server may take to be ready")
	fs.BoolVar(&cfg.verbose, "v", false, "print every run's result")
	fs.IntVar(&cfg.retries, "retries", 0, "repeat a run up to this many times while other processes keep the machine busy (keeps the quietest)")
	fs.DurationVar(&cfg.quietWait, "quiet-wait", 0, "before each run, wait up to this long for the machine to be quiet")
	fs.BoolVar(&cfg.keep, "keep", false, "start each server once per scenario and measure it in every round (short rounds, no restart between them)")
	fs.StringVar(&split, "split", "", "comma-separated layouts and peers, cheapest first: report each one's CPU per request over the one before, round by round")
	fs.StringVar(&cfg.from, "from", "", "re-render the table, Markdown and SVG of an earlier results.json into -out, without running")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	herd, err := parseLayouts(layouts)
	if err != nil {
		return cfg, err
	}
	cfg.layouts = append(herd, peers...)
	names := map[string]bool{}
	for _, l := range cfg.layouts {
		if names[l.Name] {
			return cfg, fmt.Errorf("layout name %q used twice", l.Name)
		}
		names[l.Name] = true
	}
	for name := range strings.SplitSeq(split, ",") {
		if name = strings.TrimSpace(name); name != "" {
			cfg.split = append(cfg.split, name)
		}
	}
	for _, name := range cfg.split {
		if !names[name] {
			return cfg, fmt.Errorf("-split: %q: no such layout or peer", name)
		}
	}
	switch {
	case len(cfg.split) == 1:
		return cfg, errors.New("-split: give at least two layouts")
	case len(cfg.layouts) == 0:
		return cfg, errors.New("nothing to run: give -layouts or -peer")
	case cfg.baseline != "" && !names[cfg.baseline]:
		return cfg, fmt.Errorf("-baseline %q: no such layout or peer", cfg.baseline)
	case cfg.duration < time.Second || cfg.duration%time.Second != 0:
		return cfg, fmt.Errorf("-duration %s: wrk takes whole seconds, at least 1s", cfg.duration)
	case cfg.warmup < 0 || cfg.warmup%time.Second != 0:
		return cfg, fmt.Errorf("-warmup %s: wrk takes whole seconds", cfg.warmup)
	case cfg.rounds < 1:
		return cfg, fmt.Errorf("-rounds %d: at least 1", cfg.rounds)
	case cfg.connections < 1:
		return cfg, fmt.Errorf("-connections %d: at least 1", cfg.connections)
	case cfg.threads < 0:
		return cfg, fmt.Errorf("-threads %d: 0 or more", cfg.threads)
	case !strings.HasPrefix(cfg.path, "/"):
		return cfg, fmt.Errorf("-path %q: must start with /", cfg.path)
	case cfg.retries < 0:
		return cfg, fmt.Errorf("-retries %d: 0 or more", cfg.retries)
	case cfg.quietWait < 0:
		return cfg, fmt.Errorf("-quiet-wait %s: 0 or more", cfg.quietWait)
	case cfg.readyTimeout <= 0:
		return cfg, fmt.Errorf("-ready-timeout %s: must be positive", cfg.readyTimeout)
	}
	switch cfg.pin {
	case "", "both", "on", "off":
	default:
		return cfg, fmt.Errorf("-pin %q: both, on or off", cfg.pin)
	}
	return cfg, nil
}

// scenarios builds the unpinned and/or pinned scenarios.
func (cfg config) scenarios() ([]scenario, error) {
	all, err := allowedCPUs()
	if err != nil {
		return nil, err
	}
	pin := cfg.pin
	if pin == "" {
		pin = "both"
		if len(all) < 2 {
			pin = "off"
		}
	}
	threads := func(n int) int {
		if cfg.threads > 0 {
			return cfg.threads
		}
		return n
	}
	var out []scenario
	if pin == "off" || pin == "both" {
		out = append(out, scenario{Name: "unpinned", Cores: len(all), Threads: threads(len(all)),
			Description: fmt.Sprintf("server and wrk share CPUs %s (wrk -t%d)", all, threads(len(all)))})
	}
	if pin == "on" || pin == "both" {
		server, load, err := splitCPUs(all)
		if err != nil {
			return nil, fmt.Errorf("-pin %s: %w", pin, err)
		}
		if cfg.serverCPUs != "" {
			if server, err = parseCPUList(cfg.serverCPUs); err != nil {
				return nil, fmt.Errorf("-server-cpus: %w", err)
			}
		}
		if cfg.wrkCPUs != "" {
			if load, err = parseCPUList(cfg.wrkCPUs); err != nil {
				return nil, fmt.Errorf("-wrk-cpus: %w", err)
			}
		}
		for _, c := range server {
			if !slices.Contains(all, c) {
				return nil, fmt.Errorf("-server-cpus %s: CPU %d is not available (have %s)", server, c, all)
			}
			if slices.Contains(load, c) {
				return nil, fmt.Errorf("-server-cpus %s and -wrk-cpus %s overlap", server, load)
			}
		}
		for _, c := range load {
			if !slices.Contains(all, c) {
				return nil, fmt.Errorf("-wrk-cpus %s: CPU %d is not available (have %s)", load, c, all)
			}
		}
		out = append(out, scenario{Name: "pinned", ServerCPUs: server, LoadCPUs: load, Cores: len(server), Threads: threads(len(load)),
			Description: fmt.Sprintf("server on CPU %s, wrk on CPU %s (wrk -t%d)", server, load, threads(len(load)))})
	}
	return out, nil
}

// run is main without the process exit: 0 all clean, 1 a layout had no
// clean round or the run failed, 2 bad usage.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "herd-bench:", err)
		return 2
	}
	if cfg.from != "" {
		return rerender(cfg, stdout, stderr)
	}
	if runtime.GOOS != "linux" {
		fmt.Fprintln(stderr, "herd-bench: Linux only (it reads /proc)")
		return 2
	}
	scenarios, err := cfg.scenarios()
	if err != nil {
		fmt.Fprintln(stderr, "herd-bench:", err)
		return 2
	}
	if err := checkTools(cfg, scenarios); err != nil {
		fmt.Fprintln(stderr, "herd-bench:", err)
		return 2
	}
	tmp, err := os.MkdirTemp("", "herd-bench-")
	if err != nil {
		fmt.Fprintln(stderr, "herd-bench:", err)
		return 1
	}
	defer os.RemoveAll(tmp)
	script := filepath.Join(tmp, "herd-bench.lua")
	if err := os.WriteFile(script, []byte(wrkScript), 0o644); err != nil {
		fmt.Fprintln(stderr, "herd-bench:", err)
		return 1
	}
	if err := os.MkdirAll(cfg.out, 0o755); err != nil {
		fmt.Fprintln(stderr, "herd-bench:", err)
		return 1
	}
	r := &runner{cfg: cfg, scenarios: scenarios, layouts: cfg.layouts, pfs: procFS{root: "/proc"},
		tmp: tmp, script: script, logDir: filepath.Join(cfg.out, "logs"),
		progress: &progress{w: stderr, tty: isTerminal(stderr), verbose: cfg.verbose}}
	rep := report{Date: time.Now().UTC(), Machine: readMachine(cfg.wrk), Command: commandLine(args),
		Path: cfg.path, Rounds: cfg.rounds, Duration: cfg.duration, Warmup: cfg.warmup,
		Connections: cfg.connections, Scenarios: scenarios, Baseline: cfg.baseline, Split: cfg.split, Keep: cfg.keep}
	for _, l := range cfg.layouts {
		rep.Layouts = append(rep.Layouts, l.Name)
	}
	rep.BusyBefore = busyCores(ctx, r.pfs, time.Second)
	if rep.BusyBefore > 0.25 {
		fmt.Fprintf(stderr, "herd-bench: warning: the machine is busy (%.2f cores used by other processes): figures will be noisy\n", rep.BusyBefore)
	}
	rep.Results = r.run(ctx)
	rep.Summaries = summarize(rep.Results, scenarios, cfg.layouts)
	rep.Comparisons = rep.comparisons()
	if ctx.Err() != nil {
		fmt.Fprintln(stderr, "herd-bench: interrupted; writing the rounds that finished")
	}
	if err := rep.writeTerminal(stdout); err != nil {
		fmt.Fprintln(stderr, "herd-bench:", err)
		return 1
	}
	if err := rep.writeFiles(cfg.out); err != nil {
		fmt.Fprintln(stderr, "herd-bench:", err)
		return 1
	}
	fmt.Fprintf(stdout, "\nwrote %s, %s, %s\n", filepath.Join(cfg.out, "results.md"),
		filepath.Join(cfg.out, "results.svg"), filepath.Join(cfg.out, "results.json"))
	if ctx.Err() != nil {
		return 1
	}
	code := 0
	for _, s := range rep.Summaries {
		if !s.ok() {
			fmt.Fprintf(stderr, "herd-bench: %s, %s: no clean round\n", s.Scenario, s.Layout)
			code = 1
		}
	}
	return code
}

// rerender writes the outputs of an earlier run's results.json again.
func rerender(cfg config, stdout, stderr io.Writer) int {
	b, err := os.ReadFile(cfg.from)
	if err != nil {
		fmt.Fprintln(stderr, "herd-bench:", err)
		return 1
	}
	var rep report
	if err := json.Unmarshal(b, &rep); err != nil {
		fmt.Fprintf(stderr, "herd-bench: %s: %v\n", cfg.from, err)
		return 1
	}
	rep.Comparisons = rep.comparisons()
	if err := os.MkdirAll(cfg.out, 0o755); err != nil {
		fmt.Fprintln(stderr, "herd-bench:", err)
		return 1
	}
	if err := rep.writeTerminal(stdout); err != nil {
		fmt.Fprintln(stderr, "herd-bench:", err)
		return 1
	}
	if err := rep.writeFiles(cfg.out); err != nil {
		fmt.Fprintln(stderr, "herd-bench:", err)
		return 1
	}
	return 0
}

// busyCores measures how many cores the machine keeps busy over d; -1
// when unknown.
func busyCores(ctx context.Context, pfs procFS, d time.Duration) float64 {
	b0, err := pfs.busy()
	if err != nil {
		return -1
	}
	t0 := time.Now()
	select {
	case <-ctx.Done():
		return -1
	case <-time.After(d):
	}
	b1, err := pfs.busy()
	if err != nil {
		return -1
	}
	return cores(b1-b0, time.Since(t0))
}

// checkTools fails early, with one line, when a program is missing.
func checkTools(cfg config, scenarios []scenario) error {
	if _, err := exec.LookPath(cfg.wrk); err != nil {
		return fmt.Errorf("wrk not found (%v): install the Debian package wrk", err)
	}
	for _, sc := range scenarios {
		if sc.pinned() {
			if _, err := exec.LookPath("taskset"); err != nil {
				return fmt.Errorf("taskset not found (%v): install util-linux, or run with -pin off", err)
			}
		}
	}
	for _, l := range cfg.layouts {
		bin := cfg.app
		if l.Peer {
			bin = l.Command[0]
		}
		if _, err := exec.LookPath(bin); err != nil {
			if !strings.Contains(bin, "/") {
				return fmt.Errorf("%s: %w", l.Name, err)
			}
			if _, serr := os.Stat(bin); serr != nil {
				return fmt.Errorf("%s: %s: %w (build it first)", l.Name, bin, serr)
			}
			return fmt.Errorf("%s: %w", l.Name, err)
		}
	}
	return nil
}

// writeFiles writes results.md, results.svg and results.json into dir.
func (rep report) writeFiles(dir string) error {
	write := func(name string, f func(io.Writer) error) error {
		path := filepath.Join(dir, name)
		file, err := os.Create(path)
		if err != nil {
			return err
		}
		if err := f(file); err != nil {
			file.Close()
			return fmt.Errorf("write %s: %w", path, err)
		}
		return file.Close()
	}
	if err := write("results.md", func(w io.Writer) error { return rep.writeMarkdown(w, "results.svg") }); err != nil {
		return err
	}
	if err := write("results.svg", rep.writeSVG); err != nil {
		return err
	}
	return write("results.json", func(w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	})
}

// commandLine reproduces the invocation, quoted for a POSIX shell.
func commandLine(args []string) string {
	parts := []string{"herd-bench"}
	for _, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\n'\"\\$`{}*?[]|&;<>()#~") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
