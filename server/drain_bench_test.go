package server

import (
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkDrainerWrap is the drainer's own cost per request: the counting,
// the draining and recycling checks, the h2c upgrade check.
func BenchmarkDrainerWrap(b *testing.B) {
	d := newDrainer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), Config{}.withDefaults(), 0, nil, log.New(io.Discard, "", 0))
	h := d.srv.Handler
	w, r := httptest.NewRecorder(), httptest.NewRequest("GET", "/hello", nil)
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(w, r)
	}
}
