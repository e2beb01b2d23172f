// Package scale measures how the master's scrape grows with the number of
// workers: the files it reads, the entries in them and the bytes it sends.
// It holds benchmarks only; docs/performance.md builds its model of 16, 64
// and 256 workers on their figures:
//
//	go test -run '^$' -bench . -benchtime 20x -count 3 ./bench/scale/
package scale
