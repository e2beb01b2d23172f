package middleware_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/herdhttp/herd/metrics"
	"github.com/herdhttp/herd/metrics/metricstest"
	"github.com/herdhttp/herd/middleware"
)

// The benchmarks serve requests through one chi application, side by side:
//
//	none       no instrumentation
//	herd       herd's middleware (r.Use), which also keeps the in-flight gauge
//	promhttp   client_golang's InstrumentHandlerCounter and
//	           InstrumentHandlerDuration around each route's handler, curried
//	           with the route label: the same series as herd's counter and
//	           histogram
//	promhttp+inflight  the same plus InstrumentHandlerInFlight, herd's
//	           third metric
//
// for a static route, a route with a parameter, and a route two mounts deep,
// serially and with b.RunParallel. Run them together, several times, so that
// they alternate:
//
//	go test -run '^$' -bench . -benchmem -count 5 ./middleware/
//
// The serial benchmarks also report cpu-ns/op, the CPU time of the one OS
// thread that ran the loop, per request (Linux): on a shared machine it
// leaves out the time the benchmark waited for a CPU, which inflates ns/op.
// What the middleware adds to chi is herd's figure less none's, for the same
// route.

// cpuLoop runs f in b.Loop on one locked OS thread and reports that
// thread's CPU time per iteration as cpu-ns/op.
func cpuLoop(b *testing.B, f func()) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	start, ok := threadCPU()
	for b.Loop() {
		f()
	}
	if end, ok2 := threadCPU(); ok && ok2 {
		b.ReportMetric(float64(end-start)/float64(b.N), "cpu-ns/op")
	}
}

// promApp is benchRouter instrumented the client_golang way.
func promApp(reg *prometheus.Registry, inFlight bool) http.Handler {
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "http_requests_total", Help: "HTTP requests served.",
	}, []string{"method", "route", "code"})
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "http_request_duration_seconds", Help: "Time to serve an HTTP request.",
		Buckets: prometheus.DefBuckets,
	}, []string{"method", "route"})
	gauge := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "http_requests_in_flight", Help: "HTTP requests being served.",
	})
	reg.MustRegister(requests, duration, gauge)
	wrap := func(route string, h http.HandlerFunc) http.Handler {
		l := prometheus.Labels{"route": route}
		var out http.Handler = promhttp.InstrumentHandlerCounter(requests.MustCurryWith(l),
			promhttp.InstrumentHandlerDuration(duration.MustCurryWith(l), h))
		if inFlight {
			out = promhttp.InstrumentHandlerInFlight(gauge, out)
		}
		return out
	}
	r := chi.NewRouter()
	r.Method("GET", "/hello", wrap("/hello", ok))
	r.Method("GET", "/users/{id}", wrap("/users/{id}", ok))
	r.Route("/api", func(r chi.Router) {
		r.Method("GET", "/items/{id}", wrap("/api/items/{id}", ok))
		r.Route("/v2", func(r chi.Router) {
			r.Method("GET", "/things/{id}", wrap("/api/v2/things/{id}", ok))
		})
	})
	return r
}

func BenchmarkChi(b *testing.B) {
	herdReg := metricstest.NewRegistry(b)
	apps := []struct {
		name string
		h    http.Handler
	}{
		{"none", benchRouter()},
		{"herd", benchRouter(middleware.Instrument(herdReg))},
		{"promhttp", promApp(prometheus.NewRegistry(), false)},
		{"promhttp+inflight", promApp(prometheus.NewRegistry(), true)},
	}
	routes := []struct{ name, path string }{
		{"static", "/hello"},
		{"param", "/users/42"},
		{"mount2", "/api/v2/things/9"},
	}
	for _, rt := range routes {
		for _, app := range apps {
			b.Run(rt.name+"/"+app.name, func(b *testing.B) {
				req := httptest.NewRequest("GET", rt.path, nil)
				w := newDiscard()
				b.ReportAllocs()
				cpuLoop(b, func() { app.h.ServeHTTP(w, req) })
			})
		}
	}
	for _, rt := range routes {
		for _, app := range apps {
			b.Run("parallel/"+rt.name+"/"+app.name, func(b *testing.B) {
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					req := httptest.NewRequest("GET", rt.path, nil)
					w := newDiscard()
					for pb.Next() {
						app.h.ServeHTTP(w, req)
					}
				})
			})
		}
	}
}

// BenchmarkMiddleware is the middleware alone, on the routing context chi
// leaves after two mounts: what herd adds to a request (0 allocs/op).
func BenchmarkMiddleware(b *testing.B) {
	h := middleware.Instrument(metricstest.NewRegistry(b))(http.HandlerFunc(noop))
	rctx := chi.NewRouteContext()
	rctx.RoutePatterns = []string{"/api/*", "/v2/*", "/things/{id}"}
	req := httptest.NewRequest("GET", "/api/v2/things/9", nil)
	req = req.WithContext(context.WithValue(req.Context(), chi.RouteCtxKey, rctx))
	w := newDiscard()
	b.ReportAllocs()
	cpuLoop(b, func() { h.ServeHTTP(w, req) })
}

// BenchmarkMiddlewareFloor is what BenchmarkMiddleware cannot do without,
// through the public API: two monotonic clock reads (start and end), the
// in-flight gauge up and down, the counter and the duration histogram.
// BenchmarkMiddleware less this is the middleware's own work: its pooled
// writer, the route and series lookups, the status.
func BenchmarkMiddlewareFloor(b *testing.B) {
	reg := metricstest.NewRegistry(b)
	requests := reg.MustNewCounterVec(metrics.CounterOpts{Name: middleware.DefaultRequestsName, Help: middleware.RequestsHelp}, "method", "route", "code").With("GET", "/api/v2/things/{id}", "200")
	duration := reg.MustNewHistogramVec(metrics.HistogramOpts{Name: middleware.DefaultDurationName, Help: middleware.DurationHelp}, "method", "route").With("GET", "/api/v2/things/{id}")
	inFlight := reg.MustNewGauge(metrics.GaugeOpts{Name: middleware.DefaultInFlightName, Help: middleware.InFlightHelp, Mode: metrics.GaugeLiveSum})
	epoch := time.Now()
	b.ReportAllocs()
	cpuLoop(b, func() {
		start := time.Since(epoch)
		inFlight.Inc()
		inFlight.Dec()
		requests.Inc()
		duration.Observe((time.Since(epoch) - start).Seconds())
	})
}
