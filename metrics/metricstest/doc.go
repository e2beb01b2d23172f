// Package metricstest makes testing code instrumented with package metrics a one-liner, the
// way net/http/httptest does for handlers.
//
//	func TestHello(t *testing.T) {
//		t.Parallel()
//		reg := metricstest.NewRegistry(t) // a fresh directory, closed and removed by t.Cleanup
//		h := NewHandler(reg)                // the code under test registers its metrics on reg
//		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/hello", nil))
//		if got := metricstest.Value(t, reg, "http_requests_total", "code", "200"); got != 1 {
//			t.Errorf("requests = %v, want 1", got)
//		}
//	}
//
// Every test gets its own Registry on its own t.TempDir(): nothing is global, no environment
// variable is read or needed, and tests can run with t.Parallel. NewWorkers gives several
// simulated worker processes sharing one directory, Kill makes one of them die the way the
// master sees it, and Registry.Gather shows the merged view the master would serve.
//
// Compare whole families against expected exposition text with CompareText (or ExpectText),
// read one sample with Value (every label given), add samples over some of their labels with
// Sum, and count series with SeriesCount. The middleware package exports its metric names and
// help texts (middleware.DefaultRequestsName, middleware.RequestsHelp, ...) for writing the
// expected text.
package metricstest
