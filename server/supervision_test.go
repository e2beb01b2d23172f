package server

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/herdhttp/herd/metrics"
	"github.com/herdhttp/herd/prefork"
)

// A master between workers (all of them in respawn backoff, or drained at the end of a
// binary upgrade) still serves a whole exposition: an empty family would make the encoder
// stop half-way, and the scraper would see every later family (http_*) vanish.
func TestSupervisionMetricsWithoutWorkers(t *testing.T) {
	exits := &exitCounts{}
	exits.add(prefork.ExitShutdown)
	tail := metrics.GathererFunc(func() ([]*dto.MetricFamily, error) {
		return []*dto.MetricFamily{sample2Family("zz_after_supervision", 7)}, nil
	})
	g := metrics.Gatherers{supervisionMetrics(func() []prefork.WorkerInfo { return nil }, func() prefork.Counters { return prefork.Counters{} }, exits), tail}
	rec := httptest.NewRecorder()
	metrics.Handler(g, metrics.HandlerOpts{DisableCompression: true}).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	body := rec.Body.String()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("exposition does not parse: %v\n%s", err, body)
	}
	if mfs["zz_after_supervision"] == nil || mfs["herd_worker_exits_total"] == nil || mfs["herd_workers"] == nil {
		t.Errorf("exposition cut short, want herd_worker_exits_total, herd_workers and the family after them:\n%s", body)
	}
}

func sample2Family(name string, v float64) *dto.MetricFamily {
	f := metrics.NewConstFamily(name, "A family sorted after the supervision families.", dto.MetricType_GAUGE)
	f.Add(v)
	return f.Family()
}
