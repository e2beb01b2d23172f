package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// scenario is one way of sharing the machine's CPUs between the server and
// the load generator.
type scenario struct {
	Name        string  `json:"name"` // "unpinned" or "pinned"
	ServerCPUs  cpuList `json:"server_cpus,omitempty"`
	LoadCPUs    cpuList `json:"wrk_cpus,omitempty"`
	Cores       int     `json:"server_cores"` // CPUs the server may use: workers per layout
	Threads     int     `json:"wrk_threads"`
	Description string  `json:"description"`
}

func (s scenario) pinned() bool { return len(s.ServerCPUs) > 0 }

// roundResult is one layout's run in one round.
type roundResult struct {
	Scenario string `json:"scenario"`
	Layout   string `json:"layout"`
	Round    int    `json:"round"` // 1-based
	// PID is the server's root process (with -keep, the same in every
	// round unless it had to be started again).
	PID   int       `json:"server_pid,omitempty"`
	Start time.Time `json:"start"`
	Wrk   wrkResult `json:"wrk"`
	// Elapsed is the wall time between the CPU snapshots around wrk's run.
	Elapsed   time.Duration `json:"elapsed_ns"`
	ServerCPU time.Duration `json:"server_cpu_ns"` // the server's whole process tree
	LoadCPU   time.Duration `json:"wrk_cpu_ns"`
	// OtherCPU is the CPU time every other process (and the kernel's
	// work not charged to a process) used meanwhile: the machine's noise.
	OtherCPU time.Duration `json:"other_cpu_ns"`
	// Workers is each herd worker's requests during the measured run, by
	// slot (from GET /workers); nil for peers.
	Workers []uint64 `json:"worker_requests,omitempty"`
	// Counted is the increase of the merged http_requests_total during the
	// measured run (herd only; -1 when unknown).
	Counted float64 `json:"counted"`
	Err     string  `json:"error,omitempty"` // the round failed and has no figures
	// Attempts is how many times the run was made (-retries): the quietest
	// attempt is kept.
	Attempts int `json:"attempts"`
}

// failed reports whether the round produced no figures.
func (r roundResult) failed() bool { return r.Err != "" }

// serverCores is the server's CPU time as a number of cores busy.
func (r roundResult) serverCores() float64 { return cores(r.ServerCPU, r.Elapsed) }

// loadCores is wrk's CPU time as a number of cores busy.
func (r roundResult) loadCores() float64 { return cores(r.LoadCPU, r.Elapsed) }

// otherCores is the CPU time of everything else as a number of cores busy.
func (r roundResult) otherCores() float64 { return cores(r.OtherCPU, r.Elapsed) }

// perCPU is the successful responses per second of the server's own CPU
// time: unlike req/s, it hardly moves when another job takes CPU time
// from the server; 0 when the CPU time is unknown.
func (r roundResult) perCPU() float64 {
	if r.ServerCPU <= 0 {
		return 0
	}
	return float64(r.Wrk.good()) / r.ServerCPU.Seconds()
}

// clean reports whether the round has figures without any error.
func (r roundResult) clean() bool { return !r.failed() && r.Wrk.errors() == 0 }

func cores(cpu, wall time.Duration) float64 {
	if wall <= 0 {
		return 0
	}
	return cpu.Seconds() / wall.Seconds()
}

// runner runs the benchmark: rounds of every scenario and layout.
type runner struct {
	cfg       config
	scenarios []scenario
	layouts   []layout
	pfs       procFS
	tmp       string // the wrk script
	script    string // path of the wrk Lua script
	progress  *progress
	logDir    string // where failed rounds' server logs go
}

