# Calyx build, test, lint, demo and benchmarks. Run `make help` for a list.

# Go lives in /usr/local/go on a fresh Debian machine set up the usual way.
export PATH := $(PATH):/usr/local/go/bin
GO       ?= go
BIN      := bin
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
PKGS     := ./...
# Test timeout per package; the datastore tests start real etcd servers.
TESTFLAGS ?= -race -timeout 20m
BENCH    ?=
# Flags for the one benchmark BENCH names, e.g. BENCHFLAGS="-only b7" for bench/routing.
BENCHFLAGS ?=

.PHONY: all help deps build test test-short fuzz lint verify-fmt fix-fmt vet golangci-lint demo bench clean

all: build

help:
	@echo "make deps               install the Debian packages and tools the tests and demo need"
	@echo "make build              build the binaries into $(BIN)/"
	@echo "make test               go vet, gofmt check and every test (as root: kernel tests too)"
	@echo "make fuzz [FUZZTIME=1m] run every fuzz target (hack/fuzz.sh) for FUZZTIME each"
	@echo "make lint               go vet, a gofmt check and golangci-lint (.golangci.yml)"
	@echo "make demo               run the demonstration (see README.md)"
	@echo "make bench [BENCH=name [BENCHFLAGS=...]] run the side-by-side benchmarks in bench/ (one with BENCH=name)"

deps:
	./hack/install-deps.sh

# Static binaries (no cgo): the plugins start once per container, and the
# dynamic loader's work is on every start (about 0.4-0.8 ms of CPU here).
build:
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/...

test: deps lint
	$(GO) test $(TESTFLAGS) $(PKGS)
	# Allocation counts are exact only without the race detector.
	$(GO) test -count=1 -run Allocs ./internal/dataplane/nft/
	./hack/fuzz.sh 3s

test-short:
	$(GO) test -short $(PKGS)

FUZZTIME ?= 1m
fuzz:
	./hack/fuzz.sh $(FUZZTIME)

lint: vet verify-fmt golangci-lint

vet:
	$(GO) vet $(PKGS)

# The linters and their settings are in .golangci.yml; hack/install-deps.sh
# (make deps) installs the pinned version.
golangci-lint:
	@lint=$$(command -v golangci-lint || echo "$$($(GO) env GOPATH)/bin/golangci-lint"); \
	[ -x "$$lint" ] || { echo "golangci-lint not found: run make deps"; exit 1; }; \
	echo "golangci-lint run $(PKGS)"; "$$lint" run $(PKGS)

verify-fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; echo "run: make fix-fmt"; exit 1; fi

fix-fmt:
	gofmt -w $$(git ls-files '*.go')

demo: deps build
	./hack/demo.sh

bench:
	@if [ -n "$(BENCH)" ]; then \
		test -d bench/$(BENCH) || { echo "no benchmark bench/$(BENCH); have: $$(ls bench)"; exit 1; }; \
		$(GO) run ./bench/$(BENCH) $(BENCHFLAGS); \
	else \
		for b in $$(ls bench); do [ -f bench/$$b/main.go ] || continue; echo "== bench/$$b"; $(GO) run ./bench/$$b || exit 1; done; \
	fi

clean:
	rm -rf $(BIN)
