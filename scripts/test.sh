#!/usr/bin/env bash
# The test command (`make test`): installs what the tests need, builds the plugins and the
# binary, starts a real Kafka-protocol broker (Tansu) and runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

echo "==> wasm32-wasip2 target"
rustup target add wasm32-wasip2

echo "==> plugins and test fixtures"
make --no-print-directory plugins test-plugins

echo "==> worker binary"
cargo build -p wasmconnect

echo "==> MariaDB, PostgreSQL and Redis"
scripts/services.sh

echo "==> Kafka-protocol broker"
KAFKA_BOOTSTRAP=${KAFKA_BOOTSTRAP:-$(scripts/tansu.sh)}
export KAFKA_BOOTSTRAP
export WASMCONNECT_BIN="$PWD/target/debug/wasmconnect"
echo "KAFKA_BOOTSTRAP=$KAFKA_BOOTSTRAP"

echo "==> tests"
cargo test --workspace --no-fail-fast
