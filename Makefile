# Nexus Usage. `make dev` runs the system on this machine; `make test` runs
# the tests. Both install what they need (Go tools into ./bin) and start and
# stop their own services.

SHELL := /bin/bash
GO ?= go
BIN := $(CURDIR)/bin
FUNCTIONS := record aggregate analytics overage deliver
ARCHES := arm64 amd64
# Every go build here compiles with CGO off, -trimpath and no DWARF debug
# information (the compiler's -dwarf=false: about a seventh of a cold
# build's CPU; stack traces, pprof and nm still work, stepping through a
# binary in a debugger takes your own build), so the host binaries, the
# bootstraps, the services' tools and the standard library they all import
# share one build cache entry per package.
COMPILE := CGO_ENABLED=0 $(GO) build -trimpath -gcflags=all=-dwarf=false
GOBUILD := $(COMPILE) -tags lambda.norpc -ldflags='-s -w' -buildvcs=false
# HOSTBUILD builds for this machine with the one flag set every host build
# uses (the devstack's own fallback build too: HostBuildFlags in cmd/internal/rie,
# which TestHostBuildFlagsAreTheMakefiles keeps equal), so the functions,
# the devstack and the migrator share the build cache.
HOSTBUILD := $(COMPILE) -tags lambda.norpc -ldflags=-w
# The services' tools (stripe-mock, the Lambda emulator) and the linter are
# pinned in tools/go.mod and built only by the targets that run them.
SERVICE_TOOLS := $(BIN)/stripe-mock $(BIN)/aws-lambda-rie
SERVICE_TOOL_PKGS := github.com/stripe/stripe-mock github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie
TEST_TIMEOUT ?= 9m
# make dev's ready time counts from here, builds included.
ifneq ($(filter dev,$(MAKECMDGOALS)),)
NEXUS_DEV_START := $(shell date +%s.%N)
endif

.PHONY: all build host prepare std arm64 tools chromium packages node test test-go sam lint cover dev demo dashtime migrate schema bench soak deploy clean \
	build-RecordFunction build-AggregateFunction build-AnalyticsFunction build-OverageFunction build-DeliverFunction

all: build

## build: cross-compile every function's bootstrap for linux/arm64 and linux/amd64 into dist/
build:
	@set -e; for f in $(FUNCTIONS); do for a in $(ARCHES); do \
		GOOS=linux GOARCH=$$a $(GOBUILD) -o dist/$$a/$$f/bootstrap ./functions/$$f; \
	done; done
	@find dist -name bootstrap | sort

# SAM's makefile build method (BuildMethod: makefile, CodeUri: .) calls these
# with ARTIFACTS_DIR set.
build-RecordFunction:
	GOOS=linux GOARCH=arm64 $(GOBUILD) -o $(ARTIFACTS_DIR)/bootstrap ./functions/record
build-AggregateFunction:
	GOOS=linux GOARCH=arm64 $(GOBUILD) -o $(ARTIFACTS_DIR)/bootstrap ./functions/aggregate
build-AnalyticsFunction:
	GOOS=linux GOARCH=arm64 $(GOBUILD) -o $(ARTIFACTS_DIR)/bootstrap ./functions/analytics
build-OverageFunction:
	GOOS=linux GOARCH=arm64 $(GOBUILD) -o $(ARTIFACTS_DIR)/bootstrap ./functions/overage
build-DeliverFunction:
	GOOS=linux GOARCH=arm64 $(GOBUILD) -o $(ARTIFACTS_DIR)/bootstrap ./functions/deliver

## host: the five functions, the devstack and the migrator for this machine
## into ./bin, in one go build (it schedules their packages across the cores)
HOST_PKGS := ./cmd/devstack ./cmd/migrate $(addprefix ./functions/,$(FUNCTIONS))
host:
	$(HOSTBUILD) -o $(BIN)/ $(HOST_PKGS)

## tools: build the pinned tools (tools/go.mod) into ./bin
tools: $(SERVICE_TOOLS) $(BIN)/staticcheck
$(SERVICE_TOOLS) &: tools/go.mod tools/go.sum
	cd tools && $(COMPILE) -ldflags=-w -o $(BIN)/ $(SERVICE_TOOL_PKGS)
	@touch $(SERVICE_TOOLS)
$(BIN)/staticcheck: tools/go.mod tools/go.sum
	cd tools && $(GO) build -o $(BIN)/ honnef.co/go/tools/cmd/staticcheck
	@touch $@

# prepare builds what make dev and make test run: the host binaries and the
# services' tools, two go builds because they are two modules. Started side
# by side on an empty build cache, each would compile the standard library
# itself (about 60 s of CPU each, half the cold build): so first std builds
# the standard packages the two import, once, into the shared cache (with
# COMPILE's flags, which both builds use, so they reuse them), and then the
# two builds run side by side (each schedules its packages across the
# cores). Warm, std takes under a second.
prepare: std
	@$(MAKE) --no-print-directory -j2 host $(SERVICE_TOOLS)

