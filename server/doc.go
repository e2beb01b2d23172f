// Package server wires herd together: it reads the configuration, decides
// whether this process is the master or a worker, and runs that role.
//
// One binary plays both roles. Started by a user (or systemd, or a container
// runtime), it is the master: it validates the whole Config, creates a
// private run directory for this run's metric files, opens the listening
// sockets and re-executes itself once per worker (see package prefork).
// Re-executed by a master, the same main function reaches Run again, and Run
// serves the application on the sockets it inherited.
//
// A minimal program:
//
//	func main() {
//		cfg := server.DefaultConfig()
//		fs := flag.NewFlagSet(os.Args[0], flag.ContinueOnError)
//		cfg.RegisterFlags(fs)
//		os.Exit(server.Main(&cfg, fs, os.Args[1:], func(w *server.Worker) (http.Handler, error) {
//			r := chi.NewRouter()
//			r.Use(middleware.Instrument(w.Registry()))
//			r.Get("/hello", hello)
//			return r, nil
//		}))
//	}
//
// The App (the function passed to Main) runs in every process that serves,
// and its Worker is that process: a context cancelled when it begins to
// drain, its metrics registry, its slot and id, a logger tagged with them,
// and OnShutdown, whose functions run after the last request in flight,
// last first, within the graceful timeout. An App that fails at start-up
// stops the program with exit status 3 and the App's message (a worker
// leaves the message in the run directory for its master), never a restart
// loop.
//
// The master serves an admin listener (Config.MetricsBind) with:
//
//	GET /metrics   every worker's metric files merged (text, OpenMetrics or protobuf)
//	GET /healthz   200 while at least one worker is ready, 503 otherwise; the body
//	               also says when the metrics directory is full
//	GET /workers   JSON: prefork.WorkerInfo of each worker process
//	GET /          the status page (HTML, self-contained): the workers, each
//	               slot's requests per second over the last five minutes,
//	               the recent exits and the last reload; it refreshes itself
//	GET /debug/pprof/worker/{slot}/...
//	               with -admin-pprof: the profiles of the slot's ready worker
//	               (pprof.go), which serves them on a socket in the run directory
//
// With Workers == 0 nothing is forked: the same handler and the same admin
// endpoints run in one process, for development and tests. Start runs it in
// the background, the httptest way: it returns once the App serves, and the
// Server it returns tells the addresses as bound (127.0.0.1:0 in a test),
// the admin listener's and the run directory, and shuts it all down.
//
// # Configuration
//
// Config is the one configuration; Validate checks it once, before anything
// starts, and every error is one line naming the flag (Main exits 2 with
// it). Zero fields mean their defaults, and Off turns a timeout off ("off"
// or "0" on the command line). Main reads every flag that the command line
// did not set from the environment variable HERD_<FLAG> (upper case, '-' as
// '_': HERD_METRICS_DIR), and -workers from WEB_CONCURRENCY when neither
// sets it; the default worker count is runtime.GOMAXPROCS, which follows a
// container's CPU limit. The master logs its effective configuration once at
// start (file names, never their contents).
//
// The metrics directory. -metrics-dir (default /dev/shm, else $TMPDIR) only
// ever receives one private run directory per run (mode 0700; files 0600),
// removed when the master exits. The directory must not be a symbolic
// link; it and every directory above it must belong to the master's user or
// root and must not be writable by anyone else unless they have the sticky
// bit (as /tmp and /dev/shm do), and its filesystem must have room for every worker's metric files
// (256 KiB each, and one worker more for a rolling restart): otherwise it is
// refused with exit status 2 before anything starts. A filesystem that fills
// up later costs new series, never a worker: they are counted in
// herd_metrics_write_errors_total, logged at most once a minute, and
// /healthz says so.
//
// Listeners. Config.Bind (-bind, repeatable) lists the application's
// addresses, every one served by every worker: HOST:PORT, [IPv6]:PORT, or
// unix:/path/to.sock, a unix socket shared by all workers, created with
// -bind-mode (0660) and removed at exit; a stale socket file is replaced
// only when nothing listens on it. In reuseport mode each slot has its own
// socket per TCP address.
//
// TLS and HTTP/2. -tls-cert and -tls-key serve every TCP address over TLS
// 1.2+ (unix sockets stay plain), HTTP/2 offered by ALPN unless
// -http2=false; the files are read again when they change, as the admin
// listener's are (the same keyPair). -h2c adds cleartext HTTP/2: prior
// knowledge through net/http, "Upgrade: h2c" in h2c.go.
//
// PROXY protocol. -proxy-protocol reads a v1 or v2 header from the sources
// of -proxy-protocol-from (loopback by default) before anything else on the
// connection (proxyproto.go parses, proxylisten.go decides whom to
// believe): its client address becomes the request's RemoteAddr; a header
// from another source, a malformed one or none from a trusted source
// closes the connection.
//
// Slow and hostile clients. Workers serve with ReadHeaderTimeout (10s),
// ReadTimeout (60s), IdleTimeout (120s) and MaxHeaderBytes (64 KiB: larger
// headers get 431) by default, all settable by flags; WriteTimeout is off by
// default because it would cut off slow handlers and streams silently.
//
// The admin listener binds to loopback by default. -admin-tls-cert and
// -admin-tls-key serve it over TLS (-admin-tls-client-ca: mutual TLS), and
// -admin-basic-auth-file requires basic authentication on /metrics,
// /workers, the status page and the profiles; the files are read again
// when they change. The password hashes are PBKDF2-SHA256 in passlib's format
// (HashPassword makes one).
//
// Logs. -access-log FILE (or "-") writes an access log in the combined
// format from every worker; SIGUSR1 to the master reopens it in every worker
// (the master forwards the signal through prefork's supervisor). -pidfile
// writes the master's pid.
//
// Draining. A worker told to stop closes its listeners (in reuseport mode the
// master keeps its own copy of the socket, so queued connections wait for the
// successor), answers the next request on each open connection with
// "Connection: close", closes connections that stay idle, and only then calls
// http.Server.Shutdown. net/http's Shutdown alone can drop a request that
// arrives on a keep-alive connection while it runs.
//
// # Architecture
//
// Packages, each importing only those before it: mmapstore (the metric file
// format), metrics (registries, the merge, the /metrics handler), middleware
// (request instrumentation), prefork (processes: spawn, signals, reaping,
// recycling, exit reasons, the sockets of a master; no HTTP, no metrics) and
// server (HTTP, configuration, metrics of the run). prefork and metrics do
// not know each other; server joins them.
//
// Inside server, one lifecycle (run, lifecycle.go) runs over a backend
// (backend.go): inProcess serves the application in this process,
// workerPool (workerpool.go) in worker processes that a prefork.Master
// supervises. A worker process runs runWorker (worker.go); it and inProcess
// share serving (serving.go): the registry, the application, the access log
// and the drainer. The App sees its process as a Worker (app.go). The
// application's sockets are an appListener (listener.go); a new kind of
// address is a new endpoint type there. On every socket the drainer
// (drain.go) serves TLS (tls.go), h2c upgrades (h2c.go) and PROXY headers
// (proxyproto.go, proxylisten.go). Start (start.go) runs the lifecycle in
// the background.
//
// The life of a request: the kernel hands the connection to a worker's
// socket (one per slot in reuseport mode); the worker's http.Server runs the
// drainer's wrapper (counting, max-requests), the access log, then the
// application, whose middleware counts and times the request into the
// worker's memory-mapped metric files: atomic operations, no lock, no
// system call.
//
// The life of a scrape: the admin listener (in the master, or the single
// process) answers /metrics with a metrics.Gatherers of the run directory's
// files, merged as client_python does (metrics.DirGatherer), the free space
// of the run directory, and the backend's own families (the master's
// resources and its supervision metrics, computed from prefork's view of
// the workers). No worker is asked anything: a hung worker cannot stall a
// scrape.
package server
