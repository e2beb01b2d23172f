package main

import (
	"net/http/httptest"
	"testing"

	"github.com/herdhttp/herd/metrics/metricstest"
)

// TestHello is the unit test the README shows: one line for an isolated
// registry, no environment, parallel-safe.
func TestHello(t *testing.T) {
	t.Parallel()
	reg := metricstest.NewRegistry(t) // its own directory, closed and removed at cleanup
	h, _ := newApp(reg)
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/hello", nil))
	if v := metricstest.Value(t, reg, "http_requests_total", "route", "/hello", "code", "200", "method", "GET"); v != 1 {
		t.Errorf("http_requests_total = %v, want 1", v)
	}
}

func TestRoutes(t *testing.T) {
	t.Parallel()
	reg := metricstest.NewRegistry(t)
	h, err := newApp(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		code int
		body string
	}{
		{"/hello", 200, `{"msg":"hello"}` + "\n"},
		{"/users/42", 200, `{"id":"42"}` + "\n"},
		{"/sleep/1", 200, `{"slept_ms":1}` + "\n"},
		{"/sleep/10001", 400, ""},
		{"/nope", 404, ""},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", tc.path, nil))
		if rec.Code != tc.code || (tc.body != "" && rec.Body.String() != tc.body) {
			t.Errorf("GET %s = %d %q, want %d %q", tc.path, rec.Code, rec.Body.String(), tc.code, tc.body)
		}
	}
	if v := metricstest.Value(t, reg, "http_requests_total", "route", "<unmatched>", "code", "404", "method", "GET"); v != 1 {
		t.Errorf("unmatched requests = %v, want 1", v)
	}
}
