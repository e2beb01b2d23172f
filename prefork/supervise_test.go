package prefork_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/herdhttp/herd/internal/testutil"
	"github.com/herdhttp/herd/prefork"
)

var modes = []prefork.ListenerMode{prefork.ModeReusePort, prefork.ModeShared}

func pidsOf(ws []prefork.WorkerInfo) []int {
	var p []int
	for _, w := range ws {
		p = append(p, w.PID)
	}
	return p
}

func TestReloadReplacesEveryWorker(t *testing.T) {
	t.Parallel()
	for _, mode := range modes {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			var reloads atomic.Int32
			tm := startMaster(t, prefork.Config{Workers: 2, Mode: mode,
				Hooks: prefork.Hooks{OnReload: func() { reloads.Add(1) }}}, "")
			before := tm.waitReady(t, 2, 10*time.Second)
			ld := startLoad(tm.Addrs()[0].String(), 2)
			for round, lane := range []string{"b", "a"} {
				tm.sig.Send(syscall.SIGHUP)
				var after []prefork.WorkerInfo
				testutil.EventuallyTrue(t, 15*time.Second, "every worker replaced", func() bool {
					after = tm.readyWorkers(2)
					if after == nil {
						return false
					}
					for i, w := range after {
						if slices.Contains(pidsOf(before), w.PID) || w.ID != fmt.Sprint(i)+lane {
							return false
						}
					}
					return true
				})
				if int(reloads.Load()) != round+1 {
					t.Errorf("OnReload ran %d times, want %d", reloads.Load(), round+1)
				}
				for _, w := range before {
					testutil.EventuallyTrue(t, 5*time.Second, "old worker gone", func() bool { return gone(w.PID) })
				}
				before = after
			}
			ld.finish(t)
			for _, e := range tm.exitsSnapshot() {
				if e.Reason != prefork.ExitReloaded || e.Err() != nil {
					t.Errorf("exit %+v, want a clean reload exit", e)
				}
			}
		})
	}
}

func TestReloadAbortedWhenNewWorkersFail(t *testing.T) {
	t.Parallel()
	fail := filepath.Join(t.TempDir(), "fail")
	tm := startMaster(t, prefork.Config{Workers: 2, Env: []string{"PREFORK_TEST_FAILFILE=" + fail}}, "")
	before := tm.waitReady(t, 2, 10*time.Second)
	os.WriteFile(fail, nil, 0o600)
	tm.sig.Send(syscall.SIGHUP)
	testutil.EventuallyTrue(t, 10*time.Second, "a failed boot", func() bool {
		for _, e := range tm.exitsSnapshot() {
			if e.Reason == prefork.ExitBootFailed {
				return true
			}
		}
		return false
	})
	// The old workers keep serving; the master keeps running.
	now := tm.waitReady(t, 2, 5*time.Second)
	if !slices.Equal(pidsOf(now), pidsOf(before)) {
		t.Errorf("workers after the aborted reload %v, want the old ones %v", pidsOf(now), pidsOf(before))
	}
	select {
	case err := <-tm.errc:
		t.Fatalf("master stopped: %v", err)
	default:
	}
	os.Remove(fail)
	tm.sig.Send(syscall.SIGHUP)
	testutil.EventuallyTrue(t, 10*time.Second, "reload after the fix", func() bool {
		now = tm.readyWorkers(2)
		return now != nil && !slices.Contains(pidsOf(before), now[0].PID) && !slices.Contains(pidsOf(before), now[1].PID)
	})
}

func TestScaleUpAndDown(t *testing.T) {
	t.Parallel()
	for _, mode := range modes {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			tm := startMaster(t, prefork.Config{Workers: 2, Mode: mode}, "")
			tm.waitReady(t, 2, 10*time.Second)
			ld := startLoad(tm.Addrs()[0].String(), 2)
			tm.sig.Send(syscall.SIGTTIN)
			ws := tm.waitReady(t, 3, 10*time.Second)
			if ws[2].Slot != 2 || ws[2].ID != "2a" {
				t.Errorf("new worker %+v, want slot 2 id 2a", ws[2])
			}
			tm.sig.Send(syscall.SIGTTOU)
			tm.sig.Send(syscall.SIGTTOU)
			ws = tm.waitReady(t, 1, 10*time.Second)
			// Slot 1 and 2 came back: the parked sockets are reused.
			if err := tm.SetWorkers(3); err != nil {
				t.Fatal(err)
			}
			tm.waitReady(t, 3, 10*time.Second)
			tm.sig.Send(syscall.SIGTTOU)
			tm.waitReady(t, 2, 10*time.Second)
			ld.finish(t)
			tm.sig.Send(syscall.SIGTTOU)
			tm.sig.Send(syscall.SIGTTOU) // not below 1
			ws = tm.waitReady(t, 1, 10*time.Second)
			if ws[0].Slot != 0 {
				t.Errorf("remaining worker %+v, want slot 0", ws[0])
			}
			for _, e := range tm.exitsSnapshot() {
				if e.Reason != prefork.ExitScaledDown || e.Err() != nil {
					t.Errorf("exit %+v, want a clean scale-down", e)
				}
			}
		})
	}
}