// run executes every round, alternating layouts (A B C, then C B A, then
// A B C ...), and returns the results so far when ctx ends. With -keep,
// each scenario's servers are started once and measured in turn through
// all its rounds; otherwise every run starts its server afresh.
func (r *runner) run(ctx context.Context) []roundResult {
	var out []roundResult
	total := r.cfg.rounds * len(r.scenarios) * len(r.layouts)
	r.progress.start(total, r.estimate())
	defer r.progress.finish()
	// one makes a run and reports whether to go on.
	one := func(sc scenario, l layout, round int, attempt func() roundResult) bool {
		if ctx.Err() != nil {
			return false
		}
		r.progress.begin(fmt.Sprintf("round %d/%d · %s · %s", round, r.cfg.rounds, sc.Name, l.Name))
		res := r.runQuiet(ctx, attempt)
		if ctx.Err() != nil && res.failed() {
			return false // interrupted: not a real failure
		}
		r.progress.end(res)
		out = append(out, res)
		return true
	}
	if r.cfg.keep {
		for _, sc := range r.scenarios {
			k := &keptServers{r: r, sc: sc, live: map[string]*live{}}
			ok := true
			for round := 1; ok && round <= r.cfg.rounds; round++ {
				for _, l := range r.order(round) {
					if ok = one(sc, l, round, func() roundResult { return k.runOne(ctx, l, round) }); !ok {
						break
					}
				}
			}
			k.close()
			if !ok {
				return out
			}
		}
		return out
	}
	for round := 1; round <= r.cfg.rounds; round++ {
		for _, sc := range r.scenarios {
			for _, l := range r.order(round) {
				if !one(sc, l, round, func() roundResult { return r.runOne(ctx, sc, l, round) }) {
					return out
				}
			}
		}
	}
	return out
}

// order is the layouts in the order of a round: as given in odd rounds,
// reversed in even ones, so that a machine drifting slower or faster
// through a run favours no layout over another in the rounds' ratios.
func (r *runner) order(round int) []layout {
	if round%2 == 1 {
		return r.layouts
	}
	rev := slices.Clone(r.layouts)
	slices.Reverse(rev)
	return rev
}

// runQuiet makes one run, first waiting up to -quiet-wait for the machine
// to be quiet, and repeats it up to -retries times while other processes
// used more than noiseLimit cores during it. It keeps the quietest attempt.
func (r *runner) runQuiet(ctx context.Context, attempt func() roundResult) roundResult {
	var best roundResult
	for n := 1; n <= 1+r.cfg.retries; n++ {
		if r.cfg.quietWait > 0 {
			r.waitQuiet(ctx, r.cfg.quietWait)
		}
		res := attempt()
		res.Attempts = n
		if n == 1 || quieter(res, best) {
			best = res
		}
		if res.failed() || res.otherCores() <= noiseLimit || ctx.Err() != nil {
			break
		}
	}
	best.Attempts = max(best.Attempts, 1)
	return best
}

// quieter reports whether a is a better attempt than b: one with figures
// beats a failed one, then the one the rest of the machine disturbed least.
func quieter(a, b roundResult) bool {
	if a.failed() != b.failed() {
		return !a.failed()
	}
	return a.otherCores() < b.otherCores()
}

// waitQuiet waits until the machine (nothing of ours runs now) keeps at
// most noiseLimit cores busy over half a second, or for at most d.
func (r *runner) waitQuiet(ctx context.Context, d time.Duration) {
	deadline := time.Now().Add(d)
	for ctx.Err() == nil && time.Now().Before(deadline) {
		if c := busyCores(ctx, r.pfs, 500*time.Millisecond); c >= 0 && c <= noiseLimit {
			return
		}
	}
}

// estimate is the expected time of one run, before any has been timed.
func (r *runner) estimate() time.Duration {
	if r.cfg.keep {
		return r.cfg.duration + 300*time.Millisecond
	}
	return r.cfg.duration + r.cfg.warmup + 1500*time.Millisecond
}

// live is a started, ready and warmed-up server of one layout.
type live struct {
	srv *serverProc
	dir string // the herd app's metric files
	url string // the benchmarked URL
}

// close stops the server and removes its metric files.
func (lv *live) close() {
	lv.srv.stop(10 * time.Second)
	os.RemoveAll(lv.dir)
}

// runOne starts the layout, waits until it is ready, warms it up, measures
// it, and stops it.
func (r *runner) runOne(ctx context.Context, sc scenario, l layout, round int) roundResult {
	res := newRoundResult(sc, l, round)
	lv, err := r.launch(ctx, sc, l, round)
	if err != nil {
		res.Err = err.Error()
		return res
	}
	defer lv.close()
	return r.measure(ctx, sc, l, lv, round)
}

// keptServers are the running servers of one scenario under -keep.
type keptServers struct {
	r    *runner
	sc   scenario
	live map[string]*live // by layout name
}

