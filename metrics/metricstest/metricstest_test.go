package metricstest_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/herdhttp/herd/metrics"
	"github.com/herdhttp/herd/metrics/metricstest"
)

// newHello is the code under test: a handler instrumented on the Registry it is given.
func newHello(reg *metrics.Registry) http.Handler {
	requests := reg.MustNewCounterVec(metrics.CounterOpts{Name: "hello_requests_total", Help: "Hello requests."}, "code")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("fail") != "" {
			w.WriteHeader(http.StatusInternalServerError)
			requests.With("500").Inc()
			return
		}
		fmt.Fprintln(w, "hello")
		requests.With("200").Inc()
	})
}

// Testing an instrumented handler is one line of setup, and runs in parallel with every other
// test using the same metric names.
func TestInstrumentedHandlerInParallel(t *testing.T) {
	t.Parallel()
	for i := 1; i <= 20; i++ {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			reg := metricstest.NewRegistry(t)
			h := newHello(reg)
			for range i {
				h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
			}
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/?fail=1", nil))
			if got := metricstest.Value(t, reg, "hello_requests_total", "code", "200"); got != float64(i) {
				t.Errorf("200s = %v, want %d", got, i)
			}
			metricstest.ExpectText(t, reg, fmt.Sprintf(`# HELP hello_requests_total Hello requests.
# TYPE hello_requests_total counter
hello_requests_total{code="200"} %d
hello_requests_total{code="500"} 1.0
`, i), "hello_requests_total")
		})
	}
}

func TestWorkersAndKill(t *testing.T) {
	t.Parallel()
	w := metricstest.NewWorkers(t, 3)
	for i, r := range w {
		if r.ID() != fmt.Sprintf("%da", i) || r.Dir() != w[0].Dir() {
			t.Fatalf("worker %d: id %q dir %q", i, r.ID(), r.Dir())
		}
		r.MustNewGauge(metrics.GaugeOpts{Name: "busy", Help: "h", Mode: metrics.GaugeLiveSum}).Set(1)
		r.MustNewCounter(metrics.CounterOpts{Name: "done", Help: "h"}).Add(float64(i + 1))
	}
	metricstest.Kill(t, w[1])
	metricstest.ExpectText(t, w[0], `# HELP busy h
# TYPE busy gauge
busy 2
# HELP done_total h
# TYPE done_total counter
done_total 6
`)
}

func TestCompareText(t *testing.T) {
	t.Parallel()
	reg := metricstest.NewRegistry(t)
	reg.MustNewCounterVec(metrics.CounterOpts{Name: "a_total", Help: "A."}, "k").With("x").Add(2)
	reg.MustNewGauge(metrics.GaugeOpts{Name: "b", Help: "B.", Mode: metrics.GaugeSum}).Set(1.5)
	const both = "# HELP a_total A.\n# TYPE a_total counter\na_total{k=\"x\"} 2.0\n# HELP b B.\n# TYPE b gauge\nb 1.5\n"
	// Order, float spelling and herd's own bookkeeping families do not matter.
	reordered := "# HELP b B.\n# TYPE b gauge\nb 1.50\n# TYPE a_total counter\n# HELP a_total A.\na_total{k=\"x\"} 2\n"
	for _, exp := range []string{both, reordered} {
		if err := metricstest.CompareText(reg, exp); err != nil {
			t.Error(err)
		}
	}
	if err := metricstest.CompareText(reg, "# HELP b B.\n# TYPE b gauge\nb 1.5\n", "b"); err != nil {
		t.Error("restricted to b:", err)
	}
	err := metricstest.CompareText(reg, strings.Replace(both, "1.5", "2.5", 1))
	if err == nil || !strings.Contains(err.Error(), "- b 2.5\n+ b 1.5\n") {
		t.Errorf("mismatch not shown as a diff: %v", err)
	}
	if err := metricstest.CompareText(reg, "# HELP b B.\n# TYPE b gauge\nb 1.5\n"); err == nil || !strings.Contains(err.Error(), "+ a_total") {
		t.Errorf("an unexpected family must be reported: %v", err)
	}
	if err := metricstest.CompareText(reg, "not exposition {"); err == nil || !strings.Contains(err.Error(), "parse expected") {
		t.Errorf("bad expected text: %v", err)
	}
	if err := metricstest.CompareText(reg, "# TYPE herd_metrics_write_errors_total counter\nherd_metrics_write_errors_total 0\n", "herd_metrics_write_errors_total"); err == nil {
		t.Error("help mismatch not reported")
	}
}