func TestMaxRequestsRetiresWorker(t *testing.T) {
	t.Parallel()
	for _, mode := range modes {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			tm := startMaster(t, prefork.Config{Workers: 1, Mode: mode, MaxRequests: 20, MaxRequestsJitter: 5}, "")
			first := tm.waitReady(t, 1, 10*time.Second)[0]
			ld := startLoad(tm.Addrs()[0].String(), 2)
			testutil.EventuallyTrue(t, 20*time.Second, "two retirements", func() bool {
				n := 0
				for _, e := range tm.exitsSnapshot() {
					if e.Reason == prefork.ExitRetired {
						n++
					}
				}
				return n >= 2
			})
			ld.finish(t)
			for _, e := range tm.exitsSnapshot() {
				if e.Reason != prefork.ExitRetired || e.Err() != nil {
					t.Errorf("exit %+v, want a clean retirement", e)
				}
			}
			ws := tm.waitReady(t, 1, 10*time.Second)
			if ws[0].Restarts < 2 || ws[0].PID == first.PID {
				t.Errorf("worker after retirements %+v, want >= 2 restarts", ws[0])
			}
			wi, err := getInfo(tm.Addrs()[0].String())
			if err != nil {
				t.Fatal(err)
			}
			if wi.MaxRequests < 20 || wi.MaxRequests > 25 {
				t.Errorf("worker's max requests %d, want 20..25", wi.MaxRequests)
			}
		})
	}
}

func TestCrashLoopStopsMaster(t *testing.T) {
	t.Parallel()
	tm := startMaster(t, prefork.Config{Workers: 1, CrashLimit: 3}, "crash-after-ready")
	err := tm.wait(t, 20*time.Second)
	if !errors.Is(err, prefork.ErrRestartLimit) {
		t.Fatalf("Run = %v, want ErrRestartLimit", err)
	}
	var we *prefork.WorkerExitError
	if !errors.As(err, &we) || we.Reason != prefork.ExitCrashed {
		t.Errorf("error %v: want the last crash", err)
	}
	if n := len(tm.exitsSnapshot()); n != 4 {
		t.Errorf("%d exits, want 4 (the limit plus one)", n)
	}
}

func TestHooksAndWorkerInfo(t *testing.T) {
	t.Parallel()
	var starts, readies, reopens atomic.Int32
	tm := startMaster(t, prefork.Config{Workers: 2, Timeout: 400 * time.Millisecond, BootTimeout: 10 * time.Second, Hooks: prefork.Hooks{
		OnWorkerStart: func(prefork.WorkerEvent) { starts.Add(1) },
		OnWorkerReady: func(prefork.WorkerEvent) { readies.Add(1) },
		OnReopenLogs:  func() { reopens.Add(1) },
	}}, "")
	tm.waitReady(t, 2, 10*time.Second)
	if starts.Load() != 2 || readies.Load() != 2 {
		t.Errorf("OnWorkerStart ran %d times, OnWorkerReady %d, want 2 each", starts.Load(), readies.Load())
	}
	tm.sig.Send(syscall.SIGUSR1)
	testutil.EventuallyTrue(t, 5*time.Second, "OnReopenLogs", func() bool { return reopens.Load() == 1 })
	addr := tm.Addrs()[0].String()
	for range 10 {
		if _, err := getInfo(addr); err != nil {
			t.Fatal(err)
		}
	}
	// Heartbeats (every 100ms here) carry the request counts.
	testutil.EventuallyTrue(t, 5*time.Second, "requests reported", func() bool {
		var total uint64
		for _, w := range tm.Workers() {
			total += w.Requests
		}
		return total == 10
	})
	for _, w := range tm.Workers() {
		if w.Started.IsZero() || w.Ready.Before(w.Started) || w.LastHeartbeat.Before(w.Ready) {
			t.Errorf("worker info %+v", w)
		}
	}
}

func TestWorkerSizingAndEnvironment(t *testing.T) {
	t.Parallel()
	var environ []string
	for _, kv := range os.Environ() {
		if k := kv[:max(0, strings.IndexByte(kv, '='))]; k != "GOMAXPROCS" && k != "GOMEMLIMIT" {
			environ = append(environ, kv)
		}
	}
	environ = append(environ, "GOMEMLIMIT=1GiB", "NOTIFY_SOCKET=", "LISTEN_FDS=2", "LISTEN_PID=1")
	for _, tc := range []struct {
		name       string
		gomaxprocs int
		environ    []string
		want       int
	}{
		{"divided", 0, environ, max(1, runtime.GOMAXPROCS(0)/2)},
		{"explicit", 3, environ, 3},
		{"inherited", 0, append(slices.Clip(environ), "GOMAXPROCS=5"), 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tm := startMaster(t, prefork.Config{Workers: 2, Mode: prefork.ModeShared, GOMAXPROCS: tc.gomaxprocs, Environ: tc.environ}, "")
			tm.waitReady(t, 2, 10*time.Second)
			wi, err := getInfo(tm.Addrs()[0].String())
			if err != nil {
				t.Fatal(err)
			}
			if wi.GOMAXPROCS != tc.want {
				t.Errorf("worker GOMAXPROCS %d, want %d", wi.GOMAXPROCS, tc.want)
			}
			if wi.GOMEMLIMIT != fmt.Sprint(1<<30/2) {
				t.Errorf("worker GOMEMLIMIT %q, want half of 1GiB", wi.GOMEMLIMIT)
			}
			for _, k := range []string{"LISTEN_FDS", "LISTEN_PID", "NOTIFY_SOCKET"} {
				if v := wi.Env[k]; v != "" {
					t.Errorf("worker sees %s=%q, want it removed", k, v)
				}
			}
		})
	}
}