// runOne measures layout l on its running server, starting it first when
// it is not running (the first round, or its server died).
func (k *keptServers) runOne(ctx context.Context, l layout, round int) roundResult {
	lv := k.live[l.Name]
	if lv != nil {
		if gone, _ := lv.srv.exited(); gone {
			lv.close()
			delete(k.live, l.Name)
			lv = nil
		}
	}
	if lv == nil {
		var err error
		if lv, err = k.r.launch(ctx, k.sc, l, round); err != nil {
			res := newRoundResult(k.sc, l, round)
			res.Err = err.Error()
			return res
		}
		k.live[l.Name] = lv
	}
	res := k.r.measure(ctx, k.sc, l, lv, round)
	if res.failed() {
		// Start it afresh next time rather than measure a server in an
		// unknown state.
		lv.close()
		delete(k.live, l.Name)
	}
	return res
}

// close stops every running server.
func (k *keptServers) close() {
	for name, lv := range k.live {
		lv.close()
		delete(k.live, name)
	}
}

func newRoundResult(sc scenario, l layout, round int) roundResult {
	return roundResult{Scenario: sc.Name, Layout: l.Name, Round: round, Start: time.Now().UTC(), Counted: -1}
}

// launch starts the layout, waits until it is ready and warms it up with
// a discarded wrk run of -warmup. On failure the server is stopped and the
// error names the file its output was saved to.
func (r *runner) launch(ctx context.Context, sc scenario, l layout, round int) (*live, error) {
	name := newRoundResult(sc, l, round)
	addr, err := freeAddr()
	if err != nil {
		return nil, fmt.Errorf("pick a port: %w", err)
	}
	adminAddr, err := freeAddr()
	if err != nil {
		return nil, fmt.Errorf("pick a port: %w", err)
	}
	// Like herd's own default, keep the metric files on tmpfs: on a disk
	// file system the kernel's writeback of the shared mappings costs the
	// workers page faults that production does not have.
	dir, err := os.MkdirTemp(metricsRoot(), "herd-bench-metrics-")
	if err != nil {
		return nil, err
	}
	argv, env := l.argv(r.cfg.app, addr, adminAddr, dir, sc.Cores)
	srv, err := startServer(argv, env, sc.ServerCPUs, r.pfs)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	lv := &live{srv: srv, dir: dir, url: "http://" + addr + r.cfg.path}
	fail := func(format string, args ...any) (*live, error) {
		msg := fmt.Sprintf(format, args...) + r.saveLog(name, srv.log.String())
		lv.close()
		return nil, errors.New(msg)
	}
	srv.url = "http://" + addr
	in := l.resolve(sc.Cores)
	readyCtx, cancel := context.WithTimeout(ctx, r.cfg.readyTimeout)
	if l.Peer {
		err = srv.waitPeerReady(readyCtx, in.workers)
	} else {
		srv.admin = &adminClient{http: &http.Client{Timeout: 5 * time.Second}, base: "http://" + adminAddr}
		err = srv.waitHerdReady(readyCtx, in.workers)
	}
	cancel()
	if err != nil {
		return fail("%s: %v", l.Name, err)
	}
	if r.cfg.warmup > 0 {
		if _, _, out, err := r.wrk(ctx, sc, lv.url, r.cfg.warmup); err != nil {
			return fail("warm-up: %v\n%s", err, out)
		}
	}
	return lv, nil
}

// measure makes one measured wrk run against a ready server and reads the
// CPU times and the herd workers' counts around it.
func (r *runner) measure(ctx context.Context, sc scenario, l layout, lv *live, round int) roundResult {
	res := newRoundResult(sc, l, round)
	srv := lv.srv
	res.PID = srv.pid()
	fail := func(format string, args ...any) roundResult {
		res.Err = fmt.Sprintf(format, args...) + r.saveLog(res, srv.log.String())
		return res
	}
	var before map[int]uint64
	var countedBefore float64
	if srv.admin != nil {
		before, countedBefore = r.settledWorkers(ctx, srv.admin)
	}
	treeBefore, err := r.pfs.tree(srv.pid())
	if err != nil {
		return fail("server process tree: %v", err)
	}
	busyBefore, berr := r.pfs.busy()
	t0 := time.Now()
	w, loadCPU, out, err := r.wrk(ctx, sc, lv.url, r.cfg.duration)
	treeAfter, terr := r.pfs.tree(srv.pid())
	busyAfter, aerr := r.pfs.busy()
	res.Elapsed = time.Since(t0)
	if err != nil {
		return fail("wrk: %v\n%s", err, out)
	}
	if terr != nil {
		return fail("server process tree after the run: %v", terr)
	}
	res.Wrk, res.LoadCPU = w, loadCPU
	res.ServerCPU = cpuBetween(treeBefore, treeAfter)
	if berr == nil && aerr == nil {
		res.OtherCPU = max(0, busyAfter-busyBefore-res.ServerCPU-res.LoadCPU)
	}
	if gone, err := srv.exited(); gone {
		return fail("%v during the run", err)
	}
	if srv.admin != nil {
		after, counted := r.settledWorkers(ctx, srv.admin)
		if counted >= 0 && countedBefore >= 0 {
			res.Counted = counted - countedBefore
		}
		res.Workers = workerDeltas(before, after)
	}
	return res
}

