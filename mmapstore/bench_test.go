package mmapstore

import (
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// cpuTime is the process's CPU time (user and system, all threads, GC included): on a
// shared, noisy machine it grows far less than wall time when other processes compete.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkCellAdd is the hot path of every counter increment: a cached Cell,
// added to from all Ps at once (they contend on one cache line, as the
// requests of one busy route do).
func BenchmarkCellAdd(b *testing.B) {
	f, err := Open(filepath.Join(b.TempDir(), "counter_0a.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	c, err := f.Cell(EncodeKey("c", "c_total", nil, nil, ""))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c.Add(1)
		}
	})
	if c.Load() < float64(b.N) {
		b.Fatal("lost adds")
	}
}

// BenchmarkCellAddDistinct: each goroutine its own series (no contention).
func BenchmarkCellAddDistinct(b *testing.B) {
	f, err := Open(filepath.Join(b.TempDir(), "counter_0a.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	cells := make(chan *Cell, 1024)
	for i := range cap(cells) {
		c, err := f.Cell(EncodeKey("c", "c_total", []string{"i"}, []string{fmt.Sprint(i)}, ""))
		if err != nil {
			b.Fatal(err)
		}
		cells <- c
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		c := <-cells
		for pb.Next() {
			c.Add(1)
		}
	})
}

// BenchmarkScanDir is the master's scrape of 16 worker files of 5,000 series
// each (the same series in every file, as workers of one app have):
// "first" with a fresh Reader (map, walk and decode everything), "steady"
// with a warm one (stat each file, load every value).
func BenchmarkScanDir(b *testing.B) {
	const files, series = 16, 5000
	dir := b.TempDir()
	methods := []string{"GET", "POST", "PUT", "DELETE"}
	for w := range files {
		f, err := Open(filepath.Join(dir, fmt.Sprintf("counter_%da.db", w)), Options{})
		if err != nil {
			b.Fatal(err)
		}
		for i := range series {
			key := EncodeKey("http_requests", "http_requests_total", []string{"method", "route", "code"},
				[]string{methods[i%4], fmt.Sprintf("/api/v1/resource%d/{id}", i/4), "200"}, "Requests served.")
			c, err := f.Cell(key)
			if err != nil {
				b.Fatal(err)
			}
			c.Add(float64(i))
		}
		f.Close()
	}
	check := func(b *testing.B, got []FileSamples, skipped []SkippedFile, err error) {
		if err != nil || len(skipped) != 0 || len(got) != files || len(got[0].Samples) != series {
			b.Fatalf("scan: %d files, %v, %v", len(got), skipped, err)
		}
	}
	b.Run("first", func(b *testing.B) {
		b.ReportAllocs()
		cpu := cpuTime()
		for b.Loop() {
			r := NewReader()
			got, skipped, err := r.ScanDir(dir)
			check(b, got, skipped, err)
			r.Close()
		}
		b.ReportMetric(float64((cpuTime()-cpu).Microseconds())/1e3/float64(b.N), "cpu-ms/op")
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/(files*series), "ns/entry")
	})
	b.Run("steady", func(b *testing.B) {
		r := NewReader()
		defer r.Close()
		r.ScanDir(dir)
		b.ReportAllocs()
		cpu := cpuTime()
		for b.Loop() {
			got, skipped, err := r.ScanDir(dir)
			check(b, got, skipped, err)
		}
		b.ReportMetric(float64((cpuTime()-cpu).Microseconds())/1e3/float64(b.N), "cpu-ms/op")
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/(files*series), "ns/entry")
	})
}
