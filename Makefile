# Beacon: `make demo` to see it, `make test` to check it.
#
# Every target builds what it needs; release binaries for anything that runs
# for people or is timed, debug builds for tests.

SHELL := /bin/bash
CARGO ?= cargo
RELEASE := target/release
REGISTRY_URL ?= http://127.0.0.1:8400

.PHONY: demo test lint bench registry market startRatings stopRatings pauseRatings resumeRatings build-release

## demo: start the registry (ratings and market arrive with their issues)
demo: build-release
	@echo "Beacon registry on $(REGISTRY_URL)  (^C stops it)"
	@echo "Try: curl -s $(REGISTRY_URL)/v1/services | python3 -m json.tool"
	@echo "The ratings instances and the market web app (http://127.0.0.1:5000) are coming."
	@$(RELEASE)/beacon-registry

## test: formatting, lints, docs, then every test in the workspace
test: lint
	$(CARGO) build --workspace --bins --examples
	$(CARGO) test --workspace

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps -q

## bench: client overhead vs a bare hyper-util client, and a quick registry load
bench:
	$(CARGO) run --release -q --example client_overhead
	scripts/registry-quickbench.sh

## registry: run the registry in the foreground on 127.0.0.1:8400
registry: build-release
	$(RELEASE)/beacon-registry $(ARGS)

market startRatings stopRatings pauseRatings resumeRatings:
	@echo "make $@: coming (the ratings service and market are being built)"

build-release:
	$(CARGO) build --release --workspace --bins
