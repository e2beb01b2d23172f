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
// it reports "ready", its heartbeats (with the number of requests served and in flight,
// see WorkerProcess.SetRequestCounter and SetInFlightCounter) and "retire";
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
// As it holds the sockets, the master reads their accept queues from the kernel (TCP_INFO):
// Master.ListenQueues gives each slot's number of connections waiting to be accepted and its
// backlog (in ModeShared, the one shared queue), and Master.Workers each worker's. A worker
// that stopped accepting (stopped, stuck) shows as a growing queue in its slot alone.
//
// # Binary upgrade
//
// SIGUSR2 (or Master.Upgrade) replaces the master itself without closing a socket. The
// master starts the executable at the path it was started by (argv[0], resolved against the
// working directory or PATH at start, symbolic links kept: a binary replaced at that path,
// or a link switched to a new one, is the one started; os.Executable if argv[0] did not name
// this binary) with its own arguments and environment, and hands it every
// listening socket the way systemd would: LISTEN_FDS and LISTEN_FDNAMES, naming each socket
// by address and, in ModeReusePort, by slot, so that every slot keeps its socket and its
// queue. HERD_UPGRADE carries the rest: the old master's pid (the new master checks that it
// is its parent, in place of LISTEN_PID, which cannot be known before the exec), the number
// of slots, the listener mode, the lanes the old workers use, the Counters, and what the
// application hands over (Config.Handover: its own listeners and values, which the new
// master gets back from Inherited). A control socket pair links the two masters.
//
// Unix sockets are handed over too, with their paths: the new master adopts the inherited
// socket for each of its unix addresses with that path instead of creating one (a path no
// inherited socket has is opened as at start). Only the master that owns a socket file
// removes it: the old one leaves it once it handed over, and a new master that did not take
// over leaves it to the old one.
//
// The new master starts its workers in the lanes the old workers do not use, so that a
// worker ID (and its files) is never shared by two live processes. Once they are all ready
// it tells the old master, which decides once: if it has not given up on the upgrade it
// answers, stops its workers gracefully, and its Run returns nil (HandedOver); only on that
// answer does the new master take over (TookOver): it writes the pidfile, sends MAINPID= to
// systemd (the unit needs NotifyAccess=all), and owns the socket files and the run
// directory. A new master stopped before the answer owns nothing it inherited. The old master closes the control socket after its last worker was reaped;
// until then, the new master refuses reloads, scaling and upgrades. Before starting the new
// master, the old one waits until no slot has two workers, and holds back planned
// replacements until the upgrade ends. If the new master exits, or is not ready within
// GracefulTimeout, the old master stops it (SIGTERM, then SIGKILL after another
// GracefulTimeout), says so in its log, restores its pidfile and MAINPID, and keeps serving.
// A second request while an upgrade is under way is refused with a log line, as is one in a
// master that runs as PID 1 (its exit would end the container).
//
// # Signals
//
// To the master: SIGTERM and SIGINT stop gracefully (workers get SIGTERM and
// Config.GracefulTimeout to drain, then SIGKILL); SIGQUIT (or a second SIGINT) stops at once;
// SIGHUP restarts the workers slot by slot, each new worker ready before its predecessor is
// told to stop (with a canary first: see Canary reloads); SIGTTIN and SIGTTOU add or remove
// one slot; SIGUSR1 calls Hooks.OnReopenLogs; SIGUSR2 starts a binary upgrade (above).
// Workers catch and drop SIGINT and SIGQUIT (a terminal sends them to
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
// Master.Workers describes each live worker: its state, age, requests served and in flight
// (as its last heartbeat said), resident memory and CPU time (read from /proc/PID/statm and
// /proc/PID/stat at each heartbeat), and the connections waiting on its slot's queue.
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
// # Canary reloads
//
// With Config.ReloadCanary a reload is put on trial: one slot's worker is replaced first,
// and the other slots wait until that canary has served for ReloadCanary. Config.CanaryJudge
// then compares it with the old workers (the server package's judge reads their metric
// files). A good canary is rolled out to the other slots; a bad one, or one that exits,
// hangs or fails to boot during its window, is stopped (ExitRolledBack) and its slot is
// started again from the executable the other workers run, whatever is on disk by then: the
// master holds every executable its workers run open (O_PATH) and starts workers through
// /proc/<master pid>/fd/<n>. The comparison is logged either way, and Counters counts
// reloads by outcome (ok, rolled back, aborted).
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
//   - With ReloadCanary the workers are executed through /proc/<master pid>/fd/<n>: a wrapper
//     script given as Config.Path sees that as its $0, and a master whose /proc entry its
//     children may not read (not dumpable) cannot start them.
//   - Every worker re-runs every init function of the binary: keep them free of side effects.
//     And `go run` re-executes a temporary binary that is deleted on exit: fine, but a
//     reload cannot pick up a rebuilt binary that way.
//
// # Environment
//
// The master reads its environment once, in NewMaster, from Config.Environ (nil: os.Environ):
// systemd's LISTEN_FDS/LISTEN_PID and NOTIFY_SOCKET/WATCHDOG_USEC, HERD_UPGRADE with
// LISTEN_FDS/LISTEN_FDNAMES in a new master started by an upgrade (Inherited reads them
// from os.Environ), and GOMAXPROCS and GOMEMLIMIT, which it divides among the workers. The
// worker side reads only HERD_WORKER.
//
// # Concurrency
//
// Master and WorkerProcess methods are safe for concurrent use. Hooks run on the master's
// supervisor goroutine, one at a time (see Hooks).
package prefork
