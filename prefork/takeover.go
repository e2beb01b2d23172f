package prefork

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// The new master's side of a binary upgrade (see upgrade.go for the old master's): what it
// reads from its environment, how it adopts the sockets, and how it takes over once its
// workers are ready.
//
// The new master finds, in its environment:
//
//	LISTEN_FDS=N        descriptors 3..3+N-1 are listening sockets, as systemd passes them
//	LISTEN_FDNAMES=...  their names, colon-separated: "herd-shared-<j>" (ModeShared: address
//	                    j), "herd-slot-<i>-<j>" (ModeReusePort: slot i, address j),
//	                    "herd-unix-<k>" (the unix socket at HERD_UPGRADE's unix[k].path),
//	                    or a name of the application's (Handover.Listeners, given by
//	                    Inherited)
//	HERD_UPGRADE={...}  upgradeState (JSON): the old master's pid, which must be this
//	                    process's parent, the control socket's descriptor (3+N), the
//	                    listener mode, the number of slots, the lanes the old master's
//	                    workers use, its Counters, its unix sockets (path and the file
//	                    it created there) and the application's Handover.Values
//
// LISTEN_PID is not set: the old master cannot know the new one's pid before it execs it.
// The parent check takes its place, as it does for a worker's marker.

// Environment variable and descriptor names of a binary upgrade.
const (
	upgradeEnv     = "HERD_UPGRADE"
	upgradeVersion = 1
	fdNameHerd     = "herd-"
	fdNameShared   = "herd-shared-"
	fdNameSlot     = "herd-slot-"
	fdNameUnix     = "herd-unix-"
)

// upgradeState is what the old master hands over in HERD_UPGRADE.
type upgradeState struct {
	Version  int               `json:"v"`
	Master   int               `json:"master"` // the old master's pid: the new one's parent
	CtlFD    int               `json:"ctl_fd"` // the control socket (see upgrade.go)
	Mode     ListenerMode      `json:"mode"`
	Workers  int               `json:"workers"` // the number of slots serving
	Lanes    string            `json:"lanes"`   // per slot, the lane its old workers use ('-': none)
	Counters Counters          `json:"counters"`
	Unix     []unixHandover    `json:"unix,omitempty"` // by the k of "herd-unix-<k>"
	Values   map[string]string `json:"values,omitempty"`
}

// unixHandover is a unix socket handed over: its path, and the file the master that created
// it made there, which only the master that owns the socket removes.
type unixHandover struct {
	Path string `json:"path"`
	Dev  uint64 `json:"dev"`
	Ino  uint64 `json:"ino"`
}

// inheritance is a parsed upgrade environment.
type inheritance struct {
	state  upgradeState
	shared []int          // ModeShared: the sockets, by address
	slots  [][]int        // ModeReusePort: the sockets of each slot, by address (nil: none)
	unix   []int          // the unix sockets, in the order of state.Unix
	app    map[string]int // the application's sockets, by name
	notify string         // NOTIFY_SOCKET, used only once the new master has taken over
}

// Handover is what the application passes to the new master of a binary upgrade, beside the
// workers' sockets, which the master hands over itself (see Config.Handover and Inherited).
type Handover struct {
	// Listeners are listening sockets the application opened itself (an admin listener),
	// by name: letters, digits, '-' and '_', not starting with "herd-". Each must have a
	// file descriptor (*net.TCPListener, *net.UnixListener: a syscall.Conn), so a TLS
	// listener is passed as the listener it wraps. The master passes a duplicate; the
	// listener stays open and serving in this process.
	Listeners map[string]net.Listener
	// Values are strings by name, for the state the new master continues from (a
	// directory to take over, totals to start from).
	Values map[string]string
}

// Inherited returns what the previous master handed over (Config.Handover) when this process
// is a new master started by a binary upgrade; ok is false otherwise. The listeners are
// ready to serve and belong to the caller. Call it at most once, in the master, before or
// after NewMaster; a process that does not call it leaves the application's sockets unused
// (NewMaster marks them close-on-exec). An error means this process was started by an
// upgrade that cannot be continued: exit, and the old master keeps serving.
func Inherited() (h Handover, ok bool, err error) {
	in, err := readUpgradeEnv(os.Environ(), os.Getppid())
	if in == nil || err != nil {
		return Handover{}, false, err
	}
	h.Values = in.state.Values
	h.Listeners = map[string]net.Listener{}
	for name, fd := range in.app {
		f := os.NewFile(uintptr(fd), name)
		l, err := net.FileListener(f) // a duplicate, non-blocking
		f.Close()
		if err != nil {
			for _, l := range h.Listeners {
				l.Close()
			}
			return Handover{}, false, fmt.Errorf("prefork: upgrade: inherited listener %q (fd %d): %v", name, fd, err)
		}
		h.Listeners[name] = l
	}
	return h, true, nil
}

