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
