package integration

import (
	"errors"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/herdhttp/herd/internal/testutil"
)

// modes are the listener modes every no-loss test runs in.
var modes = []string{"reuseport", "shared"}

// waitWorkers polls /workers until cond holds, or fails after d.
func (p *proc) waitWorkers(d time.Duration, what string, cond func([]workerInfo) bool) []workerInfo {
	p.t.Helper()
	var last []workerInfo
	if err := testutil.WaitUntil(d, func() error {
		ws, err := p.workers()
		if err != nil {
			return err
		}
		last = ws
		if !cond(ws) {
			return errors.New("not yet")
		}
		return nil
	}); err != nil {
		p.t.Fatalf("%s: not within %s; workers %+v\n%s", what, d, last, p.log.String())
	}
	return last
}

func readyPIDs(ws []workerInfo) map[int]bool {
	m := map[int]bool{}
	for _, w := range ws {
		if w.State == "ready" {
			m[w.PID] = true
		}
	}
	return m
}

// reload sends SIGHUP to a master of n workers and waits until n ready
// workers serve and none of them is one that served before.
func (p *proc) reload(t *testing.T, n int, within time.Duration, what string) {
	t.Helper()
	old := readyPIDs(p.waitReady(n))
	p.cmd.Process.Signal(syscall.SIGHUP)
	p.waitWorkers(within, what+" replaces every worker", func(ws []workerInfo) bool {
		now := readyPIDs(ws)
		if len(now) != n || len(ws) != n {
			return false
		}
		for pid := range now {
			if old[pid] {
				return false
			}
		}
		return true
	})
}

// helloCount is the merged count of successful GET /hello.
func (p *proc) helloCount() float64 {
	v, _ := value(p.scrape(), "http_requests_total", map[string]string{"method": "GET", "route": "/hello", "code": "200"})
	return v
}

// checkCountEquals fails unless /metrics counts exactly the n requests
// clients saw succeed: no loss, and no request counted that a client
// did not see answered.
func (p *proc) checkCountEquals(t *testing.T, n int64) {
	t.Helper()
	if got := p.helloCount(); got != float64(n) {
		t.Errorf("http_requests_total{route=\"/hello\"} = %v, clients saw %d succeed", got, n)
	}
}

func TestRollingRestartLosesNothing(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			p := startHello(t, "-workers", "2", "-listener-mode", mode)
			before := readyPIDs(p.waitReady(2))
			l := startLoad(t, p.app, "/hello", 8, time.Minute)
			l.waitFor(t, 200)
			for round := 1; round <= 2; round++ {
				p.reload(t, 2, 20*time.Second, fmt.Sprintf("HUP %d", round))
				l.waitFor(t, 200)
			}
			ok := l.check(t)
			for pid := range readyPIDs(p.waitReady(2)) {
				if before[pid] {
					t.Errorf("pid %d survived two rolling restarts", pid)
				}
			}
			p.checkCountEquals(t, ok)
		})
	}
}

func TestTTINAndTTOULoseNothing(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			p := startHello(t, "-workers", "2", "-listener-mode", mode)
			p.waitReady(2)
			l := startLoad(t, p.app, "/hello", 8, time.Minute)
			l.waitFor(t, 200)
			p.cmd.Process.Signal(syscall.SIGTTIN)
			p.waitWorkers(20*time.Second, "TTIN adds a worker", func(ws []workerInfo) bool { return len(readyPIDs(ws)) == 3 })
			l.waitFor(t, 200)
			p.cmd.Process.Signal(syscall.SIGTTOU)
			p.waitWorkers(20*time.Second, "TTOU removes a worker", func(ws []workerInfo) bool { return len(ws) == 2 && len(readyPIDs(ws)) == 2 })
			l.waitFor(t, 200)
			ok := l.check(t)
			p.checkCountEquals(t, ok)
		})
	}
}

