package prefork_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/herdhttp/herd/prefork"
)

// The test binary plays three roles. Started by a master (HERD_WORKER set), it is a worker:
// a tiny HTTP server whose behaviour PREFORK_TEST_WORKER chooses. With PREFORK_TEST_MASTER
// set, it is a master run as a subprocess (for the signal and kill -9 tests). Otherwise it
// runs the tests.
func TestMain(m *testing.M) {
	if w, ok := prefork.Worker(); ok {
		os.Exit(runTestWorker(w))
	}
	if cfg := os.Getenv("PREFORK_TEST_MASTER"); cfg != "" {
		os.Exit(runTestMaster(cfg))
	}
	os.Exit(m.Run())
}

const behaviorEnv = "PREFORK_TEST_WORKER"

// workerInfo is what a test worker answers on /info.
type workerInfo struct {
	PID         int               `json:"pid"`
	PPID        int               `json:"ppid"`
	Slot        int               `json:"slot"`
	ID          string            `json:"id"`
	GOMAXPROCS  int               `json:"gomaxprocs"`
	GOMEMLIMIT  string            `json:"gomemlimit"`
	Marker      string            `json:"marker"` // HERD_WORKER as the worker's app sees it: always ""
	MaxRequests int               `json:"max_requests"`
	Extra       string            `json:"extra"`
	Data        string            `json:"data"` // WorkerProcess.Data
	USR1        int32             `json:"usr1"` // SIGUSR1 signals received
	Env         map[string]string `json:"env"`
}

func runTestWorker(w *prefork.WorkerProcess) int {
	if f := os.Getenv("PREFORK_TEST_FAILFILE"); f != "" {
		if _, err := os.Stat(f); err == nil {
			fmt.Fprintln(os.Stderr, "test worker: fail file exists")
			return 1
		}
	}
	behavior := os.Getenv(behaviorEnv)
	switch behavior {
	case "exit-before-ready":
		fmt.Fprintln(os.Stderr, "test worker: failing on purpose")
		return 1
	case "hang-before-ready":
		<-w.Stop()
		return 0
	case "crash-after-ready":
		w.Ready()
		time.Sleep(50 * time.Millisecond) // runs in the child: not test synchronisation
		return 2
	}
	var served atomic.Uint64
	w.SetRequestCounter(served.Load)
	var usr1s atomic.Int32
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	go func() {
		for range usr1 {
			usr1s.Add(1)
		}
	}()
	mux := http.NewServeMux()
	mux.HandleFunc("/info", func(rw http.ResponseWriter, r *http.Request) {
		n := served.Add(1)
		rw.Header().Set("Content-Type", "application/json")
		json.NewEncoder(rw).Encode(workerInfo{
			PID: os.Getpid(), PPID: os.Getppid(), Slot: w.Slot, ID: w.ID,
			GOMAXPROCS: runtime.GOMAXPROCS(0), GOMEMLIMIT: os.Getenv("GOMEMLIMIT"),
			Marker: os.Getenv("HERD_WORKER"), MaxRequests: w.MaxRequests(),
			Extra: os.Getenv("PREFORK_TEST_EXTRA"), Data: w.Data, USR1: usr1s.Load(),
			Env: map[string]string{
				"GOMAXPROCS": os.Getenv("GOMAXPROCS"), "LISTEN_FDS": os.Getenv("LISTEN_FDS"),
				"LISTEN_PID": os.Getenv("LISTEN_PID"), "NOTIFY_SOCKET": os.Getenv("NOTIFY_SOCKET"),
			},
		})
		if max := w.MaxRequests(); max > 0 && n >= uint64(max) {
			w.Retire()
		}
	})
	// A drain that loses nothing (net/http's Shutdown drops a request it reads after it
	// began): stop accepting, then wait for the accepted connections to finish. Test
	// clients send one request per connection ("Connection: close").
	var open atomic.Int64
	srv := &http.Server{Handler: mux, ConnState: func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			open.Add(1)
		case http.StateClosed, http.StateHijacked:
			open.Add(-1)
		}
	}}
	var wg sync.WaitGroup
	for _, l := range w.Listeners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			srv.Serve(l)
		}()
	}
	if err := w.Ready(); err != nil {
		fmt.Fprintln(os.Stderr, "test worker:", err)
		return 1
	}
	<-w.Stop()
	for _, l := range w.Listeners {
		l.Close()
	}
	wg.Wait()
	for deadline := time.Now().Add(5 * time.Second); open.Load() > 0 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	srv.Close()
	return 0
}

// masterSpec configures a subprocess master.
type masterSpec struct {
	Workers    int
	Mode       string
	Timeout    time.Duration
	Behavior   string
	Activation bool // fd 3 is a listening socket: pretend systemd passed it
}

