package prefork

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// Master supervises the worker processes. Create it with NewMaster, then call Run once.
// Its methods are safe for concurrent use.
type Master struct {
	cfg *settings
	env *env
	log *slog.Logger

	addrs    []net.Addr
	shared   []int         // ModeShared (or socket activation): the sockets every worker inherits
	slotFDs  [][]int       // ModeReusePort: the sockets of the slots opened by NewMaster
	unix     []*unixSocket // the unix sockets of Config.Addrs, inherited by every worker
	fdMu     sync.Mutex
	fdClosed bool // guarded by fdMu

	migrate bool // net.ipv4.tcp_migrate_req is on: closing a socket hands its queue over

	// Binary upgrades (see upgrade.go, takeover.go).
	self       string       // the executable a binary upgrade starts (selfPath; "": unknown)
	selfArgs   []string     // and its arguments
	inh        *inheritance // what the old master handed over; nil unless started by an upgrade
	handedOver atomic.Bool  // Run ended by handing over to a new master
	tookOver   atomic.Bool  // this new master took over from the old one

	ran atomic.Bool // Run or Close was called

	cmdMu sync.Mutex
	cmds  []command // guarded by cmdMu
	wake  chan struct{}

	infoMu   sync.Mutex
	info     []WorkerInfo // guarded by infoMu; the supervisor's latest snapshot
	counters Counters     // guarded by infoMu
}

type command struct {
	reload  bool
	workers int            // > 0: SetWorkers
	delta   int            // TTIN (+1) / TTOU (-1)
	signal  syscall.Signal // SignalWorkers
	upgrade *upgradeEvent  // a binary upgrade: requested (SIGUSR2, Upgrade), or news of it
}

// NewMaster validates cfg and opens the listening sockets, so that every configuration
// problem, "address already in use" included, is reported here, before anything is started.
// Errors are one line, prefixed "prefork: ". The sockets listen from now on: connections
// queue until the workers are ready. Call Run, or Close if the master will not run.
func NewMaster(cfg Config) (*Master, error) {
	return newMaster(cfg, newStdEnv())
}

func newMaster(cfg Config, e *env) (*Master, error) {
	s, err := cfg.validate(e)
	if err != nil {
		return nil, err
	}
	if err := checkRecycle(s); err != nil {
		return nil, err
	}
	if err := checkCanary(s); err != nil {
		return nil, err
	}
	if err := unix.Access(s.Path, unix.X_OK); err != nil {
		return nil, configErr("worker executable %s: %v", s.Path, err)
	}
	in, err := readUpgradeEnv(s.environ, os.Getppid())
	if err != nil {
		return nil, err
	}
	if s.PIDFile != "" {
		if err := checkPIDFileOnUpgrade(s.PIDFile, e, in); err != nil {
			return nil, err
		}
	}
	m := &Master{cfg: s, env: e, log: s.logger, wake: make(chan struct{}, 1), inh: in}
	m.self, m.selfArgs = selfPath(e), e.args()
	backlog := m.backlog()
	switch {
	case in != nil:
		m.adopt(in)
	case len(s.activated) > 0:
		if err := checkActivated(s.activated); err != nil {
			return nil, err
		}
		m.shared = s.activated
	case s.Mode == ModeShared:
		m.shared = make([]int, 0, len(s.addrs)) // not nil: the mode's mark, even without TCP
		for _, a := range s.addrs {
			fd, err := openSocket(a, false, backlog)
			if err != nil {
				closeFDs(m.shared)
				return nil, listenErr(a, err)
			}
			m.shared = append(m.shared, fd)
		}
	default:
		bound, err := probeAddrs(s.addrs)
		if err != nil {
			return nil, err
		}
		s.addrs = bound
		m.migrate = m.tcpMigrateReq()
		for range s.Workers {
			fds, err := openSlotSockets(bound, backlog)
			if err != nil {
				for _, f := range m.slotFDs {
					closeFDs(f)
				}
				return nil, err
			}
			m.slotFDs = append(m.slotFDs, fds)
		}
	}
	first := m.shared
	if first == nil {
		first = m.slotFDs[0]
	}
	for _, fd := range first {
		sa, err := unix.Getsockname(fd)
		if err != nil {
			m.closeFDs()
			return nil, configErr("getsockname: %v", err)
		}
		m.addrs = append(m.addrs, sockaddrToAddr(sa))
	}
	if len(s.activated) == 0 {
		us, err := m.openUnix(s.unixPaths, s.SocketMode, backlog)
		if err != nil {
			m.closeFDs()
			return nil, err
		}
		m.unix = us
		for _, u := range us {
			m.addrs = append(m.addrs, &net.UnixAddr{Name: u.path, Net: "unix"})
		}
	}
	return m, nil
}

func sockaddrToAddr(sa unix.Sockaddr) net.Addr {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return &net.TCPAddr{IP: net.IP(sa.Addr[:]).To16(), Port: sa.Port}
	case *unix.SockaddrInet6:
		a := &net.TCPAddr{IP: net.IP(sa.Addr[:]), Port: sa.Port}
		if sa.ZoneId != 0 {
			if ifi, err := net.InterfaceByIndex(int(sa.ZoneId)); err == nil {
				a.Zone = ifi.Name
			}
		}
		return a
	case *unix.SockaddrUnix:
		return &net.UnixAddr{Name: sa.Name, Net: "unix"}
	}
	return nil
}

// Addrs returns the addresses the workers serve, with the ports actually bound (useful with
// port 0): the TCP addresses in the order of Config.Addrs, then its unix sockets (or
// systemd's sockets, in their order). WorkerProcess.Listeners are in the same order.
func (m *Master) Addrs() []net.Addr { return append([]net.Addr(nil), m.addrs...) }

