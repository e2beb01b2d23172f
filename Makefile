# herd: build, run, test, bench. `make help` lists the targets.
GO      ?= go
BIN     := bin
# Debian packages the tests use (installed by `make deps` when missing).
DEBS    := python3-prometheus-client python3-yaml prometheus wrk systemd chromium
# Fuzzing is bounded by execution counts, each target's own (about 15 s each here), not by
# time: a -fuzztime duration can end a run with a spurious "context deadline exceeded"
# (golang/go#75804), and a coverage-expanding input's minimisation, 60 s by default, holds a
# worker with no count limit. FUZZTIME=10m (a duration or Nx) overrides every target's count.
FUZZTIME ?=
FUZZMINIMIZETIME ?= 1000x
fuzzlimit = -fuzztime $(if $(FUZZTIME),$(FUZZTIME),$(1)) -fuzzminimizetime $(FUZZMINIMIZETIME)

.PHONY: all build run test deps vet fmt-check fuzz bench upgrade-check help clean

all: build

help:
	@echo "make build   build bin/hello"
	@echo "make run     run examples/hello on 127.0.0.1:8080 (admin on 127.0.0.1:9090)"
	@echo "make test    install test dependencies, vet, gofmt check, all tests with -race, bounded fuzzing"
	@echo "make bench   the README's performance figures in one bounded run (bench/bench.mk lists the others)"
	@echo "make soak    10 minutes of steady load, checking that resources stay flat (SOAK=60s for less)"
	@echo "make upgrade-check  two HUPs and one USR2 under load over TCP, TLS and a unix socket, both listener modes: failed requests, exit status, counters"

build:
	$(GO) build -o $(BIN)/hello ./examples/hello
	$(GO) build -o $(BIN)/clientgolang ./examples/clientgolang
	$(GO) build -o $(BIN)/herd-exporter ./cmd/herd-exporter
	$(GO) build -o $(BIN)/herd-bench ./cmd/herd-bench

run: build
	@echo "hello: app on http://127.0.0.1:8080/hello, metrics on http://127.0.0.1:9090/metrics"
	$(BIN)/hello

deps:
	@scripts/install-deps.sh $(DEBS)

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

test: deps build vet fmt-check
	$(GO) test -race -count=1 -timeout 12m ./...
	$(MAKE) fuzz

# Bounded fuzzing of the parsers that read untrusted bytes (see FUZZTIME above).
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzReadFile$$' $(call fuzzlimit,20000x) ./mmapstore/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeKey$$' $(call fuzzlimit,100000x) ./mmapstore/
	$(GO) test -run '^$$' -fuzz '^FuzzReadProxyHeader$$' $(call fuzzlimit,40000x) ./server/
	$(MAKE) fuzz-flags

# Two HUPs and one USR2 under load over TCP, TLS and a unix socket (loopback, under a minute
# per listener mode): the "upgrade-check" lines give the failed requests per listener kind,
# the old masters' exit status and the request counter before and after the upgrade.
upgrade-check:
	$(GO) test -run '^TestUpgradeEveryListenerKind$$' -count=1 -v -timeout 10m ./integration/

# make bench, bench-e2e, bench-micro ...: bench/bench.mk.
include bench/bench.mk
include integration/soak.mk

clean:
	rm -rf $(BIN)
