package metrics_test

import (
	"testing"

	"github.com/herdhttp/herd/metrics"
	"github.com/herdhttp/herd/metrics/metricstest"
)

// A handler may still run when the process closes its Registry (net/http's Shutdown returns
// at its deadline with handlers running): its adds, during and after Close, must neither
// fault nor be lost. Every add that returned is counted in the file, and a series first
// requested after Close is counted too.
func TestAddsDuringAndAfterCloseAreCounted(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	reg, err := metrics.NewRegistry(metrics.Options{Dir: dir, ID: "0a"})
	if err != nil {
		t.Fatal(err)
	}
	vec := reg.MustNewCounterVec(metrics.CounterOpts{Name: "late_total", Help: "Adds of a late handler."}, "route")
	lat := reg.MustNewHistogram(metrics.HistogramOpts{Name: "late_seconds", Help: "h", Buckets: []float64{1}})
	a := vec.With("/a")
	warm, closed, done := make(chan struct{}), make(chan struct{}), make(chan struct{})
	var adds float64 // written by the handler goroutine, read after done
	go func() {
		defer close(done)
		after := 0
		for i := 0; ; i++ {
			a.Inc()
			vec.With("/b").Inc()
			lat.Observe(0.5)
			adds++
			if i == 1000 {
				close(warm)
			}
			select {
			case <-closed:
				if after++; after == 5000 {
					return
				}
			default:
			}
		}
	}()
	<-warm
	if err := reg.Close(); err != nil { // races with the adds
		t.Fatal(err)
	}
	close(closed)
	<-done
	vec.With("/late").Add(5)

	g := metrics.NewDirGatherer(dir, metrics.GathererOpts{}) // a fresh reader: what the master sees
	defer g.Close()
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"late_total", []string{"route", "/a"}, adds},
		{"late_total", []string{"route", "/b"}, adds},
		{"late_total", []string{"route", "/late"}, 5},
		{"late_seconds_count", nil, adds},
		{"herd_metrics_write_errors_total", nil, 0},
	} {
		got, err := metricstest.Lookup(g, c.name, c.labels...)
		if err != nil || got != c.want {
			t.Errorf("%s%q = %v (%v), want %v", c.name, c.labels, got, err, c.want)
		}
	}
}
