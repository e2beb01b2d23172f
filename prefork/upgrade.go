package prefork

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Binary upgrade (SIGUSR2, Master.Upgrade): the old master's side. (takeover.go is the new
// master's.)
//
//  1. The request waits until no slot has two workers (a replacement in progress), and no
//     planned replacement starts from then on, so that each slot's old workers use one lane
//     and the new master's the other: the two never share a per-ID file.
//  2. The master starts the executable at the path it was started by (selfPath: a binary
//     replaced there, or a link switched, is the one started) with its own arguments and
//     environment, handing it every listening socket (LISTEN_FDS, LISTEN_FDNAMES), its unix
//     sockets among them (see unixsock.go), the application's Handover, and one end of a
//     control socket pair.
//  3. The new master starts its workers on the same sockets. Once they are all ready it
//     sends "ready" on the control socket, and waits for the old master's answer.
//  4. The old master decides, once, on its supervising goroutine: if the upgrade is still
//     under way it answers "ack" and hands over; if it has already given up (the new master
//     was not ready in time) it never answers. Only on "ack" does the new master take
//     over: it writes its pidfile, sends MAINPID= and READY=1 to systemd, answers "taken",
//     and owns the unix socket files and the run directory it inherited (TookOver). Without
//     "ack" it owns none of them, so a new master stopped while its "ready" crossed the old
//     master's timeout leaves them all to the old master, which keeps serving.
//  5. Having answered, the old master stops its workers gracefully (without STOPPING=1:
//     the service is not stopping) and exits once the new master has answered "taken" or
//     closed the socket, at most takeOverWait after its last worker was reaped: the pidfile
//     and systemd never name a master that is gone. Run returns nil and HandedOver reports
//     true. It closes the control socket last, as it exits: until then the new master
//     refuses reloads, scaling and upgrades, which would start workers in the old lanes. A new master that sees the control socket close without "ack" after it
//     was ready takes over too: the old master is gone (it died), and nobody else serves.
//
// If the new master exits, or is not ready within GracefulTimeout, the old master stops it
// (SIGTERM, SIGKILL after another GracefulTimeout), logs why, and keeps serving; the
// planned replacements it held back resume once the new master was reaped.

// The lines on the control socket: the new master's, and the old master's answer.
const (
	ctlReady = "ready"
	ctlAck   = "ack"
	ctlTaken = "taken"
)

type upgradePhase int

const (
	upgradeIdle    upgradePhase = iota
	upgradePending              // requested: waiting until every slot has at most one worker
	upgradeStarted              // the new master runs: waiting for its "ready"
	upgradeFailing              // given up: waiting for the new master to exit
	upgradeDone                 // handed over: this master stops
)

// upgrader is the supervisor's upgrade state, on both sides.
type upgrader struct {
	// The old master's side: the upgrade it started.
	phase   upgradePhase
	gen     int // attempt number, to tell stale events from current ones
	pid     int // the new master
	pidfd   int // a pidfd of it (-1: none), so that a signal never reaches a reused pid
	ctl     *os.File
	timer   *time.Timer
	reaped  chan struct{} // closed once the new master was reaped
	waitLog bool          // the wait for replacements to finish was logged
	// Handed over, its workers gone: until taken, or takeOverBy, the old master waits for
	// the new master to confirm that it took over (awaitingTakeOver).
	taken      bool
	takeOverBy time.Time

	// The new master's side.
	pred    *os.File // control socket to the old master; nil once it is gone
	predPID int
	notify  *notifier // opened when taking over
}

type upgradeEventKind int

const (
	evRequest         upgradeEventKind = iota // SIGUSR2 or Master.Upgrade
	evReady                                   // the new master wrote "ready"
	evExited                                  // the new master was reaped
	evTimeout                                 // GracefulTimeout passed since it was started
	evKill                                    // GracefulTimeout passed since it was told to stop
	evPredecessorGone                         // the old master closed the control socket
	evAcked                                   // the old master answered "ack": take over
	evTaken                                   // the new master wrote "taken", or closed the socket
)

type upgradeEvent struct {
	kind   upgradeEventKind
	gen    int
	source string          // of a request
	status unix.WaitStatus // of evExited
}

