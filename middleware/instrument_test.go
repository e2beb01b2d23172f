package middleware_test

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	chimw "github.com/go-chi/chi/v5/middleware"
	dto "github.com/prometheus/client_model/go"

	"github.com/herdhttp/herd/metrics"
	"github.com/herdhttp/herd/metrics/metricstest"
	"github.com/herdhttp/herd/middleware"
)

// instrumented returns a fresh registry and the middleware recording into it.
func instrumented(t *testing.T, o middleware.Opts) (*metrics.Registry, func(http.Handler) http.Handler) {
	t.Helper()
	reg := metricstest.NewRegistry(t)
	o.Registry = reg
	mw, err := middleware.InstrumentWithOpts(o)
	if err != nil {
		t.Fatal(err)
	}
	return reg, mw
}

// do serves one request and returns the status the client got.
func do(h http.Handler, method, target string) int {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	return rec.Code
}

func ok(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }

// requests returns http_requests_total{method,route,code}, 0 when absent.
func requests(t *testing.T, g metrics.Gatherer, method, route string, code int) float64 {
	t.Helper()
	v, err := metricstest.Lookup(g, "http_requests_total", "method", method, "route", route, "code", fmt.Sprint(code))
	if err != nil {
		if strings.Contains(err.Error(), "no sample") {
			return 0
		}
		t.Fatal(err)
	}
	return v
}

// seriesCount counts every series the registry exposes.
func seriesCount(t *testing.T, g metrics.Gatherer) int {
	t.Helper()
	fams, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, mf := range fams {
		n += len(mf.Metric)
	}
	return n
}

// appRouter is a chi router with nested routers, mounts, inline groups and a
// mounted plain handler; mw is installed with Use unless outside is set.
func appRouter(mw func(http.Handler) http.Handler, outside bool) http.Handler {
	r := chi.NewRouter()
	if !outside {
		r.Use(mw)
	}
	r.Get("/hello", ok)
	r.Get("/users/{id}", ok)
	r.Route("/api", func(r chi.Router) {
		r.Get("/", ok)
		r.Get("/items/{id}", ok)
		r.Route("/v2", func(r chi.Router) {
			r.Get("/things/{id}", ok)
		})
	})
	r.Mount("/static", http.StripPrefix("/static", http.FileServer(http.Dir("testdata/none"))))
	r.Get("/files/*", ok)
	r.With(chimw.NoCache).Get("/with/{x}", ok)
	r.Group(func(r chi.Router) {
		r.Use(chimw.NoCache)
		r.Post("/group/{x}", ok)
	})
	if outside {
		return mw(r)
	}
	return r
}

// chiCases are requests to appRouter and the labels they must get.
var chiCases = []struct {
	method, path string
	route        string
	code         int
}{
	{"GET", "/hello", "/hello", 200},
	{"GET", "/users/42", "/users/{id}", 200},
	{"GET", "/api", "/api", 200},
	{"GET", "/api/", "/api", 200},
	{"GET", "/api/items/7", "/api/items/{id}", 200},
	{"GET", "/api/v2/things/9", "/api/v2/things/{id}", 200},
	{"GET", "/files/a/b/c", "/files/*", 200},
	{"GET", "/with/1", "/with/{x}", 200},
	{"POST", "/group/1", "/group/{x}", 200},
	{"GET", "/static/missing.txt", "/static/*", 404}, // a mounted handler, not a router: its own 404
	// Nothing matched, at the root or inside a mounted router.
	{"GET", "/nope", middleware.UnmatchedRoute, 404},
	{"GET", "/", middleware.UnmatchedRoute, 404},
	{"GET", "/api/nope", middleware.UnmatchedRoute, 404},
	{"GET", "/api/v2", middleware.UnmatchedRoute, 404},
	{"GET", "/api/v2/nope/deeper", middleware.UnmatchedRoute, 404},
	{"POST", "/hello", middleware.UnmatchedRoute, 405},
	{"POST", "/api/items/7", middleware.UnmatchedRoute, 405},
	{"BREW", "/hello", middleware.UnmatchedRoute, 405},
}

