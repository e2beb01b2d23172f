# bench/bench.mk: the end-to-end benchmark, included from the Makefile.
#
#   make bench-e2e                        herd-bench on examples/hello and the peers
#   make bench-e2e BENCH_FLAGS='-rounds 3 -duration 2s'
#
# Results (results.md, results.svg, results.json) go to $(BENCH_OUT). Run it on a
# quiet machine: herd-bench reports the CPU other processes used ("other CPU").
# Method: docs/benchmarks.md.

GO          ?= go
BIN         ?= bin
BENCH_OUT   ?= bench-results
BENCH_FLAGS ?=
# Debian packages of the load generator and the Python peer.
BENCH_DEBS  := wrk util-linux gunicorn python3-uvicorn python3-fastapi \
               python3-prometheus-client python3-uvloop python3-httptools

.PHONY: bench-e2e bench-deps bench-tools

bench-deps:
	@scripts/install-deps.sh $(BENCH_DEBS)

bench-tools:
	$(GO) build -o $(BIN)/hello ./examples/hello
	$(GO) build -o $(BIN)/herd-bench ./cmd/herd-bench
	$(GO) build -o $(BIN)/bench-nethttp ./bench/nethttp
	$(GO) build -o $(BIN)/bench-promhttp ./bench/promhttp

bench-e2e: bench-deps bench-tools
	$(BIN)/herd-bench -app $(BIN)/hello -out $(BENCH_OUT) \
		-peer 'net/http=$(BIN)/bench-nethttp -bind {addr}' \
		-peer 'net/http+client_golang=$(BIN)/bench-promhttp -bind {addr}' \
		-peer 'gunicorn+FastAPI=bench/python/run-gunicorn.sh {addr} {workers} asgi' \
		-peer 'gunicorn+FastAPI/http-mw=bench/python/run-gunicorn.sh {addr} {workers} http' \
		-baseline net/http $(BENCH_FLAGS)
