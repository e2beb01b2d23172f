package prefork

import "time"

// The supervisor's pass over its workers and slots: deadlines (boot, heartbeat, drain), and
// starting the workers the slots lack.

// step acts on deadlines and brings the slots to their desired state.
func (s *supervisor) step(now time.Time) {
	for _, w := range s.workers {
		if !w.stopAt.IsZero() && !now.Before(w.stopAt) && (w.state == StateStarting || w.state == StateReady) {
			s.stop(w, w.stopAtReason)
		}
		switch w.state {
		case StateStarting:
			if !now.Before(w.bootDeadline) {
				s.log.Warn("worker not ready in time, killing", append(w.attrs(), "boot_timeout", s.cfg.BootTimeout)...)
				s.kill(w, ExitBootFailed)
			}
		case StateReady:
			if now.Sub(w.lastBeat) >= s.cfg.Timeout {
				s.askStacks(w, now)
			}
		case StateStopping:
			if now.Before(w.killDeadline) {
				break
			}
			if w.askedStacks.Load() {
				s.log.Warn("worker did not exit after SIGABRT, killing: no goroutine stacks", append(w.attrs(), "waited", stackWait)...)
			} else {
				s.log.Warn("worker did not stop in time, killing", append(w.attrs(), "graceful_timeout", s.cfg.GracefulTimeout)...)
			}
			s.kill(w, w.stopReason)
		}
	}
	if s.cfg.watchdog > 0 && !now.Before(s.nextDog) {
		s.notify.send("WATCHDOG=1")
		s.nextDog = now.Add(s.cfg.watchdog / 2)
	}
	if s.stopping {
		return
	}
	s.checkAges(now)
	s.stepReload(now)
	// A failed start can shrink s.n (an undone scale-up) or begin the stop (a boot failure
	// at start-up): both are checked again before every spawn.
	for i := 0; i < s.n && !s.stopping; i++ {
		sl := s.slots[i]
		if sl.active == nil && sl.successor != nil {
			// The worker being replaced died first: its successor takes over.
			sl.active, sl.successor, sl.replace = sl.successor, nil, ""
		}
		if now.Before(sl.respawnAt) {
			continue
		}
		switch {
		case sl.active == nil:
			sl.active = s.spawn(sl, now)
		case sl.replace != "" && sl.successor == nil && sl.active.state == StateReady && !s.upgradeHolds():
			sl.successor = s.spawn(sl, now)
		}
	}
}

// forgiveStall restarts the heartbeat and boot deadlines when the supervisor itself did not
// run for a while (the master was stopped, its machine paused, a hook blocked): the workers'
// heartbeats are waiting in the pipes, and killing every worker for the master's own stall
// would be wrong. The loop normally wakes at least every reapPoll while workers run.
func (s *supervisor) forgiveStall(now time.Time) {
	last := s.lastIter
	s.lastIter = now
	stall := now.Sub(last)
	if last.IsZero() || stall < 2*reapPoll+s.cfg.heartbeat || len(s.workers) == 0 {
		return
	}
	s.log.Warn("supervisor was stalled; restarting heartbeat deadlines", "stall", stall.Round(time.Millisecond))
	for _, w := range s.workers {
		switch w.state {
		case StateReady:
			w.lastBeat = now
		case StateStarting:
			w.bootDeadline = w.bootDeadline.Add(stall)
		}
	}
}

// nextDeadline returns when the supervisor must next act without an event.
func (s *supervisor) nextDeadline(now time.Time) time.Time {
	next := now.Add(time.Hour)
	if len(s.workers) > 0 {
		next = s.lastReap.Add(reapPoll)
	}
	earlier := func(t time.Time) {
		if t.Before(next) {
			next = t
		}
	}
	for _, w := range s.workers {
		if !w.stopAt.IsZero() && (w.state == StateStarting || w.state == StateReady) {
			earlier(w.stopAt)
		}
		switch w.state {
		case StateStarting:
			earlier(w.bootDeadline)
		case StateReady:
			earlier(w.lastBeat.Add(s.cfg.Timeout))
		case StateStopping:
			earlier(w.killDeadline)
		}
	}
	s.ageDeadlines(earlier)
	if !s.up.takeOverBy.IsZero() && !s.up.taken {
		earlier(s.up.takeOverBy)
	}
	if s.reloading && s.canary.w != nil {
		earlier(s.canary.until)
	}
	if !s.stopping {
		for _, sl := range s.slots[:s.n] {
			if sl.respawnAt.After(now) {
				earlier(sl.respawnAt)
			}
		}
	}
	if s.cfg.watchdog > 0 {
		earlier(s.nextDog)
	}
	return next
}

// spawn starts a worker in sl, or schedules a retry after a failure to start. It returns
// the worker or nil.
func (s *supervisor) spawn(sl *slot, now time.Time) *worker {
	lane, ok := s.freeLane(sl)
	if !ok {
		return nil // both lanes busy: wait until one of them is reaped
	}
	s.reserve.release()
	w, err := s.startProcess(sl, lane, now)
	s.reserve.fill()
	if err != nil && noFDs(err) {
		s.startDeferred(sl, now, err)
		return nil
	}
	sl.fdRetries = 0
	if err != nil {
		s.log.Error("cannot start worker", "worker", sl.index, "err", err)
		s.failed(sl, now, ExitBootFailed, err)
		return nil
	}
	w.maxAge = s.maxAge()
	s.noteStart(sl, w)
	sl.starts++
	sl.lastLane = lane
	s.workers = append(s.workers, w)
	s.log.Info("worker started", w.attrs()...)
	if h := s.cfg.Hooks.OnWorkerStart; h != nil {
		h(WorkerEvent{Slot: sl.index, ID: w.id, PID: w.pid})
	}
	return w
}

// freeLane picks the lane for a new worker of sl: the lane not used by a live worker of the
// slot, preferring the lane of the slot's previous worker (a worker that replaces a dead one
// takes over its ID, and so its metric files).
func (s *supervisor) freeLane(sl *slot) (byte, bool) {
	busy := map[byte]bool{}
	for _, w := range s.workers {
		if w.slot == sl {
			busy[w.lane] = true
		}
	}
	for _, l := range []byte{sl.lastLane, 'a' + 'b' - sl.lastLane} {
		if !busy[l] {
			return l, true
		}
	}
	return 0, false
}
