package metrics_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"time"

	"github.com/herdhttp/herd/metrics"
	"github.com/herdhttp/herd/metrics/metricstest"
)

// Instrumenting a handler: register the families once, at setup, on the Registry you were
// given; count in the handler. Then read the result the way a test (or the master) does.
func Example() {
	reg, err := metrics.NewRegistry(metrics.Options{}) // zero Options: a private directory
	if err != nil {
		panic(err)
	}
	defer reg.Close()

	requests := reg.MustNewCounterVec(metrics.CounterOpts{
		Name: "hello_requests_total",
		Help: "Requests to /hello.",
	}, "code")
	latency := reg.MustNewHistogramVec(metrics.HistogramOpts{
		Name:    "hello_duration_seconds",
		Help:    "Latency of /hello.",
		Buckets: []float64{0.1, 1},
	}, "code")
	hello := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		fmt.Fprintln(w, "hello")
		requests.With("200").Inc()
		latency.With("200").Observe(time.Since(start).Seconds())
	})

	for range 3 {
		hello.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/hello", nil))
	}

	text, _ := metricstest.Text(reg, "hello_requests_total")
	fmt.Print(text)
	n, _ := metricstest.Lookup(reg, "hello_duration_seconds_bucket", "code", "200", "le", "1")
	fmt.Println("requests under a second:", n)
	// Output:
	// # HELP hello_requests_total Requests to /hello.
	// # TYPE hello_requests_total counter
	// hello_requests_total{code="200"} 3
	// requests under a second: 3
}

// Several worker processes write into one directory; the master merges them. Here two
// Registries play the workers.
func ExampleNewDirGatherer() {
	dir, err := os.MkdirTemp("", "herd-example-") // a server uses its run directory
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	var workers []*metrics.Registry
	for _, id := range []string{"0a", "1a"} {
		w, err := metrics.NewRegistry(metrics.Options{Dir: dir, ID: id})
		if err != nil {
			panic(err)
		}
		defer w.Close()
		workers = append(workers, w)
		w.MustNewCounter(metrics.CounterOpts{Name: "jobs_total", Help: "Jobs done."}).Add(10)
		w.MustNewGauge(metrics.GaugeOpts{Name: "busy", Help: "Busy workers.", Mode: metrics.GaugeLiveSum}).Set(1)
	}

	master := metrics.NewDirGatherer(dir, metrics.GathererOpts{})
	show := func() {
		text, _ := metricstest.Text(master, "jobs_total", "busy")
		fmt.Print(text)
	}
	show()

	// Worker 0a exits; when the master reaps it, its live gauges go, its counts stay.
	workers[0].Close()
	metrics.RemoveLiveFiles(dir, "0a")
	show()
	// Output:
	// # HELP busy Busy workers.
	// # TYPE busy gauge
	// busy 2
	// # HELP jobs_total Jobs done.
	// # TYPE jobs_total counter
	// jobs_total 20
	// # HELP busy Busy workers.
	// # TYPE busy gauge
	// busy 1
	// # HELP jobs_total Jobs done.
	// # TYPE jobs_total counter
	// jobs_total 20
}

// Serving /metrics: Handler negotiates the format with the scraper.
func ExampleHandler() {
	reg, _ := metrics.NewRegistry(metrics.Options{})
	defer reg.Close()
	reg.MustNewCounter(metrics.CounterOpts{Name: "up_total", Help: "Ups."}).Inc()

	h := metrics.Handler(reg, metrics.HandlerOpts{})
	req := httptest.NewRequest("GET", "/metrics", nil)
	req.Header.Set("Accept", "application/openmetrics-text; version=1.0.0")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	fmt.Println(strings.SplitN(rec.Header().Get("Content-Type"), ";", 2)[0])
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		if strings.HasPrefix(line, "up_total") || line == "# EOF" {
			fmt.Println(line)
		}
	}
	// Output:
	// application/openmetrics-text
	// up_total 1.0
	// # EOF
}

// A process that goes on after its Registry, such as a test restarting a simulated worker
// under the same ID, releases the files with Unmap once nothing uses the handles; Close
// alone keeps them mapped (and locked) until the process exits.
func ExampleRegistry_Unmap() {
	dir, err := os.MkdirTemp("", "herd-example-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	for range 2 { // the worker of slot 0 and its successor
		w, err := metrics.NewRegistry(metrics.Options{Dir: dir, ID: "0a"})
		if err != nil {
			panic(err)
		}
		w.MustNewCounter(metrics.CounterOpts{Name: "jobs_total", Help: "Jobs done."}).Add(3)
		w.Unmap()
	}
	n, _ := metricstest.Lookup(metrics.NewDirGatherer(dir, metrics.GathererOpts{}), "jobs_total")
	fmt.Println(n)
	// Output:
	// 6
}
