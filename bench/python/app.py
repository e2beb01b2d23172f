"""The Python setup herd replaces, as a benchmark peer.

FastAPI with prometheus_client in multiprocess mode, served by gunicorn with
uvicorn workers (see gunicorn.conf.py and run-gunicorn.sh). It mirrors
examples/hello: GET /hello, GET /users/{id}, the same metric names and labels
as herd's middleware (http_requests_total{method,route,code},
http_request_duration_seconds{method,route}, http_requests_in_flight), and
/metrics merged over the workers by MultiProcessCollector.

PROMETHEUS_MULTIPROC_DIR must be set before this module is imported (the
seed article's first trap): run-gunicorn.sh exports it before gunicorn starts.
GET /healthz answers the worker's pid and is not counted, so herd-bench can
probe readiness (and see every worker) without touching the measured metrics.

BENCH_MIDDLEWARE picks how requests are instrumented: "asgi" (default), a pure
ASGI middleware, the fast way; or "http", FastAPI's documented
@app.middleware("http") (Starlette's BaseHTTPMiddleware), the common way.
"""

import os
import time

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    raise SystemExit("app.py: PROMETHEUS_MULTIPROC_DIR must be set before import")

REQUESTS = Counter(
    "http_requests_total",
    "HTTP requests by method, route pattern and status code.",
    ["method", "route", "code"],
)
DURATION = Histogram(
    "http_request_duration_seconds",
    "HTTP request latency by method and route pattern.",
    ["method", "route"],
)
IN_FLIGHT = Gauge(
    "http_requests_in_flight",
    "HTTP requests being served.",
    multiprocess_mode="livesum",
)

UNCOUNTED = {"/metrics", "/healthz"}

app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)


class Instrument:
    """Pure ASGI middleware (cheaper than Starlette's BaseHTTPMiddleware): counts
    and times each request by its route pattern, after the app has routed it."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] in UNCOUNTED:
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = {"code": "500"}

        async def send_status(message):
            if message["type"] == "http.response.start":
                status["code"] = str(message["status"])
            await send(message)

        IN_FLIGHT.inc()
        try:
            await self.app(scope, receive, send_status)
        finally:
            IN_FLIGHT.dec()
            route = scope.get("route")
            pattern = getattr(route, "path", "<unmatched>")
            method = scope["method"]
            REQUESTS.labels(method, pattern, status["code"]).inc()
            DURATION.labels(method, pattern).observe(time.perf_counter() - start)


async def instrument_http(request: Request, call_next):
    """The same instrumentation as @app.middleware("http")."""
    if request.url.path in UNCOUNTED:
        return await call_next(request)
    start = time.perf_counter()
    IN_FLIGHT.inc()
    code = "500"
    try:
        response = await call_next(request)
        code = str(response.status_code)
        return response
    finally:
        IN_FLIGHT.dec()
        route = request.scope.get("route")
        pattern = getattr(route, "path", "<unmatched>")
        REQUESTS.labels(request.method, pattern, code).inc()
        DURATION.labels(request.method, pattern).observe(time.perf_counter() - start)


MIDDLEWARE = os.environ.get("BENCH_MIDDLEWARE", "asgi")
if MIDDLEWARE == "asgi":
    app.add_middleware(Instrument)
elif MIDDLEWARE == "http":
    app.middleware("http")(instrument_http)
else:
    raise SystemExit(f"app.py: BENCH_MIDDLEWARE={MIDDLEWARE!r}: want asgi or http")


@app.get("/hello")
async def hello():
    return JSONResponse({"msg": "hello"})


@app.get("/users/{id}")
async def user(id: str):
    return JSONResponse({"id": id})


@app.get("/healthz")
async def healthz():
    return PlainTextResponse(str(os.getpid()))


@app.get("/metrics")
async def metrics():
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
