package prefork

import (
	"errors"
	"fmt"
	"syscall"
	"time"
)

// WorkerState is the life-cycle state of a worker process.
type WorkerState string

const (
	StateStarting WorkerState = "starting" // started, not ready yet
	StateReady    WorkerState = "ready"    // serving, heartbeating
	StateStopping WorkerState = "stopping" // told to stop (SIGTERM), draining
	StateKilled   WorkerState = "killed"   // sent SIGKILL, not reaped yet
)

// WorkerStates returns every WorkerState, in life-cycle order.
func WorkerStates() []WorkerState {
	return []WorkerState{StateStarting, StateReady, StateStopping, StateKilled}
}

// WorkerInfo describes one live worker process (see Master.Workers).
type WorkerInfo struct {
	Slot          int         `json:"slot"`
	ID            string      `json:"id"`
	PID           int         `json:"pid"`
	State         WorkerState `json:"state"`
	Started       time.Time   `json:"started"`
	Ready         time.Time   `json:"ready,omitzero"`
	Restarts      int         `json:"restarts"`  // workers the slot started before this one
	Requests      uint64      `json:"requests"`  // as of the last heartbeat
	InFlight      int         `json:"in_flight"` // requests being handled, as of the last heartbeat
	LastHeartbeat time.Time   `json:"last_heartbeat,omitzero"`
	RSS           uint64      `json:"rss_bytes,omitzero"` // resident memory as of the last heartbeat; 0: not known
	// CPUSeconds is the CPU time, user and system, that the worker has used, as of the last
	// heartbeat (from /proc/PID/stat, in steps of 1/100 s); 0 until then. AgeSeconds is how
	// long it has run (since Started) when Workers was called.
	CPUSeconds float64 `json:"cpu_seconds"`
	AgeSeconds float64 `json:"age_seconds"`
	// QueueLength is the number of connections waiting on the worker's slot to be accepted
	// (in ModeShared: on the queue every worker shares), read from the kernel when Workers
	// is called; QueueLimit is that queue's backlog, 0 when unknown. See ListenQueues.
	QueueLength int `json:"queue_length"`
	QueueLimit  int `json:"queue_limit"`
}

// Counters are running totals of a master's supervision, for its metrics (Master.Counters).
type Counters struct {
	// FDExhausted counts worker starts that failed because the master's process or the
	// system had no file descriptor left (EMFILE, ENFILE) for the worker's pipes or the
	// fork, and new slots (SIGTTIN, SetWorkers) whose sockets could not be opened for the
	// same reason. Such a start is retried with backoff and never counts toward CrashLimit;
	// such a slot is not added.
	FDExhausted uint64 `json:"fd_exhausted"`
	// Reloads that ended, by outcome: every slot replaced (ok); rolled back, the canary
	// judged worse than the old workers or stopped, hung or failed to boot during its
	// window (Config.ReloadCanary); aborted without a canary, a new worker failed to boot
	// and the slots not replaced yet keep their old workers, or refused, the new executable
	// could not be opened. A reload superseded by another one is not counted.
	ReloadsOK         uint64 `json:"reloads_ok"`
	ReloadsRolledBack uint64 `json:"reloads_rolled_back"`
	ReloadsAborted    uint64 `json:"reloads_aborted"`
}

// ExitReason says why a worker process ended.
type ExitReason string

const (
	// Unplanned: these count toward Config.CrashLimit.
	ExitCrashed    ExitReason = "crashed"     // exited on its own after it was ready
	ExitBootFailed ExitReason = "boot-failed" // exited, or was killed after BootTimeout, before it was ready
	ExitTimeout    ExitReason = "timeout"     // its heartbeat stopped for Timeout: sent SIGABRT for its stacks, killed 2s later (a stopped one at once)
	// Planned: these never count.
	ExitShutdown   ExitReason = "shutdown"    // the master stopped
	ExitReloaded   ExitReason = "reloaded"    // replaced by a rolling restart (HUP, Reload), or started by one that was abandoned
	ExitRetired    ExitReason = "retired"     // replaced after Retire (max requests)
	ExitScaledDown ExitReason = "scaled-down" // its slot was removed (TTOU, SetWorkers)
	ExitRSS        ExitReason = "rss"         // replaced: its resident memory went above MaxWorkerRSS
	ExitAge        ExitReason = "age"         // replaced: it reached MaxWorkerAge (plus jitter)
	ExitRolledBack ExitReason = "rolled-back" // a reload's canary, or a worker of its executable, stopped as the reload was rolled back
)

