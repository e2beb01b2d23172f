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
// Draining. A worker told to stop closes its listeners (in reuseport mode the
// master keeps its own copy of the socket, so queued connections wait for the
// successor), answers the next request on each open connection with
// "Connection: close", closes connections that stay idle, and only then calls
// http.Server.Shutdown. net/http's Shutdown alone can drop a request that
// arrives on a keep-alive connection while it runs.
package server
