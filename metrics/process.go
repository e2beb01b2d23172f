package metrics

import (
	"bytes"
	"context"
	"fmt"
	"os"
	rtmetrics "runtime/metrics"
	"strconv"
	"time"
)

// ProcessMetrics records the resources of the calling process into gauges in mode
// GaugeLiveAll, so that the master's /metrics shows them per worker (labelled worker="<slot>"
// and pid="<file id>") and forgets a worker once it is reaped:
//
//	herd_process_cpu_seconds             user and system CPU time
//	herd_process_resident_memory_bytes   resident set size
//	herd_process_open_fds                open file descriptors
//	herd_process_goroutines              goroutines
//	herd_process_heap_bytes              bytes of live and not yet swept heap objects
//	herd_process_start_time_seconds      start time, Unix seconds
//
// Values are sampled by Update (or by Run, periodically), not at scrape time: the master
// cannot run code in a worker. Linux only (it reads /proc/self).
type ProcessMetrics struct {
	cpu, rss, fds, goroutines, heap, start *Gauge
	samples                                []rtmetrics.Sample
	clkTck                                 float64
}

// NewProcessMetrics registers the process families on r with the const label worker=worker
// (no such label if worker is empty) and takes a first sample.
func (r *Registry) NewProcessMetrics(worker string) (*ProcessMetrics, error) {
	var cl map[string]string
	if worker != "" {
		cl = map[string]string{"worker": worker}
	}
	p := &ProcessMetrics{clkTck: 100} // USER_HZ is 100 on every Linux architecture Go supports
	for _, g := range []struct {
		dst        **Gauge
		name, help string
	}{
		{&p.cpu, "herd_process_cpu_seconds", "User and system CPU time of the process, in seconds."},
		{&p.rss, "herd_process_resident_memory_bytes", "Resident memory of the process, in bytes."},
		{&p.fds, "herd_process_open_fds", "Open file descriptors of the process."},
		{&p.goroutines, "herd_process_goroutines", "Goroutines of the process."},
		{&p.heap, "herd_process_heap_bytes", "Heap bytes of the process (live and not yet swept objects)."},
		{&p.start, "herd_process_start_time_seconds", "Start time of the process, in Unix seconds."},
	} {
		v, err := r.NewGauge(GaugeOpts{Name: g.name, Help: g.help, Mode: GaugeLiveAll, ConstLabels: cl})
		if err != nil {
			return nil, err
		}
		*g.dst = v
	}
	p.samples = []rtmetrics.Sample{{Name: "/sched/goroutines:goroutines"}, {Name: "/memory/classes/heap/objects:bytes"}}
	return p, p.Update()
}

// Update samples the process now. Not safe for concurrent use with itself.
func (p *ProcessMetrics) Update() error {
	rtmetrics.Read(p.samples)
	if s := p.samples[0].Value; s.Kind() == rtmetrics.KindUint64 {
		p.goroutines.Set(float64(s.Uint64()))
	}
	if s := p.samples[1].Value; s.Kind() == rtmetrics.KindUint64 {
		p.heap.Set(float64(s.Uint64()))
	}
	if ents, err := os.ReadDir("/proc/self/fd"); err == nil {
		p.fds.Set(float64(len(ents) - 1)) // minus the one ReadDir had open
	}
	stat, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return fmt.Errorf("metrics: process metrics: %w", err)
	}
	// The fields after the command name, which is in parentheses and may contain anything.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return fmt.Errorf("metrics: process metrics: unexpected /proc/self/stat")
	}
	f := bytes.Fields(stat[i+1:])
	// f[0] is field 3 (state): utime is field 14, stime 15, starttime 22, rss 24.
	if len(f) < 22 {
		return fmt.Errorf("metrics: process metrics: short /proc/self/stat")
	}
	num := func(b []byte) float64 { v, _ := strconv.ParseFloat(string(b), 64); return v }
	p.cpu.Set((num(f[11]) + num(f[12])) / p.clkTck)
	p.rss.Set(num(f[21]) * float64(os.Getpagesize()))
	if boot, ok := bootTime(); ok {
		p.start.Set(boot + num(f[19])/p.clkTck)
	}
	return nil
}

// Run calls Update every interval until ctx is done.
func (p *ProcessMetrics) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			p.Update()
		}
	}
}

func bootTime() (float64, bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, false
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte("btime ")); ok {
			f, err := strconv.ParseFloat(string(bytes.TrimSpace(v)), 64)
			return f, err == nil
		}
	}
	return 0, false
}
