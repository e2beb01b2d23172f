package prefork

import (
	"errors"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Stopping workers (SIGTERM, then SIGKILL after GracefulTimeout) and the master.

// stop tells w to stop gracefully (SIGTERM), to be killed after GracefulTimeout.
func (s *supervisor) stop(w *worker, reason ExitReason) {
	if w.state == StateStopping || w.state == StateKilled {
		return
	}
	if w.stopReason == "" {
		w.stopReason = reason
	}
	w.state = StateStopping
	w.killDeadline = s.env.now().Add(s.cfg.GracefulTimeout)
	s.log.Info("stopping worker", append(w.attrs(), "reason", string(reason))...)
	s.signal(w, syscall.SIGTERM)
}

// stopAfter stops w at time at (now or later).
func (s *supervisor) stopAfter(w *worker, reason ExitReason, at time.Time) {
	if !at.After(s.env.now()) {
		s.stop(w, reason)
		return
	}
	w.stopAt, w.stopAtReason = at, reason
}

// kill sends SIGKILL to w.
func (s *supervisor) kill(w *worker, reason ExitReason) {
	if w.state == StateKilled {
		return
	}
	if w.stopReason == "" {
		w.stopReason = reason
	}
	w.state, w.killed = StateKilled, true
	s.signal(w, syscall.SIGKILL)
}

// signal sends sig to w. The pid cannot have been reused: only the supervisor reaps, and w
// is not reaped yet.
func (s *supervisor) signal(w *worker, sig syscall.Signal) {
	if err := s.env.kill(w.pid, sig); err != nil && !errors.Is(err, unix.ESRCH) {
		s.log.Error("cannot signal worker", append(w.attrs(), "signal", sig.String(), "err", err)...)
	}
}

// beginStop stops every worker: gracefully, or at once when immediate.
func (s *supervisor) beginStop(immediate bool) {
	if s.stopping && (!immediate || s.killAll) {
		return
	}
	if !s.stopping {
		s.notify.send("STOPPING=1")
		// Closing the master's copies of the sockets lets them close as soon as the
		// workers close theirs, so that new connections are refused rather than queued
		// for nobody.
		s.m.closeFDs()
	}
	s.stopping = true
	s.killAll = s.killAll || immediate
	for _, w := range s.workers {
		if immediate {
			s.kill(w, ExitShutdown)
		} else {
			s.stop(w, ExitShutdown)
		}
	}
	for _, sl := range s.slots {
		sl.active, sl.successor, sl.replace = nil, nil, ""
	}
}

// fatal stops the master gracefully; Run will return err.
func (s *supervisor) fatal(err error) {
	if s.err == nil {
		s.err = err
	}
	s.beginStop(false)
}