// ExitReasons returns every ExitReason, the unplanned ones first.
func ExitReasons() []ExitReason {
	return []ExitReason{ExitCrashed, ExitBootFailed, ExitTimeout, ExitShutdown, ExitReloaded, ExitRetired, ExitScaledDown, ExitRSS, ExitAge, ExitRolledBack}
}

// Planned reports whether the master asked for this exit.
func (r ExitReason) Planned() bool {
	switch r {
	case ExitShutdown, ExitReloaded, ExitRetired, ExitScaledDown, ExitRSS, ExitAge, ExitRolledBack:
		return true
	}
	return false
}

// WorkerExit describes a reaped worker (Hooks.OnWorkerExit).
type WorkerExit struct {
	Slot    int
	ID      string
	PID     int
	Reason  ExitReason
	Status  int            // exit status, or -1 when killed by a signal
	Signal  syscall.Signal // the signal that killed it, or 0
	Killed  bool           // the master sent SIGKILL (timeout, or a drain longer than GracefulTimeout)
	Started time.Time
	Ran     time.Duration
	Ready   bool // it had reported ready
}

// Err returns nil for a clean planned exit (status 0), otherwise an error describing it.
func (e WorkerExit) Err() error {
	if e.Reason.Planned() && e.Status == 0 && !e.Killed {
		return nil
	}
	return &WorkerExitError{Slot: e.Slot, ID: e.ID, PID: e.PID, Reason: e.Reason, How: e.how()}
}

func (e WorkerExit) how() string {
	s := ""
	switch {
	case e.Signal != 0:
		s = "killed by signal " + e.Signal.String()
	default:
		s = fmt.Sprintf("exited with status %d", e.Status)
	}
	if e.Killed {
		switch e.Reason {
		case ExitTimeout:
			s += " (no heartbeat)"
		case ExitBootFailed:
			s += " (boot timeout)"
		default:
			s += " (graceful timeout)"
		}
	}
	return s
}

// WorkerExitError describes a worker that did not end well. Run's errors wrap one.
type WorkerExitError struct {
	Slot   int
	ID     string
	PID    int
	Reason ExitReason
	How    string // "exited with status 1", "killed by signal killed (boot timeout)"
}

func (e *WorkerExitError) Error() string {
	return fmt.Sprintf("worker %d (id %s, pid %d) %s: %s", e.Slot, e.ID, e.PID, e.Reason, e.How)
}

// Errors returned by Run (wrapped, with the worker that caused them: use errors.Is).
var (
	// ErrBootFailed: a worker exited or timed out before it was ready while the master was
	// starting up. Like gunicorn's "Worker failed to boot", the master stops instead of
	// respawning a worker that cannot start. (After start-up, boot failures are respawned
	// with backoff and count toward the crash limit; during a rolling restart they abort
	// the restart and the old workers keep serving.)
	ErrBootFailed = errors.New("prefork: worker failed to boot")
	// ErrRestartLimit: more than Config.CrashLimit unplanned worker exits within
	// Config.CrashWindow.
	ErrRestartLimit = errors.New("prefork: restart limit exceeded")
	// ErrRunTwice: Run was called more than once, or after Close.
	ErrRunTwice = errors.New("prefork: master already run or closed")
)

// info describes w.
func (w *worker) info() WorkerInfo {
	return WorkerInfo{
		Slot: w.slot.index, ID: w.id, PID: w.pid, State: w.state,
		Started: w.started, Ready: w.readyAt, Restarts: w.restarts,
		Requests: w.requests, InFlight: w.inFlight, LastHeartbeat: w.lastBeat, RSS: w.rss,
		CPUSeconds: w.cpu,
	}
}
