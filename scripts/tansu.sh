#!/usr/bin/env bash
# Makes sure a Tansu broker (a Kafka-protocol broker from crates.io) listens on
# 127.0.0.1:${TANSU_PORT:-9092}: installs it when missing, starts it when stopped.
# Prints the bootstrap address on stdout; progress goes to stderr.
set -euo pipefail
port=${TANSU_PORT:-9092}
addr=127.0.0.1:$port
log=${TANSU_LOG:-/tmp/wasmconnect-tansu-$port.log}

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }

if listening; then
  echo "Tansu (or another broker) already listens on $addr." >&2
  echo "$addr"
  exit 0
fi
if ! command -v tansu >/dev/null 2>&1; then
  echo "Installing tansu 0.6.0 from crates.io (a few minutes, once)..." >&2
  cargo install tansu --version 0.6.0 --features dynostore --locked >&2
fi
echo "Starting tansu on $addr (log: $log)..." >&2
nohup tansu broker \
  --listener-url "tcp://$addr" \
  --advertised-listener-url "tcp://$addr" \
  --storage-engine memory://tansu/ >"$log" 2>&1 &
for _ in $(seq 1 100); do
  if listening; then
    echo "$addr"
    exit 0
  fi
  sleep 0.1
done
echo "tansu did not start; see $log" >&2
tail -20 "$log" >&2 || true
exit 1