// runTestMaster runs a master configured by spec (JSON). It prints "admin ADDR" and
// "addr ADDR" on stdout when listening; the admin server answers /workers.
func runTestMaster(spec string) int {
	var sp masterSpec
	if err := json.Unmarshal([]byte(spec), &sp); err != nil {
		fmt.Fprintln(os.Stderr, "test master:", err)
		return 2
	}
	var environ []string
	if sp.Activation {
		environ = append(os.Environ(), "LISTEN_PID="+strconv.Itoa(os.Getpid()), "LISTEN_FDS=1")
	}
	m, err := prefork.NewMaster(prefork.Config{
		Environ: environ,
		Workers: sp.Workers,
		Addrs:   []string{"127.0.0.1:0"},
		Mode:    prefork.ListenerMode(sp.Mode),
		Timeout: sp.Timeout,
		// Generous: the race-instrumented test binary can take long to start under load.
		BootTimeout: 20 * time.Second,
		Env:         []string{behaviorEnv + "=" + sp.Behavior},
		Logger:      slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	admin, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	go http.Serve(admin, http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		json.NewEncoder(rw).Encode(m.Workers())
	}))
	fmt.Printf("admin %s\naddr %s\n", admin.Addr(), m.Addrs()[0])
	if err := m.Run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// ---- helpers ----

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond) // polling with a deadline, not synchronisation
	}
}

// procState returns the state letter of /proc/PID/stat and the parent pid, or "" if the
// process does not exist.
func procState(pid int) (state string, ppid int) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", 0
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return "", 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return "", 0
	}
	ppid, _ = strconv.Atoi(f[1])
	return f[0], ppid
}

// gone reports whether pid no longer runs (absent, or a zombie: PID 1 here reaps orphans
// lazily).
func gone(pid int) bool {
	st, _ := procState(pid)
	return st == "" || st == "Z" || st == "X"
}

// getInfo asks whichever worker accepts a new connection for its /info.
func getInfo(addr string) (workerInfo, error) {
	var wi workerInfo
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + "/info")
	if err != nil {
		return wi, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return wi, fmt.Errorf("status %s", resp.Status)
	}
	err = json.NewDecoder(resp.Body).Decode(&wi)
	return wi, err
}

