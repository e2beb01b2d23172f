package metrics_test

import (
	"bytes"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/herdhttp/herd/metrics"
	"github.com/herdhttp/herd/metrics/metricstest"
)

// masterGauge is a Gatherer of one gauge family with one series labelled pid="master", as the
// master serves its own process figures beside its workers'.
func masterGauge(name, help string, v float64) metrics.Gatherer {
	return metrics.GathererFunc(func() ([]*dto.MetricFamily, error) {
		pid, master := "pid", "master"
		return []*dto.MetricFamily{{Name: &name, Help: &help, Type: dto.MetricType_GAUGE.Enum(),
			Metric: []*dto.Metric{{Label: []*dto.LabelPair{{Name: &pid, Value: &master}}, Gauge: &dto.Gauge{Value: &v}}}}}, nil
	})
}

// A reload re-executes the workers, not the master: a new binary that rewords the help of a
// family the master also serves must not turn /metrics into a 500. The first help is kept and
// every series is served.
func TestGatherersHelpChangedAcrossReload(t *testing.T) {
	t.Parallel()
	w := metricstest.NewRegistry(t) // the worker of the new binary
	w.MustNewGauge(metrics.GaugeOpts{Name: "herd_process_goroutines", Help: "Goroutines of the process (reworded).",
		Mode: metrics.GaugeLiveAll}).Set(7)
	var logs bytes.Buffer
	dir := metrics.NewDirGatherer(w.Dir(), metrics.GathererOpts{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	gs := metrics.Gatherers{dir, masterGauge("herd_process_goroutines", "Goroutines of the process.", 12)}

	h := metrics.Handler(gs, metrics.HandlerOpts{})
	for range 2 {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		if rec.Code != 200 {
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
	metricstest.ExpectText(t, gs, `# HELP herd_metrics_families_dropped Metric families left out of the last scrape because they conflicted with another of the same name (another type, a repeated series, or one of the gatherer's own names); see the log.
# TYPE herd_metrics_families_dropped gauge
herd_metrics_families_dropped 0
# HELP herd_process_goroutines Goroutines of the process (reworded).
# TYPE herd_process_goroutines gauge
herd_process_goroutines{pid="0a"} 7
herd_process_goroutines{pid="master"} 12
`, "herd_process_goroutines", "herd_metrics_families_dropped")
	if n := strings.Count(logs.String(), "different help"); n != 1 {
		t.Errorf("help mismatch logged %d times, want once:\n%s", n, logs.String())
	}
}

// A family that another gatherer gives with another type is left out alone, counted and
// logged once; the rest of the scrape is served.
func TestGatherersTypeConflictDropsOnlyThatFamily(t *testing.T) {
	t.Parallel()
	w := metricstest.NewRegistry(t)
	w.MustNewCounter(metrics.CounterOpts{Name: "jobs_total", Help: "Jobs."}).Add(3)
	w.MustNewGauge(metrics.GaugeOpts{Name: "queue", Help: "Queued.", Mode: metrics.GaugeLiveSum}).Set(2)
	var logs bytes.Buffer
	dir := metrics.NewDirGatherer(w.Dir(), metrics.GathererOpts{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	counterQueue := metrics.GathererFunc(func() ([]*dto.MetricFamily, error) {
		name, help, v := "queue", "Queued.", 5.0
		return []*dto.MetricFamily{{Name: &name, Help: &help, Type: dto.MetricType_COUNTER.Enum(),
			Metric: []*dto.Metric{{Counter: &dto.Counter{Value: &v}}}}}, nil
	})
	gs := metrics.Gatherers{dir, counterQueue, masterGauge("up", "Up.", 1)}
	h := metrics.Handler(gs, metrics.HandlerOpts{})
	for range 3 {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		if rec.Code != 200 {
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
	metricstest.ExpectText(t, gs, `# HELP herd_metrics_families_dropped Metric families left out of the last scrape because they conflicted with another of the same name (another type, a repeated series, or one of the gatherer's own names); see the log.
# TYPE herd_metrics_families_dropped gauge
herd_metrics_families_dropped 1
# HELP jobs_total Jobs.
# TYPE jobs_total counter
jobs_total 3
# HELP queue Queued.
# TYPE queue gauge
queue 2
# HELP up Up.
# TYPE up gauge
up{pid="master"} 1
`, "jobs_total", "queue", "up", "herd_metrics_families_dropped")
	if n := strings.Count(logs.String(), "conflicting type"); n != 1 {
		t.Errorf("type conflict logged %d times, want once:\n%s", n, logs.String())
	}
}

// A family that repeats a series another gatherer already gave is left out whole (which of
// two values would be right cannot be known), and so is one that repeats a series itself.
func TestGatherersRepeatedSeriesDropsThatFamily(t *testing.T) {
	t.Parallel()
	w := metricstest.NewRegistry(t)
	w.MustNewCounter(metrics.CounterOpts{Name: "jobs_total", Help: "Jobs."}).Add(3)
	master := metrics.NewDirGatherer(w.Dir(), metrics.GathererOpts{OmitSelfMetrics: true})
	twice := metrics.GathererFunc(func() ([]*dto.MetricFamily, error) {
		name, help, v := "twice", "h", 1.0
		return []*dto.MetricFamily{{Name: &name, Help: &help, Type: dto.MetricType_GAUGE.Enum(),
			Metric: []*dto.Metric{{Gauge: &dto.Gauge{Value: &v}}, {Gauge: &dto.Gauge{Value: &v}}}}}, nil
	})
	gs := metrics.Gatherers{master, master, twice}
	metricstest.ExpectText(t, gs, `# HELP herd_metrics_families_dropped Metric families left out of the last scrape because they conflicted with another of the same name (another type, a repeated series, or one of the gatherer's own names); see the log.
# TYPE herd_metrics_families_dropped gauge
herd_metrics_families_dropped 3
# HELP jobs_total Jobs.
# TYPE jobs_total counter
jobs_total 3
`, "jobs_total", "twice", "herd_metrics_families_dropped")
}

// A metric file cannot shadow the gatherer's own families: file families named like them
// are left out, counted in herd_metrics_families_dropped and logged once.
func TestFileCannotShadowSelfMetrics(t *testing.T) {
	t.Parallel()
	w := metricstest.NewRegistry(t)
	w.MustNewGauge(metrics.GaugeOpts{Name: "herd_metrics_files", Help: "Forged.", Mode: metrics.GaugeMax}).Set(42)
	w.MustNewGauge(metrics.GaugeOpts{Name: "herd_metrics_files_skipped", Help: "Forged.", Mode: metrics.GaugeMin}).Set(0)
	w.MustNewCounter(metrics.CounterOpts{Name: "herd_metrics_families_dropped", Help: "Forged."}).Inc()
	w.MustNewCounter(metrics.CounterOpts{Name: "jobs_total", Help: "Jobs."}).Add(3)
	if err := writeFile(w.Dir(), "counter_9z.db", ""); err != nil { // one file to skip
		t.Fatal(err)
	}
	var logs bytes.Buffer
	g := metrics.NewDirGatherer(w.Dir(), metrics.GathererOpts{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	for range 2 {
		// counter_0a.db, gauge_max_0a.db, gauge_min_0a.db
		if v := metricstest.Value(t, g, "herd_metrics_files"); v != 3 {
			t.Errorf("herd_metrics_files = %v, want 3", v)
		}
		if v := metricstest.Value(t, g, "herd_metrics_files_skipped"); v != 1 {
			t.Errorf("herd_metrics_files_skipped = %v, want 1", v)
		}
		if v := metricstest.Value(t, g, "herd_metrics_families_dropped"); v != 3 {
			t.Errorf("herd_metrics_families_dropped = %v, want 3", v)
		}
		if v := metricstest.Value(t, g, "jobs_total"); v != 3 {
			t.Errorf("jobs_total = %v, want 3", v)
		}
	}
	// Through Gatherers (as the master serves it) the count is the directory's.
	if v := metricstest.Value(t, metrics.Gatherers{g}, "herd_metrics_families_dropped"); v != 3 {
		t.Errorf("through Gatherers: herd_metrics_families_dropped = %v, want 3", v)
	}
	if n := strings.Count(logs.String(), "own families"); n != 3 {
		t.Errorf("logged %d times, want once for each of 3 families:\n%s", n, logs.String())
	}
}

// GathererOpts.Reserved keeps the names a caller serves beside the gatherer's: a file's
// family named so, as written or as exposed (a counter's with _total), is left out of both
// the rendered scrape and Gather, and counted in herd_metrics_families_dropped.
func TestReservedNamesAreLeftOutOfTheFiles(t *testing.T) {
	t.Parallel()
	w := metricstest.NewRegistry(t)
	w.MustNewGauge(metrics.GaugeOpts{Name: "exporter_status", Help: "Forged.", Mode: metrics.GaugeMax}).Set(42)
	w.MustNewCounter(metrics.CounterOpts{Name: "exporter_errors_total", Help: "Forged."}).Inc()
	w.MustNewCounter(metrics.CounterOpts{Name: "jobs_total", Help: "Jobs."}).Add(3)
	g := metrics.NewDirGatherer(w.Dir(), metrics.GathererOpts{Reserved: []string{"exporter_status", "exporter_errors_total"}})
	defer g.Close()
	for range 2 {
		rec := httptest.NewRecorder()
		metrics.Handler(g, metrics.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		body := rec.Body.String()
		for _, name := range []string{"exporter_status", "exporter_errors"} {
			if strings.Contains(body, name) {
				t.Errorf("the scrape serves the files' %s:\n%s", name, body)
			}
		}
		if !strings.Contains(body, "\njobs_total 3\n") || !strings.Contains(body, "\nherd_metrics_families_dropped 2\n") {
			t.Errorf("want jobs_total 3 and herd_metrics_families_dropped 2:\n%s", body)
		}
		fams, err := g.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range fams {
			if strings.HasPrefix(mf.GetName(), "exporter_") {
				t.Errorf("Gather returns the files' %s", mf.GetName())
			}
		}
	}
}
