package metrics

import (
	"bytes"
	"context"
	"fmt"
	"os"
	rtmetrics "runtime/metrics"
	"strconv"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// The resources of a process, as ProcessMetrics records them and ProcessGatherer reports
// them. Both write the same families, so a master's own values and its workers' merge into
// one family per name.
//
//	herd_process_cpu_seconds             user and system CPU time
//	herd_process_resident_memory_bytes   resident set size
//	herd_process_open_fds                open file descriptors
//	herd_process_goroutines              goroutines
//	herd_process_heap_bytes              bytes of live and not yet swept heap objects
//	herd_process_start_time_seconds      start time, Unix seconds
func processFamilies() [numProcessFamilies]struct{ name, help string } {
	return [...]struct{ name, help string }{
		{"herd_process_cpu_seconds", "User and system CPU time of the process, in seconds."},
		{"herd_process_resident_memory_bytes", "Resident memory of the process, in bytes."},
		{"herd_process_open_fds", "Open file descriptors of the process."},
		{"herd_process_goroutines", "Goroutines of the process."},
		{"herd_process_heap_bytes", "Heap bytes of the process (live and not yet swept objects)."},
		{"herd_process_start_time_seconds", "Start time of the process, in Unix seconds."},
	}
}

// Indices into processFamilies and processSample.
const (
	procCPU = iota
	procRSS
	procFDs
	procGoroutines
	procHeap
	procStart
	numProcessFamilies
)

// processSample is one reading of the calling process; known[i] says whether v[i] could be
// read.
type processSample struct {
	v     [numProcessFamilies]float64
	known [numProcessFamilies]bool
}

// clkTck is USER_HZ, the unit of the CPU times in /proc: 100 on every Linux architecture
// Go supports.
const clkTck = 100

// readProcess reads the calling process's resources from the Go runtime and /proc/self.
// rt is reused between calls (Read fills it). *boot is the machine's boot time in Unix
// seconds, read from /proc/stat when it is 0 and kept for the next call (it never changes).
// The error says what could not be read; the sample holds what could.
func readProcess(rt []rtmetrics.Sample, boot *float64) (processSample, error) {
	var s processSample
	set := func(i int, v float64) { s.v[i], s.known[i] = v, true }
	rtmetrics.Read(rt)
	if v := rt[0].Value; v.Kind() == rtmetrics.KindUint64 {
		set(procGoroutines, float64(v.Uint64()))
	}
	if v := rt[1].Value; v.Kind() == rtmetrics.KindUint64 {
		set(procHeap, float64(v.Uint64()))
	}
	if ents, err := os.ReadDir("/proc/self/fd"); err == nil {
		set(procFDs, float64(len(ents)-1)) // minus the one ReadDir had open
	}
	stat, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return s, fmt.Errorf("metrics: process metrics: %w", err)
	}
	// The fields after the command name, which is in parentheses and may contain anything.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return s, fmt.Errorf("metrics: process metrics: unexpected /proc/self/stat")
	}
	f := bytes.Fields(stat[i+1:])
	// f[0] is field 3 (state): utime is field 14, stime 15, starttime 22, rss 24.
	if len(f) < 22 {
		return s, fmt.Errorf("metrics: process metrics: short /proc/self/stat")
	}
	num := func(b []byte) float64 { v, _ := strconv.ParseFloat(string(b), 64); return v }
	set(procCPU, (num(f[11])+num(f[12]))/clkTck)
	set(procRSS, num(f[21])*float64(os.Getpagesize()))
	if *boot == 0 {
		*boot, _ = bootTime()
	}
	if *boot != 0 {
		set(procStart, *boot+num(f[19])/clkTck)
	}
	return s, nil
}

func runtimeSamples() []rtmetrics.Sample {
	return []rtmetrics.Sample{{Name: "/sched/goroutines:goroutines"}, {Name: "/memory/classes/heap/objects:bytes"}}
}

// ProcessMetrics records the resources of the calling process into gauges in mode
// GaugeLiveAll, so that the master's /metrics shows them per worker (labelled pid="<file
// id>", and worker="<slot>" if given) and forgets a worker once it is reaped. Values are
// sampled by Update (or by Run, periodically), not at scrape time: the master cannot run
// code in a worker. Linux only (it reads /proc/self).
type ProcessMetrics struct {
	g    [numProcessFamilies]*Gauge
	rt   []rtmetrics.Sample
	boot float64 // the machine's boot time, once read
}

// NewProcessMetrics registers the process families on r with the const label worker=worker
// (no such label if worker is empty) and takes a first sample. A series that cannot be
// created (a full filesystem) is dropped and counted in herd_metrics_write_errors_total, as
// With does; the error returned is a registration mistake or a failed first sample (then
// the ProcessMetrics is returned too, and usable).
func (r *Registry) NewProcessMetrics(worker string) (*ProcessMetrics, error) {
	var cl map[string]string
	if worker != "" {
		cl = map[string]string{"worker": worker}
	}
	p := &ProcessMetrics{rt: runtimeSamples()}
	for i, f := range processFamilies() {
		v, err := r.NewGaugeVec(GaugeOpts{Name: f.name, Help: f.help, Mode: GaugeLiveAll, ConstLabels: cl})
		if err != nil {
			return nil, err
		}
		p.g[i] = v.With()
	}
	return p, p.Update()
}

// Update samples the process now. Not safe for concurrent use with itself.
func (p *ProcessMetrics) Update() error {
	s, err := readProcess(p.rt, &p.boot)
	for i, g := range p.g {
		if s.known[i] {
			g.Set(s.v[i])
		}
	}
	return err
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

// ProcessGatherer returns a Gatherer of ProcessMetrics' families for the calling process,
// read at every Gather and labelled pid=<pid>. A master serves its own resources this way
// (pid="master") beside those its workers record with ProcessMetrics (pid="<file id>"): it
// writes no metric file of its own. Values that cannot be read are left out. Gather is safe
// for concurrent use.
func ProcessGatherer(pid string) Gatherer {
	return GathererFunc(func() ([]*dto.MetricFamily, error) {
		var boot float64
		s, _ := readProcess(runtimeSamples(), &boot)
		fams := make([]*dto.MetricFamily, 0, numProcessFamilies)
		for i, f := range processFamilies() {
			if s.known[i] {
				fams = append(fams, NewConstFamily(f.name, f.help, dto.MetricType_GAUGE, "pid").Add(s.v[i], pid).Family())
			}
		}
		return fams, nil
	})
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
