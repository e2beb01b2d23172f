// Command chi is one of herd-bench's peers: the GET /hello of
// examples/hello on a bare chi router, in one process, without herd's
// middleware. Beside bench/nethttp (no router) and bench/chiherd (the same
// router with herd's middleware) it tells what the router costs.
//
//	chi -bind 127.0.0.1:8085 [-timeouts herd|header]
//
// -timeouts herd (the default) gives the server herd's default read
// timeouts, -timeouts header ReadHeaderTimeout alone.
//
// GET /healthz answers 200 for readiness probes.
package main
