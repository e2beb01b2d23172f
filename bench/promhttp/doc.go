// Command promhttp is herd-bench's client_golang peer: the GET /hello of
// examples/hello on a chi router, instrumented with client_golang the way a
// single-process Go service usually is (http_requests_total{method,route,code},
// http_request_duration_seconds{method,route}, http_requests_in_flight), in
// one process using every core it is given.
//
//	promhttp -bind 127.0.0.1:8082 -metrics-bind 127.0.0.1:9092
//
// GET /healthz answers 200 and is not counted. client_golang is a test-only
// dependency of herd: this program exists for comparison.
package main
