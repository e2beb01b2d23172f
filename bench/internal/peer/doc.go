// Package peer is what herd-bench's net/http peer programs (bench/nethttp,
// bench/chi, bench/chiherd) share: the handlers of GET /hello and GET
// /healthz, the command line (-bind), and a net/http server that stops on
// SIGTERM.
package peer
