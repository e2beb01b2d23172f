// Package middleware records HTTP traffic into herd's per-process metric files.
//
// Instrument returns a plain func(http.Handler) http.Handler that works with chi
// (route label from chi's route pattern) and with net/http's ServeMux (Go 1.22+
// patterns through Request.Pattern). The route label is read after the handler
// ran, because chi only knows the full pattern of a mounted sub-router once the
// request has been routed. Requests that match no route share the constant
// label value UnmatchedRoute, and methods outside the standard set share
// OtherMethod, so a scanner sending random paths or methods adds no series.
//
// Metrics written (names can be changed with Opts):
//
//	http_requests_total{method,route,code}         counter
//	http_request_duration_seconds{method,route}    histogram
//	http_requests_in_flight                        gauge (livesum: summed over live workers)
//
// The recording path for a known route does not allocate: handles are cached
// per (method, route, code) in a copy-on-write map, and the response writer
// wrapper is pooled.
//
// Everything here is safe for concurrent use.
package middleware
