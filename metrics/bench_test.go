package metrics_test

import (
	"fmt"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/herdhttp/herd/metrics"
)

func benchRegistry(b *testing.B, dir, id string) *metrics.Registry {
	b.Helper()
	r, err := metrics.NewRegistry(metrics.Options{Dir: dir, ID: id})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { r.Close() })
	return r
}

// Counter.Inc on a cached handle, in parallel, herd's mapped cell next to client_golang's
// in-memory counter. "herd" and "client_golang" are the plain RunParallel figures;
// "alternating" runs the two in turns, ten rounds each, on GOMAXPROCS goroutines (as
// RunParallel does), and reports both and the median of the per-round ratios
// (herd/client_golang): on a shared, noisy machine only a ratio from one run means much.
func BenchmarkCounterInc(b *testing.B) {
	newHerd := func(b *testing.B) *metrics.Counter {
		reg := benchRegistry(b, b.TempDir(), "0a")
		return reg.MustNewCounterVec(metrics.CounterOpts{Name: "requests_total", Help: "h"}, "code").With("200")
	}
	newCG := func() prometheus.Counter {
		v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "requests_total", Help: "h"}, []string{"code"})
		return v.WithLabelValues("200")
	}
	b.Run("herd", func(b *testing.B) {
		c := newHerd(b)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				c.Inc()
			}
		})
	})
	b.Run("client_golang", func(b *testing.B) {
		c := newCG()
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				c.Inc()
			}
		})
	})
	b.Run("alternating", func(b *testing.B) {
		h, cg := newHerd(b), newCG()
		const rounds = 10
		n := max(b.N/rounds, 1)
		var th, tc time.Duration
		ratios := make([]float64, 0, rounds)
		b.ReportAllocs()
		for range rounds {
			dh := inParallel(n, func(k int) {
				for range k {
					h.Inc()
				}
			})
			dc := inParallel(n, func(k int) {
				for range k {
					cg.Inc()
				}
			})
			th, tc = th+dh, tc+dc
			ratios = append(ratios, float64(dh)/float64(dc))
		}
		ops := float64(rounds * n)
		b.ReportMetric(float64(th.Nanoseconds())/ops, "ns/op")
		b.ReportMetric(float64(th.Nanoseconds())/ops, "herd-ns/op")
		b.ReportMetric(float64(tc.Nanoseconds())/ops, "client_golang-ns/op")
		b.ReportMetric(median(ratios), "herd/client_golang")
	})
}

// inParallel runs loop on GOMAXPROCS goroutines, n iterations in all, and returns how long
// they took together.
func inParallel(n int, loop func(k int)) time.Duration {
	p := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range p {
		k := n / p
		if i < n%p {
			k++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			loop(k)
		}()
	}
	wg.Wait()
	return time.Since(start)
}

// With on every call (the label lookup), as middleware does per request.
func BenchmarkCounterWithInc(b *testing.B) {
	b.Run("herd", func(b *testing.B) {
		reg := benchRegistry(b, b.TempDir(), "0a")
		v := reg.MustNewCounterVec(metrics.CounterOpts{Name: "requests_total", Help: "h"}, "method", "route", "code")
		v.With("GET", "/users/{id}", "200")
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				v.With("GET", "/users/{id}", "200").Inc()
			}
		})
	})
	b.Run("client_golang", func(b *testing.B) {
		v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "requests_total", Help: "h"}, []string{"method", "route", "code"})
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				v.WithLabelValues("GET", "/users/{id}", "200").Inc()
			}
		})
	})
}

func BenchmarkHistogramObserve(b *testing.B) {
	b.Run("herd", func(b *testing.B) {
		reg := benchRegistry(b, b.TempDir(), "0a")
		h := reg.MustNewHistogramVec(metrics.HistogramOpts{Name: "lat", Help: "h"}, "route").With("/")
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				h.Observe(0.042)
			}
		})
	})
	b.Run("client_golang", func(b *testing.B) {
		h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "lat", Help: "h"}, []string{"route"}).WithLabelValues("/")
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				h.Observe(0.042)
			}
		})
	})
}

// cpuTime is the process's CPU time (user and system, every thread): a figure that, unlike
// ns/op, does not grow when other processes compete for the CPUs.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// The master's scrape: 16 worker files x 5,000 counter series, merged into 5,000 series.
// "warm" is the steady state (keys parsed once, values loaded), "master" the same through
// Gatherers beside the master's own gauges (as herd's master serves it), "cold" a fresh
// gatherer. cpu-ms/op is the process's CPU time (GC included) per scrape.
func BenchmarkGather(b *testing.B) {
	const workers, series = 16, 5000
	dir := b.TempDir()
	for w := range workers {
		reg := benchRegistry(b, dir, fmt.Sprintf("%da", w))
		v := reg.MustNewCounterVec(metrics.CounterOpts{Name: "http_requests_total", Help: "Requests served."}, "method", "route", "code")
		for i := range series {
			v.With("GET", fmt.Sprintf("/api/v1/items/%d", i), "200").Add(float64(i))
		}
	}
	check := func(b *testing.B, g metrics.Gatherer) {
		fams, err := g.Gather()
		if err != nil {
			b.Fatal(err)
		}
		for _, mf := range fams {
			if mf.GetName() == "http_requests_total" && len(mf.Metric) != series {
				b.Fatalf("%d series", len(mf.Metric))
			}
		}
	}
	b.Run("warm", func(b *testing.B) {
		g := metrics.NewDirGatherer(dir, metrics.GathererOpts{})
		defer g.Close()
		check(b, g)
		b.ReportAllocs()
		cpu := cpuTime()
		for b.Loop() {
			g.Gather()
		}
		b.ReportMetric(float64((cpuTime()-cpu).Microseconds())/1e3/float64(b.N), "cpu-ms/op")
	})
	// The master serves its run directory next to its own gauges through Gatherers.
	b.Run("master", func(b *testing.B) {
		g := metrics.NewDirGatherer(dir, metrics.GathererOpts{})
		defer g.Close()
		name, help, v := "herd_master_x", "h", 1.0
		own := metrics.GathererFunc(func() ([]*dto.MetricFamily, error) {
			return []*dto.MetricFamily{{Name: &name, Help: &help, Type: dto.MetricType_GAUGE.Enum(),
				Metric: []*dto.Metric{{Gauge: &dto.Gauge{Value: &v}}}}}, nil
		})
		gs := metrics.Gatherers{g, own}
		check(b, gs)
		b.ReportAllocs()
		cpu := cpuTime()
		for b.Loop() {
			gs.Gather()
		}
		b.ReportMetric(float64((cpuTime()-cpu).Microseconds())/1e3/float64(b.N), "cpu-ms/op")
	})
	b.Run("cold", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			g := metrics.NewDirGatherer(dir, metrics.GathererOpts{})
			check(b, g)
			g.Close()
		}
	})
}
