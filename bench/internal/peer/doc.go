// Package peer is what herd-bench's net/http peer programs (bench/nethttp,
// bench/chi, bench/chiherd) share: the handlers of GET /hello and GET
// /healthz, the command line (-bind, -timeouts), and a net/http server that
// stops on SIGTERM.
//
// By default a peer's server has herd's default read timeouts
// (ReadHeaderTimeout 10s, ReadTimeout 60s, IdleTimeout 120s), so that a
// comparison with herd's workers is of the same server settings;
// -timeouts header keeps ReadHeaderTimeout alone.
package peer
