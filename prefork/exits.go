package prefork

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"golang.org/x/sys/unix"
)

// Reaping workers and accounting for their exits: planned exits are logged, unplanned ones
// count toward the crash limit and delay the slot's next start.

// reap collects every exited worker (and, as PID 1, every other exited child).
func (s *supervisor) reap(now time.Time) {
	s.needReap, s.lastReap = false, now
	if s.pid1 {
		for {
			var ws unix.WaitStatus
			pid, err := s.env.wait4(-1, &ws, unix.WNOHANG)
			if pid <= 0 || err != nil {
				break
			}
			if i := slices.IndexFunc(s.workers, func(w *worker) bool { return w.pid == pid }); i >= 0 {
				s.exited(s.workers[i], ws, now)
			}
		}
	}
	for _, w := range slices.Clone(s.workers) {
		var ws unix.WaitStatus
		pid, err := s.env.wait4(w.pid, &ws, unix.WNOHANG)
		switch {
		case err != nil && errors.Is(err, unix.ECHILD):
			// Someone else reaped it (a wait4(-1) outside this package).
			s.log.Error("worker reaped elsewhere", w.attrs()...)
			s.exited(w, unix.WaitStatus(0xff00), now)
		case err == nil && pid == w.pid:
			s.exited(w, ws, now)
		}
	}
}

// exited handles a reaped worker.
func (s *supervisor) exited(w *worker, ws unix.WaitStatus, now time.Time) {
	s.workers = slices.DeleteFunc(s.workers, func(x *worker) bool { return x == w })
	w.status.Close()
	w.lifeline.Close()
	s.reserve.fill() // before a neighbour takes the descriptors just freed
	sl := w.slot
	if sl.active == w {
		sl.active = nil
	}
	if sl.successor == w {
		sl.successor = nil
	}
	e := WorkerExit{
		Slot: sl.index, ID: w.id, PID: w.pid, Reason: w.stopReason,
		Status: -1, Killed: w.killed, Started: w.started, Ran: now.Sub(w.started),
		Ready: !w.readyAt.IsZero(),
	}
	switch {
	case ws.Exited():
		e.Status = ws.ExitStatus()
	case ws.Signaled():
		e.Signal = ws.Signal()
	}
	if e.Reason == "" {
		if e.Ready {
			e.Reason = ExitCrashed
		} else {
			e.Reason = ExitBootFailed
		}
	}
	attrs := append(w.attrs(), "reason", string(e.Reason), "ran", e.Ran.Round(time.Millisecond))
	if err := e.Err(); err != nil {
		attrs = append(attrs, "err", err)
	}
	if e.Reason.Planned() {
		s.log.Info("worker exited", attrs...)
	} else {
		s.log.Error("worker exited", attrs...)
	}
	if h := s.cfg.Hooks.OnWorkerExit; h != nil {
		h(e)
	}
	if e.Reason.Planned() || s.stopping {
		return
	}
	if !w.readyAt.IsZero() && now.Sub(w.readyAt) >= stableAfter {
		sl.crashes = 0
	}
	s.failed(sl, now, e.Reason, e.Err())
}

// failed accounts for an unplanned exit (or a failure to start) in sl.
func (s *supervisor) failed(sl *slot, now time.Time, reason ExitReason, err error) {
	if reason == ExitBootFailed {
		if !s.booted {
			s.fatal(fmt.Errorf("%w: %w", ErrBootFailed, err))
			return
		}
		if !s.reloading && !sl.served && sl.index < s.n && sl.index > 0 {
			// A slot added by TTIN or SetWorkers whose first worker cannot
			// boot (a full metrics filesystem, say): undo the scale-up
			// instead of crash-looping until the restart limit stops the
			// whole service.
			s.log.Error("scale-up aborted: a new worker failed to boot; the other workers keep serving", "worker", sl.index, "err", err)
			s.setWorkers(sl.index)
			return
		}
		s.abortReload(err)
	}
	s.failures = append(s.failures, now)
	cut := now.Add(-s.cfg.CrashWindow)
	s.failures = slices.DeleteFunc(s.failures, func(t time.Time) bool { return !t.After(cut) })
	if s.cfg.crashLimit > 0 && len(s.failures) > s.cfg.crashLimit {
		s.fatal(fmt.Errorf("%w: %d worker failures within %v, last: %w", ErrRestartLimit, len(s.failures), s.cfg.CrashWindow, err))
		return
	}
	if sl.index >= s.n {
		return // a removed slot: nothing to respawn
	}
	sl.crashes++
	d := time.Duration(0)
	if sl.crashes > 1 {
		d = min(backoffBase<<min(sl.crashes-2, 20), backoffMax)
	}
	sl.respawnAt = now.Add(d)
	if d > 0 {
		s.log.Warn("respawn delayed", "worker", sl.index, "delay", d, "consecutive_failures", sl.crashes)
	}
}
