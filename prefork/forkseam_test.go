package prefork_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/herdhttp/herd/internal/testutil"
	"github.com/herdhttp/herd/prefork"
)

// Sequences that need a worker start to fail or to be slow at a chosen moment, driven by the
// fork seam (prefork.SetForkForTest).

// A reload abandoned while a slot's successor is still booting must not turn the planned
// stop of that slot's old worker into a crash.
func TestAbortedReloadCountsNoPlannedStopAsCrash(t *testing.T) {
	t.Parallel()
	gate := filepath.Join(t.TempDir(), "gate")
	var slowSlot0, failSlot1 atomic.Bool
	tm := startMaster(t, prefork.Config{Workers: 2}, "", func(m *prefork.Master) {
		prefork.SetForkForTest(m, func(c *prefork.ForkCall) error {
			switch {
			case c.Slot == 0 && slowSlot0.Load():
				c.Env = append(c.Env, "PREFORK_TEST_GATE="+gate)
			case c.Slot == 1 && failSlot1.CompareAndSwap(true, false):
				return syscall.EAGAIN
			}
			return nil
		})
	})
	before := tm.waitReady(t, 2, 10*time.Second)
	slowSlot0.Store(true)
	failSlot1.Store(true)
	tm.sig.Send(syscall.SIGHUP)
	testutil.EventuallyTrue(t, 10*time.Second, "slot 0's successor started", func() bool { return len(tm.Workers()) == 3 })
	syscall.Kill(before[1].PID, syscall.SIGKILL)
	testutil.EventuallyTrue(t, 10*time.Second, "the reload aborted", func() bool {
		return strings.Contains(tm.logs.String(), "reload aborted")
	})
	os.WriteFile(gate, nil, 0o600) // let a successor still booting get ready
	var now []prefork.WorkerInfo
	testutil.EventuallyTrue(t, 15*time.Second, "two ready workers and two exits", func() bool {
		now = tm.readyWorkers(2)
		return now != nil && len(tm.exitsSnapshot()) >= 2
	})
	for _, e := range tm.exitsSnapshot() {
		if e.PID == before[1].PID {
			if e.Reason != prefork.ExitCrashed {
				t.Errorf("killed worker: exit %+v, want crashed", e)
			}
			continue
		}
		if !e.Reason.Planned() {
			t.Errorf("exit %+v counted as unplanned; only the killed worker %d crashed", e, before[1].PID)
		}
	}
	if now[0].PID != before[0].PID {
		t.Errorf("slot 0 runs pid %d, want the old worker %d (the reload was abandoned)", now[0].PID, before[0].PID)
	}
}

// A scale-up undone because its first new worker cannot start never leaves a worker running
// in a removed slot.
func TestFailedScaleUpStartsNothingInRemovedSlots(t *testing.T) {
	t.Parallel()
	var failSlot1 atomic.Bool
	var forks sync.Map // slot -> number of forks
	reopened := make(chan struct{}, 1)
	tm := startMaster(t, prefork.Config{Workers: 1, Hooks: prefork.Hooks{
		OnReopenLogs: func() { reopened <- struct{}{} },
	}}, "", func(m *prefork.Master) {
		prefork.SetForkForTest(m, func(c *prefork.ForkCall) error {
			n, _ := forks.LoadOrStore(c.Slot, new(atomic.Int32))
			n.(*atomic.Int32).Add(1)
			if c.Slot == 1 && failSlot1.CompareAndSwap(true, false) {
				return syscall.EAGAIN
			}
			return nil
		})
	})
	before := tm.waitReady(t, 1, 10*time.Second)
	failSlot1.Store(true)
	if err := tm.SetWorkers(3); err != nil {
		t.Fatal(err)
	}
	testutil.EventuallyTrue(t, 10*time.Second, "the scale-up undone", func() bool {
		return strings.Contains(tm.logs.String(), "scale-up aborted")
	})
	// The supervisor handles the signal after the pass that undid the scale-up.
	tm.sig.Send(syscall.SIGUSR1)
	select {
	case <-reopened:
	case <-time.After(10 * time.Second):
		t.Fatal("OnReopenLogs did not run")
	}
	if n, ok := forks.Load(2); ok {
		t.Errorf("slot 2 forked %d times after its removal", n.(*atomic.Int32).Load())
	}
	if ws := tm.Workers(); len(ws) != 1 || ws[0].PID != before[0].PID {
		t.Errorf("workers %+v, want only the first one (pid %d)", ws, before[0].PID)
	}
	if err := tm.SetWorkers(3); err != nil {
		t.Fatal(err)
	}
	tm.waitReady(t, 3, 15*time.Second)
}

// Once a boot failure has begun the stop, the master forks nothing more.
func TestNoForkAfterFatalBootFailure(t *testing.T) {
	t.Parallel()
	var forks atomic.Int32
	tm := startMaster(t, prefork.Config{Workers: 3}, "", func(m *prefork.Master) {
		prefork.SetForkForTest(m, func(c *prefork.ForkCall) error {
			forks.Add(1)
			if c.Slot == 0 {
				return syscall.EAGAIN
			}
			return nil
		})
	})
	err := tm.wait(t, 15*time.Second)
	if !errors.Is(err, prefork.ErrBootFailed) || !errors.Is(err, syscall.EAGAIN) {
		t.Errorf("Run = %v, want ErrBootFailed wrapping EAGAIN", err)
	}
	if n := forks.Load(); n != 1 {
		t.Errorf("%d forks, want 1: nothing after the failure that stopped the master", n)
	}
	if ex := tm.exitsSnapshot(); len(ex) != 0 {
		t.Errorf("exits %+v, want none: no worker was to be started", ex)
	}
}
