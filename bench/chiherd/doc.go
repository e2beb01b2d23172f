// Command chiherd is one of herd-bench's peers: the GET /hello of
// examples/hello on a chi router with herd's metrics middleware, as
// examples/hello builds it, but served by one plain net/http process: no
// master, no workers, no admin listener. Beside bench/chi (the same router
// without the middleware) and herd's own layouts it tells what the
// middleware and what the prefork machinery cost.
//
//	chiherd -bind 127.0.0.1:8086 [-timeouts herd|header]
//
// -timeouts herd (the default) gives the server herd's default read
// timeouts, -timeouts header ReadHeaderTimeout alone.
//
// The metric files go to a private directory (under /dev/shm when it
// exists), removed at exit. GET /healthz answers 200 for readiness probes
// (it goes through the middleware, as every route of examples/hello does).
package main