// readUpgradeEnv parses environ's upgrade variables; nil without HERD_UPGRADE. ppid is this
// process's parent.
func readUpgradeEnv(environ []string, ppid int) (*inheritance, error) {
	v, ok := lookupEnv(environ, upgradeEnv)
	if !ok {
		return nil, nil
	}
	in := &inheritance{app: map[string]int{}}
	if err := json.Unmarshal([]byte(v), &in.state); err != nil {
		return nil, configErr("bad %s: %v", upgradeEnv, err)
	}
	st := &in.state
	if st.Version != upgradeVersion {
		return nil, configErr("%s version %d, want %d: the old and new binaries are too far apart for an upgrade", upgradeEnv, st.Version, upgradeVersion)
	}
	if st.Master != ppid {
		return nil, configErr("%s names master pid %d, not this process's parent (%d): the old master is gone, or the variable was inherited by mistake", upgradeEnv, st.Master, ppid)
	}
	if st.Workers < 1 || st.Workers > maxWorkers || (st.Mode != ModeShared && st.Mode != ModeReusePort) {
		return nil, configErr("bad %s: %s", upgradeEnv, v)
	}
	nv, _ := lookupEnv(environ, envListenFDs)
	n, err := strconv.Atoi(nv)
	if err != nil || n < 0 || n > 1<<16 {
		return nil, configErr("upgrade: bad %s=%q", envListenFDs, nv)
	}
	var names []string
	if nv, _ := lookupEnv(environ, envListenNames); nv != "" {
		names = strings.Split(nv, ":")
	}
	if len(names) != n {
		return nil, configErr("upgrade: %s names %d descriptors, %s=%d", envListenNames, len(names), envListenFDs, n)
	}
	if st.CtlFD != sdListenFDsStart+n {
		return nil, configErr("upgrade: control socket at fd %d, want %d", st.CtlFD, sdListenFDsStart+n)
	}
	for i, name := range names {
		fd := sdListenFDsStart + i
		if err := in.place(name, fd); err != nil {
			return nil, err
		}
	}
	if err := in.check(); err != nil {
		return nil, err
	}
	in.notify, _ = lookupEnv(environ, envNotify)
	return in, nil
}

// place files fd under its name.
func (in *inheritance) place(name string, fd int) error {
	bad := func() error { return configErr("upgrade: bad descriptor name %q (fd %d)", name, fd) }
	index := func(s string) (int, bool) {
		k, err := strconv.Atoi(s)
		return k, err == nil && k >= 0 && k < 1<<16 && strconv.Itoa(k) == s
	}
	switch {
	case strings.HasPrefix(name, fdNameShared):
		j, ok := index(name[len(fdNameShared):])
		if !ok || j != len(in.shared) {
			return bad()
		}
		in.shared = append(in.shared, fd)
	case strings.HasPrefix(name, fdNameSlot):
		si, sj, _ := strings.Cut(name[len(fdNameSlot):], "-")
		i, ok1 := index(si)
		j, ok2 := index(sj)
		if !ok1 || !ok2 || i > maxWorkers {
			return bad()
		}
		for len(in.slots) <= i {
			in.slots = append(in.slots, nil)
		}
		if j != len(in.slots[i]) {
			return bad()
		}
		in.slots[i] = append(in.slots[i], fd)
	case strings.HasPrefix(name, fdNameUnix):
		k, ok := index(name[len(fdNameUnix):])
		if !ok || k != len(in.unix) {
			return bad()
		}
		in.unix = append(in.unix, fd)
	case strings.HasPrefix(name, fdNameHerd) || name == "":
		return bad()
	default:
		if _, dup := in.app[name]; dup {
			return bad()
		}
		in.app[name] = fd
	}
	return nil
}

