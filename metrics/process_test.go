package metrics_test

import (
	"context"
	"testing"
	"time"

	"github.com/herdhttp/herd/metrics/metricstest"
)

func TestProcessMetrics(t *testing.T) {
	t.Parallel()
	w := metricstest.NewWorkers(t, 2)
	for i, r := range w {
		p, err := r.NewProcessMetrics([]string{"0", "1"}[i])
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { p.Run(ctx, time.Millisecond); close(done) }()
		cancel()
		<-done
	}
	now := float64(time.Now().Unix())
	for _, c := range []struct {
		name     string
		min, max float64
	}{
		{"herd_process_cpu_seconds", 0, 1e6},
		{"herd_process_resident_memory_bytes", 1 << 20, 1 << 40},
		{"herd_process_open_fds", 3, 1e6},
		{"herd_process_goroutines", 1, 1e6},
		{"herd_process_heap_bytes", 1024, 1 << 40},
		{"herd_process_start_time_seconds", now - 3600, now + 1},
	} {
		for _, worker := range []string{"0", "1"} {
			v := metricstest.Value(t, w[0], c.name, "worker", worker, "pid", worker+"a")
			if v < c.min || v > c.max {
				t.Errorf("%s{worker=%s} = %v, want in [%v, %v]", c.name, worker, v, c.min, c.max)
			}
		}
	}
	metricstest.Kill(t, w[1])
	if _, err := metricstest.Lookup(w[0], "herd_process_goroutines", "worker", "1", "pid", "1a"); err == nil {
		t.Error("a dead worker's process metrics must go")
	}
}
