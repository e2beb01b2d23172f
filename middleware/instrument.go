package middleware

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/herdhttp/herd/metrics"
)

// Default metric names.
const (
	DefaultRequestsName     = "http_requests_total"
	DefaultDurationName     = "http_request_duration_seconds"
	DefaultInFlightName     = "http_requests_in_flight"
	DefaultResponseSizeName = "http_response_size_bytes"
)

// Help texts of the metrics, whatever their names, as the # HELP lines of
// an exposition show them: with the names above, an expected exposition
// for metricstest.CompareText can be written without copying strings.
const (
	RequestsHelp     = "HTTP requests served, by method, route pattern and status code."
	DurationHelp     = "Time to serve an HTTP request in seconds, by method and route pattern."
	InFlightHelp     = "HTTP requests being served, summed over live workers."
	ResponseSizeHelp = "Size of HTTP response bodies in bytes, by method and route pattern."
)

// Opts configures InstrumentWithOpts. The zero value of every field but
// Registry is a sensible default.
type Opts struct {
	// Registry receives the metrics. Required.
	Registry *metrics.Registry

	// RequestsName is the name of the counter of requests, labelled
	// method, route and code. Zero: DefaultRequestsName.
	RequestsName string
	// DurationName is the name of the histogram of the time to serve a
	// request in seconds, labelled method and route. Zero:
	// DefaultDurationName.
	DurationName string
	// InFlightName is the name of the gauge of requests being served
	// (GaugeLiveSum: summed over live worker processes). Zero:
	// DefaultInFlightName.
	InFlightName string
	// Buckets of the duration histogram, in seconds. Zero:
	// metrics.DefBuckets().
	Buckets []float64

	// ResponseSize adds a histogram of the response body sizes in bytes,
	// labelled method and route: the bytes written through the middleware's
	// ResponseWriter (0 for HEAD, whose body net/http discards). A
	// compressing middleware inside this one (chi's Compress installed
	// after it) makes them the compressed bytes; installed before it, the
	// uncompressed ones.
	ResponseSize bool
	// ResponseSizeName is the name of that histogram. Zero:
	// DefaultResponseSizeName.
	ResponseSizeName string
	// ResponseSizeBuckets are its buckets, in bytes. Zero: powers of 4 from
	// 64 B to 16 MiB.
	ResponseSizeBuckets []float64

	// SkipRoutes lists route label values (patterns such as "/healthz", or
	// UnmatchedRoute) whose requests are served but not recorded. They are
	// still counted in the in-flight gauge while they run: the route is
	// only known once the handler has returned.
	SkipRoutes []string

	// ConstLabels are added, with fixed values, to every series of every
	// metric: a service or listener name, say.
	ConstLabels map[string]string
}

// Instrument records every request into reg under the default names and
// buckets. It panics if the metrics cannot be registered (a programmer
// mistake at setup time, such as a conflicting family of the same name);
// use InstrumentWithOpts to get the error instead.
//
// Put it in the router with r.Use (chi), or around a chi router or a
// net/http ServeMux:
//
//	r := chi.NewRouter()
//	r.Use(middleware.Instrument(reg))
//
//	mux := http.NewServeMux()
//	srv.Handler = middleware.Instrument(reg)(mux)
func Instrument(reg *metrics.Registry) func(http.Handler) http.Handler {
	mw, err := InstrumentWithOpts(Opts{Registry: reg})
	if err != nil {
		panic(err)
	}
	return mw
}

// InstrumentWithOpts is Instrument with options. Calling it again with the
// same Registry and options is fine: the second middleware records into the
// families the first registered.
func InstrumentWithOpts(o Opts) (func(http.Handler) http.Handler, error) {
	if o.Registry == nil {
		return nil, errors.New("middleware: Opts.Registry is nil")
	}
	if o.RequestsName == "" {
		o.RequestsName = DefaultRequestsName
	}
	if o.DurationName == "" {
		o.DurationName = DefaultDurationName
	}
	if o.InFlightName == "" {
		o.InFlightName = DefaultInFlightName
	}
	if o.ResponseSizeName == "" {
		o.ResponseSizeName = DefaultResponseSizeName
	}
	if o.ResponseSizeBuckets == nil {
		o.ResponseSizeBuckets = []float64{64, 256, 1 << 10, 4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20, 4 << 20, 16 << 20}
	}
	in := &instrumenter{skip: make(map[string]bool, len(o.SkipRoutes)), epoch: time.Now()}
	var err error
	in.requests, err = counterVec(o.Registry, metrics.CounterOpts{
		Name:        o.RequestsName,
		Help:        RequestsHelp,
		ConstLabels: o.ConstLabels,
	}, "method", "route", "code")
	if err != nil {
		return nil, err
	}
	in.duration, err = histogramVec(o.Registry, metrics.HistogramOpts{
		Name:        o.DurationName,
		Help:        DurationHelp,
		Buckets:     o.Buckets,
		ConstLabels: o.ConstLabels,
	}, "method", "route")
	if err != nil {
		return nil, err
	}
	if o.ResponseSize {
		in.size, err = histogramVec(o.Registry, metrics.HistogramOpts{
			Name:        o.ResponseSizeName,
			Help:        ResponseSizeHelp,
			Buckets:     o.ResponseSizeBuckets,
			ConstLabels: o.ConstLabels,
		}, "method", "route")
		if err != nil {
			return nil, err
		}
	}
	in.inFlight, err = gauge(o.Registry, metrics.GaugeOpts{
		Name:        o.InFlightName,
		Help:        InFlightHelp,
		Mode:        metrics.GaugeLiveSum,
		ConstLabels: o.ConstLabels,
	})
	if err != nil {
		return nil, err
	}
	for _, r := range o.SkipRoutes {
		in.skip[r] = true
	}
	in.init()
	return in.wrap, nil
}

