package metricstest_test

import (
	"fmt"
	"net/http/httptest"

	"github.com/herdhttp/herd/metrics"
	"github.com/herdhttp/herd/metrics/metricstest"
)

// In a test, use metricstest.NewRegistry(t): a fresh directory per test, cleaned up after.
// (An Example has no *testing.T, so this one builds the Registry by hand.)
func ExampleCompareText() {
	reg, _ := metrics.NewRegistry(metrics.Options{}) // a private directory, removed by Close
	defer reg.Close()
	h := newHello(reg)
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))

	err := metricstest.CompareText(reg, `
# HELP hello_requests_total Hello requests.
# TYPE hello_requests_total counter
hello_requests_total{code="200"} 3
`, "hello_requests_total")
	fmt.Println(err)
	// Output:
	// metricstest: exposition differs (- expected, + got):
	//   # HELP hello_requests_total Hello requests.
	//   # TYPE hello_requests_total counter
	// - hello_requests_total{code="200"} 3
	// + hello_requests_total{code="200"} 2
}

func ExampleLookup() {
	workers := make([]*metrics.Registry, 2)
	dir := ""
	for i := range workers {
		w, _ := metrics.NewRegistry(metrics.Options{Dir: dir, ID: fmt.Sprintf("%da", i)})
		defer w.Close()
		dir = w.Dir() // the second worker shares the first one's directory
		workers[i] = w
		newHello(w).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	}
	v, err := metricstest.Lookup(workers[1], "hello_requests_total", "code", "200")
	fmt.Println(v, err)
	// Output: 2 <nil>
}

func ExampleSum() {
	reg, _ := metrics.NewRegistry(metrics.Options{})
	defer reg.Close()
	req := reg.MustNewCounterVec(metrics.CounterOpts{Name: "req_total", Help: "Requests."}, "route", "code")
	req.With("/a", "200").Add(5)
	req.With("/a", "500").Add(1)
	req.With("/b", "200").Add(2)
	// In a test: metricstest.Sum(t, reg, ...), which fails the test on an error.
	a, _ := metricstest.LookupSum(reg, "req_total", "route", "/a")  // every code of /a
	ok, _ := metricstest.LookupSum(reg, "req_total", "code", "200") // every route
	all, _ := metricstest.LookupSum(reg, "req_total")
	_, err := metricstest.LookupSum(reg, "req_total", "path", "/a")
	fmt.Println(a, ok, all)
	fmt.Println(err != nil) // no series has a label "path"
	// Output:
	// 6 7 8
	// true
}

func ExampleSeriesCount() {
	reg, _ := metrics.NewRegistry(metrics.Options{})
	defer reg.Close()
	lat := reg.MustNewHistogramVec(metrics.HistogramOpts{Name: "latency_seconds", Help: "Latency.", Buckets: []float64{0.1, 1}}, "route", "method")
	lat.With("/a", "GET").Observe(0.2)
	lat.With("/a", "POST").Observe(0.3)
	lat.With("/b", "GET").Observe(2)
	// In a test: metricstest.SeriesCount(t, reg, ...).
	all, _ := metricstest.LookupSeriesCount(reg, "latency_seconds")
	a, _ := metricstest.LookupSeriesCount(reg, "latency_seconds", "route", "/a")
	buckets, _ := metricstest.LookupSeriesCount(reg, "latency_seconds_bucket", "route", "/b")
	fmt.Println(all, a, buckets)
	// Output: 3 2 3
}
