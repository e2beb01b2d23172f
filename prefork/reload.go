package prefork

import (
	"fmt"
	"time"
)

// Rolling restarts (SIGHUP, Master.Reload): one slot at a time, each new worker ready before
// its predecessor is told to stop.

// startReload begins a rolling restart of every slot.
func (s *supervisor) startReload() {
	if s.stopping {
		return
	}
	if s.cfg.ReloadCanary > 0 && !s.beginTrial() {
		return
	}
	s.gen++
	if s.cfg.ReloadCanary > 0 {
		s.log.Info("reloading: one canary slot first, then a rolling restart", "workers", s.n, "generation", s.gen, "window", s.cfg.ReloadCanary)
	} else {
		s.log.Info("reloading: rolling restart", "workers", s.n, "generation", s.gen)
	}
	s.notify.send(fmt.Sprintf("RELOADING=1\nMONOTONIC_USEC=%d\nSTATUS=reloading", monotonicUsec()))
	if h := s.cfg.Hooks.OnReload; h != nil {
		h()
	}
	s.reloading = true
}

// stepReload replaces one slot at a time: a slot is done when its active worker belongs to
// the current generation and is ready. A reload on trial (see canary.go) replaces its canary
// first, and the other slots only once it passed.
func (s *supervisor) stepReload(now time.Time) {
	if !s.reloading {
		return
	}
	if s.canary.next != nil && !s.stepCanary(now) {
		return
	}
	if c := s.reloadCur; c >= 0 {
		if c < s.n && !s.slotReloaded(s.slots[c]) {
			s.markReload(s.slots[c])
			return
		}
		s.reloadCur = -1
	}
	for _, sl := range s.slots[:s.n] {
		if !s.slotReloaded(sl) {
			s.reloadCur = sl.index
			s.markReload(sl)
			return
		}
	}
	s.reloading = false
	s.counters.ReloadsOK++
	s.log.Info("reload complete", "workers", s.n, "generation", s.gen)
	s.notify.send("READY=1\nSTATUS=" + s.statusText())
}

func (s *supervisor) slotReloaded(sl *slot) bool {
	return sl.active != nil && sl.active.gen == s.gen && sl.active.state == StateReady
}

func (s *supervisor) markReload(sl *slot) {
	if sl.active != nil && sl.active.gen != s.gen && sl.replace == "" {
		sl.replace = ExitReloaded
	}
}

func (s *supervisor) abortReload(cause error) {
	if !s.reloading {
		return
	}
	if s.canary.next != nil {
		var sl *slot
		if c := s.canary.slot; c >= 0 && c < len(s.slots) {
			sl = s.slots[c]
		}
		s.rollBack(sl, "a new worker failed to boot: "+cause.Error())
		return
	}
	s.reloading, s.reloadCur = false, -1
	s.counters.ReloadsAborted++
	for _, sl := range s.slots {
		if sl.replace != ExitReloaded {
			continue
		}
		sl.replace = ""
		if w := sl.successor; w != nil {
			// The old worker keeps serving: the successor the abandoned reload started
			// goes, stopped as part of the reload, never left to take over later with
			// no reason to give its predecessor.
			sl.successor = nil
			s.stop(w, ExitReloaded)
		}
	}
	s.log.Error("reload aborted: a new worker failed to boot; the old workers keep serving", "err", cause)
	s.notify.send("READY=1\nSTATUS=reload failed: " + cause.Error())
}
