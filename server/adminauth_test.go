package server

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkCachedCredentialCheck is the cost basic auth adds to a scrape
// whose credentials already verified once.
func BenchmarkCachedCredentialCheck(b *testing.B) {
	h, _ := hashPassword("s3cret", minRounds)
	p := filepath.Join(b.TempDir(), "users")
	os.WriteFile(p, []byte("prometheus:"+h+"\n"), 0o600)
	a, err := newBasicAuth(p)
	if err != nil {
		b.Fatal(err)
	}
	ok := a.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	req := httptest.NewRequest("GET", "/metrics", nil)
	req.SetBasicAuth("prometheus", "s3cret")
	w := httptest.NewRecorder()
	ok.ServeHTTP(w, req)
	if w.Code != 200 {
		b.Fatalf("status %d", w.Code)
	}
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		ok.ServeHTTP(w, req)
	}
}