// testMaster is an in-process master.
type testMaster struct {
	*prefork.Master
	sig   *prefork.FakeSignals
	errc  chan error
	stop  context.CancelFunc
	mu    sync.Mutex
	exits []prefork.WorkerExit
	logs  *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// startMaster runs a master in the test process with workers of the given behavior. Cleanup
// stops it and makes sure every worker is gone.
func startMaster(t *testing.T, cfg prefork.Config, behavior string) *testMaster {
	t.Helper()
	tm := &testMaster{errc: make(chan error, 1), logs: &syncBuffer{}}
	if cfg.Addrs == nil {
		cfg.Addrs = []string{"127.0.0.1:0"}
	}
	cfg.Env = append(cfg.Env, behaviorEnv+"="+behavior)
	cfg.Logger = slog.New(slog.NewTextHandler(tm.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	userExit := cfg.Hooks.OnWorkerExit
	cfg.Hooks.OnWorkerExit = func(e prefork.WorkerExit) {
		tm.mu.Lock()
		tm.exits = append(tm.exits, e)
		tm.mu.Unlock()
		if userExit != nil {
			userExit(e)
		}
	}
	m, sig, err := prefork.NewMasterForTest(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tm.Master, tm.sig = m, sig
	ctx, cancel := context.WithCancel(context.Background())
	tm.stop = cancel
	var seen sync.Map // every pid ever reported, for the cleanup
	go func() { tm.errc <- m.Run(ctx) }()
	go func() {
		for ctx.Err() == nil {
			for _, w := range m.Workers() {
				seen.Store(w.PID, true)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-tm.errc:
		case <-time.After(15 * time.Second):
			t.Error("master did not stop")
		}
		for _, w := range m.Workers() {
			seen.Store(w.PID, true)
		}
		seen.Range(func(k, _ any) bool {
			pid := k.(int)
			if !gone(pid) {
				t.Errorf("worker pid %d still running after the master stopped", pid)
				syscall.Kill(pid, syscall.SIGKILL)
			}
			return true
		})
		if t.Failed() {
			t.Logf("master log:\n%s", tm.logs.String())
		}
	})
	return tm
}

// readyWorkers returns the ready workers, or nil unless exactly n are ready and no other
// worker process is alive.
func (tm *testMaster) readyWorkers(n int) []prefork.WorkerInfo {
	ws := tm.Workers()
	if len(ws) != n {
		return nil
	}
	for _, w := range ws {
		if w.State != prefork.StateReady {
			return nil
		}
	}
	return ws
}

func (tm *testMaster) waitReady(t *testing.T, n int, d time.Duration) []prefork.WorkerInfo {
	t.Helper()
	var ws []prefork.WorkerInfo
	waitFor(t, d, fmt.Sprintf("%d ready workers", n), func() bool {
		ws = tm.readyWorkers(n)
		return ws != nil
	})
	return ws
}

func (tm *testMaster) exitsSnapshot() []prefork.WorkerExit {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	return append([]prefork.WorkerExit(nil), tm.exits...)
}

// wait waits for Run to return.
func (tm *testMaster) wait(t *testing.T, d time.Duration) error {
	t.Helper()
	select {
	case err := <-tm.errc:
		tm.errc <- err // for the cleanup
		return err
	case <-time.After(d):
		t.Fatalf("master still running after %v", d)
		return nil
	}
}

// subMaster is a master run as a subprocess of the test.
type subMaster struct {
	cmd    *exec.Cmd
	admin  string
	addr   string
	stderr *syncBuffer
	done   chan struct{}
	err    error
}

func startSubMaster(t *testing.T, sp masterSpec, extra ...*os.File) *subMaster {
	t.Helper()
	spec, _ := json.Marshal(sp)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "PREFORK_TEST_MASTER="+string(spec))
	cmd.ExtraFiles = extra
	sm := &subMaster{cmd: cmd, stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stderr = sm.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var pids sync.Map
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-sm.done
		pids.Range(func(k, _ any) bool {
			if pid := k.(int); !gone(pid) {
				syscall.Kill(pid, syscall.SIGKILL)
			}
			return true
		})
		if t.Failed() {
			t.Logf("master stderr:\n%s", sm.stderr.String())
		}
	})
	sc := bufio.NewScanner(out)
	for sm.addr == "" && sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), " ")
		switch k {
		case "admin":
			sm.admin = v
		case "addr":
			sm.addr = v
		}
	}
	go func() {
		io.Copy(io.Discard, out)
		sm.err = cmd.Wait()
		close(sm.done)
	}()
	if sm.addr == "" {
		<-sm.done
		t.Fatalf("master subprocess did not start: %v\n%s", sm.err, sm.stderr.String())
	}
	go func() { // remember every worker pid for the cleanup
		for {
			select {
			case <-sm.done:
				return
			case <-time.After(20 * time.Millisecond):
			}
			ws, _ := sm.workers()
			for _, w := range ws {
				pids.Store(w.PID, true)
			}
		}
	}()
	return sm
}

func (sm *subMaster) workers() ([]prefork.WorkerInfo, error) {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + sm.admin + "/workers")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var ws []prefork.WorkerInfo
	err = json.NewDecoder(resp.Body).Decode(&ws)
	return ws, err
}

func (sm *subMaster) waitReady(t *testing.T, n int, d time.Duration) []prefork.WorkerInfo {
	t.Helper()
	var ws []prefork.WorkerInfo
	waitFor(t, d, fmt.Sprintf("%d ready workers in the master subprocess", n), func() bool {
		var err error
		ws, err = sm.workers()
		if err != nil || len(ws) != n {
			return false
		}
		for _, w := range ws {
			if w.State != prefork.StateReady {
				return false
			}
		}
		return true
	})
	return ws
}

func (sm *subMaster) exitCode(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-sm.done:
	case <-time.After(d):
		t.Fatalf("master subprocess still running after %v", d)
	}
	var ee *exec.ExitError
	if errors.As(sm.err, &ee) {
		return ee.ExitCode()
	}
	if sm.err != nil {
		t.Fatal(sm.err)
	}
	return 0
}

// load sends requests over a new connection each from a few goroutines until stopped, and
// counts the failures.
type load struct {
	stop chan struct{}
	wg   sync.WaitGroup
	ok   atomic.Int64
	mu   sync.Mutex
	errs []error
}

func startLoad(addr string, clients int) *load {
	l := &load{stop: make(chan struct{})}
	for range clients {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				if _, err := getInfo(addr); err != nil {
					l.mu.Lock()
					l.errs = append(l.errs, err)
					l.mu.Unlock()
				} else {
					l.ok.Add(1)
				}
			}
		}()
	}
	return l
}

// finish stops the load and fails t if any request failed or none succeeded.
func (l *load) finish(t *testing.T) {
	t.Helper()
	close(l.stop)
	l.wg.Wait()
	if len(l.errs) > 0 {
		t.Errorf("%d of %d requests failed, first: %v", len(l.errs), int(l.ok.Load())+len(l.errs), l.errs[0])
	}
	if l.ok.Load() == 0 {
		t.Error("no request succeeded")
	}
}
