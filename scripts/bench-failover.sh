#!/usr/bin/env bash
# Failover benchmark (issue 5): runs the distributed failover test RUNS times (default 5)
# against the broker at KAFKA_BOOTSTRAP (Tansu is started when unset) and prints each run's
# time from kill -9, and from a clean stop, to every task RUNNING on another worker, then the
# medians. FAILOVER_RECORDS sets the sink run's size (default 20000 here; the test's own
# default is 200000: failover times do not depend on it, the run's length does).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-5}
export FAILOVER_RECORDS=${FAILOVER_RECORDS:-20000}
export KAFKA_BOOTSTRAP=${KAFKA_BOOTSTRAP:-$(scripts/tansu.sh)}
scripts/services.sh >&2
cargo build -p wasmconnect >&2
kills=()
stops=()
for i in $(seq 1 "$runs"); do
  status=0
  out=$(RUST_LOG=warn cargo test -q -p wasmconnect-e2e --test distributed a_sink_run -- --nocapture 2>&1) || status=$?
  kill_ms=$(sed -n 's/^kill -9: tasks RUNNING elsewhere after \([0-9]*\) ms.*/\1/p' <<<"$out")
  stop_ms=$(sed -n 's/^clean stop: tasks RUNNING elsewhere after \([0-9]*\) ms.*/\1/p' <<<"$out")
  if [[ $status -ne 0 || -z $kill_ms || -z $stop_ms ]]; then
    echo "run $i failed:" >&2
    grep -v '^ \{3,\}' <<<"$out" | tail -30 >&2
    exit 1
  fi
  echo "run $i: kill -9 ${kill_ms} ms, clean stop ${stop_ms} ms"
  kills+=("$kill_ms")
  stops+=("$stop_ms")
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
echo "median of $runs: kill -9 $(median "${kills[@]}") ms (target 15000), clean stop $(median "${stops[@]}") ms (target 3000)"
