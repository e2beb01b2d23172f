// Package prefork is herd's process supervisor: one binary, run as a master, starts N worker
// processes that serve the same TCP port, and keeps them running. It knows nothing of HTTP or
// metrics; it reports what happens through Hooks and Master.Workers.
//
// # Process model
//
// The program calls Worker first thing in main. In a worker it returns the WorkerProcess
// (slot, id, listeners); otherwise the program is the master:
//
//	if w, ok := prefork.Worker(); ok {
//		// serve on w.Listeners, then:
//		w.Ready()
//		<-w.Stop()
//		// stop accepting, drain, exit 0
//		return
//	}
//	m, err := prefork.NewMaster(cfg) // validates, binds: exit 2 on error, nothing started
//	...
//	err = m.Run(ctx)                 // starts and supervises the workers until stopped
//
// The master starts each worker by re-executing its own binary (os.Executable, or
// Config.Path) with the same arguments and a marker in the environment, HERD_WORKER, which
// Worker reads and then unsets, so that the application's own subprocesses are not mistaken
// for workers. A worker is never started by parsing special command-line flags.
//
// A worker inherits, after stdin, stdout and stderr: descriptor 3, the status pipe on which
// it reports "ready", its heartbeats (with the number of requests served) and "retire";
// descriptor 4, the lifeline pipe, which the master never writes: end-of-file on it means the
// master is gone; descriptors 5 and up, the listening sockets; and after them the crash
// pipe, which the worker makes its runtime/debug.SetCrashOutput, so that what the Go runtime
// prints as the worker dies (a panic, a fatal error, the stacks of a SIGABRT) reaches the
// master's log too, tagged with the worker's slot and pid. The worker's stdout and stderr are
// the master's, untouched.
//
// Worker slots are numbered 0..N-1. Each slot has two lanes, so a worker's ID is "<slot>a" or
// "<slot>b": a planned replacement (reload, max-requests) starts in the free lane, overlaps
// its predecessor until it is ready, and never shares a per-ID file with it. A worker that
// replaces a dead one takes over its lane (and so its files).
//
// # Listeners
//
// In ModeReusePort (the default) the master opens one SO_REUSEPORT socket per slot and keeps
// it for its whole run: the connections the kernel queued on a slot wait for the slot's next
// worker instead of being reset with the worker. In ModeShared all workers inherit one
// socket, and the queue is shared. Either way, replacing a worker drops nothing as long as
// the worker drains properly (see the server package). Sockets are opened in NewMaster, so a
// port in use is reported before anything starts; before binding SO_REUSEPORT sockets the
// master binds each address once without it, because SO_REUSEPORT would silently share the
// port with another server of the same user.
//
// An address "unix:/path" is a unix socket: one socket shared by every worker in either mode,
// created with Config.SocketMode (0660 by default) and removed when the master closes its
// sockets. A socket file left by a run that crashed is replaced only when nothing listens on
// it. Workers get their TCP sockets first, then the unix sockets (the order of Master.Addrs).
//
// Started by systemd socket activation (LISTEN_PID is the master's pid), the master uses the
// inherited sockets instead of Config.Addrs, in ModeShared.
//
// # Signals
//
// To the master: SIGTERM and SIGINT stop gracefully (workers get SIGTERM and
// Config.GracefulTimeout to drain, then SIGKILL); SIGQUIT (or a second SIGINT) stops at once;
// SIGHUP restarts the workers slot by slot, each new worker ready before its predecessor is
// told to stop; SIGTTIN and SIGTTOU add or remove one slot; SIGUSR1 calls
// Hooks.OnReopenLogs. Workers catch and drop SIGINT and SIGQUIT (a terminal sends them to
// the whole process group; the master drives the shutdown) and turn SIGTERM into Stop.
//
// # Master death
//
// Workers must not outlive their master. Each watches its lifeline pipe: at end-of-file
// (the master is gone, however it died) Stop is closed and MasterGone too, and the worker
// exits by itself after Config.OrphanTimeout (500ms) if it has not finished draining. The
// backstop is PR_SET_PDEATHSIG, set to SIGTERM (so that it drains the same way). A worker
// that finds at start that its parent is not the master named in its marker exits at once.
//
// # Supervision
//
// The master reaps every worker. When it runs as PID 1 (in a container) it also reaps every
// other child, orphans included, with wait4(-1): an exec.Cmd the application starts in the
// master process would then lose its exit status, so run such commands in the workers, or
// put an init (tini, --init) in front. A worker that exits unasked is respawned at once, then with exponential backoff while
// its slot keeps failing. Unplanned exits count toward a sliding-window limit
// (Config.CrashLimit per Config.CrashWindow; ErrRestartLimit); planned ones (reload,
// max-requests, scale-down, shutdown, and the recycling below) never do. A worker that exits or hangs before it is
// ready while the master is starting stops the master with ErrBootFailed, as gunicorn does;
// during a reload it aborts the reload and the old workers keep serving (a new worker still
// booting in another slot is stopped as part of the abandoned reload). A ready worker
// whose heartbeat stops for Config.Timeout is sent SIGABRT: the Go runtime prints every
// goroutine's stack and exits, and the master logs the stacks ("worker goroutine stacks");
// a worker still there 2s later is killed (SIGKILL), and a stopped one (SIGSTOP, a
// debugger) at once, with a log line saying so. Either way it is replaced, and its exit
// counts as ExitTimeout. (SIGABRT, not SIGQUIT: workers catch SIGQUIT, see Signals.)
//
// A worker can also be recycled by resident memory (Config.MaxWorkerRSS, read from
// /proc/PID/statm at each heartbeat) and by age (Config.MaxWorkerAge, plus a random
// Config.MaxWorkerAgeJitter): like a worker that retires after MaxRequests, it gets a
// successor and is drained once that one is ready (ExitRSS, ExitAge).
//
// Running out of file descriptors (EMFILE, ENFILE) while starting a worker is not a crash:
// the start is retried with backoff, never counted toward the limit, logged at most every
// 10s and counted (Master.Counters). The master keeps a small reserve of descriptors that it
// frees just before each start, so that something else in its process filling the
// descriptor table (admin connections, say) cannot stop the replacement of workers.
//
// In ModeReusePort the kernel would keep sending a slot's share of new connections to its
// socket while the slot has no worker (crashed, booting, in backoff, removed by SIGTTOU).
// The master steers new connections to the sockets of the slots with a ready worker with a
// reuseport BPF program, and never closes a removed slot's socket (that would reset the
// connections queued on it); see steer.go.
//
// # Sizing
//
// Each worker gets GOMAXPROCS = the master's GOMAXPROCS / number of workers (at least 1):
// N single-threaded workers on N cores avoid the context switches of N processes that each
// size themselves for the whole machine. An explicit Config.GOMAXPROCS, or GOMAXPROCS in the
// master's environment, wins. GOMEMLIMIT in the master's environment is divided among the
// workers (during a rolling restart one more worker briefly runs).
//
// # Traps
//
//   - Go ties PR_SET_PDEATHSIG to the thread that started the child, not the process, and the
//     runtime retires threads: a worker started from an ordinary goroutine can get its
//     "parent died" signal while the master is alive. The master starts every worker from
//     one goroutine locked to its thread for the whole of Run.
//   - (*os.File).Fd, which exec.Cmd and os.StartProcess call on every file they pass, puts the
//     descriptor in blocking mode, and that flag is shared by every process holding the
//     socket: a worker blocked in accept(2) cannot be woken by closing its listener. The
//     master keeps its sockets as raw non-blocking descriptors and starts workers with
//     syscall.ForkExec.
//   - A process that has exited can linger as a zombie when PID 1 reaps lazily: check
//     liveness by /proc/PID/stat state, not kill(pid, 0).
//   - SO_REUSEPORT: closing a slot's socket resets the connections queued on it, unless the
//     kernel's net.ipv4.tcp_migrate_req is on; hence the steering above. A handshake still in
//     progress when a slot is removed (the client's final ACK arrives after the removed
//     worker stopped accepting, that is, more than 250ms later) waits on the parked socket
//     until the slot comes back or the master stops; use ModeShared if that matters.
//   - Worker calls runtime/debug.SetCrashOutput with the master's crash pipe: an application
//     that calls SetCrashOutput itself replaces it, and its workers' panics and stacks then
//     reach only their stderr (and its own file).
//   - Every worker re-runs every init function of the binary: keep them free of side effects.
//     And `go run` re-executes a temporary binary that is deleted on exit: fine, but a
//     reload cannot pick up a rebuilt binary that way.
//
// # Environment
//
// The master reads its environment once, in NewMaster, from Config.Environ (nil: os.Environ):
// systemd's LISTEN_FDS/LISTEN_PID and NOTIFY_SOCKET/WATCHDOG_USEC, and GOMAXPROCS and
// GOMEMLIMIT, which it divides among the workers. The worker side reads only HERD_WORKER.
//
// # Concurrency
//
// Master and WorkerProcess methods are safe for concurrent use. Hooks run on the master's
// supervisor goroutine, one at a time (see Hooks).
package prefork
