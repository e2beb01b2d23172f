package prefork

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The supervisor is the master's one goroutine (locked to its OS thread) that owns every
// worker and slot: it starts, signals and reaps the workers, and reacts to their status
// lines, to signals, to commands and to deadlines. Everything below runs on it; other
// goroutines reach it through channels (events, Master.wake) only.

const (
	// stableAfter: a worker that served this long resets its slot's crash backoff.
	stableAfter = 10 * time.Second
	// backoffBase and backoffMax bound the respawn delay after consecutive failures of a
	// slot: 0, 100ms, 200ms, 400ms ... 10s.
	backoffBase = 100 * time.Millisecond
	backoffMax  = 10 * time.Second
	// reapPoll is the interval of a reap pass that does not wait for SIGCHLD.
	reapPoll = time.Second
)

// slot is one worker index with its sockets and its (at most two) current workers.
type slot struct {
	index     int
	fds       []int   // the listening sockets its workers inherit
	active    *worker // the worker serving the slot (or starting to)
	successor *worker // a planned replacement, starting
	replace   ExitReason
	crashes   int // consecutive unplanned exits, for the backoff
	respawnAt time.Time
	starts    int
	lastLane  byte
	served    bool // a worker of this slot has been ready at least once
}

// worker is one worker process.
type worker struct {
	slot         *slot
	id           string
	lane         byte
	pid          int
	gen          int // reload generation it was started in
	restarts     int
	status       *os.File // read end of the status pipe
	lifeline     *os.File // write end of the lifeline pipe
	state        WorkerState
	started      time.Time
	readyAt      time.Time
	lastBeat     time.Time
	requests     uint64
	bootDeadline time.Time
	killDeadline time.Time
	stopReason   ExitReason // why the master stopped or killed it; "" if it exited on its own
	stopAt       time.Time  // a stop scheduled for later (scale-down with steering)
	stopAtReason ExitReason
	killed       bool
}

func (w *worker) attrs() []any {
	return []any{slog.Int("worker", w.slot.index), slog.String("id", w.id), slog.Int("pid", w.pid)}
}

type event struct {
	w   *worker
	msg statusMsg
	eof bool
}

type supervisor struct {
	m   *Master
	cfg *settings
	env *env
	log *slog.Logger

	events chan event
	done   chan struct{}

	n        int // desired number of slots
	slots    []*slot
	workers  []*worker // every started, unreaped worker
	pid1     bool
	booted   bool
	stopping bool
	killAll  bool
	err      error
	failures []time.Time

	gen       int // incremented by each reload
	reloading bool
	reloadCur int // slot being replaced, or -1

	steered    bool  // a steering program is attached (see steer.go)
	steeredTo  []int // the serving slots it was computed for
	steerKnown bool  // steeredTo is valid
	noSteer    bool  // steering failed: never again

	needReap bool
	lastReap time.Time
	lastIter time.Time
	notify   *notifier
	nextDog  time.Time
}

func newSupervisor(m *Master) *supervisor {
	s := &supervisor{
		m:         m,
		cfg:       m.cfg,
		env:       m.env,
		log:       m.log,
		events:    make(chan event, 64),
		done:      make(chan struct{}),
		n:         m.cfg.Workers,
		pid1:      m.env.getpid() == 1,
		reloadCur: -1,
	}
	for i := range m.cfg.Workers {
		sl := &slot{index: i, lastLane: 'a', fds: m.shared}
		if m.shared == nil {
			sl.fds = m.slotFDs[i]
		}
		s.slots = append(s.slots, sl)
	}
	return s
}

var controlSignals = []os.Signal{
	syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGHUP,
	syscall.SIGTTIN, syscall.SIGTTOU, syscall.SIGUSR1,
}

