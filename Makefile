# Makefile for uartproxy. `make` alone lists the targets.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

GO ?= go
BIN := bin/uartproxy

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse --short --verify -q HEAD 2>/dev/null || echo dev)
LDFLAGS = -X github.com/uartproxy/uartproxy/internal/cli.version=$(VERSION) \
           -X github.com/uartproxy/uartproxy/internal/cli.commit=$(COMMIT)

# Extra flags for go test in `test` and `race`, e.g. TEST_FLAGS='-run TestLink -v'.
TEST_FLAGS ?=
# Per test binary.
TEST_TIMEOUT ?= 5m
# Time for each fuzz target: FUZZTIME in `fuzz`, TEST_FUZZTIME in `test`.
FUZZTIME ?= 10s
TEST_FUZZTIME ?= 3s
# `bench`: which benchmarks, in which packages, for how long.
BENCH ?= .
PKG ?= ./...
BENCHTIME ?= 1s

.PHONY: help build test race fuzz bench lint clean

help: ## list the targets
	@echo "usage: make <target> [VAR=value ...]"
	@echo
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  %-8s %s\n", $$1, $$2}'
	@echo
	@echo "variables: TEST_FLAGS, TEST_TIMEOUT=$(TEST_TIMEOUT), FUZZTIME=$(FUZZTIME), TEST_FUZZTIME=$(TEST_FUZZTIME),"
	@echo "           BENCH=$(BENCH), PKG=$(PKG), BENCHTIME=$(BENCHTIME), VERSION=$(VERSION)"

build: ## build bin/uartproxy, stamped with VERSION and COMMIT
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/uartproxy

test: ## go vet, every test with -race, then each fuzz target for TEST_FUZZTIME (the CI gate)
	@echo "==> go vet ./..."
	@$(GO) vet ./...
	@echo "==> go test -race ./..."
	@log=$$(mktemp); trap 'rm -f "$$log"' EXIT; \
	if $(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) $(TEST_FLAGS) ./... 2>&1 | tee "$$log"; then \
		echo "==> tests passed in $$(grep -c '^ok' "$$log") packages"; \
	else \
		echo "==> tests FAILED:"; \
		grep -E '^(--- FAIL|FAIL|panic:)|build failed|\[setup failed\]' "$$log" | sed 's/^/    /'; \
		exit 1; \
	fi
	@$(MAKE) --no-print-directory fuzz FUZZTIME=$(TEST_FUZZTIME)
	@echo "==> make test: OK (vet, tests with -race, fuzz targets for $(TEST_FUZZTIME) each)"

race: ## every test with the race detector
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) $(TEST_FLAGS) ./...

# Fuzz targets are found by name, so a new `func Fuzz...` is run without
# touching this file. go test -fuzz takes one package and one target a time.
fuzz: ## run every Fuzz target in the tree for FUZZTIME (10s) each
	@targets=$$(grep -rHo --include='*_test.go' --exclude-dir=testdata --exclude-dir=.git '^func Fuzz[A-Za-z0-9_]*' . \
		| sed 's|^\(.*\)/[^/]*:func \(.*\)$$|\1 \2|' | sort -u); \
	if [ -z "$$targets" ]; then echo "==> no fuzz targets"; exit 0; fi; \
	failed=(); flaked=(); n=0; log=$$(mktemp); trap 'rm -f "$$log"' EXIT; \
	while read -r dir name; do \
		n=$$((n + 1)); \
		for try in 1 2; do \
			echo "==> fuzz $$dir $$name for $(FUZZTIME)"; \
			if $(GO) test -run='^$$' -fuzz="^$$name\$$" -fuzztime=$(FUZZTIME) "$$dir" 2>&1 | tee "$$log"; then break; fi; \
			if grep -q 'context deadline exceeded' "$$log" && ! grep -qE 'Failing input written|panic:|_test\.go:[0-9]+:' "$$log"; then \
				if [ $$try -eq 1 ]; then echo "==> go1.26 fuzz coordinator race at the deadline (golang/go#75804), no input found: once more"; continue; fi; \
				flaked+=("$$dir $$name"); break; \
			fi; \
			failed+=("$$dir $$name"); break; \
		done; \
	done <<< "$$targets"; \
	if [ $${#flaked[@]} -gt 0 ]; then \
		echo "==> fuzz: the deadline race (golang/go#75804) hit twice, with no failing input, in:"; \
		printf '    %s\n' "$${flaked[@]}"; \
	fi; \
	if [ $${#failed[@]} -gt 0 ]; then \
		echo "==> fuzz FAILED in $${#failed[@]} of $$n targets (failing inputs are in <package>/testdata/fuzz):"; \
		printf '    %s\n' "$${failed[@]}"; \
		exit 1; \
	fi; \
	echo "==> fuzz passed: $$n targets, $(FUZZTIME) each"

# `make bench` runs the goodput benchmarks of internal/testbed, once each:
# every one measures its own fixed wall-clock window and reports ratios of
# the line rate (docs/benchmarks.md), so -benchtime=1x. BENCH picks some of
# them; naming PKG or BENCHTIME runs ordinary benchmarks in other packages,
# e.g. `make bench PKG=./internal/slip/ BENCHTIME=2s`.
bench: ## goodput benchmarks (docs/benchmarks.md); BENCH=regexp, PKG=./internal/... BENCHTIME=1s for others
	@if [ "$(origin PKG)" = file ] && [ "$(origin BENCHTIME)" = file ]; then \
		cmd=($(GO) test -run='^$$' -bench='$(BENCH)' -benchtime=1x ./internal/testbed/); \
	else \
		cmd=($(GO) test -run='^$$' -bench='$(BENCH)' -benchtime=$(BENCHTIME) -benchmem $(PKG)); \
	fi; \
	echo "==> $${cmd[*]}"; "$${cmd[@]}"

lint: ## gofmt must have nothing to say, then go vet
	@unformatted=$$(gofmt -l $$(git ls-files --cached --others --exclude-standard '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt -l (run gofmt -w on these):"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

clean: ## remove bin/ and coverage files
	rm -rf bin/ coverage.out coverage.html *.coverprofile