// Upgrade starts a binary upgrade, as SIGUSR2 does: a new master is started from the
// executable at this master's path, takes over every listening socket, starts its workers,
// and once they are ready this master drains its own and Run returns nil (HandedOver then
// reports true). If the new master fails or is not ready within GracefulTimeout, it is
// stopped and this master keeps serving. An upgrade requested while one is under way (or
// while the master it replaced still drains) is refused with a log line. It does not wait.
func (m *Master) Upgrade() {
	m.post(command{upgrade: &upgradeEvent{kind: evRequest, source: "Upgrade"}})
}

// HandedOver reports whether Run ended by handing over to a new master (a binary upgrade):
// the state this master shared with its workers (a run directory) now belongs to the new
// master and must outlive this process.
func (m *Master) HandedOver() bool { return m.handedOver.Load() }

// TookOver reports whether this master, started by a binary upgrade, took over from the old
// one: its workers became ready and the old master committed to handing over (or was gone).
// A new master that did not take over must leave the state
// it inherited alone: the old master still serves with it.
func (m *Master) TookOver() bool { return m.tookOver.Load() }

func (s *supervisor) onUpgradeEvent(ev upgradeEvent) {
	u := &s.up
	switch ev.kind {
	case evRequest:
		s.requestUpgrade(ev.source)
		return
	case evPredecessorGone:
		s.predecessorGone()
		return
	case evAcked:
		if s.env.beforeTakeOver != nil {
			s.env.beforeTakeOver()
		}
		s.takeOver()
		return
	}
	if ev.gen != u.gen {
		return
	}
	switch ev.kind {
	case evReady:
		if u.phase == upgradeStarted {
			s.handOver()
		}
	case evTaken:
		u.taken = true
	case evTimeout:
		if u.phase == upgradeStarted {
			s.log.Error("upgrade failed: the new master was not ready in time; stopping it, this master keeps serving",
				"new_pid", u.pid, "graceful_timeout", s.cfg.GracefulTimeout)
			s.abandonUpgrade(true)
			s.signalNewMaster(unix.SIGTERM)
		}
	case evKill:
		if u.phase == upgradeFailing {
			s.log.Warn("upgrade: the failed new master did not stop in time, killing it", "new_pid", u.pid)
			s.signalNewMaster(unix.SIGKILL)
		}
	case evExited:
		how := waitStatusText(ev.status)
		switch u.phase {
		case upgradeStarted:
			s.log.Error("upgrade failed: the new master "+how+" before it was ready; this master keeps serving",
				"new_pid", u.pid, "path", s.m.self)
			s.abandonUpgrade(true)
			s.endUpgrade()
		case upgradeFailing:
			s.log.Info("upgrade: the failed new master "+how, "new_pid", u.pid)
			s.endUpgrade()
		case upgradeDone:
			s.log.Error("upgrade: the new master "+how+" after it took over", "new_pid", u.pid)
		}
	}
}

// requestUpgrade handles SIGUSR2 or Master.Upgrade.
func (s *supervisor) requestUpgrade(source string) {
	u := &s.up
	refuse := func(why string, args ...any) {
		s.log.Warn("upgrade refused: "+why, append([]any{"source", source}, args...)...)
	}
	switch {
	case s.stopping:
		refuse("the master is stopping")
	case u.phase != upgradeIdle:
		args := []any{}
		if u.pid != 0 {
			args = append(args, "new_pid", u.pid)
		}
		refuse("an upgrade is already under way", args...)
	case u.pred != nil:
		refuse("the master this one replaced is still draining", "old_pid", u.predPID)
	case s.pid1:
		refuse("this master is PID 1: its exit would end the container")
	case s.m.self == "":
		refuse("the master's own executable is unknown")
	case !s.booted:
		refuse("the master is still starting")
	default:
		s.log.Info("upgrade requested", "source", source, "path", s.m.self)
		u.phase, u.waitLog = upgradePending, false
	}
}

