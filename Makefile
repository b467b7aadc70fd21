# Beacon: `make demo` to see it, `make test` to check it.
#
# Every target builds what it needs; release binaries for anything that runs
# for people or is timed, debug builds for tests.

SHELL := /bin/bash
CARGO ?= cargo
RELEASE := target/release
REGISTRY_URL ?= http://127.0.0.1:8400
# Where background instances keep their pid and log files.
RUN_DIR ?= run
RATINGS_BIN ?= $(RELEASE)/beacon-ratings
RATINGS := RUN_DIR=$(RUN_DIR) RATINGS_BIN=$(RATINGS_BIN) scripts/ratings.sh
# Release binaries are rebuilt only when a source file changed.
SOURCES := $(shell find src kit registry ratings market bench -name '*.rs' -o -name '*.html' -o -name '*.css' -o -name '*.js' 2>/dev/null | grep -v '^target') Cargo.toml Cargo.lock

.PHONY: demo demo-etcd deps test contract fuzz lint bench bench-quick bench-deps stress faults chaos registry market startRatings stopRatings pauseRatings resumeRatings slowRatings flakyRatings overloadRatings healRatings build-release

## demo: registry + 3 ratings instances + market (http://127.0.0.1:5000); ^C stops all.
## STORE=etcd: a 3-member etcd cluster and two registry replicas instead.
## TLS=1: everything over HTTPS, with a throwaway CA generated into run/tls.
## ZONES=1: ratings and market replicas in zones a and b (zone-aware routing).
## DCS=2: two sites, a registry and a market (:5000, :5100) each, failing over to each other.
STORE ?= memory
TLS ?=
ZONES ?=
DCS ?=
demo: build-release
	@RUN_DIR=$(RUN_DIR) STORE=$(STORE) TLS=$(TLS) ZONES=$(ZONES) DCS=$(DCS) scripts/demo.sh

## demo-etcd: the same on etcd (= make demo STORE=etcd)
demo-etcd: build-release
	@RUN_DIR=$(RUN_DIR) STORE=etcd scripts/demo.sh

# Debian packages the tests need: a real browser for the market's page,
# etcd for the replicated registry, protoc for the gRPC example
# (examples/grpc) and the benchmark's etcd gRPC client, PostgreSQL and the
# sqlite3 shell for the market's stores (python3: scripts/postgres.sh picks
# a free port with it); HAProxy and nginx for the overload scenario's test.
TEST_DEBS := chromium chromium-driver etcd-server protobuf-compiler curl postgresql sqlite3 python3 python3-venv iproute2 nftables haproxy nginx
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

