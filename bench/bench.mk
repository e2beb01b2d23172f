# bench/bench.mk: the benchmarks, included from the Makefile. Method and
# figures: docs/benchmarks.md (end to end) and docs/performance.md (library).
#
#   make bench              the figures of the README, in one bounded run (about 6
#                           minutes): scrape against client_python, the middleware's
#                           cost over chi, and the per-core and all-core comparison
#                           with net/http, chi, fasthttp and Fiber
#   make bench-scrape       the scrape benchmarks (metrics, workermetrics)
#   make bench-cold         the first scrape of a new process (bench/coldscrape), text
#                           and as Prometheus asks, and after the warm-up servers do at
#                           start, with this machine's page-fault cost
#   make bench-middleware   herd's middleware over bare chi, runs alternating
#   make bench-percore      herd-bench: master + 1 worker pinned to one core (wrk on
#                           the other) and 2 workers on both cores, against the Go peers,
#                           many short rounds on running servers (-keep)
#   make bench-e2e          herd-bench: every herd layout against every peer, the
#                           Python ones included, one fresh server per run (long)
#   make bench-scale        the master's scrape of 4 to 256 workers' files (bench/scale),
#                           the figures under docs/performance.md's scaling model
#   make bench-micro        every package's micro-benchmarks
#
# BENCH_ROUNDS sets bench-percore's rounds; BENCH_FLAGS passes flags on to
# herd-bench (make bench-e2e BENCH_FLAGS='-rounds 3'). Results (results.md,
# results.svg, results.json) go under $(BENCH_OUT). Run on a quiet machine:
# herd-bench reports the CPU other processes used ("other CPU").

GO           ?= go
BIN          ?= bin
BENCH_OUT    ?= bench-results
BENCH_FLAGS  ?=
BENCH_ROUNDS ?= 11
# Debian packages of the load generator and the Python peer.
BENCH_GO_DEBS := wrk util-linux
BENCH_DEBS    := $(BENCH_GO_DEBS) gunicorn python3-uvicorn python3-fastapi \
                 python3-prometheus-client python3-uvloop python3-httptools

# The Go peers: plain net/http, bare chi, chi with herd's middleware in one
# process, fasthttp's prefork and Fiber's prefork (one child per server CPU).
# The net/http ones have herd's default read timeouts (-timeouts herd), as
# herd's workers; net/http-header-timeout is plain net/http again with
# ReadHeaderTimeout alone, as many net/http programs are set up.
BENCH_GO_PEERS := \
	-peer 'net/http=$(BIN)/bench-nethttp -bind {addr} -timeouts herd' \
	-peer 'net/http-header-timeout=$(BIN)/bench-nethttp -bind {addr} -timeouts header' \
	-peer 'chi=$(BIN)/bench-chi -bind {addr} -timeouts herd' \
	-peer 'chi+herd=$(BIN)/bench-chiherd -bind {addr} -timeouts herd' \
	-peer 'fasthttp=$(BIN)/bench-fasthttp -bind {addr} -workers {workers}' \
	-peer 'fiber=$(BIN)/bench-fiber -bind {addr} -workers {workers}'
# Where a request's CPU time goes, from the cheapest server up.
BENCH_SPLIT := -split 'net/http,chi,chi+herd,herd reuseport'

.PHONY: bench bench-scrape bench-cold bench-middleware bench-percore bench-e2e bench-scale bench-micro \
	bench-deps bench-go-deps bench-tools

bench: bench-scrape bench-cold bench-middleware bench-percore

bench-deps:
	@scripts/install-deps.sh $(BENCH_DEBS)

bench-go-deps:
	@scripts/install-deps.sh $(BENCH_GO_DEBS)

# fasthttp and Fiber are modules of their own (herd does not depend on them).
bench-tools:
	$(GO) build -o $(BIN)/hello ./examples/hello
	$(GO) build -o $(BIN)/herd-bench ./cmd/herd-bench
	$(GO) build -o $(BIN)/bench-nethttp ./bench/nethttp
	$(GO) build -o $(BIN)/bench-promhttp ./bench/promhttp
	$(GO) build -o $(BIN)/bench-chi ./bench/chi
	$(GO) build -o $(BIN)/bench-chiherd ./bench/chiherd
	$(GO) -C bench/fasthttp build -o $(abspath $(BIN))/bench-fasthttp .
	$(GO) -C bench/fiber build -o $(abspath $(BIN))/bench-fiber .

# The scrape against client_python and the master's scrape of 16 x 5,000
# series (the metrics package's benchmarks).
bench-scrape:
	$(GO) test -run '^$$' -bench 'ScrapeVsPython' -benchtime 8x -count 3 ./metrics/
	$(GO) test -run '^$$' -bench 'Scrape$$/(fast|master)/(text|prom)$$|Scrape$$/cold/(fast|master)/text' -benchmem -benchtime 20x -count 3 ./metrics/
	$(GO) test -run '^$$' -bench 'WorkerSnapshot|MasterScrape$$' -benchtime 300x ./workermetrics/

# The first scrape of the same 16 x 5,000 series by a new process (Handler over a
# DirGatherer, as herd-exporter serves them), whose heap faults in page by page:
# 9 runs of each request, a few seconds in all.
bench-cold:
	$(GO) run ./bench/coldscrape
	$(GO) run ./bench/coldscrape -prom
	$(GO) run ./bench/coldscrape -warm
	$(GO) run ./bench/coldscrape -warm -prom

# What herd's middleware adds to a chi route: five runs of each, alternating,
# then the medians of the differences.
bench-middleware:
	@for i in 1 2 3 4 5; do \
		$(GO) test -run '^$$' -bench 'Chi/static/(none|herd)$$' -benchmem -count 1 ./middleware/ || exit 1; \
	done | $(GO) run ./bench/benchdiff 'Chi/static/herd=Chi/static/none'

bench-percore: bench-go-deps bench-tools
	$(BIN)/herd-bench -app $(BIN)/hello -layouts reuseport -keep -rounds $(BENCH_ROUNDS) \
		-duration 1s -warmup 2s -out $(BENCH_OUT)/percore \
		$(BENCH_GO_PEERS) -baseline net/http $(BENCH_SPLIT) $(BENCH_FLAGS)

bench-e2e: bench-deps bench-tools
	$(BIN)/herd-bench -app $(BIN)/hello -out $(BENCH_OUT) $(BENCH_GO_PEERS) \
		-peer 'net/http+client_golang=$(BIN)/bench-promhttp -bind {addr}' \
		-peer 'gunicorn+FastAPI=bench/python/run-gunicorn.sh {addr} {workers} asgi' \
		-peer 'gunicorn+FastAPI/http-mw=bench/python/run-gunicorn.sh {addr} {workers} http' \
		-baseline net/http $(BENCH_SPLIT) $(BENCH_FLAGS)

bench-scale:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 20x -count 3 ./bench/scale/

bench-micro:
	$(GO) test -run '^$$' -bench . -benchmem ./...
