package prefork_test

import (
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/herdhttp/herd/internal/testutil"
	"github.com/herdhttp/herd/prefork"
)

// A worker whose heartbeat stops is asked for its goroutine stacks, which the master logs,
// and is killed if it has not exited 2s later. Whatever a worker prints as it dies (a panic,
// a fatal error) reaches the master's log too, and its stderr as before.

// logLine returns the first line of log with msg and pid, or "".
func logLine(log, msg string, pid int) string {
	re := regexp.MustCompile(`(?m)^.*msg="` + regexp.QuoteMeta(msg) + `".* pid=` + strconv.Itoa(pid) + ` .*$`)
	return re.FindString(log)
}

func TestHungWorkerIsReplacedAndItsStacksLogged(t *testing.T) {
	t.Parallel()
	tm := startMaster(t, prefork.Config{Workers: 1, Timeout: 600 * time.Millisecond, BootTimeout: 10 * time.Second, CrashLimit: -1},
		"hang-after-ready")
	victim := tm.waitReady(t, 1, 10*time.Second)[0]
	var ex []prefork.WorkerExit
	testutil.EventuallyTrue(t, 15*time.Second, "the hung worker's exit", func() bool {
		ex = tm.exitsSnapshot()
		return len(ex) > 0
	})
	if e := ex[0]; e.PID != victim.PID || e.Reason != prefork.ExitTimeout || e.Status != 2 || e.Killed {
		t.Errorf("exit %+v, want pid %d's timeout, exited with status 2 after its stack dump", e, victim.PID)
	}
	var line string
	testutil.EventuallyTrue(t, 5*time.Second, "the stacks in the master's log", func() bool {
		line = logLine(tm.logs.String(), "worker goroutine stacks", victim.PID)
		return line != ""
	})
	if !strings.Contains(line, "worker=0 ") || !strings.Contains(line, `SIGABRT: abort`) || !strings.Contains(line, `goroutine `) ||
		!strings.Contains(line, "prefork.(*WorkerProcess).beat") || !strings.Contains(line, "runTestWorker.func") {
		t.Errorf("stack dump line lacks the slot, the signal or the goroutines: %.2000s", line)
	}
}

// A stopped worker cannot print anything: it is killed at once, as it would block its
// slot's queued connections for nothing.
func TestStoppedWorkerIsKilledAtOnce(t *testing.T) {
	t.Parallel()
	tm := startMaster(t, prefork.Config{Workers: 2, Timeout: 600 * time.Millisecond, BootTimeout: 10 * time.Second}, "")
	ws := tm.waitReady(t, 2, 10*time.Second)
	victim := ws[0]
	// The timeout runs from the last heartbeat the master gets from the victim: this one,
	// as the master saw it just before the stop, or a later one.
	var last time.Time
	for _, w := range tm.Workers() {
		if w.PID == victim.PID {
			last = w.LastHeartbeat
		}
	}
	syscall.Kill(victim.PID, syscall.SIGSTOP)
	t.Cleanup(func() { syscall.Kill(victim.PID, syscall.SIGCONT) })
	testutil.EventuallyTrue(t, 10*time.Second, "the stopped worker replaced", func() bool {
		now := tm.readyWorkers(2)
		return now != nil && now[0].PID != victim.PID
	})
	if d := time.Since(last); last.IsZero() || d < 600*time.Millisecond {
		t.Errorf("replaced %v after the victim's last heartbeat (%v), before the timeout", d, last)
	}
	if !gone(victim.PID) {
		t.Errorf("stopped worker %d still exists", victim.PID)
	}
	ex := tm.exitsSnapshot()
	if len(ex) != 1 || ex[0].Reason != prefork.ExitTimeout || !ex[0].Killed || ex[0].Signal != syscall.SIGKILL {
		t.Errorf("exits %+v, want one timeout kill", ex)
	}
	if logLine(tm.logs.String(), "worker heartbeat timeout; it is stopped, so it cannot print its goroutine stacks; killing", victim.PID) == "" {
		t.Errorf("no log line saying the stopped worker could not be asked")
	}
}

func TestHungWorkerThatDoesNotDumpIsKilled(t *testing.T) {
	t.Parallel()
	tm := startMaster(t, prefork.Config{Workers: 1, Timeout: 400 * time.Millisecond, BootTimeout: 10 * time.Second, CrashLimit: -1},
		"hang-ignore-abort")
	w := tm.waitReady(t, 1, 10*time.Second)[0]
	var ex []prefork.WorkerExit
	testutil.EventuallyTrue(t, 15*time.Second, "the hung worker's exit", func() bool {
		ex = tm.exitsSnapshot()
		return len(ex) > 0
	})
	e := ex[0]
	if e.PID != w.PID || e.Reason != prefork.ExitTimeout || !e.Killed || e.Signal != syscall.SIGKILL {
		t.Errorf("exit %+v, want pid %d killed by SIGKILL for its timeout", e, w.PID)
	}
	if min := w.Ready.Sub(w.Started) + 400*time.Millisecond + 2*time.Second; e.Ran < min {
		t.Errorf("killed after %v, want at least %v (ready, timeout, then 2s for the stacks)", e.Ran, min)
	}
	if logLine(tm.logs.String(), "worker did not exit after SIGABRT, killing: no goroutine stacks", w.PID) == "" {
		t.Errorf("no log line saying the stacks could not be had")
	}
}

// A worker's panic is in the master's log, tagged with the worker, and still on stderr.
func TestWorkerPanicReachesMasterLogAndStderr(t *testing.T) {
	t.Parallel()
	sm := startSubMaster(t, masterSpec{Workers: 1, Behavior: "panic-after-ready"})
	re := regexp.MustCompile(`(?m)^.*msg="worker crash output" worker=0 id=0a pid=(\d+) .*$`)
	var line string
	testutil.EventuallyTrue(t, 15*time.Second, "the panic in the master's log", func() bool {
		line = re.FindString(sm.stderr.String())
		return line != ""
	})
	if !strings.Contains(line, `panic: test worker: panicking on purpose\n\ngoroutine `) {
		t.Errorf("crash output line without the panic: %.2000s", line)
	}
	// The worker writes to the master's stderr directly; the runtime prints a panic in
	// several writes, so the master's own log lines (one write each) may fall between them.
	masterLines := regexp.MustCompile(`time=\S+ level=[A-Z]+ msg=[^\n]*\n`)
	panicked := regexp.MustCompile(`(?m)^panic: test worker: panicking on purpose\n\ngoroutine `)
	if worker := masterLines.ReplaceAllString(sm.stderr.String(), ""); !panicked.MatchString(worker) {
		t.Errorf("the worker's panic did not reach stderr unchanged:\n%.3000s", sm.stderr.String())
	}
}
