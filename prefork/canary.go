package prefork

import (
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// Canary reloads (Config.ReloadCanary). A reload puts its new executable on trial: one slot,
// the canary's, is replaced first, and the others wait for the end of the canary's window,
// when Config.CanaryJudge compares it with the old workers. A good canary is rolled out to
// the other slots as in any reload; a bad one (or one that crashes, hangs or fails to boot)
// is stopped and its slot is given a worker of the executable the other workers run, which
// the master holds open for this: the file on disk may well be the new build by then.
//
// With ReloadCanary, every worker is started from an executable the master holds open (an
// O_PATH descriptor), through /proc/<master pid>/fd/<n>: the workers of a slot that crashes
// during a trial are started again from the old executable, never from whatever is on disk,
// so that nothing but the canary runs the new build until it passed.

// CanaryJudge decides whether the canary of a reload may be rolled out (Config.CanaryJudge).
// Its methods run on the master's supervisor goroutine, as Hooks do: keep them short.
type CanaryJudge interface {
	// Start runs when the canary is ready and its window begins. others are the ready
	// workers of the other slots, which run the executable the workers ran before the
	// reload.
	Start(canary WorkerInfo, others []WorkerInfo)
	// Judge runs at the end of the window, with the canary and the other slots' ready
	// workers as they are then. ok false rolls the reload back. why is logged either
	// way: say what was compared.
	Judge(canary WorkerInfo, others []WorkerInfo) (ok bool, why string)
}

// CanaryJudgeFunc is a CanaryJudge that only judges: its Start does nothing.
type CanaryJudgeFunc func(canary WorkerInfo, others []WorkerInfo) (ok bool, why string)

// Start does nothing.
func (CanaryJudgeFunc) Start(WorkerInfo, []WorkerInfo) {}

// Judge calls f.
func (f CanaryJudgeFunc) Judge(canary WorkerInfo, others []WorkerInfo) (bool, string) {
	return f(canary, others)
}

// checkCanary validates the canary settings.
func checkCanary(c *settings) error {
	if c.ReloadCanary < 0 {
		return configErr("reload canary must not be negative (got %v)", c.ReloadCanary)
	}
	if c.CanaryJudge != nil && c.ReloadCanary == 0 {
		return configErr("a canary judge needs a reload canary window")
	}
	return nil
}

// canaryState is the supervisor's part of canary reloads.
type canaryState struct {
	exe       *os.File // the executable the workers run (opened at the first start); nil: not held
	exeFailed bool     // opening it failed (logged once)
	next      *os.File // the executable on trial; nil: no reload is on trial
	slot      int      // the canary's slot during a trial; -1: not picked yet
	cand      *worker  // the last worker started in the canary's slot from the executable on trial
	w         *worker  // the canary, once ready: its window ends at until
	until     time.Time
}

func (c *canaryState) close() {
	for _, f := range []*os.File{c.exe, c.next} {
		if f != nil {
			f.Close()
		}
	}
	c.exe, c.next = nil, nil
}

// openExe opens path for exec only (O_PATH: no read permission needed).
func openExe(path string) (*os.File, error) {
	fd, err := unix.Open(path, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

// fdPath is the path through which a child of the master executes f.
func (s *supervisor) fdPath(f *os.File) string {
	return fmt.Sprintf("/proc/%d/fd/%d", s.env.getpid(), f.Fd())
}

// workerExe returns the executable a new worker of sl is started from, and its generation:
// Config.Path without canary reloads; with them, the executable on trial for the canary's
// slot, and the executable the workers run for the others (of the previous generation
// during a trial, so that a slot respawned during a trial never counts as reloaded).
func (s *supervisor) workerExe(sl *slot) (string, int) {
	if s.cfg.ReloadCanary <= 0 {
		return s.cfg.Path, s.gen
	}
	c := &s.canary
	s.holdExe()
	switch {
	case c.next != nil && sl.index == c.slot:
		return s.fdPath(c.next), s.gen
	case c.next != nil:
		return s.fdPath(c.exe), s.gen - 1
	case c.exe != nil:
		return s.fdPath(c.exe), s.gen
	}
	return s.cfg.Path, s.gen
}

// holdExe opens the executable the workers run (Config.Path: no reload happened while it is
// not held), unless it is held already. Until it is, workers start from Config.Path and
// reloads are refused.
func (s *supervisor) holdExe() {
	c := &s.canary
	if c.exe != nil {
		return
	}
	f, err := openExe(s.cfg.Path)
	if err != nil {
		if !c.exeFailed {
			s.log.Error("cannot hold the worker executable open: reloads with a canary are refused until it is", "err", err)
		}
		c.exeFailed = true
		return
	}
	c.exe, c.exeFailed = f, false
}

// beginTrial opens the executable a reload puts on trial. A reload already on trial is
// superseded: its canary, if any, is replaced like any worker of an older generation.
func (s *supervisor) beginTrial() bool {
	c := &s.canary
	s.holdExe() // a reload before the first worker started
	if c.exe == nil {
		s.log.Error("reload refused: the master holds no handle on the executable its workers run, so a canary could not be rolled back")
		s.counters.ReloadsAborted++
		return false
	}
	f, err := openExe(s.cfg.Path)
	if err != nil {
		s.log.Error("reload refused: cannot open the new worker executable", "err", err)
		s.counters.ReloadsAborted++
		return false
	}
	if c.next != nil {
		c.next.Close()
	}
	c.next, c.slot, c.cand, c.w = f, -1, nil, nil
	return true
}

// endTrial forgets the executable on trial; the workers keep running the one held before.
func (s *supervisor) endTrial() {
	c := &s.canary
	if c.next != nil {
		c.next.Close()
	}
	c.next, c.slot, c.cand, c.w = nil, -1, nil, nil
}

// stepCanary runs a reload's trial: it picks the canary's slot, replaces its worker, starts
// the window when the canary is ready and asks the judge at its end. It returns true once
// the canary passed (the reload then goes on with the other slots).
func (s *supervisor) stepCanary(now time.Time) bool {
	c := &s.canary
	if c.slot >= s.n {
		s.log.Info("canary's slot removed; another slot takes its part", "worker", c.slot)
		c.slot, c.cand, c.w = -1, nil, nil
	}
	if c.slot < 0 {
		for _, sl := range s.slots[:s.n] {
			if !s.slotReloaded(sl) {
				c.slot = sl.index
				break
			}
		}
		if c.slot < 0 {
			s.passTrial()
			return true
		}
		s.reloadCur = c.slot
	}
	sl := s.slots[c.slot]
	// cand too, not only the ready canary: the periodic reap can collect a canary that died
	// just after it reported ready before any step saw it ready (and its exit is then a
	// crash, not a failed boot that abortReload would roll back).
	for _, w := range []*worker{c.cand, c.w} {
		if w != nil && canaryFailed(sl, w) {
			s.rollBack(sl, fmt.Sprintf("the canary (id %s, pid %d) %s before the end of its window", w.id, w.pid, failure(w)))
			return false
		}
	}
	if c.cand != nil && sl.active != c.cand && sl.successor != c.cand {
		c.cand = nil
	}
	if c.w != nil && sl.active != c.w {
		// Replaced on purpose (max requests, age, memory): its successor, of the same
		// executable, is the canary now, with a window of its own.
		c.w = nil
	}
	if c.w == nil {
		if !s.slotReloaded(sl) {
			s.markReload(sl)
			return false
		}
		c.w, c.until = sl.active, now.Add(s.cfg.ReloadCanary)
		others := s.canaryOthers()
		s.log.Info("canary ready; the other slots wait for the end of its window",
			append(c.w.attrs(), "window", s.cfg.ReloadCanary, "others", len(others))...)
		if j := s.cfg.CanaryJudge; j != nil {
			j.Start(s.infoWithQueues(c.w), others)
		}
		return false
	}
	if now.Before(c.until) {
		return false
	}
	ok, why := true, "no judge: the canary served for its whole window"
	if j := s.cfg.CanaryJudge; j != nil {
		ok, why = j.Judge(s.infoWithQueues(c.w), s.canaryOthers())
	}
	if !ok {
		s.rollBack(sl, why)
		return false
	}
	s.log.Info("canary passed; rolling out to the other slots", append(c.w.attrs(), "why", why)...)
	s.passTrial()
	return true
}

// noteStart records w, just started in sl, if it is a canary.
func (s *supervisor) noteStart(sl *slot, w *worker) {
	if c := &s.canary; c.next != nil && sl.index == c.slot && w.gen == s.gen {
		c.cand = w
	}
}

// canaryFailed reports whether the canary w left its slot sl, or is leaving it, for a reason
// the master did not plan: it exited, or was killed for a hang or a boot timeout.
func canaryFailed(sl *slot, w *worker) bool {
	gone := sl.active != w && sl.successor != w
	leaving := w.state == StateStopping || w.state == StateKilled
	return (gone || leaving) && (w.stopReason == "" || !w.stopReason.Planned())
}

func failure(w *worker) string {
	switch w.stopReason {
	case "":
		return "exited"
	case ExitTimeout:
		return "stopped sending heartbeats"
	case ExitBootFailed:
		return "did not boot"
	}
	return string(w.stopReason)
}

// passTrial makes the executable on trial the one the workers run.
func (s *supervisor) passTrial() {
	c := &s.canary
	if c.exe != nil {
		c.exe.Close()
	}
	c.exe, c.next = c.next, nil
	s.endTrial()
}

// rollBack ends a reload on trial: the workers of sl started from the new executable are
// stopped, and sl gets a worker of the executable the other workers run. sl may be nil (no
// canary started yet).
func (s *supervisor) rollBack(sl *slot, why string) {
	var attrs []any
	if w := s.canary.w; w != nil {
		attrs = w.attrs()
	} else if w := s.canary.cand; w != nil {
		attrs = w.attrs()
	} else if sl != nil {
		attrs = []any{"worker", sl.index}
	}
	attrs = append(attrs, "why", why)
	if sl != nil {
		for _, w := range []*worker{sl.successor, sl.active} {
			if w == nil || w.gen != s.gen {
				continue
			}
			s.stop(w, ExitRolledBack)
			if sl.successor == w {
				sl.successor = nil
			}
			if sl.active == w {
				sl.active, sl.replace = nil, ""
			}
		}
		if sl.replace == ExitReloaded {
			sl.replace = ""
		}
	}
	s.log.Warn("reload rolled back: the canary's slot gets a worker of the previous executable; the other workers keep serving", attrs...)
	s.endTrial()
	s.reloading, s.reloadCur = false, -1
	s.counters.ReloadsRolledBack++
	s.notify.send("READY=1\nSTATUS=reload rolled back: " + why)
}

// canaryOthers describes the ready workers of the slots other than the canary's.
func (s *supervisor) canaryOthers() []WorkerInfo {
	var out []WorkerInfo
	for _, sl := range s.slots[:s.n] {
		if sl.index != s.canary.slot && sl.active != nil && sl.active.state == StateReady {
			out = append(out, sl.active.info())
		}
	}
	s.m.addQueues(out)
	return out
}

func (s *supervisor) infoWithQueues(w *worker) WorkerInfo {
	info := []WorkerInfo{w.info()}
	s.m.addQueues(info)
	return info[0]
}
