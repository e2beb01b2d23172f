# Included by the top-level Makefile: the soak test and flag fuzzing.
#
# make soak              10 minutes of steady load on bin/hello (2 workers), checking that
#                        goroutines, open fds and RSS of every process, the metric files and
#                        the series stay flat (integration/soak_test.go, TestSoak).
# make soak SOAK=60s     what CI runs.
# make fuzz-flags        bounded fuzzing of the server's flag parsing (FUZZTIME, Makefile).
SOAK         ?= 10m
SOAK_TIMEOUT ?= 2h

.PHONY: soak fuzz-flags

soak:
	$(GO) test -run '^TestSoak$$' -count=1 -v -timeout $(SOAK_TIMEOUT) ./integration/ -soak $(SOAK)

fuzz-flags:
	$(GO) test -run '^$$' -fuzz '^FuzzFlags$$' $(call fuzzlimit,30000x) ./server/