// counterVec registers a counter family, or returns the one already
// registered with the very same description.
func counterVec(reg *metrics.Registry, o metrics.CounterOpts, labels ...string) (*metrics.CounterVec, error) {
	v, err := reg.NewCounterVec(o, labels...)
	if v, ok := existing[*metrics.CounterVec](err); ok {
		return v, nil
	}
	if err != nil {
		return nil, fmt.Errorf("middleware: %w", err)
	}
	return v, nil
}

func histogramVec(reg *metrics.Registry, o metrics.HistogramOpts, labels ...string) (*metrics.HistogramVec, error) {
	v, err := reg.NewHistogramVec(o, labels...)
	if v, ok := existing[*metrics.HistogramVec](err); ok {
		return v, nil
	}
	if err != nil {
		return nil, fmt.Errorf("middleware: %w", err)
	}
	return v, nil
}

// gauge registers a label-less gauge and takes its series with With: a
// series that cannot be created (a full filesystem) is a no-op handle,
// logged and counted by the registry, never an error that would stop a
// worker from booting.
func gauge(reg *metrics.Registry, o metrics.GaugeOpts) (*metrics.Gauge, error) {
	v, err := reg.NewGaugeVec(o)
	if ev, ok := existing[*metrics.GaugeVec](err); ok {
		v, err = ev, nil
	}
	if err != nil {
		return nil, fmt.Errorf("middleware: %w", err)
	}
	return v.With(), nil
}

// existing returns the vector of an AlreadyRegisteredError.
func existing[V any](err error) (V, bool) {
	var are *metrics.AlreadyRegisteredError
	if errors.As(err, &are) {
		v, ok := are.Existing.(V)
		return v, ok
	}
	var zero V
	return zero, false
}

// instrumenter is the state of one middleware returned by
// InstrumentWithOpts.
type instrumenter struct {
	requests *metrics.CounterVec
	duration *metrics.HistogramVec
	size     *metrics.HistogramVec // nil unless Opts.ResponseSize
	inFlight *metrics.Gauge
	skip     map[string]bool // read-only after construction
	epoch    time.Time       // durations are measured as time.Since(epoch): monotonic clock reads only

	// Route lookup (route.go): copy-on-write tables, read without a lock.
	unmatched *route
	chiTables atomic.Pointer[[]*routeTable] // one per chi root router
	muxTable  routeTable                    // ServeMux patterns

	mu     sync.Mutex        // guards byName, and the stores to chiTables, the tables and route.methods
	byName map[string]*route // every route by label value

	writers  sync.Pool // of *responseWriter
	contexts sync.Pool // of *chi.Context, for a chi router wrapped from the outside
}

func (in *instrumenter) init() {
	in.byName = make(map[string]*route)
	in.unmatched = in.namedLocked(UnmatchedRoute)
	in.chiTables.Store(&[]*routeTable{})
	in.muxTable.init(nil)
	in.writers.New = func() any { return new(responseWriter) }
	in.contexts.New = func() any { return chi.NewRouteContext() }
}

func (in *instrumenter) wrap(next http.Handler) http.Handler {
	if mux, ok := next.(*chi.Mux); ok {
		// Wrapped around a chi router rather than installed in it with Use:
		// chi would route on a copy of the request whose route context we
		// never see, so give it ours.
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			in.serveChi(mux, w, r)
		})
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in.serve(next, w, r)
	})
}

// serve is the middleware. Recording allocates nothing for a route already
// seen with that method and code: the writer is pooled, the route and its
// series are found in copy-on-write maps, and the updates are atomic
// additions in the metric files.
func (in *instrumenter) serve(next http.Handler, w http.ResponseWriter, r *http.Request) {
	// time.Since of a time with a monotonic reading reads only the
	// monotonic clock; time.Now would read the wall clock too.
	start := time.Since(in.epoch)
	in.inFlight.Inc()
	rw := in.writers.Get().(*responseWriter)
	rw.reset(w, r)
	returned := false
	defer func() {
		// No recover: a panic goes on unchanged to whatever handles it.
		d := time.Since(in.epoch) - start
		in.inFlight.Dec()
		in.record(r, rw, rw.code(returned), d)
		rw.release()
		in.writers.Put(rw)
	}()
	next.ServeHTTP(rw.writer(), r)
	returned = true
}

// serveChi serves a chi router wrapped from the outside. It gives the router
// a routing context, as the router would have created itself, so that the
// route patterns are readable once it has returned: the cost is the same two
// allocations chi would have made.
func (in *instrumenter) serveChi(mux *chi.Mux, w http.ResponseWriter, r *http.Request) {
	if chi.RouteContext(r.Context()) != nil {
		in.serve(mux, w, r) // already inside a chi router
		return
	}
	rctx := in.contexts.Get().(*chi.Context)
	rctx.Reset()
	rctx.Routes = mux
	r = r.WithContext(context.WithValue(r.Context(), chi.RouteCtxKey, rctx))
	in.serve(mux, w, r)
	// Not reached after a panic: a context a panic went through is not
	// reused (chi does the same).
	in.contexts.Put(rctx)
}

// record adds one request to the metrics, unless its route is skipped.
func (in *instrumenter) record(r *http.Request, rw *responseWriter, code int, d time.Duration) {
	rt := in.route(r, rw, code)
	if rt.skip {
		return
	}
	mi, ml := method(r.Method)
	s, c := rt.series(mi, code)
	if c == nil {
		s, c = in.newSeries(rt, mi, ml, code)
	}
	c.Inc()
	s.duration.Observe(d.Seconds())
	if s.size != nil {
		s.size.Observe(float64(rw.sent()))
	}
}
