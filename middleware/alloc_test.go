package middleware_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/herdhttp/herd/middleware"
)

// discard is a ResponseWriter that allocates nothing, as net/http's own
// does not per write: it lets the allocation tests see the middleware's.
type discard struct{ h http.Header }

func newDiscard() *discard                           { return &discard{h: http.Header{}} }
func (d *discard) Header() http.Header               { return d.h }
func (d *discard) Write(b []byte) (int, error)       { return len(b), nil }
func (d *discard) WriteString(s string) (int, error) { return len(s), nil }
func (d *discard) WriteHeader(int)                   {}
func (d *discard) Flush()                            {}

func noop(w http.ResponseWriter, r *http.Request) {}

// benchRouter is the application of the allocation tests and benchmarks:
// a static route, a parameter, and routes one and two mounts deep.
func benchRouter(use ...func(http.Handler) http.Handler) *chi.Mux {
	r := chi.NewRouter()
	r.Use(use...)
	r.Get("/hello", ok)
	r.Get("/users/{id}", ok)
	r.Route("/api", func(r chi.Router) {
		r.Get("/items/{id}", ok)
		r.Route("/v2", func(r chi.Router) {
			r.Get("/things/{id}", ok)
		})
	})
	return r
}

var allocPaths = []string{"/hello", "/users/42", "/api/items/7", "/api/v2/things/9", "/nope", "/api/nope"}

// TestNoAllocations: recording a known route allocates nothing. Through a
// router, the instrumented application allocates exactly what the bare one
// does (chi's own routing allocates, and more after a Mount); the
// middleware alone allocates nothing at all.
func TestNoAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	compare := func(t *testing.T, name string, bare, inst http.Handler, method, path string) {
		t.Helper()
		req := httptest.NewRequest(method, path, nil)
		w := newDiscard()
		a := testing.AllocsPerRun(500, func() { bare.ServeHTTP(w, req) })
		b := testing.AllocsPerRun(500, func() { inst.ServeHTTP(w, req) })
		if b != a {
			t.Errorf("%s %s %s: %v allocations instrumented, %v bare", name, method, path, b, a)
		}
	}
	for _, size := range []bool{false, true} {
		_, mw := instrumented(t, middleware.Opts{ResponseSize: size})
		for _, p := range allocPaths {
			compare(t, "chi Use", benchRouter(), benchRouter(mw), "GET", p)
			compare(t, "around chi", benchRouter(), mw(benchRouter()), "GET", p)
		}
		compare(t, "chi Use", benchRouter(), benchRouter(mw), "POST", "/hello")
		mux := http.NewServeMux()
		mux.HandleFunc("GET /users/{id}", ok)
		mux.HandleFunc("example.com/hosted/{x}", ok)
		for _, p := range []string{"/users/1", "/hosted/2", "/nope"} {
			compare(t, "ServeMux", mux, mw(mux), "GET", p)
		}
	}

	// The middleware alone, with the routing context chi leaves after two
	// mounts and with a ServeMux pattern: zero.
	_, mw := instrumented(t, middleware.Opts{ResponseSize: true})
	h := mw(http.HandlerFunc(ok))
	rctx := chi.NewRouteContext()
	rctx.RoutePatterns = []string{"/api/*", "/v2/*", "/things/{id}"}
	chiReq := httptest.NewRequest("GET", "/api/v2/things/9", nil)
	chiReq = chiReq.WithContext(context.WithValue(chiReq.Context(), chi.RouteCtxKey, rctx))
	muxReq := httptest.NewRequest("GET", "/users/1", nil)
	muxReq.Pattern = "GET /users/{id}"
	w := newDiscard()
	for name, req := range map[string]*http.Request{"chi": chiReq, "ServeMux": muxReq} {
		if n := testing.AllocsPerRun(1000, func() { h.ServeHTTP(w, req) }); n != 0 {
			t.Errorf("middleware alone (%s): %v allocations per request, want 0", name, n)
		}
	}
}