## deps: install the Debian packages the tests need, when missing
deps:
	@missing=$$(for p in $(TEST_DEBS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $$missing; \
	fi

# The tests that need etcd or Chromium are behind these features, so that
# `cargo test -p beacon` runs anywhere; `make test` installs both and runs all.
TEST_FEATURES := --features beacon/etcd-tests,beacon-kit/etcd-tests,beacon-registry/etcd-tests,beacon-market/browser-tests,beacon-bench/netns-tests

## test: formatting, lints, docs, then every test in the workspace
# Incremental caches pay off only across edits; a clean checkout (CI) would
# only spend gigabytes of disk on them.
# BEACON_PREBUILT_BINS: the tests use the binaries just built (with the
# test features) instead of building them again without (testkit::binary).
test: export CARGO_INCREMENTAL ?= 0
test: deps lint
	$(CARGO) build --workspace --bins --examples $(TEST_FEATURES)
	BEACON_PREBUILT_BINS=1 $(CARGO) test --workspace $(TEST_FEATURES)
	scripts/contract.sh target/debug/beacon-registry

## contract: the registry's API against its OpenAPI description (schemathesis, ~1 min)
contract: deps
	$(CARGO) build -p beacon-registry
	scripts/contract.sh target/debug/beacon-registry

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets $(TEST_FEATURES) -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps -q

# Debian packages the benchmarks need besides the tests': the proxies compared.
BENCH_DEBS := haproxy nginx

## bench: Beacon vs a bare client, HAProxy and nginx; registry vs etcd -> BENCHMARKS.md (~12 min, 3 runs)
bench: deps bench-deps build-release
	$(RELEASE)/beacon-bench

## bench-quick: the same, short (~4 min)
bench-quick: deps bench-deps build-release
	$(RELEASE)/beacon-bench --quick

## stress: concurrent writes through two market replicas on SQLite, then PostgreSQL, then the
## same while the store fails (disk full, PostgreSQL stopped, a replica killed; needs root);
## checks no acknowledged write was lost (~2 min)
stress: deps build-release
	$(RELEASE)/beacon-stress $(ARGS)
	$(RELEASE)/beacon-stress --faults $(ARGS)

## faults: partitions between real hosts (network namespaces, nftables) under market load; needs root (~2 min)
faults: deps build-release
	$(RELEASE)/beacon-faults $(ARGS)

## fuzz: each parser fuzz target (fuzz/) for FUZZ_SECONDS (default 60) with libFuzzer; needs nightly, installs cargo-fuzz when missing
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := names address watch_query register_body acl_file
fuzz:
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	@cd fuzz && for t in $(FUZZ_TARGETS); do \
	  echo "== $$t: $(FUZZ_SECONDS) s"; \
	  cargo +nightly fuzz run $$t -- -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 2>&1 \
	    | grep -E "stat::number_of_executed_units|Done [0-9]+ runs|ERROR|panicked|crash-" ; \
	  test $${PIPESTATUS[0]} -eq 0 || exit 1; \
	done

## chaos: random kills, pauses and restarts (and 2 registry restarts) under load, 2 min
chaos: build-release
	$(RELEASE)/beacon-chaos $(ARGS)

bench-deps:
	@missing=$$(for p in $(BENCH_DEBS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $$missing; \
	fi

## registry: run the registry in the foreground on 127.0.0.1:8400
registry: build-release
	$(RELEASE)/beacon-registry $(ARGS)

## startRatings COUNT=3 | INSTANCE=2 [FOREGROUND=1]: start ratings instances
startRatings: $(RATINGS_BIN)
ifdef FOREGROUND
	$(RATINGS_BIN) --instance $(or $(INSTANCE),1) --allow-faults $(RATINGS_ARGS)
else ifdef INSTANCE
	@$(RATINGS) start $(INSTANCE)
else
	@$(RATINGS) start $(shell seq 1 $(or $(COUNT),1))
endif

## pauseRatings INSTANCE=2: SIGSTOP (running but unresponsive, like ^Z)
pauseRatings:
	@$(RATINGS) pause $(INSTANCE)

## resumeRatings INSTANCE=2: SIGCONT (like fg)
resumeRatings:
	@$(RATINGS) resume $(INSTANCE)

## slowRatings INSTANCE=2 MS=200: it answers every rating MS ms late (while it runs)
slowRatings:
	@$(RATINGS) faults "$(INSTANCE)" "$(MS)" 0

## flakyRatings INSTANCE=2 PERCENT=50: it fails PERCENT% of rating requests with a 500
flakyRatings:
	@$(RATINGS) faults "$(INSTANCE)" 0 "$(PERCENT)"

## overloadRatings INSTANCE=2 CAPACITY=4 [MS=5]: it serves CAPACITY ratings at once, MS ms each; more queue (full, not broken)
overloadRatings:
	@$(RATINGS) faults "$(INSTANCE)" "$(or $(MS),5)" 0 "$(CAPACITY)"

## healRatings INSTANCE=2: no delay, no failures, no capacity limit
healRatings:
	@$(RATINGS) faults "$(INSTANCE)" 0 0 0 0

## stopRatings [INSTANCE=2]: SIGTERM (deregisters, drains) and wait for exit
stopRatings:
	@$(RATINGS) stop $(INSTANCE)

## market: run the market alone in the foreground on 127.0.0.1:5000
market: build-release
	$(RELEASE)/beacon-market $(ARGS)

build-release: $(RELEASE)/beacon-registry

$(RELEASE)/beacon-registry $(RELEASE)/beacon-ratings $(RELEASE)/beacon-market: $(SOURCES)
	$(CARGO) build --release --workspace --bins
	@touch $(RELEASE)/beacon-registry $(RELEASE)/beacon-ratings $(RELEASE)/beacon-market
