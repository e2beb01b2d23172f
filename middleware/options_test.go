package middleware_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/herdhttp/herd/metrics"
	"github.com/herdhttp/herd/metrics/metricstest"
	"github.com/herdhttp/herd/middleware"
)

// Options of the middleware: skipped routes, names, labels, buckets, the size histogram,
// bad options, and the middleware installed twice.

func TestSkipRoutes(t *testing.T) {
	t.Parallel()
	reg, mw := instrumented(t, middleware.Opts{SkipRoutes: []string{"/healthz", middleware.UnmatchedRoute}})
	r := chi.NewRouter()
	r.Use(mw)
	r.Get("/healthz", ok)
	r.Get("/hello", ok)
	do(r, "GET", "/healthz")
	do(r, "GET", "/nope")
	do(r, "GET", "/hello")
	metricstest.ExpectText(t, reg, `
# HELP http_requests_total HTTP requests served, by method, route pattern and status code.
# TYPE http_requests_total counter
http_requests_total{code="200",method="GET",route="/hello"} 1
# HELP http_requests_in_flight HTTP requests being served, summed over live workers.
# TYPE http_requests_in_flight gauge
http_requests_in_flight 0
`, "http_requests_total", "http_requests_in_flight")
}

func TestOptions(t *testing.T) {
	t.Parallel()
	reg, mw := instrumented(t, middleware.Opts{
		RequestsName:        "api_requests_total",
		DurationName:        "api_latency_seconds",
		InFlightName:        "api_in_flight",
		Buckets:             []float64{0.5, 60},
		ResponseSize:        true,
		ResponseSizeName:    "api_response_bytes",
		ResponseSizeBuckets: []float64{10, 1000},
		ConstLabels:         map[string]string{"service": "shop"},
	})
	r := chi.NewRouter()
	r.Use(mw)
	r.Get("/items/{id}", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, strings.Repeat("x", 100))
	})
	do(r, "GET", "/items/1")
	do(r, "GET", "/items/2")
	metricstest.ExpectText(t, reg, `
# HELP api_requests_total HTTP requests served, by method, route pattern and status code.
# TYPE api_requests_total counter
api_requests_total{code="201",method="GET",route="/items/{id}",service="shop"} 2
# HELP api_in_flight HTTP requests being served, summed over live workers.
# TYPE api_in_flight gauge
api_in_flight{service="shop"} 0
# HELP api_response_bytes Size of HTTP response bodies in bytes, by method and route pattern.
# TYPE api_response_bytes histogram
api_response_bytes_bucket{method="GET",route="/items/{id}",service="shop",le="10"} 0
api_response_bytes_bucket{method="GET",route="/items/{id}",service="shop",le="1000"} 2
api_response_bytes_bucket{method="GET",route="/items/{id}",service="shop",le="+Inf"} 2
api_response_bytes_sum{method="GET",route="/items/{id}",service="shop"} 200
api_response_bytes_count{method="GET",route="/items/{id}",service="shop"} 2
`, "api_requests_total", "api_in_flight", "api_response_bytes")
	// Durations vary; the buckets and the count do not.
	for le, want := range map[string]float64{"60": 2, "+Inf": 2} {
		if got := metricstest.Value(t, reg, "api_latency_seconds_bucket", "method", "GET", "route", "/items/{id}", "service", "shop", "le", le); got != want {
			t.Errorf("api_latency_seconds_bucket{le=%q} = %v, want %v", le, got, want)
		}
	}
	if got := metricstest.Value(t, reg, "api_latency_seconds_count", "method", "GET", "route", "/items/{id}", "service", "shop"); got != 2 {
		t.Errorf("api_latency_seconds_count = %v, want 2", got)
	}
	if _, err := metricstest.Lookup(reg, "http_requests_total"); err == nil {
		t.Error("the default name is still written")
	}
}

func TestDefaultsHaveNoSizeHistogram(t *testing.T) {
	t.Parallel()
	reg := metricstest.NewRegistry(t)
	r := chi.NewRouter()
	r.Use(middleware.Instrument(reg))
	r.Get("/", ok)
	do(r, "GET", "/")
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, mf := range fams {
		names = append(names, mf.GetName())
	}
	got := strings.Join(names, " ")
	for _, want := range []string{"http_requests_total", "http_request_duration_seconds", "http_requests_in_flight"} {
		if !strings.Contains(got, want) {
			t.Errorf("families %q lack %s", got, want)
		}
	}
	if strings.Contains(got, middleware.DefaultResponseSizeName) {
		t.Errorf("families %q include the size histogram, which is opt-in", got)
	}
}

func TestInstrumentErrors(t *testing.T) {
	t.Parallel()
	if _, err := middleware.InstrumentWithOpts(middleware.Opts{}); err == nil || !strings.HasPrefix(err.Error(), "middleware: ") {
		t.Errorf("nil registry: %v", err)
	}
	reg := metricstest.NewRegistry(t)
	if _, err := middleware.InstrumentWithOpts(middleware.Opts{Registry: reg, Buckets: []float64{2, 1}}); err == nil {
		t.Error("decreasing buckets accepted")
	}
	if _, err := middleware.InstrumentWithOpts(middleware.Opts{Registry: reg, RequestsName: "bad name"}); err == nil {
		t.Error("invalid name accepted")
	}
	// A family of that name with other labels: a conflict, not a reuse.
	reg.MustNewCounterVec(metrics.CounterOpts{Name: "taken_total", Help: "x"}, "a")
	if _, err := middleware.InstrumentWithOpts(middleware.Opts{Registry: reg, RequestsName: "taken_total"}); err == nil {
		t.Error("conflicting family accepted")
	}
	defer func() {
		if recover() == nil {
			t.Error("Instrument did not panic on a conflict")
		}
	}()
	reg2 := metricstest.NewRegistry(t)
	reg2.MustNewGauge(metrics.GaugeOpts{Name: middleware.DefaultRequestsName, Help: "x"})
	middleware.Instrument(reg2)
}

// TestInstrumentTwice: two middlewares on one registry share its families,
// for an application with two routers.
func TestInstrumentTwice(t *testing.T) {
	t.Parallel()
	reg := metricstest.NewRegistry(t)
	a, b := middleware.Instrument(reg), middleware.Instrument(reg)
	do(a(http.HandlerFunc(ok)), "GET", "/")
	do(b(http.HandlerFunc(ok)), "GET", "/")
	if got := requests(t, reg, "GET", middleware.UnmatchedRoute, 200); got != 2 {
		t.Errorf("got %v, want 2", got)
	}
}
