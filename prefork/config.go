package prefork

import (
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"
)

// ListenerMode chooses how the workers share the listening sockets.
type ListenerMode string

const (
	// ModeReusePort (the default) opens one SO_REUSEPORT socket per worker slot. The master
	// keeps every socket open, so the connections queued on a slot survive its worker: the
	// slot's next worker accepts them.
	ModeReusePort ListenerMode = "reuseport"
	// ModeShared opens one socket per address, inherited by every worker. The accept queue is
	// shared: a worker that stops accepting leaves its share to the others.
	ModeShared ListenerMode = "shared"
)

// Defaults of the Config fields whose zero value means "default".
const (
	DefaultGracefulTimeout = 30 * time.Second
	DefaultTimeout         = 30 * time.Second
	DefaultCrashLimit      = 10
	DefaultCrashWindow     = time.Minute
	DefaultOrphanTimeout   = 500 * time.Millisecond
)

// Config configures a Master. The zero value of every field except Workers and Addrs works;
// each field documents its default.
type Config struct {
	// Workers is the number of worker slots at start, at least 1. TTIN/TTOU and SetWorkers
	// change it at run time.
	Workers int
	// Addrs are the addresses to listen on: TCP ("127.0.0.1:8080", ":8080", "[::1]:0") and
	// unix sockets ("unix:/run/app.sock", see UnixPrefix). A wildcard host listens on IPv4
	// and IPv6, as net.Listen does. Port 0 picks one free port, the same for every slot (see
	// Master.Addrs). A unix socket is shared by every worker in either mode. Ignored when
	// the master was started by systemd socket activation (the inherited sockets are used
	// instead).
	Addrs []string
	// SocketMode is the mode of the unix sockets of Addrs; zero: DefaultSocketMode (0660).
	SocketMode fs.FileMode
	// Mode is the listener mode; zero: ModeReusePort. Socket activation implies ModeShared.
	Mode ListenerMode
	// Backlog is the listen backlog; zero: net.core.somaxconn (4096 if unreadable).
	Backlog int

	// GracefulTimeout is how long a worker told to stop (SIGTERM) may take to drain before
	// it is killed (SIGKILL); zero: 30s.
	GracefulTimeout time.Duration
	// Timeout is the heartbeat timeout: a ready worker that has not sent a heartbeat for this
	// long is killed and replaced; zero: 30s. Workers send heartbeats every Timeout/4 (at
	// most every second).
	Timeout time.Duration
	// BootTimeout is how long a new worker may take to call Ready before it is killed and
	// counted as a boot failure; zero: Timeout.
	BootTimeout time.Duration
	// OrphanTimeout bounds how long a worker keeps draining once its master is gone (its
	// lifeline pipe reached end-of-file) before it exits on its own; zero: 500ms.
	OrphanTimeout time.Duration

	// MaxRequests is the number of requests after which a worker asks to be replaced
	// (WorkerProcess.MaxRequests, Retire); zero: never.
	MaxRequests int
	// MaxRequestsJitter adds a random 0..MaxRequestsJitter to each worker's limit, so the
	// workers do not all restart at once; requires MaxRequests.
	MaxRequestsJitter int

	// CrashLimit is the number of unplanned worker exits (crashes, heartbeat timeouts, boot
	// failures after start-up) tolerated within CrashWindow; one more stops the master with
	// ErrRestartLimit. Planned exits (reload, max-requests, scale-down, shutdown) never count.
	// Zero: 10; negative: no limit.
	CrashLimit int
	// CrashWindow is the sliding window of CrashLimit; zero: one minute.
	CrashWindow time.Duration

	// GOMAXPROCS is the GOMAXPROCS given to each worker. Zero: the master's GOMAXPROCS
	// divided by the number of workers (at least 1), unless the master's environment sets
	// GOMAXPROCS, which the workers then inherit unchanged. Negative: leave it to each
	// worker's runtime (every worker sizes itself for the whole machine).
	// When the master's environment sets GOMEMLIMIT, each worker gets that limit divided by
	// the number of workers.
	GOMAXPROCS int

	// Path is the executable started as a worker; zero: os.Executable() (resolved in
	// NewMaster, so a binary replaced on disk is picked up by the next reload). A wrapper
	// must exec the program, not fork it: a worker checks that its parent is the master.
	Path string
	// Args is the worker's argv, Args[0] included; nil: os.Args.
	Args []string
	// Env is extra "KEY=value" entries for the workers' environment. They override Environ.
	Env []string
	// WorkerData is handed unchanged to every worker as WorkerProcess.Data, inside the
	// worker's marker: what the application's workers need from their master that is not
	// in their arguments (the server passes its run directory this way). The worker reads
	// no environment variable for it.
	WorkerData string
	// Environ is the master's environment: the workers inherit it, and the master reads
	// LISTEN_PID/LISTEN_FDS (socket activation), NOTIFY_SOCKET, WATCHDOG_USEC/WATCHDOG_PID
	// (sd_notify), GOMAXPROCS and GOMEMLIMIT from it. nil: os.Environ(), read once in
	// NewMaster (the only place the master reads its environment). The systemd variables are
	// removed from the workers' environment.
	Environ []string
	// PIDFile, when set, is written with the master's pid when Run starts (atomically) and
	// removed when Run returns. NewMaster fails if it names a live process.
	PIDFile string

	// Logger receives the master's structured logs; every line about a worker carries
	// worker=<slot>, id and pid. nil: slog.Default().
	Logger *slog.Logger
	// Hooks are the application's callbacks.
	Hooks Hooks

	// MaxWorkerRSS replaces a worker whose resident memory (read from /proc/PID/statm at
	// each heartbeat) is above this many bytes: a successor is started, and the worker is
	// drained once it is ready, as for MaxRequests (ExitRSS). Zero: never.
	MaxWorkerRSS int64
	// MaxWorkerAge replaces a worker this long after it started, the same way (ExitAge).
	// Zero: never.
	MaxWorkerAge time.Duration
	// MaxWorkerAgeJitter adds a random 0..MaxWorkerAgeJitter to each worker's
	// MaxWorkerAge, so that workers started together are not replaced together; requires
	// MaxWorkerAge.
	MaxWorkerAgeJitter time.Duration

	// ReloadCanary, when positive, puts every reload (SIGHUP, Reload) on trial: one slot's
	// worker is replaced first, and the other slots wait until that canary has been ready
	// for ReloadCanary and CanaryJudge found it no worse than the old workers. A bad canary
	// (or one that exits, hangs or fails to boot in its window) is stopped and its slot is
	// started again from the executable the other workers run, which the master holds open:
	// with ReloadCanary every worker, a respawn after a crash included, is started from the
	// executable the master holds (through /proc/<master pid>/fd/<n>), and Config.Path is
	// read again only by the next reload. Zero: reloads replace every slot in turn.
	ReloadCanary time.Duration
	// CanaryJudge decides at the end of the canary's window; nil: a canary that served its
	// whole window passes. Requires ReloadCanary.
	CanaryJudge CanaryJudge
	// Handover, when set, is called as a binary upgrade (SIGUSR2, Master.Upgrade) starts the
	// new master, and returns what the application hands it beside the workers' sockets:
	// its own listeners and values, which the new master gets from Inherited. An error
	// refuses the upgrade. Threading: the supervisor goroutine.
	Handover func() (Handover, error)
}

