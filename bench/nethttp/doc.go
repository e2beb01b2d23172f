// Command nethttp is herd-bench's baseline peer: plain net/http serving the
// same GET /hello as examples/hello, in one process using every core it is
// given, with no router and no metrics.
//
//	nethttp -bind 127.0.0.1:8081 [-timeouts herd|header]
//
// -timeouts herd (the default) gives the server herd's default read
// timeouts, -timeouts header ReadHeaderTimeout alone. GET /healthz answers
// 200 for readiness probes.
package main