// check verifies that the sockets make up the state's listener mode, that they are
// listening stream sockets, and marks every inherited descriptor close-on-exec.
func (in *inheritance) check() error {
	st := &in.state
	var herd []int
	switch st.Mode {
	case ModeShared:
		if len(in.shared)+len(in.unix) == 0 || len(in.slots) > 0 {
			return configErr("upgrade: mode %s without its sockets", st.Mode)
		}
		herd = in.shared
	case ModeReusePort:
		if len(in.slots) == 0 && len(in.unix) > 0 && len(in.shared) == 0 {
			break // unix sockets only: the slots have no sockets of their own
		}
		if len(in.shared) > 0 || len(in.slots) < st.Workers {
			return configErr("upgrade: %d slots handed over, want at least %d", len(in.slots), st.Workers)
		}
		addrs := len(in.slots[0])
		for i, fds := range in.slots {
			if addrs == 0 || ((fds != nil || i < st.Workers) && len(fds) != addrs) {
				return configErr("upgrade: slot %d has %d sockets, want %d", i, len(fds), addrs)
			}
			herd = append(herd, fds...)
		}
	}
	if err := checkActivated(herd); err != nil {
		return err
	}
	if err := in.checkUnix(); err != nil {
		return err
	}
	for _, fd := range in.app {
		// Inherited may have taken it already, and a later descriptor may have its
		// number: everything Go opens is close-on-exec anyway.
		unix.CloseOnExec(fd)
	}
	typ, err := unix.GetsockoptInt(st.CtlFD, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil || typ != unix.SOCK_STREAM {
		return configErr("upgrade: control socket fd %d is not a stream socket", st.CtlFD)
	}
	unix.CloseOnExec(st.CtlFD)
	return nil
}

// adopt makes the inherited sockets m's, in place of the addresses in s, and takes the old
// master's number of slots and listener mode.
func (m *Master) adopt(in *inheritance) {
	s := m.cfg
	s.Mode, s.Workers = in.state.Mode, in.state.Workers
	s.environ = mergeEnv(s.environ, map[string]bool{
		upgradeEnv: true, envListenFDs: true, envListenNames: true, envListenPID: true,
	})
	// systemd hears from this master only once it has taken over (MAINPID=): a new master
	// that fails must not tell it anything, STOPPING=1 least of all.
	s.sdNotify = ""
	if s.Mode == ModeShared {
		m.shared = append([]int{}, in.shared...) // not nil: the mode's mark, even without TCP
		return
	}
	m.slotFDs = in.slots
	if len(in.slots) == 0 {
		// Unix sockets only: every slot has no socket of its own.
		for range s.Workers {
			m.slotFDs = append(m.slotFDs, []int{})
		}
		s.addrs = nil
		return
	}
	// New slots (SIGTTIN) join the inherited groups: bind the same addresses.
	s.addrs = s.addrs[:0]
	for _, fd := range in.slots[0] {
		if sa, err := unix.Getsockname(fd); err == nil {
			if a, ok := sockaddrToAddr(sa).(*net.TCPAddr); ok {
				s.addrs = append(s.addrs, a)
			}
		}
	}
	m.migrate = m.tcpMigrateReq()
}

// slotCount is the number of slots the supervisor starts with: the configured ones, and in
// a new master also the old master's removed (parked) slots, whose sockets it keeps.
func (m *Master) slotCount() int { return max(m.cfg.Workers, len(m.slotFDs)) }

// checkPIDFileOnUpgrade is checkPIDFile for a new master: the pidfile names the old master.
func checkPIDFileOnUpgrade(path string, e *env, in *inheritance) error {
	if in != nil {
		if b, err := e.readFile(path); err == nil && strings.TrimSpace(string(b)) == strconv.Itoa(in.state.Master) {
			return nil
		}
	}
	return checkPIDFile(path, e)
}

// initUpgrade prepares the supervisor's upgrade state. In a new master, its workers use the
// lanes the old master's workers do not until the old master is gone, and its counters
// continue from the old master's.
func (s *supervisor) initUpgrade() {
	s.up.pidfd = -1
	in := s.m.inh
	if in == nil {
		return
	}
	s.counters = in.state.Counters
	for i, sl := range s.slots {
		if i < len(in.state.Lanes) && in.state.Lanes[i] != '-' {
			sl.lastLane = 'a' + 'b' - in.state.Lanes[i]
		}
	}
	// The old master may have left a steering program attached: replace or detach it.
	s.steered = true
	unix.SetNonblock(in.state.CtlFD, true) // first: os.NewFile makes a non-blocking file pollable
	s.up.pred = os.NewFile(uintptr(in.state.CtlFD), "prefork-upgrade-previous")
	s.up.predPID = in.state.Master
	go watchPredecessor(s.m, s.up.pred)
}

// watchPredecessor reads the control socket: the old master's "ack", and end-of-file when
// it closes the socket after its last worker was reaped (or dies).
func watchPredecessor(m *Master, f *os.File) {
	r := bufio.NewReader(f)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			break
		}
		if line == ctlAck+"\n" {
			m.post(command{upgrade: &upgradeEvent{kind: evAcked}})
		}
	}
	m.post(command{upgrade: &upgradeEvent{kind: evPredecessorGone}})
}