func (s *supervisor) run(ctx context.Context) error {
	defer close(s.done)
	sigc := make(chan os.Signal, 16)
	s.env.notify(sigc, controlSignals...)
	defer s.env.stopNotify(sigc)
	chld := make(chan os.Signal, 1)
	signal.Notify(chld, syscall.SIGCHLD)
	defer signal.Stop(chld)

	if s.cfg.PIDFile != "" {
		pf, err := writePIDFile(s.cfg.PIDFile, s.env.getpid())
		if err != nil {
			s.m.closeFDs()
			return err
		}
		defer pf.remove()
	}
	s.notify = newNotifier(s.cfg.sdNotify, s.log)
	defer s.notify.close()
	s.log.Info("master starting", "pid", s.env.getpid(), "workers", s.n, "mode", string(s.cfg.Mode),
		"addrs", fmt.Sprint(s.m.addrs))
	if s.cfg.watchdog > 0 {
		s.nextDog = s.env.now()
	}

	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	ctxDone := ctx.Done()
	for {
		now := s.env.now()
		s.forgiveStall(now)
		if s.needReap || now.Sub(s.lastReap) >= reapPoll {
			s.reap(now)
		}
		s.step(now)
		s.steer()
		s.publish()
		if s.stopping && len(s.workers) == 0 {
			break
		}
		timer.Reset(max(s.nextDeadline(now).Sub(now), time.Millisecond))
		select {
		case sig := <-sigc:
			s.onSignal(sig)
		case <-chld:
			s.needReap = true
		case ev := <-s.events:
			s.onEvent(ev)
		case <-s.m.wake:
			for _, c := range s.m.takeCommands() {
				s.onCommand(c)
			}
		case <-timer.C:
		case <-ctxDone:
			ctxDone = nil
			s.log.Info("master stopping: context done")
			s.beginStop(false)
		}
	}
	s.m.closeFDs()
	if s.err != nil {
		s.log.Error("master stopped", "err", s.err)
	} else {
		s.log.Info("master stopped")
	}
	return s.err
}

func (s *supervisor) onSignal(sig os.Signal) {
	switch sig {
	case syscall.SIGTERM:
		s.log.Info("master stopping: SIGTERM")
		s.beginStop(false)
	case syscall.SIGINT:
		if s.stopping {
			s.log.Info("master stopping now: second SIGINT")
			s.beginStop(true)
			return
		}
		s.log.Info("master stopping: SIGINT")
		s.beginStop(false)
	case syscall.SIGQUIT:
		s.log.Info("master stopping now: SIGQUIT")
		s.beginStop(true)
	case syscall.SIGHUP:
		s.startReload()
	case syscall.SIGTTIN:
		s.onCommand(command{delta: 1})
	case syscall.SIGTTOU:
		s.onCommand(command{delta: -1})
	case syscall.SIGUSR1:
		s.log.Info("reopening logs: SIGUSR1")
		if h := s.cfg.Hooks.OnReopenLogs; h != nil {
			h()
		}
	}
}

func (s *supervisor) onCommand(c command) {
	switch {
	case c.reload:
		s.startReload()
	case c.workers > 0:
		s.setWorkers(c.workers)
	case c.delta != 0:
		s.setWorkers(s.n + c.delta)
	}
}

func (s *supervisor) onEvent(ev event) {
	w := ev.w
	if ev.eof {
		s.needReap = true
		return
	}
	switch ev.msg.kind {
	case msgReady:
		if w.state != StateStarting {
			return
		}
		now := s.env.now()
		w.state, w.readyAt, w.lastBeat = StateReady, now, now
		w.slot.served = true
		s.log.Info("worker ready", append(w.attrs(), "boot", now.Sub(w.started).Round(time.Millisecond))...)
		if h := s.cfg.Hooks.OnWorkerReady; h != nil {
			h(WorkerEvent{Slot: w.slot.index, ID: w.id, PID: w.pid})
		}
		sl := w.slot
		if sl.successor == w {
			old, reason := sl.active, sl.replace
			sl.active, sl.successor, sl.replace = w, nil, ""
			if old != nil {
				s.stop(old, reason)
			}
		}
		s.checkBooted()
	case msgBeat:
		w.lastBeat = s.env.now()
		w.requests = ev.msg.requests
	case msgRetire:
		sl := w.slot
		if sl.active == w && sl.replace == "" && !s.stopping {
			s.log.Info("worker asked to retire", w.attrs()...)
			sl.replace = ExitRetired
		}
	}
}

func (s *supervisor) checkBooted() {
	if s.booted {
		return
	}
	for _, sl := range s.slots[:s.n] {
		if sl.active == nil || sl.active.state != StateReady {
			return
		}
	}
	s.booted = true
	s.log.Info("master ready", "workers", s.n)
	s.notify.send("READY=1\nSTATUS=" + s.statusText())
}

func (s *supervisor) statusText() string {
	ready := 0
	for _, w := range s.workers {
		if w.state == StateReady {
			ready++
		}
	}
	return fmt.Sprintf("%d of %d workers ready", ready, s.n)
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
				s.log.Warn("worker heartbeat timeout, killing", append(w.attrs(), "timeout", s.cfg.Timeout)...)
				s.kill(w, ExitTimeout)
			}
		case StateStopping:
			if !now.Before(w.killDeadline) {
				s.log.Warn("worker did not stop in time, killing", append(w.attrs(), "graceful_timeout", s.cfg.GracefulTimeout)...)
				s.kill(w, w.stopReason)
			}
		}
	}
	if s.cfg.watchdog > 0 && !now.Before(s.nextDog) {
		s.notify.send("WATCHDOG=1")
		s.nextDog = now.Add(s.cfg.watchdog / 2)
	}
	if s.stopping {
		return
	}
	s.stepReload()
	for _, sl := range s.slots[:s.n] {
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
		case sl.replace != "" && sl.successor == nil && sl.active.state == StateReady:
			sl.successor = s.spawn(sl, now)
		}
	}
}

