// Command benchdiff passes `go test -bench` output through and then prints,
// for each pair of benchmarks it is given, what the first costs over the
// second: the median of each reported unit (ns/op, B/op, allocs/op and any
// custom one such as cpu-ns/op) and the median and range of the per-run
// differences (the i-th run of one against the i-th of the other).
//
// go test -count N runs each sub-benchmark N times in a row, so on a busy
// machine its i-th runs of two benchmarks are far apart in time; run
// go test -count 1 N times instead, and the pairs are neighbours:
//
//	for i in 1 2 3 4 5; do
//	    go test -run '^$' -bench 'Chi/static/(none|herd)$' -benchmem -count 1 ./middleware/
//	done | go run ./bench/benchdiff 'Chi/static/herd=Chi/static/none'
//
// A name is the benchmark's without "Benchmark" and without the -GOMAXPROCS
// suffix. It exits 1 when a named benchmark is missing from the input (or
// the input has a FAIL line), 2 for bad arguments.
package main
