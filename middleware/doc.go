// Package middleware is herd's net/http and chi middleware: per-route request
// metrics recorded into the process's metric files (Instrument), and a
// combined-format access log (AccessLog).
//
// # Instrument
//
// Instrument(reg) and InstrumentWithOpts(opts) return a plain
// func(http.Handler) http.Handler, chi's middleware shape:
//
//	r := chi.NewRouter()
//	r.Use(middleware.Instrument(reg))
//	r.Get("/users/{id}", user)
//
// It records, per request:
//
//	http_requests_total{method,route,code}         counter
//	http_request_duration_seconds{method,route}    histogram (Opts.Buckets)
//	http_requests_in_flight                        gauge, livesum: summed over live workers
//	http_response_size_bytes{method,route}         histogram, only with Opts.ResponseSize
//
// Opts renames them, adds constant labels, and skips routes such as
// /healthz. Calling Instrument twice on one Registry (two routers) shares the
// families.
//
// # The route label
//
// The route is the matched pattern ("/users/{id}"), never the raw path, and
// it is read after the handler ran: only then does chi know the whole pattern
// of a request that went through mounted sub-routers ("/api/*" then
// "/items/{id}" is "/api/items/{id}"). Where it comes from:
//
//   - chi: the routing context's patterns. Install the middleware with
//     r.Use (on the root router or on any sub-router), or wrap the *chi.Mux
//     itself: Instrument(reg)(r) gives the router its routing context so the
//     patterns stay readable (at no extra cost: chi would have made it).
//   - net/http's ServeMux (Go 1.22+): Request.Pattern, without its method and
//     host ("GET example.com/users/{id}" is "/users/{id}"). Wrap the mux, or
//     a handler registered in it. A mux behind http.StripPrefix sets the
//     pattern on a copy of the request: such a request is labelled by the
//     outer mux.
//   - anything else (no router, another router): UnmatchedRoute.
//
// Requests that matched no route share the constant UnmatchedRoute
// ("<unmatched>"): chi's and ServeMux's 404 and 405, including a 404 from a
// mounted chi sub-router that matched nothing below its mount point.
// Methods outside the nine standard ones share OtherMethod ("OTHER"). So the
// number of series is bounded by routes x methods x codes, whatever paths and
// methods clients send: a scanner adds no series.
//
// # Codes and sizes
//
// Both recorders (Instrument and AccessLog) record what the client got, by
// one rule. The code is the first final status the handler sent (1xx
// informational responses other than 101 do not count), 200 if it wrote
// nothing, and 101 for a connection it hijacked without writing a status. A
// handler that panics before any status went out is recorded as 500; one
// that panics after (a status written, a body flushed, then a panic, or
// panic(http.ErrAbortHandler) as httputil.ReverseProxy does when the client
// goes away mid-download) is recorded with the status it sent. The panic
// goes on, unchanged and not recovered here, to whatever recovers it (chi's
// middleware.Recoverer, net/http). With a recoverer inside the
// instrumentation, the middleware sees what the recoverer wrote instead.
//
// A second WriteHeader is ignored, as net/http ignores it, and net/http's
// HTTP/1 log line about it ("http: superfluous response.WriteHeader call
// from ...", or "... on hijacked connection") is written by the middleware
// through the server's ErrorLog, naming the application's line rather than
// the middleware's wrapper (net/http would name the first caller outside
// itself: the wrapper). Over HTTP/2 net/http ignores the call silently, and
// so does the middleware.
//
// The size (the response-size histogram, the access log's byte count) is
// the body bytes written through the middleware's ResponseWriter, and 0 for
// a HEAD request, whose body net/http discards. A compressing middleware
// inside herd's (chi's Compress installed after it with r.Use) makes them
// the compressed bytes; to record the bytes the handler wrote, install
// herd's middleware after the compressor.
//
// # http.MaxBytesReader
//
// Over net/http's own ResponseWriter, a body that exceeds
// http.MaxBytesReader's limit makes the server close the connection after
// the response. net/http does that through an unexported method that no
// wrapper can offer, so a MaxBytesReader given herd's ResponseWriter still
// gets its error (answer 413) but the connection stays open, and net/http
// reads up to 256 KiB of the rest of the body to reuse it. Either apply the
// limit before herd's middleware (chi's middleware.RequestSize first in
// r.Use, or r.Body = http.MaxBytesReader(w, r.Body, n) in a middleware
// outside it), or set "Connection: close" on the 413 when the error is an
// *http.MaxBytesError.
//
// # The ResponseWriter
//
// The handler gets a wrapper that offers exactly the optional interfaces of
// the writer it wraps, among http.Flusher, http.Hijacker, io.ReaderFrom and
// http.Pusher, plus Unwrap for http.ResponseController: streaming,
// websockets and sendfile work as without the middleware, and a type
// assertion never claims what the server cannot do (no Hijacker on HTTP/2).
// The deprecated http.CloseNotifier is not offered (use the request's
// context). A handler that reaches a Hijacker the wrapped writer does not
// offer itself (through http.ResponseController and a chain of Unwrap) is
// not seen hijacking: that request counts as a 200.
// Wrappers are pooled: as net/http requires, the handler must not use the
// ResponseWriter after it returned.
//
// # Cost
//
// Recording a request whose route, method and code were seen before
// allocates nothing: the wrapper is pooled (and the optional interfaces of
// the writer it wraps are looked up once per writer type); the route is
// found by the identity of the router's own pattern strings (chi's
// RoutePatterns, ServeMux's Request.Pattern), comparing pointers, and
// else in copy-on-write maps (for chi keyed by the context's patterns in a
// reused buffer, so chi's RoutePattern, which allocates after a Mount, is
// called once per route); and the updates are lock-free atomic additions in
// the memory-mapped metric files. The first request of a new series takes a
// lock and creates the series. What remains is mostly what a duration
// histogram and an in-flight gauge cannot do without: two monotonic clock
// reads and five atomic additions (BenchmarkMiddlewareFloor). `go test
// -bench . ./middleware/` compares the cost with chi alone and with
// client_golang's promhttp instrumentation on the same chi router.
//
// Everything here is safe for concurrent use.
package middleware
