# AgentKeys — see README.md. Every target installs what it needs (Go modules
# are fetched by the go command on first use).
SHELL := /bin/bash
GO    ?= go
BIN   := bin
PKGS  := ./...

# staticcheck, pinned: 2026.2.2 (module v0.8.2) supports Go 1.26. `make lint`
# installs it under bin/tools on first use (from the Go module proxy).
STATICCHECK_VERSION := v0.8.2
STATICCHECK         := $(BIN)/tools/staticcheck-$(STATICCHECK_VERSION)/staticcheck

# PostgreSQL for the store conformance suite. When nothing answers there the
# PostgreSQL half is skipped (loudly) unless AGENTKEYS_REQUIRE_POSTGRES=1.
AGENTKEYS_TEST_POSTGRES_URL ?= postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable
export AGENTKEYS_TEST_POSTGRES_URL

.PHONY: docs all build deps deps-demo test demo bench bench-scale fault lint fmt vet staticcheck clean mutate mutate-all

all: build

# --version of every binary: the git description of the checkout (VERSION=
# overrides it), else the version Go stamps into the build information.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null)
LDFLAGS := $(if $(VERSION),-X github.com/agentkeys/agentkeys/internal/cmdtree.version=$(VERSION))

# docs/cli.md from the four binaries' command trees (a test fails when it
# is stale).
docs:
	$(GO) run ./scripts/gencli

build:
	@mkdir -p $(BIN)
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/...

# System packages from Debian: Chromium and curl for the demo; also nginx,
# sqlite3 and iproute2 for the end-to-end tests.
deps:
	@bash scripts/deps.sh test

deps-demo:
	@bash scripts/deps.sh demo

lint: fmt vet staticcheck

fmt:
	@unformatted="$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))"; \
	if [ -n "$$unformatted" ]; then echo "gofmt needed on:"; echo "$$unformatted"; exit 1; fi; \
	echo "gofmt: ok"

vet:
	$(GO) vet $(PKGS)

# Checks and exceptions: staticcheck.conf.
staticcheck: $(STATICCHECK)
	$(STATICCHECK) $(PKGS)

$(STATICCHECK):
	GOBIN="$(abspath $(dir $@))" $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

# go test's output (ok/FAIL lines, failing tests) goes through
# scripts/testsummary, which closes with every skipped test and why; with
# AGENTKEYS_FORBID_SKIPS=1 (CI) a skip for a peer or privilege CI provides
# (PostgreSQL, Chromium, SeaweedFS, npm peers, nginx, root) fails the run.
test: deps lint build
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/testsummary ./scripts/testsummary
	set -o pipefail; $(GO) test -race -count=1 -timeout 20m -json $(PKGS) | $(BIN)/testsummary

demo: deps-demo build
	@bash scripts/demo.sh

# The performance targets in one run: one table, then one JSON line whose
# targets_met says whether every target was met (the raw benchmark output
# goes to stderr). The PostgreSQL figures need AGENTKEYS_TEST_POSTGRES_URL.
bench: build
	set -o pipefail; $(GO) test -run '^$$' -timeout 90m -bench 'BenchmarkMintOIDCJWT|BenchmarkRunTrue|BenchmarkSocketRead|BenchmarkFrozenReplica|BenchmarkCredentialRead|BenchmarkFlatCost|BenchmarkGateway' -count=1 \
		./internal/broker ./internal/cli ./internal/daemon ./internal/audit ./internal/backend ./internal/gateway | awk -f scripts/bench-summary.awk

# bench plus the flat-cost figures: fills a store of its own (SQLite, and
# PostgreSQL when AGENTKEYS_TEST_POSTGRES_URL answers) with 1,000,000
# credentials and 10,000,000 audit rows; it takes a while and several GB of
# disk. CI and `make test` never run it.
bench-scale:
	AGENTKEYS_BENCH_SCALE=1 $(MAKE) bench

# The ledger fault suite (kill -9 under load, full disk, ledger lock, frozen
# replica, forged chain) with its report; `make test` runs it too.
fault: build
	AGENTKEYS_FAULT_REPORT=$(BIN)/fault-report.txt $(GO) test -count=1 -run TestFaultSuite ./e2e
	@cat $(BIN)/fault-report.txt

# Mutation testing with gremlins (scripts/mutate.sh installs it): per
# package, the share of mutants the tests kill, against a minimum.
# `make mutate` covers the fast packages (CI, capped at 15 minutes);
# `make mutate-all` adds the slow ones and is run by hand.
MUTATE_FAST := ./internal/seal:95 ./internal/authreq:95 ./internal/jsonhttp:95 ./internal/ratelimit:95 ./internal/agentkeys:95
MUTATE_SLOW := ./internal/audit:95 ./internal/oidc:95 ./internal/keychain:95 \
	./internal/backend:85 ./internal/broker:85 ./internal/daemon:85 ./internal/store/sqlstore:85

mutate:
	timeout 15m bash scripts/mutate.sh $(MUTATE_FAST)

mutate-all:
	bash scripts/mutate.sh $(MUTATE_FAST) $(MUTATE_SLOW)

clean:
	rm -rf $(BIN)