func TestMaxRequestsRecyclingLosesNothing(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			p := startHello(t, "-workers", "2", "-listener-mode", mode, "-max-requests", "60", "-max-requests-jitter", "20")
			p.waitReady(2)
			l := startLoad(t, p.app, "/hello", 8, 2*time.Minute)
			// About 50 recycles: each worker serves 60..80 requests.
			restarts := 0
			testutil.WaitUntil(90*time.Second, func() error {
				ws, err := p.workers()
				if err != nil {
					return err
				}
				restarts = 0
				for _, w := range ws {
					restarts += w.Restarts
				}
				if restarts < 50 {
					return fmt.Errorf("%d recycles", restarts)
				}
				return nil
			})
			ok := l.check(t)
			if restarts < 50 {
				t.Fatalf("only %d recycles after %d requests", restarts, ok)
			}
			p.waitReady(2)
			p.checkCountEquals(t, ok)
			t.Logf("%d requests, %d recycles", ok, restarts)
		})
	}
}

func TestKilledWorkerIsReplacedAndCountersNeverDecrease(t *testing.T) {
	p := startHello(t, "-workers", "2")
	ws := p.waitReady(2)
	l := startLoad(t, p.app, "/hello", 4, time.Minute)
	l.waitFor(t, 300)
	victim := ws[0].PID
	last := p.helloCount()
	killed := time.Now()
	syscall.Kill(victim, syscall.SIGKILL)
	p.waitWorkers(5*time.Second, "a replacement is ready", func(ws []workerInfo) bool {
		now := readyPIDs(ws)
		return len(now) == 2 && !now[victim]
	})
	if d := time.Since(killed); d > time.Second {
		t.Errorf("replacement ready %s after kill -9, want within 1 s", d)
	}
	// The dead worker's counts stay in every later scrape, while requests
	// go on being counted.
	for range 20 {
		c := p.helloCount()
		if c < last {
			t.Fatalf("http_requests_total went down from %v to %v after a worker died", last, c)
		}
		last = c
		l.waitFor(t, 10)
	}
	// The master's supervision metrics record the crash.
	mfs := p.scrape()
	if v, _ := value(mfs, "herd_worker_exits_total", map[string]string{"reason": "crashed"}); v != 1 {
		t.Errorf(`herd_worker_exits_total{reason="crashed"} = %v, want 1`, v)
	}
	slot := fmt.Sprint(ws[0].Slot)
	if v, _ := value(mfs, "herd_worker_restarts_total", map[string]string{"worker": slot}); v != 1 {
		t.Errorf(`herd_worker_restarts_total{worker=%q} = %v, want 1`, slot, v)
	}
	if v, _ := value(mfs, "herd_workers", map[string]string{"state": "ready"}); v != 2 {
		t.Errorf(`herd_workers{state="ready"} = %v, want 2`, v)
	}
	// Requests in flight on the killed worker's connections may fail: the
	// process died. What must hold is that the counter keeps everything
	// that was counted.
	l.stop()
	if c := p.helloCount(); c < last {
		t.Fatalf("http_requests_total went down from %v to %v", last, c)
	}
}

func TestKilledMasterTakesItsWorkersWithIt(t *testing.T) {
	p := startHello(t, "-workers", "2")
	ws := p.waitReady(2)
	syscall.Kill(p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
	if testutil.WaitUntil(time.Second, func() error {
		if alive(ws[0].PID) || alive(ws[1].PID) {
			return errors.New("a worker is still running")
		}
		return nil
	}) == nil {
		return
	}
	for _, w := range ws {
		if alive(w.PID) {
			t.Errorf("worker %d (pid %d) still running 1 s after the master was killed", w.Slot, w.PID)
			syscall.Kill(w.PID, syscall.SIGKILL)
		}
	}
}

func TestHungWorkerIsKilledAfterTimeout(t *testing.T) {
	p := startHello(t, "-workers", "2", "-timeout", "2s")
	ws := p.waitReady(2)
	victim := ws[1].PID
	syscall.Kill(victim, syscall.SIGSTOP)
	t.Cleanup(func() { syscall.Kill(victim, syscall.SIGKILL) })
	p.waitWorkers(15*time.Second, "the stopped worker is replaced", func(ws []workerInfo) bool {
		now := readyPIDs(ws)
		return len(now) == 2 && !now[victim]
	})
	if err := testutil.WaitUntil(5*time.Second, func() error {
		if alive(victim) {
			return fmt.Errorf("hung worker pid %d still exists (state %s)", victim, procState(victim))
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
}
