package metrics_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/herdhttp/herd/metrics"
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
		if err := p.Update(); err != nil { // a second sample: the boot time is kept, not read again
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

// The master's own resources (ProcessGatherer) join its workers' (ProcessMetrics) in one
// family per name: same type, same help.
func TestProcessGathererJoinsWorkerFamilies(t *testing.T) {
	t.Parallel()
	w := metricstest.NewRegistry(t)
	if _, err := w.NewProcessMetrics(""); err != nil {
		t.Fatal(err)
	}
	fams, err := metrics.Gatherers{w, metrics.ProcessGatherer("master")}.Gather()
	if err != nil {
		t.Fatal(err)
	}
	pids := map[string][]string{}
	for _, mf := range fams {
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "pid" {
					pids[mf.GetName()] = append(pids[mf.GetName()], lp.GetValue())
				}
			}
		}
	}
	for _, name := range []string{"herd_process_cpu_seconds", "herd_process_resident_memory_bytes",
		"herd_process_open_fds", "herd_process_goroutines", "herd_process_heap_bytes", "herd_process_start_time_seconds"} {
		if got := strings.Join(pids[name], ","); got != "0a,master" {
			t.Errorf("%s: series of pid %q, want 0a,master", name, got)
		}
	}
	rss, err := metricstest.Lookup(metrics.ProcessGatherer("master"), "herd_process_resident_memory_bytes", "pid", "master")
	if err != nil || rss < 1<<20 {
		t.Errorf("master RSS %v (%v), want at least 1 MiB", rss, err)
	}
}

func ExampleProcessGatherer() {
	// A master serves its own resources next to its workers' merged files.
	dir, _ := os.MkdirTemp("", "example-")
	defer os.RemoveAll(dir)
	g := metrics.Gatherers{
		metrics.NewDirGatherer(dir, metrics.GathererOpts{OmitSelfMetrics: true}),
		metrics.ProcessGatherer("master"),
	}
	fams, _ := g.Gather()
	for _, mf := range fams {
		if ls := mf.GetMetric()[0].GetLabel(); len(ls) > 0 {
			fmt.Println(mf.GetName(), ls[0].GetValue())
		} else {
			fmt.Println(mf.GetName()) // Gatherers' own count of families left out
		}
	}
	// Output:
	// herd_metrics_families_dropped
	// herd_process_cpu_seconds master
	// herd_process_goroutines master
	// herd_process_heap_bytes master
	// herd_process_open_fds master
	// herd_process_resident_memory_bytes master
	// herd_process_start_time_seconds master
}
