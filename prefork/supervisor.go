package prefork

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"sync/atomic"
	"syscall"
	"time"
)

// The supervisor is the master's one goroutine (locked to its OS thread) that owns every
// worker and slot: it starts, signals and reaps the workers, and reacts to their status
// lines, to signals, to commands and to deadlines. Everything here and in step.go, stop.go,
// exits.go, reload.go, scale.go, fdreserve.go and spawn.go (but readStatus) runs on it; other
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
	fdRetries int  // consecutive starts that found no file descriptor
}

// worker is one worker process.
type worker struct {
	slot         *slot
	id           string
	lane         byte
	pid          int
	gen          int // reload generation it was started in
	restarts     int
	status       *os.File    // read end of the status pipe
	lifeline     *os.File    // write end of the lifeline pipe
	crash        *os.File    // read end of the crash-output pipe, owned by readCrash
	askedStacks  atomic.Bool // the master sent SIGABRT for a stack dump (read by readCrash)
	state        WorkerState
	started      time.Time
	readyAt      time.Time
	lastBeat     time.Time
	requests     uint64
	inFlight     int           // requests being handled as of the last heartbeat
	cpu          float64       // CPU seconds (user and system) as of the last heartbeat
	rss          uint64        // resident memory in bytes as of the last heartbeat; 0: unknown
	maxAge       time.Duration // replaced once it is this old; 0: never
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

	events       chan event
	done         chan struct{}
	crashReaders crashReaders // readCrash goroutines

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
	reloadCur int      // slot being replaced, or -1
	pidFile   *pidFile // Config.PIDFile as written and locked by this master; nil: none

	steered    bool  // a steering program is attached (see steer.go)
	steeredTo  []int // the serving slots it was computed for
	steerKnown bool  // steeredTo is valid
	noSteer    bool  // steering failed: never again

	counters     Counters
	canary       canaryState
	reserve      fdReserve // descriptors kept for worker starts (see fdreserve.go)
	fdLogNext    time.Time // no log line about missing descriptors before then
	fdSuppressed int       // such lines not logged since the last one

	needReap bool
	lastReap time.Time
	lastIter time.Time
	notify   *notifier
	nextDog  time.Time

	up upgrader // binary upgrade (see upgrade.go)
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
		canary:    canaryState{slot: -1},
	}
	for i := range m.slotCount() {
		sl := &slot{index: i, lastLane: 'a', fds: m.shared}
		if m.shared == nil {
			sl.fds = m.slotFDs[i]
		}
		s.slots = append(s.slots, sl)
	}
	s.initUpgrade()
	return s
}

var controlSignals = []os.Signal{
	syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGHUP,
	syscall.SIGTTIN, syscall.SIGTTOU, syscall.SIGUSR1, syscall.SIGUSR2,
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
		// A new master started by an upgrade writes it when it takes over.
		if err := s.writeStartPIDFile(); err != nil {
			s.m.closeFDs()
			return err
		}
		defer func() { s.pidFile.remove() }()
	}
	s.notify = newNotifier(s.cfg.sdNotify, s.log)
	defer s.notify.close()
	s.log.Info("master starting", "pid", s.env.getpid(), "workers", s.n, "mode", string(s.cfg.Mode),
		"addrs", fmt.Sprint(s.m.addrs))
	if s.cfg.watchdog > 0 {
		s.nextDog = s.env.now()
	}

	s.reserve.fill()
	defer s.reserve.release()
	defer s.canary.close()

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
		s.stepUpgrade(now)
		s.steer()
		s.publish()
		if s.stopping && len(s.workers) == 0 && !s.awaitingTakeOver(now) {
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
	s.waitCrashReaders()
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
		s.onCommand(command{reload: true})
	case syscall.SIGTTIN:
		s.onCommand(command{delta: 1})
	case syscall.SIGTTOU:
		s.onCommand(command{delta: -1})
	case syscall.SIGUSR1:
		s.log.Info("reopening logs: SIGUSR1")
		if h := s.cfg.Hooks.OnReopenLogs; h != nil {
			h()
		}
	case syscall.SIGUSR2:
		s.requestUpgrade("SIGUSR2")
	}
}

func (s *supervisor) onCommand(c command) {
	if s.refuseDuringUpgrade(c) {
		return
	}
	switch {
	case c.upgrade != nil:
		s.onUpgradeEvent(*c.upgrade)
	case c.reload:
		s.startReload()
	case c.workers > 0:
		s.setWorkers(c.workers)
	case c.delta != 0:
		s.setWorkers(s.n + c.delta)
	case c.signal != 0:
		for _, w := range s.workers {
			if w.state == StateReady || w.state == StateStopping {
				s.signal(w, c.signal)
			}
		}
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
		s.heartbeat(w, ev.msg)
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
	if s.m.inh != nil {
		s.reportReady() // READY=1 once it took over
		return
	}
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

func (s *supervisor) publish() {
	info := make([]WorkerInfo, 0, len(s.workers))
	for _, w := range s.workers {
		info = append(info, w.info())
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
	s.m.publish(info, s.counters)
}
