package middleware_test

import (
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/go-chi/chi/v5"

	"github.com/herdhttp/herd/metrics"
	"github.com/herdhttp/herd/metrics/metricstest"
	"github.com/herdhttp/herd/middleware"
)

func ExampleInstrument() {
	// A private metrics directory, removed by Close. herd's server passes
	// the worker's Registry instead.
	reg, err := metrics.NewRegistry(metrics.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer reg.Close()

	r := chi.NewRouter()
	r.Use(middleware.Instrument(reg))
	r.Route("/api", func(r chi.Router) {
		r.Get("/users/{id}", func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, chi.URLParam(r, "id"))
		})
	})

	for _, path := range []string{"/api/users/1", "/api/users/2", "/wp-login.php", "/api/.env"} {
		r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", path, nil))
	}
	text, err := metricstest.Text(reg, "http_requests_total")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(text)
	// Output:
	// # HELP http_requests_total HTTP requests served, by method, route pattern and status code.
	// # TYPE http_requests_total counter
	// http_requests_total{code="200",method="GET",route="/api/users/{id}"} 2
	// http_requests_total{code="404",method="GET",route="<unmatched>"} 2
}

func ExampleInstrumentWithOpts() {
	reg, err := metrics.NewRegistry(metrics.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer reg.Close()

	mw, err := middleware.InstrumentWithOpts(middleware.Opts{
		Registry:    reg,
		SkipRoutes:  []string{"/healthz"},
		ConstLabels: map[string]string{"listener": "public"},
		Buckets:     []float64{.01, .1, 1},
	})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("POST /orders/{id}", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusCreated)
	})
	h := mw(mux)

	for _, req := range []*http.Request{
		httptest.NewRequest("GET", "/healthz", nil),
		httptest.NewRequest("POST", "/orders/7", nil),
		httptest.NewRequest("PROPFIND", "/orders/7", nil),
	} {
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
	text, err := metricstest.Text(reg, "http_requests_total")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(text)
	// Output:
	// # HELP http_requests_total HTTP requests served, by method, route pattern and status code.
	// # TYPE http_requests_total counter
	// http_requests_total{code="201",listener="public",method="POST",route="/orders/{id}"} 1
	// http_requests_total{code="405",listener="public",method="OTHER",route="<unmatched>"} 1
}

// A test of an instrumented application writes the exposition it expects
// with the exported names and help texts, and checks series and sums over
// some labels with metricstest.
func Example_testing() {
	reg, err := metrics.NewRegistry(metrics.Options{}) // in a test: metricstest.NewRegistry(t)
	if err != nil {
		log.Fatal(err)
	}
	defer reg.Close()
	r := chi.NewRouter()
	r.Use(middleware.Instrument(reg))
	r.Get("/users/{id}", func(w http.ResponseWriter, r *http.Request) {
		if chi.URLParam(r, "id") == "0" {
			http.NotFound(w, r)
		}
	})
	for _, path := range []string{"/users/1", "/users/2", "/users/0", "/nope"} {
		r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", path, nil))
	}

	err = metricstest.CompareText(reg, fmt.Sprintf(`
# HELP %[1]s %[2]s
# TYPE %[1]s counter
%[1]s{code="200",method="GET",route="/users/{id}"} 2
%[1]s{code="404",method="GET",route="/users/{id}"} 1
%[1]s{code="404",method="GET",route="<unmatched>"} 1
`, middleware.DefaultRequestsName, middleware.RequestsHelp), middleware.DefaultRequestsName)
	fmt.Println("exposition:", err)

	route, _ := metricstest.LookupSum(reg, middleware.DefaultRequestsName, "route", "/users/{id}")
	notFound, _ := metricstest.LookupSum(reg, middleware.DefaultRequestsName, "code", "404")
	series, _ := metricstest.LookupSeriesCount(reg, middleware.DefaultDurationName)
	fmt.Println(route, notFound, series)
	// Output:
	// exposition: <nil>
	// 3 2 2
}
