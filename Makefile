# wasmconnect: build, demo and test. See README.md.
SHELL := /bin/bash
CARGO ?= cargo
PLUGIN_DIR := target/plugins
TEST_PLUGIN_DIR := target/test-plugins
WASM_TARGET := wasm32-wasip2
# Plugins shipped in plugin.path, and guest fixtures used only by tests and benchmarks.
PLUGINS := datagen file-sink jdbc-sink jdbc-source redis-sink transforms
TEST_PLUGINS := test-faults identity-transform

.PHONY: build plugins test-plugins demo test bench bench-chain bench-connectors bench-failover fmt lint

build: plugins
	$(CARGO) build --release -p wasmconnect

plugins:
	rustup target add $(WASM_TARGET) >/dev/null
	$(CARGO) build --release --target $(WASM_TARGET) $(addprefix -p ,$(PLUGINS))
	mkdir -p $(PLUGIN_DIR)
	for p in $(PLUGINS); do cp target/$(WASM_TARGET)/release/$${p//-/_}.wasm $(PLUGIN_DIR)/; done

test-plugins:
	rustup target add $(WASM_TARGET) >/dev/null
	$(CARGO) build --release --target $(WASM_TARGET) $(addprefix -p ,$(TEST_PLUGINS))
	mkdir -p $(TEST_PLUGIN_DIR)
	for p in $(TEST_PLUGINS); do cp target/$(WASM_TARGET)/release/$${p//-/_}.wasm $(TEST_PLUGIN_DIR)/; done

demo: build
	scripts/demo.sh

test:
	scripts/test.sh

bench: plugins test-plugins
	$(CARGO) bench -p wasmconnect --bench boundary

# InsertField$Value + ReplaceField$Value + RegexRouter through WASM against native (README).
bench-chain: plugins
	$(CARGO) bench -p wasmconnect --bench chain -- $(ARGS)

# JDBC sink, Redis sink and JDBC source against native loops (README, Measurements).
bench-connectors: plugins
	$(CARGO) build --release -p wasmconnect
	scripts/services.sh
	KAFKA_BOOTSTRAP=$${KAFKA_BOOTSTRAP:-$$(scripts/tansu.sh)} WASMCONNECT_BIN=$$PWD/target/release/wasmconnect \
		$(CARGO) bench -p wasmconnect-e2e --bench connectors -- $(ARGS)

# Time from kill -9 and from a clean stop to the tasks RUNNING elsewhere, median of 5 (README).
bench-failover: plugins test-plugins
	scripts/bench-failover.sh

fmt:
	$(CARGO) fmt --all

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