# LIST_STD_DEPS: go list flags that print the standard packages the named ones import
LIST_STD_DEPS := -deps -f '{{if .Standard}}{{.ImportPath}}{{end}}'
std:
	@set -e; d=$$(mktemp -d); trap 'rm -rf "$$d"' EXIT; \
	CGO_ENABLED=0 $(GO) list -tags lambda.norpc $(LIST_STD_DEPS) $(HOST_PKGS) >$$d/host & h=$$!; \
	(cd tools && CGO_ENABLED=0 $(GO) list $(LIST_STD_DEPS) $(SERVICE_TOOL_PKGS)) >$$d/tools & t=$$!; \
	wait $$h; wait $$t; \
	sort -u $$d/host $$d/tools | grep -v '^vendor/' | xargs env $(COMPILE)

# What the tests and the local stack are given: the functions built above
# (the emulator tests and the devstack run them instead of building), the
# migrator, the emulator.
SERVICES_ENV := NEXUS_LAMBDA_DIR=$(BIN) NEXUS_MIGRATE=$(BIN)/migrate NEXUS_RIE=$(BIN)/aws-lambda-rie

## chromium: headless Chromium for the dashboard's browser tests: Debian's
## chromium package, installed when missing and run as root (else a message;
## under CI=true an error)
chromium:
	@scripts/need-packages.sh chromium

## packages: what make test needs from Debian, installed when missing (as
## chromium): Chromium, and podman with runc, qemu-user-static and
## busybox-static for sam local
packages:
	@scripts/need-packages.sh chromium podman

## node: install the npm packages the tests run (the TypeScript package,
## the Next.js example, the dashboard's sources, the webhook verifier) from
## their lockfiles, side by side and while the Go builds run: the network
## waits overlap the compiling, and the tests' own npm ci installs from
## npm's cache (without npm: a message; under CI=true an error)
NPM_DIRS := clients/typescript examples/nextjs web shared/webhook/testdata/verifier
node: $(NPM_DIRS:%=%/node_modules/.package-lock.json)
%/node_modules/.package-lock.json: %/package-lock.json
	@if ! command -v npm >/dev/null; then \
		if [ "$$CI" = true ]; then echo "make node: npm is not installed" >&2; exit 1; fi; \
		echo "make node: npm is not installed: the TypeScript, dashboard and webhook tests will say so"; exit 0; \
	fi; cd $* && npm ci --prefer-offline --no-audit --no-fund --loglevel=error >/dev/null && touch node_modules/.package-lock.json

## arm64: compile the functions for linux/arm64, as sam build does, into the
## build cache (nothing is written): one go build for the five, so that the
## test's sam build, which builds them side by side, only links
arm64:
	GOOS=linux GOARCH=arm64 $(GOBUILD) $(addprefix ./functions/,$(FUNCTIONS))

## test: build what the tests run (the host binaries, the services' tools, the
## arm64 functions sam build links) while the Debian packages and the npm
## packages install, start
## throwaway PostgreSQL, moto_server, stripe-mock and podman's Docker API, run
## every test with -race (the packages' PostgreSQL tests in both of pgx's
## modes, the whole-stack suites in the deployed one, the SAM
## CLI's), stop them
test:
	@$(MAKE) --no-print-directory -j4 prepare arm64 packages node
	$(SERVICES_ENV) SERVICES="pg moto stripe podman" scripts/with-services.sh $(MAKE) --no-print-directory test-go

# -p 8: the stack's suites (sam local, the emulator, the browser, the soak,
# TypeScript) mostly wait on their processes and containers (a warm run uses
# under half of two cores); eight packages at a time overlap them. The
# test binaries carry no DWARF either (COMPILE's reasoning): a failure's
# stack trace keeps its files and lines.
#
# go test starts packages (their compiles, then their runs) in the order it
# is given them, and holds -p slots for those running: SLOW_FIRST names the
# longest suites so that they start first and the short ones fill the gaps
# beside them. In ./... order shared/postgres and shared/record came last:
# a cold run's last minute ran those two alone.
SLOW_FIRST := ./cmd/internal/devstack ./cmd/internal/e2e/samlocal ./shared/postgres ./cmd/internal/e2e/tsclient \
	./cmd/internal/e2e/soak ./cmd/internal/e2e/browser ./shared/billing ./functions/analytics ./shared/record
test-go:
	$(GO) test -race -count=1 -p 8 -gcflags=all=-dwarf=false -ldflags=-w -timeout $(TEST_TIMEOUT) $(SLOW_FIRST) ./...

## sam: the SAM CLI's part of make test alone (cmd/internal/e2e/samlocal): sam
## validate --lint, sam build, sam local invoke of each function with its
## sample event, sam local start-api, against the test services and podman
sam: prepare arm64
	@scripts/need-packages.sh podman
	$(SERVICES_ENV) SERVICES="pg stripe podman" scripts/with-services.sh $(GO) test -count=1 -v -run TestSAM ./cmd/internal/e2e/samlocal