func TestStalledMasterKeepsWorkers(t *testing.T) {
	t.Parallel()
	sm := startSubMaster(t, masterSpec{Workers: 2, Timeout: 600 * time.Millisecond})
	before := sm.waitReady(t, 2, 10*time.Second)
	p := sm.cmd.Process
	p.Signal(syscall.SIGSTOP)
	stopped := time.Now()
	for time.Since(stopped) < 3*time.Second {
		time.Sleep(50 * time.Millisecond) // the master must stay stopped longer than its stall threshold
	}
	p.Signal(syscall.SIGCONT)
	for end := time.Now().Add(1500 * time.Millisecond); time.Now().Before(end); {
		ws, err := sm.workers()
		if err == nil && !slices.Equal(pidsOf(ws), pidsOf(before)) {
			t.Fatalf("workers %v replaced by %v after the master's own stall", pidsOf(before), pidsOf(ws))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// In reuseport mode a slot without a worker must not hold its share of new connections.
func TestDeadSlotGetsNoConnections(t *testing.T) {
	t.Parallel()
	fail := filepath.Join(t.TempDir(), "fail")
	tm := startMaster(t, prefork.Config{Workers: 3, CrashLimit: -1,
		Env: []string{"PREFORK_TEST_FAILFILE=" + fail}}, "")
	ws := tm.waitReady(t, 3, 10*time.Second)
	os.WriteFile(fail, nil, 0o600) // from now on, new workers fail to boot
	syscall.Kill(ws[1].PID, syscall.SIGKILL)
	testutil.EventuallyTrue(t, 5*time.Second, "slot 1 failing", func() bool {
		n := 0
		for _, e := range tm.exitsSnapshot() {
			if e.Reason == prefork.ExitBootFailed {
				n++
			}
		}
		return n >= 2
	})
	addr := tm.Addrs()[0].String()
	seen := map[int]int{}
	for i := range 60 {
		wi, err := getInfo(addr)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		seen[wi.Slot]++
	}
	if seen[1] != 0 || seen[0] == 0 || seen[2] == 0 {
		t.Errorf("requests per slot %v, want slots 0 and 2 only", seen)
	}
	os.Remove(fail)
	tm.waitReady(t, 3, 15*time.Second)
	clear(seen)
	testutil.EventuallyTrue(t, 10*time.Second, "every slot serving again", func() bool {
		wi, err := getInfo(addr)
		if err != nil {
			t.Fatal(err)
		}
		seen[wi.Slot]++
		return len(seen) == 3
	})
}

func TestScaleUpAbortedWhenNewWorkerFails(t *testing.T) {
	t.Parallel()
	fail := filepath.Join(t.TempDir(), "fail")
	tm := startMaster(t, prefork.Config{Workers: 2, Env: []string{"PREFORK_TEST_FAILFILE=" + fail}}, "")
	before := tm.waitReady(t, 2, 10*time.Second)
	os.WriteFile(fail, nil, 0o600)
	tm.sig.Send(syscall.SIGTTIN)
	testutil.EventuallyTrue(t, 10*time.Second, "a failed boot", func() bool {
		for _, e := range tm.exitsSnapshot() {
			if e.Reason == prefork.ExitBootFailed {
				return true
			}
		}
		return false
	})
	// The new slot is given up, not respawned until the restart limit stops
	// the master: the two old workers keep serving.
	testutil.EventuallyTrue(t, 10*time.Second, "the scale-up undone", func() bool {
		ws := tm.Workers()
		return len(ws) == 2 && slices.Equal(pidsOf(ws), pidsOf(before))
	})
	select {
	case err := <-tm.errc:
		t.Fatalf("master stopped: %v", err)
	default:
	}
	failures := 0
	for _, e := range tm.exitsSnapshot() {
		if e.Reason == prefork.ExitBootFailed {
			failures++
		}
	}
	if failures != 1 {
		t.Errorf("%d boot failures, want 1 (no respawn of the abandoned slot)", failures)
	}
	os.Remove(fail)
	tm.sig.Send(syscall.SIGTTIN)
	tm.waitReady(t, 3, 10*time.Second)
}