// settledWorkers reads the merged request count from /metrics, then polls
// /workers (whose counts are as of each worker's last heartbeat, sent at
// most every second) until the workers' sum has caught up with it or 2.5 s
// have passed. It returns requests by slot and the count (-1 when /metrics
// could not be read).
func (r *runner) settledWorkers(ctx context.Context, admin *adminClient) (map[int]uint64, float64) {
	counted, err := admin.requestsTotal(ctx, "http_requests_total")
	if err != nil {
		counted = -1
	}
	deadline := time.Now().Add(2500 * time.Millisecond)
	var bySlot map[int]uint64
	for {
		ws, err := admin.workers(ctx)
		if err == nil {
			bySlot = map[int]uint64{}
			var sum uint64
			for _, w := range ws {
				bySlot[w.Slot] += w.Requests
				sum += w.Requests
			}
			if counted < 0 || float64(sum) >= counted {
				return bySlot, counted
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return bySlot, counted
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// metricsRoot is where the herd app's metric directories go: /dev/shm
// when it exists (herd's default), else the temporary directory.
func metricsRoot() string {
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		return "/dev/shm"
	}
	return os.TempDir()
}

// workerDeltas is each slot's increase, ordered by slot.
func workerDeltas(before, after map[int]uint64) []uint64 {
	n := 0
	for slot := range after {
		n = max(n, slot+1)
	}
	out := make([]uint64, n)
	for slot, a := range after {
		if b := before[slot]; a >= b {
			out[slot] = a - b
		} else {
			out[slot] = a // a new worker took the slot over
		}
	}
	return out
}

// wrk runs the load generator once for d against url and returns its
// parsed result, its CPU time and its output.
func (r *runner) wrk(ctx context.Context, sc scenario, url string, d time.Duration) (wrkResult, time.Duration, string, error) {
	argv := []string{r.cfg.wrk,
		"-t", strconv.Itoa(sc.Threads),
		"-c", strconv.Itoa(max(r.cfg.connections, sc.Threads)),
		"-d", strconv.Itoa(int(d/time.Second)) + "s",
		"--latency", "-s", r.script, url}
	if sc.pinned() {
		argv = append([]string{"taskset", "-c", sc.LoadCPUs.String()}, argv...)
	}
	ctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	outb, err := cmd.CombinedOutput()
	out := string(outb)
	var cpu time.Duration
	if cmd.ProcessState != nil {
		cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	if err != nil {
		return wrkResult{}, cpu, out, fmt.Errorf("%s: %w", strings.Join(argv, " "), err)
	}
	w, err := parseWrk(out)
	if err != nil {
		return w, cpu, out, err
	}
	return w, cpu, out, nil
}

// saveLog writes a failed round's server output under the log directory
// and returns a note naming the file.
func (r *runner) saveLog(res roundResult, log string) string {
	if r.logDir == "" || log == "" {
		return ""
	}
	if err := os.MkdirAll(r.logDir, 0o755); err != nil {
		return ""
	}
	name := fmt.Sprintf("%s-%s-round%d.log", res.Scenario, slug(res.Layout), res.Round)
	path := filepath.Join(r.logDir, name)
	if err := os.WriteFile(path, []byte(log), 0o644); err != nil {
		return ""
	}
	return " (server log: " + path + ")"
}

// slug makes a layout name usable in a file name.
func slug(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '.':
			return r
		}
		return '_'
	}, s)
}
