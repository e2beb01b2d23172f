package prefork_test

import (
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/herdhttp/herd/internal/testutil"
	"github.com/herdhttp/herd/prefork"
)

func TestWorkersAreDistinctChildren(t *testing.T) {
	t.Parallel()
	for _, mode := range []prefork.ListenerMode{prefork.ModeReusePort, prefork.ModeShared} {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			tm := startMaster(t, prefork.Config{Workers: 3, Mode: mode, Env: []string{"PREFORK_TEST_EXTRA=x"}}, "")
			ws := tm.waitReady(t, 3, 10*time.Second)
			pids := map[int]bool{}
			for i, w := range ws {
				if w.Slot != i || w.ID != string(rune('0'+i))+"a" {
					t.Errorf("worker %d: slot %d id %q, want slot %d id %da", i, w.Slot, w.ID, i, i)
				}
				if pids[w.PID] {
					t.Errorf("pid %d twice", w.PID)
				}
				pids[w.PID] = true
				if _, ppid := procState(w.PID); ppid != os.Getpid() {
					t.Errorf("worker pid %d has parent %d, want the master %d", w.PID, ppid, os.Getpid())
				}
			}
			// Every worker serves on the one address, and sees its own identity.
			addr := tm.Addrs()[0].String()
			seen := map[int]bool{}
			testutil.EventuallyTrue(t, 10*time.Second, "answers from every worker", func() bool {
				wi, err := getInfo(addr)
				if err != nil {
					t.Fatal(err)
				}
				if !pids[wi.PID] || wi.PPID != os.Getpid() || wi.Marker != "" || wi.Extra != "x" {
					t.Fatalf("unexpected worker answer %+v", wi)
				}
				if wi.ID != string(rune('0'+wi.Slot))+"a" {
					t.Fatalf("worker answer %+v: id does not match slot", wi)
				}
				seen[wi.PID] = true
				return len(seen) == 3
			})
		})
	}
}

func TestGracefulStopLeavesNothing(t *testing.T) {
	t.Parallel()
	tm := startMaster(t, prefork.Config{Workers: 2}, "")
	ws := tm.waitReady(t, 2, 10*time.Second)
	tm.stop()
	if err := tm.wait(t, 10*time.Second); err != nil {
		t.Fatalf("Run: %v", err)
	}
	for _, w := range ws {
		if !gone(w.PID) {
			t.Errorf("worker %d still running", w.PID)
		}
	}
	for _, e := range tm.exitsSnapshot() {
		if e.Reason != prefork.ExitShutdown || e.Err() != nil {
			t.Errorf("exit %+v: want a clean shutdown", e)
		}
	}
	if _, err := getInfo(tm.Addrs()[0].String()); err == nil {
		t.Error("the address still accepts after the master stopped")
	}
}

func TestKilledWorkerIsRespawned(t *testing.T) {
	t.Parallel()
	tm := startMaster(t, prefork.Config{Workers: 2}, "")
	ws := tm.waitReady(t, 2, 10*time.Second)
	victim := ws[1]
	killed := time.Now()
	syscall.Kill(victim.PID, syscall.SIGKILL)
	var now []prefork.WorkerInfo
	testutil.EventuallyTrue(t, 5*time.Second, "slot 1 respawned", func() bool {
		now = tm.readyWorkers(2)
		return now != nil && now[1].PID != victim.PID
	})
	// The first respawn waits for no backoff: the time is the new worker's
	// boot, well under a second on an idle machine (3 s leaves room for a
	// loaded one; the backoff after repeated crashes is longer).
	if d := time.Since(killed); d > 3*time.Second {
		t.Errorf("replacement ready after %v, want < 3s", d)
	}
	if now[1].ID != victim.ID || now[1].Restarts != 1 || now[0].PID != ws[0].PID {
		t.Errorf("after respawn: %+v, want slot 1 with id %s and 1 restart, slot 0 untouched", now, victim.ID)
	}
	ex := tm.exitsSnapshot()
	if len(ex) != 1 || ex[0].PID != victim.PID || ex[0].Reason != prefork.ExitCrashed || ex[0].Signal != syscall.SIGKILL {
		t.Errorf("exits %+v, want one crash by SIGKILL of pid %d", ex, victim.PID)
	}
}

func TestBootFailureStopsMaster(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		behavior    string
		bootTimeout time.Duration
		how         string
	}{
		{"exit-before-ready", 20 * time.Second, "exited with status 1"},
		{"hang-before-ready", 500 * time.Millisecond, "boot timeout"},
	} {
		t.Run(tc.behavior, func(t *testing.T) {
			t.Parallel()
			tm := startMaster(t, prefork.Config{Workers: 2, BootTimeout: tc.bootTimeout}, tc.behavior)
			err := tm.wait(t, 10*time.Second)
			if !errors.Is(err, prefork.ErrBootFailed) {
				t.Fatalf("Run = %v, want ErrBootFailed", err)
			}
			if msg := err.Error(); !strings.HasPrefix(msg, "prefork: worker failed to boot: worker ") || !strings.Contains(msg, tc.how) {
				t.Errorf("error %q: want the worker and %q", msg, tc.how)
			}
			var we *prefork.WorkerExitError
			if !errors.As(err, &we) || we.Reason != prefork.ExitBootFailed {
				t.Errorf("error %v does not wrap a boot-failed WorkerExitError", err)
			}
		})
	}
}

func TestSubprocessMasterSIGTERM(t *testing.T) {
	t.Parallel()
	sm := startSubMaster(t, masterSpec{Workers: 2})
	ws := sm.waitReady(t, 2, 10*time.Second)
	for _, w := range ws {
		if _, ppid := procState(w.PID); ppid != sm.cmd.Process.Pid {
			t.Errorf("worker %d: parent %d, want master %d", w.PID, ppid, sm.cmd.Process.Pid)
		}
	}
	sm.cmd.Process.Signal(syscall.SIGTERM)
	if code := sm.exitCode(t, 10*time.Second); code != 0 {
		t.Errorf("master exit status %d, want 0", code)
	}
	for _, w := range ws {
		if !gone(w.PID) {
			t.Errorf("worker %d still running after the master exited", w.PID)
		}
	}
}

func TestMasterKilledWorkersExit(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"reuseport", "shared"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			sm := startSubMaster(t, masterSpec{Workers: 3, Mode: mode})
			ws := sm.waitReady(t, 3, 10*time.Second)
			sm.cmd.Process.Kill()
			killed := time.Now()
			testutil.EventuallyTrue(t, 5*time.Second, "workers gone", func() bool {
				for _, w := range ws {
					if !gone(w.PID) {
						return false
					}
				}
				return true
			})
			// Pdeathsig ends them at once (milliseconds on an idle
			// machine); the lifeline pipe within OrphanTimeout (1 s). 3 s
			// leaves room for a loaded machine.
			if d := time.Since(killed); d > 3*time.Second {
				t.Errorf("workers gone %v after the master was killed, want < 3s", d)
			}
		})
	}
}
