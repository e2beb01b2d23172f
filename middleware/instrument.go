package middleware

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/herdhttp/herd/metrics"
)

// UnmatchedRoute is the route label of every request that matched no route.
const UnmatchedRoute = "<unmatched>"

// Opts configures InstrumentWithOpts. The zero value of every field but
// Registry is a sensible default.
type Opts struct {
	// Registry receives the metrics. Required.
	Registry *metrics.Registry
	// RequestsName is the counter's name; default "http_requests_total".
	RequestsName string
	// DurationName is the histogram's name; default "http_request_duration_seconds".
	DurationName string
	// InFlightName is the gauge's name; default "http_requests_in_flight".
	InFlightName string
	// Buckets of the duration histogram in seconds; default metrics.DefBuckets().
	Buckets []float64
	// SkipRoutes lists route patterns (such as "/healthz") that are served but
	// not recorded.
	SkipRoutes []string
}

// Instrument records every request into reg with the default names and
// buckets. It panics if the metrics cannot be registered (a programmer
// mistake at setup time, such as registering them twice); use
// InstrumentWithOpts to get the error instead.
func Instrument(reg *metrics.Registry) func(http.Handler) http.Handler {
	mw, err := InstrumentWithOpts(Opts{Registry: reg})
	if err != nil {
		panic(err)
	}
	return mw
}

// InstrumentWithOpts is Instrument with options.
func InstrumentWithOpts(o Opts) (func(http.Handler) http.Handler, error) {
	if o.Registry == nil {
		return nil, errors.New("middleware: Opts.Registry is nil")
	}
	if o.RequestsName == "" {
		o.RequestsName = "http_requests_total"
	}
	if o.DurationName == "" {
		o.DurationName = "http_request_duration_seconds"
	}
	if o.InFlightName == "" {
		o.InFlightName = "http_requests_in_flight"
	}
	requests, err := o.Registry.NewCounterVec(metrics.CounterOpts{
		Name: o.RequestsName,
		Help: "HTTP requests served, by method, route pattern and status code.",
	}, "method", "route", "code")
	if err != nil {
		return nil, err
	}
	duration, err := o.Registry.NewHistogramVec(metrics.HistogramOpts{
		Name:    o.DurationName,
		Help:    "Time to serve an HTTP request in seconds, by method and route pattern.",
		Buckets: o.Buckets,
	}, "method", "route")
	if err != nil {
		return nil, err
	}
	inFlight, err := o.Registry.NewGauge(metrics.GaugeOpts{
		Name: o.InFlightName,
		Help: "HTTP requests being served, summed over live workers.",
		Mode: metrics.GaugeLiveSum,
	})
	if err != nil {
		return nil, err
	}
	in := &instrumenter{requests: requests, duration: duration, inFlight: inFlight, skip: map[string]bool{}}
	for _, r := range o.SkipRoutes {
		in.skip[r] = true
	}
	in.cache.Store(&map[seriesKey]*series{})
	in.pool.New = func() any { return new(responseWriter) }
	return in.wrap, nil
}

type seriesKey struct {
	method, route string
	code          int
}

// series holds the cached handles of one (method, route, code).
type series struct {
	requests *metrics.Counter
	duration *metrics.Histogram
}

type instrumenter struct {
	requests *metrics.CounterVec
	duration *metrics.HistogramVec
	inFlight *metrics.Gauge
	skip     map[string]bool // read-only after construction

	// cache is copy-on-write: readers load the map without locking; the
	// number of keys is bounded by routes x methods x codes.
	cache atomic.Pointer[map[seriesKey]*series]
	mu    sync.Mutex // guards writes of cache
	pool  sync.Pool  // of *responseWriter
}

func (in *instrumenter) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		in.inFlight.Inc()
		rw := in.pool.Get().(*responseWriter)
		rw.reset(w)
		defer func() {
			in.inFlight.Dec()
			code := rw.code()
			if p := recover(); p != nil {
				// The handler panicked: count it as the 500 the client
				// will see (or the reset it gets) and let the panic go on
				// to whatever recovers it.
				code = http.StatusInternalServerError
				in.record(r, code, start)
				rw.reset(nil)
				in.pool.Put(rw)
				panic(p)
			}
			in.record(r, code, start)
			rw.reset(nil)
			in.pool.Put(rw)
		}()
		next.ServeHTTP(rw, r)
	})
}

func (in *instrumenter) record(r *http.Request, code int, start time.Time) {
	route := routeOf(r)
	if in.skip[route] {
		return
	}
	s := in.lookup(seriesKey{method: normalizeMethod(r.Method), route: route, code: code})
	s.requests.Inc()
	s.duration.Observe(time.Since(start).Seconds())
}

// routeOf returns the matched route pattern: chi's if chi routed the request,
// else net/http ServeMux's, else UnmatchedRoute.
func routeOf(r *http.Request) string {
	if rc := chi.RouteContext(r.Context()); rc != nil {
		if p := rc.RoutePattern(); p != "" {
			return p
		}
		return UnmatchedRoute
	}
	if p := r.Pattern; p != "" {
		// ServeMux patterns may start with a method and a host
		// ("GET example.com/users/{id}"); the route is the path part.
		if i := strings.IndexByte(p, ' '); i >= 0 {
			p = p[i+1:]
		}
		if i := strings.IndexByte(p, '/'); i > 0 {
			p = p[i:]
		}
		return p
	}
	return UnmatchedRoute
}

func (in *instrumenter) lookup(k seriesKey) *series {
	if s, ok := (*in.cache.Load())[k]; ok {
		return s
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	old := *in.cache.Load()
	if s, ok := old[k]; ok {
		return s
	}
	s := &series{
		requests: in.requests.With(k.method, k.route, strconv.Itoa(k.code)),
		duration: in.duration.With(k.method, k.route),
	}
	next := make(map[seriesKey]*series, len(old)+1)
	for key, v := range old {
		next[key] = v
	}
	next[k] = s
	in.cache.Store(&next)
	return s
}