func TestValueAndLookup(t *testing.T) {
	t.Parallel()
	reg := metricstest.NewRegistry(t)
	h := reg.MustNewHistogramVec(metrics.HistogramOpts{Name: "lat", Help: "h", Buckets: []float64{0.1, 1}}, "route")
	h.With("/a").Observe(0.5)
	h.With("/a").Observe(3)
	s := reg.MustNewSummary(metrics.SummaryOpts{Name: "sz", Help: "h"})
	s.Observe(10)
	g := reg.MustNewGaugeVec(metrics.GaugeOpts{Name: "g", Help: "h"}, "k")
	g.With("v").Set(4)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"lat_bucket", []string{"route", "/a", "le", "1.0"}, 1},
		{"lat_bucket", []string{"le", "+Inf", "route", "/a"}, 2},
		{"lat_count", []string{"route", "/a"}, 2},
		{"lat_sum", []string{"route", "/a"}, 3.5},
		{"sz_count", nil, 1},
		{"sz_sum", nil, 10},
		{"g", []string{"k", "v", "pid", "0a"}, 4},
	} {
		if got := metricstest.Value(t, reg, c.name, c.labels...); got != c.want {
			t.Errorf("%s%q = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	for _, c := range []struct {
		name   string
		labels []string
		err    string
	}{
		{"nope", nil, "no sample named nope"},
		{"g", []string{"k", "v"}, `g{k="v",pid="0a"} 4`}, // lists what there is
		{"g", []string{"k"}, "odd number"},
	} {
		if _, err := metricstest.Lookup(reg, c.name, c.labels...); err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("Lookup(%s, %q) = %v, want an error containing %q", c.name, c.labels, err, c.err)
		}
	}
}

func TestSumAndSeriesCount(t *testing.T) {
	t.Parallel()
	w := metricstest.NewWorkers(t, 2)
	for i, reg := range w {
		req := reg.MustNewCounterVec(metrics.CounterOpts{Name: "req_total", Help: "h"}, "route", "code")
		req.With("/a", "200").Add(2)
		req.With("/a", "500").Add(1)
		if i == 1 {
			req.With("/b", "200").Add(4)
		}
		lat := reg.MustNewHistogramVec(metrics.HistogramOpts{Name: "lat", Help: "h", Buckets: []float64{0.1, 1}}, "route")
		lat.With("/a").Observe(0.5)
		lat.With("/b").Observe(3)
		reg.MustNewGauge(metrics.GaugeOpts{Name: "busy", Help: "h", Mode: metrics.GaugeAll}).Set(float64(i + 1))
	}
	g := w[0] // the merged view of both workers
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"req_total", nil, 10},
		{"req_total", []string{"route", "/a"}, 6},
		{"req_total", []string{"code", "200"}, 8},
		{"req_total", []string{"route", "/a", "code", "500"}, 2},
		{"req_total", []string{"route", "/c"}, 0}, // a value never seen
		{"lat_count", nil, 4},
		{"lat_bucket", []string{"le", "1"}, 2},
		{"lat_sum", []string{"route", "/b"}, 6},
		{"busy", nil, 3}, // one series per worker (a "pid" label)
	} {
		if got := metricstest.Sum(t, g, c.name, c.labels...); got != c.want {
			t.Errorf("Sum(%s, %q) = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	for _, c := range []struct {
		name   string
		labels []string
		err    string
	}{
		{"nope", nil, "no sample named nope"},
		{"req_total", []string{"rout", "/a"}, `no sample req_total has a label "rout"`},
		{"req_total", []string{"route"}, "odd number"},
	} {
		if _, err := metricstest.LookupSum(g, c.name, c.labels...); err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("LookupSum(%s, %q) = %v, want an error containing %q", c.name, c.labels, err, c.err)
		}
	}
	for _, c := range []struct {
		name   string
		labels []string
		want   int
	}{
		{"req_total", nil, 3},
		{"req_total", []string{"route", "/a"}, 2},
		{"req_total", []string{"code", "200"}, 2},
		{"lat", nil, 2},                            // a histogram's series, not its buckets
		{"lat_bucket", []string{"route", "/a"}, 3}, // samples: 0.1, 1, +Inf
		{"lat_bucket", []string{"le", "+Inf"}, 2},
		{"busy", nil, 2}, // one per worker
		{"nope", nil, 0},
		{"req_total", []string{"route", "/c"}, 0},
		{"req_total", []string{"rout", "/a"}, 0},
	} {
		if got := metricstest.SeriesCount(t, g, c.name, c.labels...); got != c.want {
			t.Errorf("SeriesCount(%s, %q) = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if _, err := metricstest.LookupSeriesCount(g, "req_total", "route"); err == nil {
		t.Error("odd labels accepted")
	}
}
