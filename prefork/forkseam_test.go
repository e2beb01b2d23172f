package prefork_test

import (
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

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
	waitFor(t, 10*time.Second, "slot 0's successor started", func() bool { return len(tm.Workers()) == 3 })
	syscall.Kill(before[1].PID, syscall.SIGKILL)
	waitFor(t, 10*time.Second, "the reload aborted", func() bool {
		return strings.Contains(tm.logs.String(), "reload aborted")
	})
	os.WriteFile(gate, nil, 0o600) // let a successor still booting get ready
	var now []prefork.WorkerInfo
	waitFor(t, 15*time.Second, "two ready workers and two exits", func() bool {
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
