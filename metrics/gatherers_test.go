package metrics_test

import (
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/herdhttp/herd/metrics"
	"github.com/herdhttp/herd/metrics/metricstest"
)

// Gatherers passes a family that only one of herd's gatherers has through untouched, and
// still sorts and checks what other gatherers return (a GathererFunc may give anything).
func TestGatherersChecksOnlyWhatNeedsIt(t *testing.T) {
	t.Parallel()
	w := metricstest.NewRegistry(t)
	c := w.MustNewCounterVec(metrics.CounterOpts{Name: "c", Help: "h"}, "k")
	c.With("b").Inc()
	c.With("a").Add(2)
	lp := func(v string) []*dto.LabelPair {
		k := "k"
		return []*dto.LabelPair{{Name: &k, Value: &v}}
	}
	g := func(v float64) *dto.Gauge { return &dto.Gauge{Value: &v} }
	name, help := "g", "h"
	foreign := metrics.GathererFunc(func() ([]*dto.MetricFamily, error) {
		return []*dto.MetricFamily{{Name: &name, Help: &help, Type: dto.MetricType_GAUGE.Enum(), Metric: []*dto.Metric{
			{Label: lp("z"), Gauge: g(1)}, {Label: lp("a"), Gauge: g(2)},
		}}}, nil
	})
	fams, err := metrics.Gatherers{w, foreign}.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, mf := range fams {
		if mf.GetName() != "c_total" && mf.GetName() != "g" {
			continue
		}
		for _, m := range mf.Metric {
			got = append(got, mf.GetName()+":"+m.Label[0].GetValue())
		}
	}
	if want := "c_total:a c_total:b g:a g:z"; strings.Join(got, " ") != want {
		t.Errorf("got %q, want %q", strings.Join(got, " "), want)
	}
	// Nested: Gatherers is itself one of herd's gatherers.
	metricstest.ExpectText(t, metrics.Gatherers{metrics.Gatherers{w}}, `# HELP c_total h
# TYPE c_total counter
c_total{k="a"} 2
c_total{k="b"} 1
`, "c_total")
}

// Scrapes share each series' label pairs (made once, as client_golang's metrics do):
// concurrent scrapes encoding them, in text and protobuf, must not race (run with -race).
func TestConcurrentScrapesShareLabelPairs(t *testing.T) {
	t.Parallel()
	w := metricstest.NewRegistry(t)
	c := w.MustNewCounterVec(metrics.CounterOpts{Name: "c", Help: "h"}, "k")
	for _, k := range []string{"a", "b", "c"} {
		c.With(k).Inc()
	}
	h := metrics.Handler(metrics.NewDirGatherer(w.Dir(), metrics.GathererOpts{}), metrics.HandlerOpts{})
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			accept := "text/plain;version=0.0.4"
			if i%2 == 1 {
				accept = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited"
			}
			for range 30 {
				req := httptest.NewRequest("GET", "/metrics", nil)
				req.Header.Set("Accept", accept)
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != 200 || rec.Body.Len() == 0 {
					t.Errorf("scrape: %d, %d bytes", rec.Code, rec.Body.Len())
					return
				}
			}
		}()
	}
	wg.Wait()
}