// stepUpgrade starts the new master of a pending upgrade once no slot has two workers, and
// gives up an upgrade when this master stops.
func (s *supervisor) stepUpgrade(now time.Time) {
	u := &s.up
	if s.stopping {
		switch u.phase {
		case upgradePending:
			u.phase = upgradeIdle
		case upgradeStarted:
			// The service stops: the new master must not take over.
			s.log.Info("upgrade abandoned: this master stops; stopping the new master", "new_pid", u.pid)
			s.abandonUpgrade(false)
			s.signalNewMaster(unix.SIGTERM)
		}
		return
	}
	if u.phase != upgradePending {
		return
	}
	perSlot := map[*slot]int{}
	busy := 0
	for _, w := range s.workers {
		if perSlot[w.slot]++; perSlot[w.slot] == 2 {
			busy++
		}
	}
	if busy > 0 {
		if !u.waitLog {
			u.waitLog = true
			s.log.Info("upgrade: waiting for worker replacements to finish before starting the new master", "slots", busy)
		}
		return
	}
	if err := s.startNewMaster(); err != nil {
		u.phase = upgradeIdle
		s.log.Error("upgrade failed: cannot start the new master; this master keeps serving", "path", s.m.self, "err", err)
		s.notify.send("STATUS=upgrade failed: " + err.Error())
	}
}

// upgradeHolds reports whether planned replacements and new slots must wait: during an
// upgrade (they would start workers in the lanes the new master uses), and in a new master
// until the old one is gone (in the lanes the old workers still use).
func (s *supervisor) upgradeHolds() bool {
	switch s.up.phase {
	case upgradePending, upgradeStarted, upgradeFailing:
		return true
	}
	return s.up.pred != nil
}

// refuseDuringUpgrade logs and reports whether c (a reload or a change of the number of
// workers) must be refused now.
func (s *supervisor) refuseDuringUpgrade(c command) bool {
	if c.upgrade != nil || !s.upgradeHolds() || s.stopping {
		return false
	}
	what := "reload"
	if !c.reload {
		what = "change of the number of workers"
	}
	if s.up.pred != nil {
		s.log.Warn(what+" refused: the master this one replaced is still draining", "old_pid", s.up.predPID)
	} else {
		s.log.Warn(what+" refused: a binary upgrade is under way", "new_pid", s.up.pid)
	}
	return true
}

// startNewMaster starts the new master and the goroutines that watch it.
func (s *supervisor) startNewMaster() error {
	u := &s.up
	var h Handover
	if f := s.cfg.Handover; f != nil {
		var err error
		if h, err = f(); err != nil {
			return fmt.Errorf("handover: %w", err)
		}
	}
	var fds []int
	var names []string
	var dups []int // duplicates of the application's listeners, closed after the start
	defer func() { closeFDs(dups) }()
	add := func(name string, fd int) {
		fds, names = append(fds, fd), append(names, name)
	}
	lanes := s.holdLanes()
	// The new master takes the pidfile over when it is ready; a failed upgrade
	// writes and locks it again (abandonUpgrade).
	s.pidFile.unlock()
	s.m.fdMu.Lock()
	if s.m.shared != nil {
		for j, fd := range s.m.shared {
			add(fdNameShared+strconv.Itoa(j), fd)
		}
	} else {
		for i, slotFDs := range s.m.slotFDs {
			for j, fd := range slotFDs {
				add(fdNameSlot+strconv.Itoa(i)+"-"+strconv.Itoa(j), fd)
			}
		}
	}
	unixFDs, unixStates := s.m.unixHandover()
	for k, fd := range unixFDs {
		add(fdNameUnix+strconv.Itoa(k), fd)
	}
	s.m.fdMu.Unlock()
	appNames := make([]string, 0, len(h.Listeners))
	for name := range h.Listeners {
		appNames = append(appNames, name)
	}
	sort.Strings(appNames)
	for _, name := range appNames {
		if !validFDName(name) {
			return fmt.Errorf("handover: bad listener name %q", name)
		}
		fd, err := listenerFD(h.Listeners[name])
		if err != nil {
			return fmt.Errorf("handover: listener %q: %w", name, err)
		}
		dups = append(dups, fd)
		add(name, fd)
	}
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0) // [0]: this master's end
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	st := upgradeState{
		Version: upgradeVersion, Master: s.env.getpid(), CtlFD: sdListenFDsStart + len(fds),
		Mode: s.cfg.Mode, Workers: s.n, Lanes: lanes, Counters: s.counters, Unix: unixStates, Values: h.Values,
	}
	if s.m.shared != nil {
		st.Mode = ModeShared
	}
	b, err := json.Marshal(st)
	if err != nil {
		closeFDs(pair[:])
		return err
	}
	env := mergeEnv(s.cfg.environ, map[string]bool{
		envListenPID: true, envListenFDs: true, envListenNames: true, envWatchdogPID: true,
		upgradeEnv: true, markerEnv: true,
	}, []string{
		envListenFDs + "=" + strconv.Itoa(len(fds)),
		envListenNames + "=" + strings.Join(names, ":"),
		upgradeEnv + "=" + string(b),
	})
	files, nulls := stdFiles()
	defer closeFDs(nulls)
	for _, fd := range fds {
		files = append(files, uintptr(fd))
	}
	files = append(files, uintptr(pair[1]))
	// No Pdeathsig: the new master outlives this one.
	pid, err := syscall.ForkExec(s.m.self, s.m.selfArgs, &syscall.ProcAttr{Env: env, Files: files})
	unix.Close(pair[1])
	if err != nil {
		unix.Close(pair[0])
		return err
	}
	unix.SetNonblock(pair[0], true)
	u.pidfd = -1
	if fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK); err == nil { // before anyone can reap it
		unix.CloseOnExec(fd)
		u.pidfd = fd
	}
	u.gen++
	u.phase, u.pid = upgradeStarted, pid
	u.ctl = os.NewFile(uintptr(pair[0]), "prefork-upgrade-new")
	u.reaped = make(chan struct{})
	s.log.Info("upgrade: new master started", "new_pid", pid, "path", s.m.self, "sockets", len(fds))
	s.notify.send(fmt.Sprintf("RELOADING=1\nMONOTONIC_USEC=%d\nSTATUS=upgrading: new master pid %d starting", monotonicUsec(), pid))
	gen, m := u.gen, s.m
	post := func(ev upgradeEvent) {
		ev.gen = gen
		m.post(command{upgrade: &ev})
	}
	u.timer = time.AfterFunc(s.cfg.GracefulTimeout, func() { post(upgradeEvent{kind: evTimeout}) })
	onReady := s.env.upgradeReady
	go func(ctl *os.File) {
		r := bufio.NewReader(ctl)
		line, err := r.ReadString('\n')
		if err == nil && line == ctlReady+"\n" {
			if onReady != nil {
				onReady(func() { post(upgradeEvent{kind: evTimeout}) })
			}
			post(upgradeEvent{kind: evReady})
			// "taken" once it took over; end-of-file if it exits or the socket is closed.
			r.ReadString('\n')
			post(upgradeEvent{kind: evTaken})
		}
	}(u.ctl)
	go func(reaped chan struct{}) {
		var ws unix.WaitStatus
		for {
			_, err := unix.Wait4(pid, &ws, 0, nil)
			if !errors.Is(err, unix.EINTR) {
				break
			}
		}
		close(reaped)
		post(upgradeEvent{kind: evExited, status: ws})
	}(u.reaped)
	return nil
}

