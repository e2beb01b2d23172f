package metrics_test

import (
	"fmt"
	"net/http/httptest"
	"slices"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/herdhttp/herd/metrics"
)

// upRenderer serves its Beside's families and app_up, a gauge it renders itself, unless
// Beside has a family of that name.
type upRenderer struct{ beside metrics.Gatherer }

func (u upRenderer) Beside() metrics.Gatherer { return u.beside }

func (u upRenderer) up(taken func(string) bool) *dto.MetricFamily {
	if taken("app_up") {
		return nil
	}
	name, help, typ, v := "app_up", "Whether the app is up.", dto.MetricType_GAUGE, 1.0
	return &dto.MetricFamily{Name: &name, Help: &help, Type: &typ, Metric: []*dto.Metric{{Gauge: &dto.Gauge{Value: &v}}}}
}

// Gather is what protobuf scrapes serve.
func (u upRenderer) Gather() ([]*dto.MetricFamily, error) {
	fams, err := u.beside.Gather()
	if mf := u.up(func(n string) bool {
		return slices.ContainsFunc(fams, func(mf *dto.MetricFamily) bool { return mf.GetName() == n })
	}); mf != nil {
		fams = append(fams, mf)
		slices.SortStableFunc(fams, func(a, b *dto.MetricFamily) int { return strings.Compare(a.GetName(), b.GetName()) })
	}
	return fams, err
}

// RenderFamilies writes the same family in the text formats: here with expfmt; a real
// Renderer writes its bytes more cheaply (see package workermetrics).
func (u upRenderer) RenderFamilies(b []byte, format expfmt.Format, beside []metrics.FamilyType) ([]byte, []metrics.RenderedFamily) {
	mf := u.up(func(n string) bool {
		return slices.ContainsFunc(beside, func(f metrics.FamilyType) bool { return f.Name == n })
	})
	if mf == nil {
		return b, nil
	}
	start := len(b)
	w := &sliceWriter{b}
	expfmt.NewEncoder(w, format).Encode(mf)
	return w.b, []metrics.RenderedFamily{{Name: "app_up", Start: start, End: len(w.b)}}
}

type sliceWriter struct{ b []byte }

func (w *sliceWriter) Write(p []byte) (int, error) { w.b = append(w.b, p...); return len(p), nil }

// A Renderer's families reach a text scrape pre-rendered, in name order among its Beside's.
func ExampleRenderer() {
	reg, err := metrics.NewRegistry(metrics.Options{})
	if err != nil {
		panic(err)
	}
	defer reg.Close()
	reg.MustNewCounter(metrics.CounterOpts{Name: "jobs_total", Help: "Jobs run."}).Add(2)

	h := metrics.Handler(upRenderer{beside: reg}, metrics.HandlerOpts{})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	fmt.Print(rec.Body.String())
	// Output:
	// # HELP app_up Whether the app is up.
	// # TYPE app_up gauge
	// app_up 1
	// # HELP herd_metrics_write_errors_total Series that could not be created in the metric files (for example, a full filesystem); their updates are dropped.
	// # TYPE herd_metrics_write_errors_total counter
	// herd_metrics_write_errors_total 0
	// # HELP jobs_total Jobs run.
	// # TYPE jobs_total counter
	// jobs_total 2
}
