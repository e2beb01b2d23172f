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
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/herdhttp/herd/internal/testutil"
	"github.com/herdhttp/herd/prefork"
)

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
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	return fetchInfo(c, "http://"+addr+"/info")
}

// fetchInfo gets a worker's /info at url through c and decodes it.
func fetchInfo(c *http.Client, url string) (workerInfo, error) {
	var wi workerInfo
	resp, err := c.Get(url)
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
	logs  *testutil.SyncBuffer
}

// startMaster runs a master in the test process with workers of the given behavior. Cleanup
// stops it and makes sure every worker is gone. setup runs before Run (to install a fork
// seam).
func startMaster(t *testing.T, cfg prefork.Config, behavior string, setup ...func(*prefork.Master)) *testMaster {
	t.Helper()
	tm := &testMaster{errc: make(chan error, 1), logs: &testutil.SyncBuffer{}}
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
	for _, f := range setup {
		f(m)
	}
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
	testutil.EventuallyTrue(t, d, fmt.Sprintf("%d ready workers", n), func() bool {
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
	stderr *testutil.SyncBuffer
	done   chan struct{}
	err    error
}

func startSubMaster(t *testing.T, sp masterSpec, extra ...*os.File) *subMaster {
	t.Helper()
	spec, _ := json.Marshal(sp)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "PREFORK_TEST_MASTER="+string(spec))
	cmd.ExtraFiles = extra
	sm := &subMaster{cmd: cmd, stderr: &testutil.SyncBuffer{}, done: make(chan struct{})}
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
	testutil.EventuallyTrue(t, d, fmt.Sprintf("%d ready workers in the master subprocess", n), func() bool {
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
	return startLoadWith(clients, func() error { _, err := getInfo(addr); return err })
}

// startLoadWith runs clients goroutines that call get in a loop until stop,
// counting its successes and keeping its errors.
func startLoadWith(clients int, get func() error) *load {
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
				if err := get(); err != nil {
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
