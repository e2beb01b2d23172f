# One simulated worker process of a Python app in multiprocess mode: argv[1] is its index.
# Used by interop_python_test.go with PROMETHEUS_MULTIPROC_DIR set. Prints its pid.
import os
import sys

from prometheus_client import Counter, Gauge, Histogram, Summary

i = int(sys.argv[1])
f = i + 1

c = Counter('http_requests', 'Requests served.', ['method', 'route', 'code'])
c.labels('GET', '/hello', '200').inc(10 * f)
c.labels('POST', '/caf\u00e9 "q" \\ <a&b>\n', '500').inc(i + 0.5)
c.labels('GET', '/emoji/\U0001F600', '404').inc()
Counter('jobs_total', 'Jobs done.').inc(f)

for mode in sorted(Gauge._MULTIPROC_MODES):
    g = Gauge('g_' + mode, 'Gauge in mode ' + mode + '.', ['kind'], multiprocess_mode=mode)
    g.labels('x').set(f)
    g.labels('\u043a\u043e\u0442').set(10 - f)  # non-ASCII label value

inflight = Gauge('inflight', 'In flight.', multiprocess_mode='livesum')
inflight.inc(3)
inflight.dec()

h = Histogram('lat_seconds', 'Latency.', ['route'])
for v in (0.003, 0.07, 0.3, 2, 20):
    h.labels('/hello').observe(v * f)
sizes = Histogram('size_bytes', 'Sizes.', buckets=(100, 1000, 1e4, 1234567.0, 1e10))
sizes.observe(500 * f)
sizes.observe(2e9)

s = Summary('payload_bytes', 'Payload sizes.', ['route'])
s.labels('/hello').observe(100 * f)
s.labels('/hello').observe(1.5)

print(os.getpid())