// Run starts the workers and supervises them until the master stops: on SIGTERM or SIGINT,
// or when ctx is done (graceful: the workers get SIGTERM and GracefulTimeout to drain, then
// SIGKILL), on SIGQUIT or a second SIGINT (immediate: SIGKILL), or on a fatal error
// (ErrBootFailed, ErrRestartLimit: graceful). It returns only after every worker was reaped
// and the sockets were closed: nil after a requested stop, the error otherwise.
//
// Run handles SIGHUP (Reload), SIGTTIN and SIGTTOU (one worker more or fewer), SIGUSR1
// (Hooks.OnReopenLogs), SIGUSR2 (Upgrade) and SIGCHLD while it runs, and restores their
// handling when it returns. After a binary upgrade handed over to a new master, Run
// returns nil once this master's workers have drained, and HandedOver reports true. The workers are started from one goroutine locked to its OS thread for the whole
// run: the kernel sends a worker its parent-death signal (PR_SET_PDEATHSIG) when the thread
// that started it exits, not the process, and Go retires threads.
//
// Run may be called only once; later calls return ErrRunTwice.
func (m *Master) Run(ctx context.Context) error {
	if !m.ran.CompareAndSwap(false, true) {
		return ErrRunTwice
	}
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: when this goroutine ends, its thread ends with it, and the
		// parent-death signal reaches any worker that is, against all odds, still alive.
		runtime.LockOSThread()
		s := newSupervisor(m)
		err := s.run(ctx)
		s.finishUpgrade()
		errc <- err
	}()
	return <-errc
}

// Close releases the listening sockets of a master that will not Run. It returns nil, and
// does nothing after Run was called (Run closes them itself).
func (m *Master) Close() error {
	if m.ran.CompareAndSwap(false, true) {
		m.closeFDs()
	}
	return nil
}

func (m *Master) closeFDs() {
	m.fdMu.Lock()
	defer m.fdMu.Unlock()
	if m.fdClosed {
		return
	}
	m.fdClosed = true
	closeFDs(m.shared)
	for _, f := range m.slotFDs {
		closeFDs(f)
	}
	m.closeUnix()
}

// listenFDs are the sockets a worker of a slot with sockets fds inherits: the slot's, then
// the unix sockets.
func (m *Master) listenFDs(fds []int) []int {
	out := append([]int(nil), fds...)
	for _, u := range m.unix {
		out = append(out, u.fd)
	}
	return out
}

// Workers returns a snapshot of the live worker processes, sorted by slot and ID. During a
// planned replacement a slot has two (the successor and the one it replaces).
func (m *Master) Workers() []WorkerInfo {
	m.infoMu.Lock()
	info := append([]WorkerInfo(nil), m.info...)
	m.infoMu.Unlock()
	m.addQueues(info)
	now := m.env.now()
	for i := range info {
		info[i].AgeSeconds = max(now.Sub(info[i].Started), 0).Seconds()
	}
	return info
}

// Reload starts a rolling restart, as SIGHUP does: slot by slot, a new worker is started
// (from Config.Path, so a replaced binary is picked up), and the old one is told to stop once
// the new one is ready. If a new worker fails to boot, the restart is abandoned and the
// remaining old workers keep serving. It does not wait.
func (m *Master) Reload() { m.post(command{reload: true}) }

// SetWorkers changes the number of worker slots, as SIGTTIN and SIGTTOU do one at a time.
// Removed slots are the highest; their workers are stopped gracefully. It does not wait.
func (m *Master) SetWorkers(n int) error {
	if n < 1 || n > maxWorkers {
		return fmt.Errorf("prefork: workers must be between 1 and %d (got %d)", maxWorkers, n)
	}
	m.post(command{workers: n})
	return nil
}

// SignalWorkers sends sig to every worker that is ready or stopping; a worker still booting
// may not have installed its handler yet, and the default action of most signals would kill
// it. The supervisor sends it, so a pid that was reaped (and may have been reused) is never
// signalled. It does not wait. The master forwards no signal to its workers by itself: a
// Hooks.OnReopenLogs that calls SignalWorkers(syscall.SIGUSR1) forwards log rotation.
func (m *Master) SignalWorkers(sig syscall.Signal) { m.post(command{signal: sig}) }

func (m *Master) post(c command) {
	m.cmdMu.Lock()
	m.cmds = append(m.cmds, c)
	m.cmdMu.Unlock()
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

func (m *Master) takeCommands() []command {
	m.cmdMu.Lock()
	defer m.cmdMu.Unlock()
	c := m.cmds
	m.cmds = nil
	return c
}

// Counters returns the master's running totals (see Counters).
func (m *Master) Counters() Counters {
	m.infoMu.Lock()
	defer m.infoMu.Unlock()
	return m.counters
}

func (m *Master) publish(info []WorkerInfo, c Counters) {
	m.infoMu.Lock()
	m.info, m.counters = info, c
	m.infoMu.Unlock()
}

// setSlotFDs records the sockets of slot i, opened at run time, so that closeFDs closes them.
func (m *Master) setSlotFDs(i int, fds []int) {
	m.fdMu.Lock()
	defer m.fdMu.Unlock()
	for len(m.slotFDs) <= i {
		m.slotFDs = append(m.slotFDs, nil)
	}
	m.slotFDs[i] = fds
}

// closeSlotFDs closes the sockets of slot i.
func (m *Master) closeSlotFDs(i int) {
	m.fdMu.Lock()
	defer m.fdMu.Unlock()
	if i < len(m.slotFDs) && !m.fdClosed {
		closeFDs(m.slotFDs[i])
		m.slotFDs[i] = nil
	}
}