// Hooks are callbacks into the application. Every hook is optional.
//
// Threading: every hook runs on the master's supervisor goroutine (the goroutine that starts
// the workers, locked to one OS thread), one at a time, and supervision waits until it
// returns: keep hooks short. A hook may call Master.Workers, Reload and SetWorkers (they do
// not wait for the supervisor) but must not call Run.
type Hooks struct {
	// OnWorkerStart runs after a worker process was started, before it is ready.
	// Threading: the supervisor goroutine.
	OnWorkerStart func(WorkerEvent)
	// OnWorkerReady runs when a worker reported that it serves.
	// Threading: the supervisor goroutine.
	OnWorkerReady func(WorkerEvent)
	// OnWorkerExit runs after a worker process was reaped, whatever the reason (crash,
	// timeout, reload, shutdown...), and before any other worker with the same ID is
	// started: the place to remove the files the worker kept under its ID (live gauges).
	// Threading: the supervisor goroutine.
	OnWorkerExit func(WorkerExit)
	// OnReload runs when a rolling restart begins (SIGHUP or Reload), before the first new
	// worker is started. Threading: the supervisor goroutine.
	OnReload func()
	// OnReopenLogs runs on SIGUSR1. The signal is not forwarded to the workers.
	// Threading: the supervisor goroutine.
	OnReopenLogs func()
}

// WorkerEvent identifies one worker process.
type WorkerEvent struct {
	Slot int
	ID   string
	PID  int
}

// settings is Config after defaults and validation.
type settings struct {
	Config
	addrs       []*net.TCPAddr
	unixPaths   []string // the unix sockets of Addrs
	crashLimit  int
	heartbeat   time.Duration
	environ     []string
	logger      *slog.Logger
	activated   []int // systemd socket-activation fds
	sdNotify    string
	watchdog    time.Duration
	gomemlimit  int64 // 0: not set
	hasMaxProcs bool  // Environ sets GOMAXPROCS
}