// handOver runs when the new master is ready and this master has not given up on it: it
// answers "ack", which commits it to the handover, and stops. (An upgrade given up has left
// upgradeStarted, so a "ready" read after that is never answered.)
func (s *supervisor) handOver() {
	u := &s.up
	u.ctl.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := u.ctl.WriteString(ctlAck + "\n"); err != nil {
		// The new master did not hear it, so it owns nothing: this master keeps serving.
		s.log.Error("upgrade failed: cannot answer the new master; stopping it, this master keeps serving",
			"new_pid", u.pid, "err", err)
		s.abandonUpgrade(true)
		s.signalNewMaster(unix.SIGTERM)
		return
	}
	u.phase = upgradeDone
	u.timer.Stop()
	s.m.handedOver.Store(true)
	s.log.Info("upgrade: the new master is ready; stopping this master's workers", "new_pid", u.pid)
	// The new master speaks to systemd now: no STOPPING=1, no more WATCHDOG=1 from here.
	s.notify = nil
	s.beginStop(false)
}

// abandonUpgrade gives up on the new master (the caller stops it, unless it exited); with
// restore, it tells systemd and the pidfile that this master is still the one.
func (s *supervisor) abandonUpgrade(restore bool) {
	u := &s.up
	u.phase = upgradeFailing
	u.timer.Stop()
	gen, m := u.gen, s.m
	u.timer = time.AfterFunc(s.cfg.GracefulTimeout, func() {
		m.post(command{upgrade: &upgradeEvent{kind: evKill, gen: gen}})
	})
	if !restore {
		return
	}
	pid := s.env.getpid()
	if s.cfg.PIDFile != "" {
		// Written and locked anew: startNewMaster unlocked it for the new master.
		if pf, err := writePIDFile(s.cfg.PIDFile, pid); err != nil {
			s.log.Error("upgrade: cannot restore the pidfile", "err", err)
		} else {
			s.pidFile.remove() // only releases the old handle: the path names the new file
			s.pidFile = pf
		}
	}
	s.notify.send(fmt.Sprintf("MAINPID=%d\nREADY=1\nSTATUS=upgrade failed; %s", pid, s.statusText()))
}