func TestChiRoutePatterns(t *testing.T) {
	for _, outside := range []bool{false, true} {
		t.Run(fmt.Sprintf("outside=%v", outside), func(t *testing.T) {
			t.Parallel()
			reg, mw := instrumented(t, middleware.Opts{})
			h := appRouter(mw, outside)
			for _, c := range chiCases {
				if got := do(h, c.method, c.path); got != c.code {
					t.Fatalf("%s %s: status %d, want %d", c.method, c.path, got, c.code)
				}
			}
			want := map[string]float64{}
			for _, c := range chiCases {
				m := c.method
				if m == "BREW" {
					m = middleware.OtherMethod
				}
				want[fmt.Sprintf("%s %s %d", m, c.route, c.code)]++
			}
			for k, n := range want {
				var m, route string
				var code int
				fmt.Sscan(k, &m, &route, &code)
				if got := requests(t, reg, m, route, code); got != n {
					t.Errorf("http_requests_total{method=%q,route=%q,code=\"%d\"} = %v, want %v", m, route, code, got, n)
				}
			}
			if got, want := seriesCount(t, metricFilter(reg, "http_requests_total")), len(want); got != want {
				t.Errorf("%d request series, want %d:\n%s", got, want, text(t, reg, "http_requests_total"))
			}
		})
	}
}

// TestChiSubRouterUse: the middleware installed on a mounted sub-router
// still labels with the full pattern, mount prefix included.
func TestChiSubRouterUse(t *testing.T) {
	t.Parallel()
	reg, mw := instrumented(t, middleware.Opts{})
	r := chi.NewRouter()
	r.Route("/api", func(r chi.Router) {
		r.Use(mw)
		r.Get("/items/{id}", ok)
	})
	do(r, "GET", "/api/items/1")
	do(r, "GET", "/api/nothing")
	if got := requests(t, reg, "GET", "/api/items/{id}", 200); got != 1 {
		t.Errorf("/api/items/{id}: %v, want 1", got)
	}
	if got := requests(t, reg, "GET", middleware.UnmatchedRoute, 404); got != 1 {
		t.Errorf("unmatched: %v, want 1", got)
	}
}

// TestChiTwoRouters: one middleware in two routers whose patterns mean
// different things ("/x/*" is a mount in one and an endpoint in the other).
func TestChiTwoRouters(t *testing.T) {
	t.Parallel()
	reg, mw := instrumented(t, middleware.Opts{})
	a := chi.NewRouter()
	a.Use(mw)
	a.Route("/x", func(r chi.Router) { r.Get("/y", ok) })
	b := chi.NewRouter()
	b.Use(mw)
	b.Get("/x/*", ok)
	do(a, "GET", "/x/z") // unmatched in a's sub-router
	do(b, "GET", "/x/z") // b's wildcard endpoint
	if got := requests(t, reg, "GET", middleware.UnmatchedRoute, 404); got != 1 {
		t.Errorf("unmatched: %v, want 1", got)
	}
	if got := requests(t, reg, "GET", "/x/*", 200); got != 1 {
		t.Errorf("/x/*: %v, want 1", got)
	}
}

func TestServeMuxPatterns(t *testing.T) {
	t.Parallel()
	reg, mw := instrumented(t, middleware.Opts{})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /users/{id}", ok)
	mux.HandleFunc("POST\t /tabbed", ok)
	mux.HandleFunc("other.org/hosted/{x}", ok)
	mux.HandleFunc("GET other.org/both/{x...}", ok)
	mux.HandleFunc("/static/", ok)
	mux.HandleFunc("/{$}", ok)
	mux.HandleFunc("/dir/{name}/", ok)
	h := mw(mux)
	cases := []struct {
		method, target string
		route          string
		code           int
	}{
		{"GET", "/users/1", "/users/{id}", 200},
		{"HEAD", "/users/1", "/users/{id}", 200},
		{"POST", "/tabbed", "/tabbed", 200},
		{"GET", "http://other.org/hosted/1", "/hosted/{x}", 200},
		{"GET", "http://other.org/both/a/b", "/both/{x...}", 200},
		{"GET", "/static/a/b", "/static/", 200},
		{"GET", "/", "/{$}", 200},
		{"GET", "/static", "/static/", 307},          // ServeMux's redirect to the slash form
		{"GET", "/a/../users/1", "/users/{id}", 307}, // and to the cleaned path
		{"GET", "/nope", middleware.UnmatchedRoute, 404},
		{"GET", "/hosted/1", middleware.UnmatchedRoute, 404}, // host example.com
		{"DELETE", "/users/1", middleware.UnmatchedRoute, 405},
		// CONNECT redirects carry the client's path as their "pattern".
		{"CONNECT", "/dir/abc", middleware.UnmatchedRoute, 307},
	}
	want := map[[3]string]float64{}
	for _, c := range cases {
		if got := do(h, c.method, c.target); got != c.code {
			t.Errorf("%s %s: status %d, want %d", c.method, c.target, got, c.code)
		}
		want[[3]string{c.method, c.route, fmt.Sprint(c.code)}]++
	}
	for k, n := range want {
		if got := metricstest.Value(t, reg, "http_requests_total", "method", k[0], "route", k[1], "code", k[2]); got != n {
			t.Errorf("http_requests_total%q = %v, want %v\n%s", k, got, n, text(t, reg, "http_requests_total"))
		}
	}
}

