package server

import (
	"bytes"
	"os"
	"runtime"
	"strconv"
	"syscall"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/herdhttp/herd/metrics"
)

// Resource gauges of every herd process, labelled pid="<worker file id>"
// for a worker and pid="master" for the master: what a soak test, or an
// operator chasing a leak, watches stay flat. Workers write theirs into
// their metric files (GaugeLiveAll, so a dead worker's values go with it);
// the master adds its own at scrape time.
const (
	goroutinesName = "herd_process_goroutines"
	goroutinesHelp = "Goroutines of this herd process."
	openFDsName    = "herd_process_open_fds"
	openFDsHelp    = "Open file descriptors of this herd process."
	rssName        = "herd_process_resident_memory_bytes"
	rssHelp        = "Resident memory of this herd process, in bytes."
	freeName       = "herd_metrics_dir_free_bytes"
	freeHelp       = "Space left on the filesystem of the metrics run directory, in bytes. At zero, new metric series are dropped (herd_metrics_write_errors_total) and workers of new slots cannot start."
)

// procSampleEvery is how often a worker updates its resource gauges.
const procSampleEvery = 2 * time.Second

// procStats is one reading of this process's resources; -1 when unknown.
type procStats struct {
	goroutines, openFDs, rss float64
}

func readProcStats() procStats {
	s := procStats{goroutines: float64(runtime.NumGoroutine()), openFDs: -1, rss: -1}
	if ents, err := os.ReadDir("/proc/self/fd"); err == nil {
		s.openFDs = float64(len(ents) - 1) // minus the descriptor ReadDir itself used
	}
	if b, err := os.ReadFile("/proc/self/statm"); err == nil {
		if f := bytes.Fields(b); len(f) > 1 {
			if pages, err := strconv.ParseFloat(string(f[1]), 64); err == nil {
				s.rss = pages * float64(os.Getpagesize())
			}
		}
	}
	return s
}

// sampleProcStats writes this process's resource gauges into reg now and
// every procSampleEvery until the returned stop function is called; stop
// waits until the sampler no longer touches reg (call it before
// reg.Close).
func sampleProcStats(reg *metrics.Registry) (stop func(), err error) {
	var gs [3]*metrics.Gauge
	for i, o := range []metrics.GaugeOpts{
		{Name: goroutinesName, Help: goroutinesHelp, Mode: metrics.GaugeLiveAll},
		{Name: openFDsName, Help: openFDsHelp, Mode: metrics.GaugeLiveAll},
		{Name: rssName, Help: rssHelp, Mode: metrics.GaugeLiveAll},
	} {
		v, err := reg.NewGaugeVec(o)
		if err != nil {
			return nil, err
		}
		// With, not Get: on a full filesystem the series is dropped and
		// counted (herd_metrics_write_errors_total), the worker still
		// boots.
		gs[i] = v.With()
	}
	set := func() {
		s := readProcStats()
		gs[0].Set(s.goroutines)
		gs[1].Set(s.openFDs)
		gs[2].Set(s.rss)
	}
	set()
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(procSampleEvery)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				set()
			case <-quit:
				return
			}
		}
	}()
	return func() { close(quit); <-done }, nil
}

// masterProcStats is a Gatherer of the master's own resource gauges and of
// the free space left for the run directory dir, read at each scrape. The
// free space is the master's to report: when it is zero, workers may not be
// able to create the files they would report errors in.
func masterProcStats(dir string) metrics.Gatherer {
	return metrics.GathererFunc(func() ([]*dto.MetricFamily, error) {
		s := readProcStats()
		fams := []*dto.MetricFamily{
			masterGauge(goroutinesName, goroutinesHelp, s.goroutines),
			masterGauge(openFDsName, openFDsHelp, s.openFDs),
			masterGauge(rssName, rssHelp, s.rss),
		}
		var fs syscall.Statfs_t
		if syscall.Statfs(dir, &fs) == nil {
			f := masterGauge(freeName, freeHelp, float64(fs.Bavail)*float64(fs.Bsize))
			f.Metric[0].Label = nil
			fams = append(fams, f)
		}
		return fams, nil
	})
}

func masterGauge(name, help string, v float64) *dto.MetricFamily {
	pid, master := "pid", "master"
	return &dto.MetricFamily{
		Name: &name,
		Help: &help,
		Type: dto.MetricType_GAUGE.Enum(),
		Metric: []*dto.Metric{{
			Label: []*dto.LabelPair{{Name: &pid, Value: &master}},
			Gauge: &dto.Gauge{Value: &v},
		}},
	}
}