// endUpgrade closes a failed upgrade once its new master was reaped.
func (s *supervisor) endUpgrade() {
	u := &s.up
	u.timer.Stop()
	u.ctl.Close()
	if u.pidfd >= 0 {
		unix.Close(u.pidfd)
	}
	u.phase, u.pid, u.pidfd, u.ctl = upgradeIdle, 0, -1, nil
}

// signalNewMaster sends sig to the new master unless it was reaped.
func (s *supervisor) signalNewMaster(sig unix.Signal) {
	u := &s.up
	if u.pidfd >= 0 {
		unix.PidfdSendSignal(u.pidfd, sig, nil, 0) // ESRCH once it exited: nothing to do
		return
	}
	select {
	case <-u.reaped:
	default:
		unix.Kill(u.pid, sig) // a small window: the reaper may wait for it just now
	}
}

// finishUpgrade runs after the supervisor loop ended. The old master closes the control
// socket (the new master learns that the last old worker is gone), after stopping a new
// master that had not taken over; the new master closes its side.
func (s *supervisor) finishUpgrade() {
	u := &s.up
	switch u.phase {
	case upgradeStarted, upgradeFailing:
		s.log.Info("upgrade: stopping the new master, as this master stops", "new_pid", u.pid)
		u.timer.Stop()
		s.signalNewMaster(unix.SIGTERM)
		select {
		case <-u.reaped:
		case <-time.After(s.cfg.GracefulTimeout):
			s.signalNewMaster(unix.SIGKILL)
			<-u.reaped
		}
	}
	if u.pidfd >= 0 {
		unix.Close(u.pidfd)
		u.pidfd = -1
	}
	if u.ctl != nil {
		u.ctl.Close()
	}
	if u.pred != nil {
		u.pred.Close()
	}
	u.notify.close()
}

// stdFiles returns descriptors 0, 1 and 2 for a child: this process's, or /dev/null for one
// that is closed (nulls are the descriptors opened for that, to close after the start).
func stdFiles() (files []uintptr, nulls []int) {
	files = []uintptr{0, 1, 2}
	for i := range files {
		if _, err := unix.FcntlInt(uintptr(i), unix.F_GETFD, 0); err != nil {
			if null, err := unix.Open(os.DevNull, unix.O_RDWR|unix.O_CLOEXEC, 0); err == nil {
				nulls = append(nulls, null)
				files[i] = uintptr(null)
			}
		}
	}
	return files, nulls
}

// validFDName reports whether name may name an application's socket in LISTEN_FDNAMES.
func validFDName(name string) bool {
	if name == "" || len(name) > 255 || strings.HasPrefix(name, fdNameHerd) {
		return false
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// waitStatusText describes how a process ended.
func waitStatusText(ws unix.WaitStatus) string {
	if ws.Signaled() {
		return "was killed by signal " + ws.Signal().String()
	}
	return "exited with status " + strconv.Itoa(ws.ExitStatus())
}

// selfPath returns the path a binary upgrade starts: the one this process was started by
// (argv[0], made absolute against the working directory or looked up in PATH, symbolic
// links kept, so that a deployment that switches a link is followed) if it names this very
// binary now, at start; else the executable as the kernel resolved it. "" if neither is
// known.
func selfPath(e *env) string {
	exe, err := e.executable()
	if err != nil {
		return ""
	}
	args := e.args()
	if len(args) == 0 || args[0] == "" {
		return exe
	}
	p := args[0]
	if !strings.Contains(p, "/") {
		lp, err := exec.LookPath(p)
		if err != nil {
			return exe
		}
		p = lp
	}
	if !filepath.IsAbs(p) {
		wd, err := os.Getwd()
		if err != nil {
			return exe
		}
		p = filepath.Join(wd, p)
	}
	a, err1 := os.Stat(p)
	b, err2 := os.Stat(exe)
	if err1 != nil || err2 != nil || !os.SameFile(a, b) {
		return exe
	}
	return p
}
