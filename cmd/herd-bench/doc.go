// Command herd-bench measures an HTTP app built with herd in several process
// layouts, side by side with peer servers, on loopback, with wrk as the load
// generator.
//
//	herd-bench -app bin/hello [-layouts single,reuseport,shared] \
//	    [-peer 'net/http=bin/bench-nethttp -bind {addr}'] [-baseline net/http] \
//	    [-rounds 5 -duration 2s -warmup 1s -connections 64] [-pin both] [-out bench-results]
//
// Each round runs every scenario and every layout once, alternating the
// order (A B C, then C B A, ...), so slow drifts of a noisy machine spread
// over all layouts instead of landing on one. Each run starts the server
// afresh, waits until every serving process is ready (through the herd
// master's GET /workers, or a peer's GET /healthz: never the measured path,
// which would be counted), warms it up with a wrk run that is discarded,
// and measures one wrk run of -duration. With -keep, each server is started
// and warmed up once per scenario and measured in every round, so rounds
// can be short and many:
//
//	herd-bench -layouts reuseport -pin on -keep -rounds 21 -duration 1s \
//	    -peer 'net/http=bin/bench-nethttp -bind {addr}' -peer 'chi=bin/bench-chi -bind {addr}' \
//	    -peer 'chi+herd=bin/bench-chiherd -bind {addr}' -baseline net/http \
//	    -split 'net/http,chi,chi+herd,herd reuseport'
//
// Against the -baseline, every round in which both runs were clean gives a
// ratio of req/s and one of requests per second of the server's own CPU
// time (which another job on the machine distorts far less); herd-bench
// reports their median, interquartile range and extremes, and each
// layout's server CPU time per request less the baseline's. -split names
// layouts from the cheapest up and reports what each adds to the one
// before, the same way: where the cost of a request goes.
//
// Layouts of the herd app (-layouts):
//
//	single         -workers 0: one process using every CPU the server has
//	reuseport      one worker per server CPU, GOMAXPROCS 1, SO_REUSEPORT sockets
//	shared         the same with one shared listening socket
//	MODE/WxP       W workers with GOMAXPROCS P (reuseport/1x2, shared/4x1)
//
// A peer (-peer NAME=COMMAND, repeatable) is any server that serves the
// benchmarked path on {addr} and answers GET /healthz (uncounted); a
// {workers} placeholder gets the number of server CPUs, and herd-bench then
// waits until that many distinct /healthz bodies (worker pids) were seen.
//
// Scenarios (-pin): on a small machine wrk competes with the server for
// CPU. "unpinned" lets the scheduler share every CPU between them;
// "pinned" runs the server with taskset on -server-cpus and wrk on
// -wrk-cpus (by default the first half of the CPUs go to wrk: on 2 CPUs,
// wrk on CPU 0 and the server on CPU 1). Every layout gets as many serving
// processes as the server has CPUs, because two workers on one core are
// slower than one.
//
// For each layout and scenario it reports successful requests/s (median
// over rounds and spread), p50, p99 and p99.9 latency, the CPU used by the
// server's process tree and by wrk, requests per second of server CPU
// time, and each herd worker's share of the requests. Rounds in which wrk saw Non-2xx responses or socket errors are
// marked and left out of the figures (wrk counts error responses as
// requests). It prints a table, and writes results.md, results.svg and
// results.json under -out.
//
// Linux only: it reads /proc and uses taskset (util-linux) and wrk.
package main
