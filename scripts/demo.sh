#!/usr/bin/env bash
# Runs the demo pipeline: datagen -> embedded Kafka -> file sink, REST API on :8083.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p target/demo
out=target/demo/users.jsonl
cat <<MSG
wasmconnect demo
  pipeline : datagen (topic "users") -> embedded Kafka -> file sink
  output   : $(pwd)/$out   (try: tail -f $out)
  REST API : http://localhost:8083
    curl -s localhost:8083/connectors?expand=status
    curl -s localhost:8083/connectors/users-to-file/status
    curl -s localhost:8083/connector-plugins
    curl -s -X PUT localhost:8083/connectors/datagen-users/pause
    curl -s -X PUT localhost:8083/connectors/datagen-users/resume
  Stop with Ctrl-C.

MSG
exec target/release/wasmconnect standalone config/demo/worker.properties \
  config/demo/datagen-users.properties config/demo/file-sink.properties