// TestServeMuxHandlerWrapped: the middleware around one handler registered
// in a ServeMux sees the pattern too (set before the handler runs).
func TestServeMuxHandlerWrapped(t *testing.T) {
	t.Parallel()
	reg, mw := instrumented(t, middleware.Opts{})
	mux := http.NewServeMux()
	mux.Handle("GET /items/{id}", mw(http.HandlerFunc(ok)))
	do(mux, "GET", "/items/3")
	if got := requests(t, reg, "GET", "/items/{id}", 200); got != 1 {
		t.Errorf("got %v, want 1", got)
	}
}

// TestPlainHandler: with no router, every request is unmatched.
func TestPlainHandler(t *testing.T) {
	t.Parallel()
	reg, mw := instrumented(t, middleware.Opts{})
	do(mw(http.HandlerFunc(ok)), "GET", "/anything")
	if got := requests(t, reg, "GET", middleware.UnmatchedRoute, 200); got != 1 {
		t.Errorf("got %v, want 1", got)
	}
}

// TestRandomPathsAddNoSeries is the scanner: 10,000 random paths and
// methods, through chi and through ServeMux, leave the number of series
// unchanged once the unmatched series exist.
func TestRandomPathsAddNoSeries(t *testing.T) {
	t.Parallel()
	reg, mw := instrumented(t, middleware.Opts{ResponseSize: true})
	chiApp := appRouter(mw, false)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /users/{id}", ok)
	mux.HandleFunc("/dir/{name}/", ok)
	muxApp := mw(mux)
	methods := []string{"GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "TRACE", "CONNECT", "FOO", "get", "M-SEARCH"}
	rng := rand.New(rand.NewPCG(1, 2))
	randomPath := func() string {
		var b strings.Builder
		for range 1 + rng.IntN(4) {
			fmt.Fprintf(&b, "/%x", rng.Uint64())
		}
		return b.String()
	}
	prefixes := []string{"", "/api", "/api/v2", "/api/items", "/dir"}
	// Warm up: create every series a request can create here, matched
	// (/dir/{name}/ matches /dir/x/y and redirects /dir/x) or not.
	warm := 0
	for _, m := range methods {
		for _, p := range prefixes {
			for _, tail := range []string{"/zz", "/zz/zz"} {
				do(chiApp, m, p+tail)
				do(muxApp, m, p+tail)
				warm += 2
			}
		}
	}
	before := seriesCount(t, reg)
	for i := range 10_000 {
		m := methods[rng.IntN(len(methods))]
		p := prefixes[rng.IntN(len(prefixes))] + randomPath()
		if i%2 == 0 {
			do(chiApp, m, p)
		} else {
			do(muxApp, m, p)
		}
	}
	if after := seriesCount(t, reg); after != before {
		t.Errorf("%d series after 10,000 random requests, %d before:\n%s", after, before, text(t, reg, "http_requests_total"))
	}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var total float64
	for _, mf := range fams {
		if mf.GetName() == "http_requests_total" {
			for _, m := range mf.Metric {
				total += m.GetCounter().GetValue()
			}
		}
	}
	if want := float64(warm + 10_000); total != want {
		t.Errorf("%v requests counted, want %v", total, want)
	}
}

// TestPanicCountedAndPropagated: a handler that panics before sending a
// status is counted as a 500 (after one, with that status), and the panic
// reaches chi's Recoverer, wherever the Recoverer is.
func TestPanicCountedAndPropagated(t *testing.T) {
	boom := func(w http.ResponseWriter, r *http.Request) { panic("boom") }
	late := func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		panic("late boom")
	}
	for _, recovererFirst := range []bool{true, false} {
		t.Run(fmt.Sprintf("recovererFirst=%v", recovererFirst), func(t *testing.T) {
			t.Parallel()
			reg, mw := instrumented(t, middleware.Opts{})
			r := chi.NewRouter()
			if recovererFirst {
				r.Use(chimw.Recoverer, mw)
			} else {
				r.Use(mw, chimw.Recoverer)
			}
			r.Get("/boom", boom)
			r.Get("/late", late)
			if got := do(r, "GET", "/boom"); got != http.StatusInternalServerError {
				t.Errorf("client got %d, want 500 from the Recoverer", got)
			}
			do(r, "GET", "/late")
			if got := requests(t, reg, "GET", "/boom", 500); got != 1 {
				t.Errorf("/boom counted %v times as 500, want 1:\n%s", got, text(t, reg, "http_requests_total"))
			}
			// The 200 went out before the panic: the Recoverer's 500 is a
			// superfluous WriteHeader, and the client gets the 200.
			if got := requests(t, reg, "GET", "/late", 200); got != 1 {
				t.Errorf("/late: %v, want 1 with code 200:\n%s", got, text(t, reg, "http_requests_total"))
			}
			if got := metricstest.Value(t, reg, "http_requests_in_flight"); got != 0 {
				t.Errorf("in flight %v after the panics, want 0", got)
			}
		})
	}
	t.Run("no recoverer", func(t *testing.T) {
		t.Parallel()
		reg, mw := instrumented(t, middleware.Opts{})
		type sentinel struct{ s string }
		want := &sentinel{"mine"}
		h := mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { panic(want) }))
		func() {
			defer func() {
				if got := recover(); got != want {
					t.Errorf("recovered %v, want the handler's own panic value", got)
				}
			}()
			do(h, "GET", "/")
		}()
		if got := requests(t, reg, "GET", middleware.UnmatchedRoute, 500); got != 1 {
			t.Errorf("counted %v, want 1", got)
		}
		// http.ErrAbortHandler passes through unchanged too.
		h = mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { panic(http.ErrAbortHandler) }))
		func() {
			defer func() {
				if p, _ := recover().(error); !errors.Is(p, http.ErrAbortHandler) {
					t.Errorf("recovered %v, want http.ErrAbortHandler", p)
				}
			}()
			do(h, "GET", "/")
		}()
	})
}