// reportReady runs when a new master's workers are all ready: it tells the old master, and
// takes over once that one answers (evAcked). With the old master already gone there is
// nobody to ask: it takes over at once.
func (s *supervisor) reportReady() {
	if s.up.pred == nil {
		s.takeOver()
		return
	}
	s.up.pred.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := s.up.pred.WriteString(ctlReady + "\n"); err != nil {
		// It is gone, or going: its end-of-file follows (predecessorGone).
		s.log.Warn("upgrade: cannot tell the old master", "old_pid", s.up.predPID, "err", err)
	}
	s.log.Info("upgrade: ready; waiting for the old master to hand over", "old_pid", s.up.predPID)
}

// takeOver makes a new master the master of record, once the old master committed to
// handing over (or is gone): from here it owns the pidfile, the unix socket files and the
// run directory it inherited (TookOver), and speaks to systemd.
func (s *supervisor) takeOver() {
	in := s.m.inh
	if in == nil || !s.booted || s.m.tookOver.Load() {
		return
	}
	s.m.tookOver.Store(true)
	pid := s.env.getpid()
	if s.cfg.PIDFile != "" {
		// The old master unlocked it as it started this one.
		if pf, err := writePIDFile(s.cfg.PIDFile, pid); err != nil {
			s.log.Error("upgrade: cannot write the pidfile", "err", err)
		} else {
			s.pidFile = pf
		}
	}
	s.m.applyUnixMode(s.cfg.SocketMode)
	s.up.notify = newNotifier(in.notify, s.log)
	s.notify = s.up.notify
	s.notify.send("MAINPID=" + strconv.Itoa(pid) + "\nREADY=1\nSTATUS=" + s.statusText())
	if s.up.pred != nil {
		// The old master exits only after this line (or after takeOverWait).
		s.up.pred.SetWriteDeadline(time.Now().Add(5 * time.Second))
		s.up.pred.WriteString(ctlTaken + "\n")
	}
	s.log.Info("upgrade: took over from the old master", "old_pid", in.state.Master)
}

// takeOverWait bounds how long an old master that handed over waits, once its last worker
// was reaped, for the new master to confirm that it took over (a new master of an older
// herd never does; one that dies closes the socket, which ends the wait too).
const takeOverWait = 5 * time.Second

// awaitingTakeOver reports whether this master, having handed over and stopped its workers,
// still waits for the new master's "taken": it exits after it, so that the pidfile and
// systemd's main pid never name a master that is gone.
func (s *supervisor) awaitingTakeOver(now time.Time) bool {
	u := &s.up
	if !s.m.handedOver.Load() || u.taken {
		return false
	}
	if u.takeOverBy.IsZero() {
		u.takeOverBy = now.Add(takeOverWait)
		s.log.Info("upgrade: waiting for the new master to take over", "new_pid", u.pid)
	}
	if now.Before(u.takeOverBy) {
		return true
	}
	s.log.Warn("upgrade: the new master did not confirm that it took over; exiting anyway",
		"new_pid", u.pid, "waited", takeOverWait)
	u.taken = true // logged once
	return false
}

// predecessorGone runs when the old master closed the control socket: after its last
// worker was reaped, or because it died. A master that was ready takes over now if the
// old one had not answered (it died): nobody else serves. (An old master that gives up
// closes the socket only after this master was reaped.)
func (s *supervisor) predecessorGone() {
	if s.up.pred == nil {
		return
	}
	s.up.pred.Close()
	s.up.pred = nil
	s.takeOver()
	s.log.Info("upgrade complete: the old master exited", "old_pid", s.up.predPID)
	// Recompute the steering now that only this master's workers serve.
	s.steerKnown, s.steered = false, true
}

// writeStartPIDFile writes the pidfile as Run starts, except in a new master, which writes
// it when it takes over (takeOver).
func (s *supervisor) writeStartPIDFile() error {
	if s.m.inh != nil {
		return nil
	}
	pf, err := writePIDFile(s.cfg.PIDFile, s.env.getpid())
	s.pidFile = pf
	return err
}

// holdLanes returns, per slot, the lane its workers use ('-': none and none to come), and
// makes that the lane its next worker (a respawn) uses. Every slot has one worker at most.
func (s *supervisor) holdLanes() string {
	b := make([]byte, len(s.slots))
	for i, sl := range s.slots {
		b[i] = '-'
		if i < s.n {
			b[i] = sl.lastLane
		}
	}
	for _, w := range s.workers {
		b[w.slot.index] = w.lane
		w.slot.lastLane = w.lane
	}
	return string(b)
}