// Environment variables the master reads from Config.Environ.
const (
	envListenPID   = "LISTEN_PID"
	envListenFDs   = "LISTEN_FDS"
	envListenNames = "LISTEN_FDNAMES"
	envNotify      = "NOTIFY_SOCKET"
	envWatchdogUS  = "WATCHDOG_USEC"
	envWatchdogPID = "WATCHDOG_PID"
	envGOMAXPROCS  = "GOMAXPROCS"
	envGOMEMLIMIT  = "GOMEMLIMIT"
)

// ConfigError is a value of Config that Check (or NewMaster) refuses. Its message is one
// line, prefixed "prefork: ".
type ConfigError struct {
	// Field is the Config field at fault ("Workers", "MaxRequestsJitter"...), or "" when
	// the error is not about one field (the environment, the executable, a socket).
	Field string
	// Msg says what is wrong, without the "prefork: " prefix.
	Msg string
}

func (e *ConfigError) Error() string { return "prefork: " + e.Msg }

func configErr(format string, args ...any) error {
	return &ConfigError{Msg: fmt.Sprintf(format, args...)}
}

func fieldErr(field, format string, args ...any) error {
	return &ConfigError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// Check checks the values of c alone: it reads no environment, resolves no name and opens
// nothing, so a program can check its configuration before it decides to start a master.
// NewMaster checks the same, and then what c names on this machine. Errors are
// *ConfigError.
func (c Config) Check() error {
	if c.Workers < 1 {
		return fieldErr("Workers", "workers must be at least 1 (got %d)", c.Workers)
	}
	if c.Workers > maxWorkers {
		return fieldErr("Workers", "workers must be at most %d (got %d)", maxWorkers, c.Workers)
	}
	switch c.Mode {
	case "", ModeReusePort, ModeShared:
	default:
		return fieldErr("Mode", "unknown listener mode %q (want %q or %q)", c.Mode, ModeReusePort, ModeShared)
	}
	for _, a := range c.Addrs {
		if _, _, err := unixPath(a); err != nil {
			return err
		}
	}
	if c.SocketMode&^fs.ModePerm != 0 {
		return fieldErr("SocketMode", "socket mode must be permission bits (at most 0777), got %#o", uint32(c.SocketMode))
	}
	if c.Backlog < 0 {
		return fieldErr("Backlog", "backlog must not be negative (got %d)", c.Backlog)
	}
	for _, d := range []struct {
		field, name string
		v           time.Duration
	}{
		{"GracefulTimeout", "graceful timeout", c.GracefulTimeout},
		{"Timeout", "timeout", c.Timeout},
		{"BootTimeout", "boot timeout", c.BootTimeout},
		{"OrphanTimeout", "orphan timeout", c.OrphanTimeout},
		{"CrashWindow", "crash window", c.CrashWindow},
	} {
		if d.v < 0 {
			return fieldErr(d.field, "%s must not be negative (got %v)", d.name, d.v)
		}
	}
	if t := c.Timeout; t != 0 && t/4 < time.Millisecond {
		return fieldErr("Timeout", "timeout must be at least 4ms (got %v)", t)
	}
	if c.MaxRequests < 0 {
		return fieldErr("MaxRequests", "max requests must not be negative (got %d)", c.MaxRequests)
	}
	if c.MaxRequestsJitter < 0 {
		return fieldErr("MaxRequestsJitter", "max requests jitter must not be negative (got %d)", c.MaxRequestsJitter)
	}
	if c.MaxRequestsJitter > 0 && c.MaxRequests == 0 {
		return fieldErr("MaxRequestsJitter", "max requests jitter needs max requests")
	}
	for _, kv := range c.Env {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return fieldErr("Env", "worker environment entry %q is not KEY=value", kv)
		}
		if k == markerEnv {
			return fieldErr("Env", "worker environment must not set %s", markerEnv)
		}
	}
	return nil
}

