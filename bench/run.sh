#!/usr/bin/env bash
# `make bench`: the router benchmarks.  Not part of `make test`.
#   1. in-process: registry lookup at 10,000 agents; route+enqueue without persistence; the store
#      writer alone (bench_store: inserts and deletes, storage.sync full and normal)
#   2. end to end over HTTP on 127.0.0.1 with durability on (storage.sync full):
#      maximum sustained throughput, then latency at half that rate.
# BENCH_DURATION (default 60) and BENCH_WARMUP (default 5) set the seconds per run.
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${BENCH_DURATION:-60}
WARM=${BENCH_WARMUP:-5}
P=${BENCH_PRODUCERS:-8}
C=${BENCH_CONSUMERS:-4}
WORK=$(mktemp -d /tmp/sb-bench.XXXXXX)
PORT_DATA=${BENCH_DATA_PORT:-18080}
PORT_ADMIN=${BENCH_ADMIN_PORT:-18081}
trap '[ -n "${PID:-}" ] && kill "$PID" 2>/dev/null; rm -rf "$WORK"' EXIT

echo "== machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)"
echo "== in-process (build/rel/bench/bench_route)"
build/rel/bench/bench_route
echo "== the store writer alone (build/rel/bench/bench_store)"
build/rel/bench/bench_store 10

cat > "$WORK/bench.yaml" <<YAML
profile: production
security: {auth: none}
storage: {path: $WORK/bench.db, sync: ${BENCH_SYNC:-full}}
network: {bindAddress: 127.0.0.1, dataPort: $PORT_DATA, adminPort: $PORT_ADMIN, maxConnections: 64}
observability: {logLevel: warn}
performance: {workerThreads: 4, agentQueueSize: 1000000, maxConcurrentMessages: 10000000, memoryLimitBytes: 64Gi}
agents: [{id: a0}, {id: a1}, {id: a2}, {id: a3}]
YAML

start_router() {
  rm -f "$WORK"/bench.db*
  build/switchboard-router --config "$WORK/bench.yaml" >"$WORK/router.log" 2>&1 &
  PID=$!
  for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$PORT_ADMIN/readyz" && return; sleep 0.1; done
  echo "router did not start"; cat "$WORK/router.log"; exit 1
}
LG="build/rel/bench/loadgen --data http://127.0.0.1:$PORT_DATA --admin http://127.0.0.1:$PORT_ADMIN \
  --producers $P --consumers $C --agents 4 --batch 200 --size 256 --duration $DUR --warmup $WARM"

echo "== end to end, maximum throughput (storage.sync ${BENCH_SYNC:-full}, 256-byte payloads)"
start_router
$LG --pid "$PID" | tee "$WORK/max.txt"
kill "$PID"; wait "$PID" 2>/dev/null || true
MAX=$(awk '/consumed\+acked/{print int($(NF-1))}' "$WORK/max.txt")

echo "== end to end, latency at half the maximum rate ($((MAX / 2)) msg/s)"
start_router
$LG --pid "$PID" --rate $((MAX / 2))
kill "$PID"; wait "$PID" 2>/dev/null || true
PID=
bash bench/reload.sh
