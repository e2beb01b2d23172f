// Command clientgolang is a herd application instrumented with
// client_golang, as an existing Go service is: a CounterVec on the default
// registry, next to client_golang's Go and process collectors, exported
// from every worker to the master's /metrics with package promclient.
//
//	GET /job?kind=K   counts one job of kind K in example_jobs_total{kind},
//	                  200 {"kind":"K"}; K is 1 to 32 of [a-z0-9_], and at
//	                  most 64 distinct kinds are counted (then 429)
//
// herd's own middleware counts the requests too (http_requests_total). It
// takes the flags of examples/hello; run it with -h for them.
package main