// validate checks c (Check), applies the defaults and reads what c names on this machine,
// short of binding sockets. e supplies the environment, pid and executable.
func (c Config) validate(e *env) (*settings, error) {
	if err := c.Check(); err != nil {
		return nil, err
	}
	s := &settings{Config: c}
	if s.Mode == "" {
		s.Mode = ModeReusePort
	}
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{
		{&s.GracefulTimeout, DefaultGracefulTimeout},
		{&s.Timeout, DefaultTimeout},
		{&s.OrphanTimeout, DefaultOrphanTimeout},
		{&s.CrashWindow, DefaultCrashWindow},
	} {
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if s.SocketMode == 0 {
		s.SocketMode = DefaultSocketMode
	}
	if s.BootTimeout == 0 {
		s.BootTimeout = s.Timeout
	}
	s.heartbeat = min(s.Timeout/4, time.Second)
	s.crashLimit = c.CrashLimit
	if s.crashLimit == 0 {
		s.crashLimit = DefaultCrashLimit
	}
	if s.Path == "" {
		p, err := e.executable()
		if err != nil {
			return nil, configErr("find own executable: %v", err)
		}
		s.Path = p
	}
	if s.Args == nil {
		s.Args = e.args()
	}
	if len(s.Args) == 0 {
		s.Args = []string{s.Path}
	}
	s.environ = c.Environ
	if s.environ == nil {
		s.environ = e.environ()
	}
	s.logger = c.Logger
	if s.logger == nil {
		s.logger = slog.Default()
	}
	if _, ok := lookupEnv(s.environ, markerEnv); ok {
		// A worker that did not call Worker would start workers of its own, and so on.
		return nil, configErr("%s is set: this process was started as a worker; call prefork.Worker before NewMaster", markerEnv)
	}
	if err := s.readEnviron(e.getpid()); err != nil {
		return nil, err
	}
	if len(s.activated) > 0 {
		s.Mode = ModeShared
	} else {
		if len(c.Addrs) == 0 {
			return nil, fieldErr("Addrs", "no address to listen on")
		}
		for _, a := range c.Addrs {
			if p, ok, err := unixPath(a); ok {
				if err != nil {
					return nil, err
				}
				s.unixPaths = append(s.unixPaths, p)
				continue
			}
			ta, err := resolveAddr(a)
			if err != nil {
				return nil, err
			}
			s.addrs = append(s.addrs, ta)
		}
	}
	return s, nil
}

// maxWorkers is a sanity bound: more is almost certainly a typo.
const maxWorkers = 4096

func resolveAddr(a string) (*net.TCPAddr, error) {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return nil, fieldErr("Addrs", "bad address %q: %v", a, addrErrText(err))
	}
	if port == "" {
		return nil, fieldErr("Addrs", "bad address %q: missing port", a)
	}
	if n, err := strconv.Atoi(port); err == nil && (n < 0 || n > 65535) {
		return nil, fieldErr("Addrs", "bad address %q: port out of range", a)
	}
	ta, err := net.ResolveTCPAddr("tcp", net.JoinHostPort(host, port))
	if err != nil {
		return nil, fieldErr("Addrs", "bad address %q: %v", a, addrErrText(err))
	}
	return ta, nil
}

// addrErrText drops net.AddrError's repetition of the address.
func addrErrText(err error) string {
	if ae, ok := err.(*net.AddrError); ok {
		return ae.Err
	}
	return err.Error()
}

// lookupEnv returns the last value of key in environ, as the libc does for duplicates.
func lookupEnv(environ []string, key string) (string, bool) {
	for i := len(environ) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(environ[i], "="); ok && k == key {
			return v, true
		}
	}
	return "", false
}

// readEnviron reads the systemd and Go variables of s.environ.
func (s *settings) readEnviron(pid int) error {
	if v, ok := lookupEnv(s.environ, envListenPID); ok && v == strconv.Itoa(pid) {
		nv, _ := lookupEnv(s.environ, envListenFDs)
		n, err := strconv.Atoi(nv)
		if err != nil || n < 0 {
			return configErr("bad %s=%q", envListenFDs, nv)
		}
		for i := range n {
			s.activated = append(s.activated, sdListenFDsStart+i)
		}
	}
	s.sdNotify, _ = lookupEnv(s.environ, envNotify)
	if v, ok := lookupEnv(s.environ, envWatchdogUS); ok {
		wpid, hasPID := lookupEnv(s.environ, envWatchdogPID)
		if !hasPID || wpid == strconv.Itoa(pid) {
			us, err := strconv.ParseUint(v, 10, 63)
			if err != nil || us == 0 {
				return configErr("bad %s=%q", envWatchdogUS, v)
			}
			s.watchdog = time.Duration(us) * time.Microsecond
		}
	}
	_, s.hasMaxProcs = lookupEnv(s.environ, envGOMAXPROCS)
	if v, ok := lookupEnv(s.environ, envGOMEMLIMIT); ok && v != "off" && v != "" {
		n, err := ParseByteCount(v)
		if err != nil {
			return configErr("bad %s=%q: %v", envGOMEMLIMIT, v, err)
		}
		s.gomemlimit = n
	}
	return nil
}

// ParseByteCount parses GOMEMLIMIT's syntax: a non-negative integer with an optional unit
// B, KiB, MiB, GiB or TiB ("512MiB").
func ParseByteCount(s string) (int64, error) {
	units := []struct {
		suffix string
		shift  uint
	}{{"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}, {"B", 0}}
	shift := uint(0)
	for _, u := range units {
		if rest, ok := strings.CutSuffix(s, u.suffix); ok {
			s, shift = rest, u.shift
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("not a byte count")
	}
	if shift > 0 && n > (1<<63-1)>>shift {
		return 0, fmt.Errorf("too large")
	}
	return n << shift, nil
}