// startReload begins a rolling restart of every slot.
func (s *supervisor) startReload() {
	if s.stopping {
		return
	}
	s.gen++
	s.log.Info("reloading: rolling restart", "workers", s.n, "generation", s.gen)
	s.notify.send(fmt.Sprintf("RELOADING=1\nMONOTONIC_USEC=%d\nSTATUS=reloading", monotonicUsec()))
	if h := s.cfg.Hooks.OnReload; h != nil {
		h()
	}
	s.reloading = true
}

// stepReload replaces one slot at a time: a slot is done when its active worker belongs to
// the current generation and is ready.
func (s *supervisor) stepReload() {
	if !s.reloading {
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
	s.reloading, s.reloadCur = false, -1
	for _, sl := range s.slots {
		if sl.replace == ExitReloaded {
			sl.replace = ""
		}
	}
	s.log.Error("reload aborted: a new worker failed to boot; the old workers keep serving", "err", cause)
	s.notify.send("READY=1\nSTATUS=reload failed: " + cause.Error())
}

// setWorkers changes the number of slots.
func (s *supervisor) setWorkers(n int) {
	if s.stopping {
		return
	}
	if n < 1 || n > maxWorkers {
		s.log.Warn("ignoring worker count out of range", "workers", n)
		return
	}
	for i := range n {
		if i == len(s.slots) {
			s.slots = append(s.slots, &slot{index: i, lastLane: 'a'})
		}
		sl := s.slots[i]
		if sl.fds != nil {
			continue
		}
		if s.m.shared != nil {
			sl.fds = s.m.shared
			continue
		}
		fds, err := openSlotSockets(s.cfg.addrs, s.m.backlog())
		if err != nil {
			s.log.Error("cannot add worker slot", "worker", i, "err", err)
			n = i
			break
		}
		s.m.setSlotFDs(i, fds)
		sl.fds = fds
	}
	if n == s.n {
		return
	}
	s.log.Info("changing number of workers", "from", s.n, "to", n)
	old := s.n
	s.n = n
	s.steer()
	now := s.env.now()
	for _, sl := range s.slots[min(n, old):old] {
		delay := time.Duration(0)
		if s.m.shared == nil {
			if !s.noSteer {
				// Let the worker accept what was queued before the steering changed.
				delay = steerGrace
			} else {
				s.closeSlotSockets(sl)
			}
		}
		for _, w := range []*worker{sl.successor, sl.active} {
			if w != nil {
				s.stopAfter(w, ExitScaledDown, now.Add(delay))
			}
		}
		sl.active, sl.successor, sl.replace = nil, nil, ""
		sl.crashes, sl.respawnAt = 0, time.Time{}
	}
	s.notify.send("STATUS=" + s.statusText())
}

// stopAfter stops w at time at (now or later).
func (s *supervisor) stopAfter(w *worker, reason ExitReason, at time.Time) {
	if !at.After(s.env.now()) {
		s.stop(w, reason)
		return
	}
	w.stopAt, w.stopAtReason = at, reason
}

// spawn starts a worker in sl, or schedules a retry after a failure to start. It returns
// the worker or nil.
func (s *supervisor) spawn(sl *slot, now time.Time) *worker {
	lane, ok := s.freeLane(sl)
	if !ok {
		return nil // both lanes busy: wait until one of them is reaped
	}
	w, err := s.startProcess(sl, lane, now)
	if err != nil {
		s.log.Error("cannot start worker", "worker", sl.index, "err", err)
		s.failed(sl, now, ExitBootFailed, err)
		return nil
	}
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

func (s *supervisor) publish() {
	info := make([]WorkerInfo, 0, len(s.workers))
	for _, w := range s.workers {
		info = append(info, WorkerInfo{
			Slot: w.slot.index, ID: w.id, PID: w.pid, State: w.state,
			Started: w.started, Ready: w.readyAt, Restarts: w.restarts,
			Requests: w.requests, LastHeartbeat: w.lastBeat,
		})
	}
	slices.SortFunc(info, func(a, b WorkerInfo) int {
		if a.Slot != b.Slot {
			return a.Slot - b.Slot
		}
		if a.ID < b.ID {
			return -1
		}
		if a.ID > b.ID {
			return 1
		}
		return 0
	})
	s.m.publish(info)
}
