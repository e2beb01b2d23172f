// Package peer is what herd-bench's net/http peer programs (bench/nethttp,
// bench/chi, bench/chiherd) share: the body of GET /hello and a net/http
// server that stops on SIGTERM.
package peer