// metricFilter restricts a gatherer to the named families.
func metricFilter(g metrics.Gatherer, names ...string) metrics.Gatherer {
	return metrics.GathererFunc(func() ([]*dto.MetricFamily, error) {
		fams, err := g.Gather()
		var out []*dto.MetricFamily
		for _, mf := range fams {
			for _, n := range names {
				if mf.GetName() == n {
					out = append(out, mf)
				}
			}
		}
		return out, err
	})
}

func text(t *testing.T, g metrics.Gatherer, names ...string) string {
	t.Helper()
	s, err := metricstest.Text(g, names...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestChiPatternListsNotConcatenations: ["/x", "/*"] (the stub of a mount,
// then the sub-router's catch-all) and ["/x/*"] (the mount itself, nothing
// matched below) concatenate alike but are different routes.
func TestChiPatternListsNotConcatenations(t *testing.T) {
	t.Parallel()
	reg, mw := instrumented(t, middleware.Opts{})
	r := chi.NewRouter()
	r.Use(mw)
	r.Route("/x", func(r chi.Router) { r.Get("/*", ok) })
	if code := do(r, "POST", "/x/foo"); code != 405 {
		t.Fatalf("POST /x/foo: %d", code)
	}
	do(r, "GET", "/x")
	if got := requests(t, reg, "POST", middleware.UnmatchedRoute, 405); got != 1 {
		t.Errorf("POST /x/foo: %v, want 1 unmatched", got)
	}
	if got := requests(t, reg, "GET", "/x/*", 200); got != 1 {
		t.Errorf("GET /x: %v, want 1 under /x/*:\n%s", got, text(t, reg, "http_requests_total"))
	}
}

// TestChiManyRouters: one middleware in more routers than get a table of
// their own still labels each request right.
func TestChiManyRouters(t *testing.T) {
	t.Parallel()
	reg, mw := instrumented(t, middleware.Opts{})
	for i := range 40 {
		r := chi.NewRouter()
		r.Use(mw)
		r.Route(fmt.Sprintf("/r%d", i), func(r chi.Router) { r.Get("/items/{id}", ok) })
		do(r, "GET", fmt.Sprintf("/r%d/items/1", i))
		do(r, "GET", fmt.Sprintf("/r%d/items/2", i))
		do(r, "GET", fmt.Sprintf("/r%d/nope", i))
	}
	for i := range 40 {
		if got := requests(t, reg, "GET", fmt.Sprintf("/r%d/items/{id}", i), 200); got != 2 {
			t.Errorf("router %d: %v, want 2", i, got)
		}
	}
	if got := requests(t, reg, "GET", middleware.UnmatchedRoute, 404); got != 40 {
		t.Errorf("unmatched: %v, want 40", got)
	}
}

func TestInFlightAndDuration(t *testing.T) {
	t.Parallel()
	reg, mw := instrumented(t, middleware.Opts{})
	r := chi.NewRouter()
	r.Use(mw)
	r.Get("/busy", func(w http.ResponseWriter, r *http.Request) {
		if got := metricstest.Value(t, reg, "http_requests_in_flight"); got != 1 {
			t.Errorf("in flight %v while serving, want 1", got)
		}
		// At least 5 ms, without sleeping.
		for start := time.Now(); time.Since(start) < 5*time.Millisecond; {
		}
	})
	do(r, "GET", "/busy")
	if got := metricstest.Value(t, reg, "http_requests_in_flight"); got != 0 {
		t.Errorf("in flight %v afterwards, want 0", got)
	}
	sum := metricstest.Value(t, reg, "http_request_duration_seconds_sum", "method", "GET", "route", "/busy")
	if sum < 0.005 || sum > 60 {
		t.Errorf("duration %v s, want at least 0.005", sum)
	}
	if got := metricstest.Value(t, reg, "http_request_duration_seconds_bucket", "method", "GET", "route", "/busy", "le", "0.005"); got != 0 {
		t.Errorf("le=0.005 bucket %v, want 0", got)
	}
}

// TestConcurrentRecording creates series from many goroutines at once (run
// it with -race): every request is counted exactly once.
func TestConcurrentRecording(t *testing.T) {
	t.Parallel()
	reg, mw := instrumented(t, middleware.Opts{ResponseSize: true})
	r := chi.NewRouter()
	r.Use(mw)
	status := func(w http.ResponseWriter, r *http.Request) {
		var code int
		fmt.Sscan(chi.URLParam(r, "code"), &code)
		w.WriteHeader(code)
	}
	r.Get("/a/{code}", status)
	r.Route("/b", func(r chi.Router) { r.Post("/{code}", status) })
	const goroutines, each = 8, 500
	codes := []int{200, 201, 204, 400, 404, 500, 503}
	done := make(chan struct{})
	for g := range goroutines {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range each {
				code := codes[(g+i)%len(codes)]
				if i%2 == 0 {
					do(r, "GET", fmt.Sprintf("/a/%d", code))
				} else {
					do(r, "POST", fmt.Sprintf("/b/%d", code))
				}
			}
		}()
	}
	for range goroutines {
		<-done
	}
	var total float64
	for _, code := range codes {
		total += requests(t, reg, "GET", "/a/{code}", code) + requests(t, reg, "POST", "/b/{code}", code)
	}
	if total != goroutines*each {
		t.Errorf("%v requests counted, want %d", total, goroutines*each)
	}
	n := metricstest.Value(t, reg, "http_request_duration_seconds_count", "method", "GET", "route", "/a/{code}") +
		metricstest.Value(t, reg, "http_response_size_bytes_count", "method", "POST", "route", "/b/{code}")
	if n != goroutines*each {
		t.Errorf("%v observations, want %d", n, goroutines*each)
	}
}