## cover: statement coverage per package and in total (with the services of make test)
cover: prepare chromium
	$(SERVICES_ENV) scripts/with-services.sh bash -c '$(GO) test -count=1 -timeout $(TEST_TIMEOUT) -coverpkg=./shared/...,./functions/... -coverprofile=cover.out ./... >/dev/null && $(GO) tool cover -func=cover.out | tail -1 && $(GO) test -count=1 -timeout $(TEST_TIMEOUT) -cover ./shared/... ./functions/... | grep -v "no test files"'

## lint: gofmt, go vet, staticcheck, cfn-lint
lint: $(BIN)/staticcheck
	@out=$$(gofmt -l -s . | grep -v '^tools/' || true); if [ -n "$$out" ]; then gofmt -d -s $$out; exit 1; fi
	$(GO) vet ./...
	$(BIN)/staticcheck ./...
	cfn-lint template.yaml

## migrate: apply the migrations to $DATABASE_URL (a no-op when up to date)
migrate:
	@test -n "$$DATABASE_URL" || { echo "make migrate: set DATABASE_URL" >&2; exit 2; }
	$(HOSTBUILD) -o $(BIN)/ ./cmd/migrate && $(BIN)/migrate

## schema: rewrite migrations/schema.sql, the schema as the migrations leave
## it, from a throwaway PostgreSQL's migrated template (pg_dump; the test
## TestSchemaSQL in shared/postgres does the dump and fails when the file is
## stale)
schema:
	$(HOSTBUILD) -o $(BIN)/ ./cmd/migrate
	NEXUS_MIGRATE=$(BIN)/migrate SERVICES=pg DATABASE_PROXY=false scripts/with-services.sh \
		$(GO) test -count=1 -run '^TestSchemaSQL$$' ./shared/postgres -args -write-schema

## bench: the benchmarks, one package at a time (they would skew each other), against a
## throwaway PostgreSQL with fsync on; the figures also go to bench.txt
bench: prepare
	set -o pipefail; PG_FSYNC=on $(SERVICES_ENV) scripts/with-services.sh $(GO) test -p 1 -run '^$$' -bench . -benchtime 1x -timeout 60m ./... | tee bench.txt

## soak: the long fault soak (cmd/soak): 200,000 events through the queue and
## POST /v1/events with duplicates, late, invalid and hostile ones, while the
## record function is killed in mid-batch and PostgreSQL and moto_server are
## restarted once each; then every event and every user's day is checked.
## SOAK_FLAGS='-events 20000' shortens it; cmd/soak lists the flags.
SOAK_FLAGS ?=
soak: prepare
	$(HOSTBUILD) -o $(BIN)/ ./cmd/soak
	$(SERVICES_ENV) scripts/with-services.sh $(BIN)/soak $(SOAK_FLAGS)

## deploy: build and deploy with the SAM CLI (needs Docker-less sam and AWS credentials)
deploy:
	sam build && sam deploy --guided

clean:
	rm -rf dist bin cover.out

# --- local stack ---
# dev: the whole system on this machine until Ctrl-C (cmd/devstack under
# with-services: PostgreSQL, moto_server, stripe-mock). DATABASE_URL, when
# set, is migrated and used instead of a throwaway database.
# demo, lag, run-aggregate, run-overage, smoke: talk to a running make dev.
# NEXTJS=http://127.0.0.1:3000 make demo sends part of the pro user's traffic
# through the Next.js example app (examples/nextjs, started by hand).
DEV_ADMIN ?= http://127.0.0.1:8081
NEXTJS ?=
.PHONY: lag redrive run-aggregate run-overage smoke

dev: prepare
	NEXUS_DEV_START=$(NEXUS_DEV_START) $(SERVICES_ENV) scripts/with-services.sh $(BIN)/devstack $(DEV_FLAGS)

demo: host
	$(BIN)/devstack demo -admin $(DEV_ADMIN) $(if $(NEXTJS),-nextjs $(NEXTJS))

# lag: the time from a metered request to GET /v1/usage (median, max of 100)
lag: host
	$(BIN)/devstack lag -admin $(DEV_ADMIN)

## dashtime: the dashboard's size as served and its navigation-to-numbers
## time (median of 10 loads in headless Chromium) against a running make dev
dashtime: chromium
	$(HOSTBUILD) -o $(BIN)/ ./cmd/dashtime && $(BIN)/dashtime -admin $(DEV_ADMIN)

## redrive: move the usage DLQ's messages back to the usage queue once the
## cause of their failures is fixed (POST /v1/admin/redrive until it says no
## more): of the running make dev, or of a deployed stack with
## NEXUS_API_URL (its ApiUrl) and NEXUS_ADMIN_TOKEN (an admin's JWT) set
redrive: host
	$(BIN)/devstack redrive -admin $(DEV_ADMIN)

run-aggregate:
	@curl -sS --fail-with-body -X POST $(DEV_ADMIN)/run/aggregate

run-overage:
	@curl -sS --fail-with-body -X POST $(DEV_ADMIN)/run/overage

smoke:
	SMOKE_ADMIN=$(DEV_ADMIN) scripts/smoke.sh
# --- end local stack ---
