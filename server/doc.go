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
//		os.Exit(server.Main(cfg, fs, os.Args[1:], func(reg *metrics.Registry) (http.Handler, error) {
//			r := chi.NewRouter()
//			r.Use(middleware.Instrument(reg))
//			r.Get("/hello", hello)
//			return r, nil
//		}))
//	}
//
// The master serves an admin listener (Config.MetricsBind) with:
//
//	GET /metrics   every worker's metric files merged (text, OpenMetrics or protobuf)
//	GET /healthz   200 while at least one worker is ready, 503 otherwise
//	GET /workers   JSON: slot, pid, state, start time, restarts, requests, heartbeat
//
// With Workers == 0 nothing is forked: the same handler and the same admin
// endpoints run in one process, for development and tests.
//
// The metrics directory. -metrics-dir (default /dev/shm, else $TMPDIR) only
// ever receives one private run directory per run (mode 0700; files 0600),
// removed when the master exits. The directory itself must not be a
// symbolic link, must belong to the master's user or root, and must not be
// writable by anyone else unless it has the sticky bit (as /tmp and /dev/shm
// do): otherwise it is refused with exit status 2 before anything starts.
//
// Slow and hostile clients. Workers serve with ReadHeaderTimeout (10s),
// ReadTimeout (60s), IdleTimeout (120s) and MaxHeaderBytes (64 KiB: larger
// headers get 431) by default, all settable by flags; WriteTimeout is off by
// default because it would cut off slow handlers and streams silently.
//
// The admin listener binds to loopback by default. -admin-tls-cert and
// -admin-tls-key serve it over TLS (-admin-tls-client-ca: mutual TLS), and
// -admin-basic-auth-file requires basic authentication on /metrics and
// /workers; the files are read again when they change. The password hashes
// are PBKDF2-SHA256 in passlib's format (HashPassword makes one).
//
// Logs. -access-log FILE (or "-") writes an access log in the combined
// format from every worker; SIGUSR1 to the master reopens it in every worker
// (the master forwards the signal). -pidfile writes the master's pid.
//
// Draining. A worker told to stop closes its listeners (in reuseport mode the
// master keeps its own copy of the socket, so queued connections wait for the
// successor), answers the next request on each open connection with
// "Connection: close", closes connections that stay idle, and only then calls
// http.Server.Shutdown. net/http's Shutdown alone can drop a request that
// arrives on a keep-alive connection while it runs.
package server
