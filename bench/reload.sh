#!/usr/bin/env bash
# Latency under hot reloads: the same paced load twice, first with no
# reloads, then while a loop applies a hot reload every 200 ms (adding and
# removing an agent, changing retry settings).  Prints the router's
# accept->deliver and the end-to-end latency for both.  Part of `make bench`.
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${BENCH_DURATION:-20}
RATE=${BENCH_RELOAD_RATE:-20000}
WORK=$(mktemp -d /tmp/sb-reload.XXXXXX)
PD=${BENCH_DATA_PORT:-18090}; PA=${BENCH_ADMIN_PORT:-18091}
trap '[ -n "${PID:-}" ] && kill "$PID" 2>/dev/null; [ -n "${LOOP:-}" ] && kill "$LOOP" 2>/dev/null; rm -rf "$WORK"' EXIT

config() { # extra agent, maxRetries
  cat <<YAML
profile: production
security: {auth: none}
storage: {path: $WORK/bench.db, sync: full}
network: {bindAddress: 127.0.0.1, dataPort: $PD, adminPort: $PA, maxConnections: 64}
observability: {logLevel: warn}
performance: {workerThreads: 4, agentQueueSize: 1000000, maxConcurrentMessages: 10000000, memoryLimitBytes: 64Gi}
delivery: {maxRetries: $2, baseRetryDelayMs: $((200 + $2))}
agents: [{id: a0}, {id: a1}, {id: a2}, {id: a3}$1]
YAML
}
config "" 3 >"$WORK/router.yaml"
LG="build/rel/bench/loadgen --data http://127.0.0.1:$PD --admin http://127.0.0.1:$PA --producers 8 --consumers 4 \
  --agents 4 --batch 200 --duration $DUR --warmup 3 --rate $RATE"

run() {
  rm -f "$WORK"/bench.db*
  build/switchboard-router --config "$WORK/router.yaml" >"$WORK/router.log" 2>&1 &
  PID=$!
  for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$PA/readyz" && break; sleep 0.1; done
  $LG --pid "$PID" | grep -E "latency|accept->deliver|throughput|lost"
}

echo "== $RATE msg/s, no reloads"
run
kill "$PID"; wait "$PID" 2>/dev/null || true

echo "== $RATE msg/s, a hot reload every 200 ms"
(
  i=0
  while sleep 0.2; do
    i=$((i + 1))
    if [ $((i % 2)) = 0 ]; then extra=", {id: extra-$i}"; else extra=""; fi
    config "$extra" $((i % 5)) >"$WORK/next.yaml"
    curl -s -o /dev/null -w '%{http_code}\n' -X POST --data-binary @"$WORK/next.yaml" \
      "http://127.0.0.1:$PA/admin/reload" >>"$WORK/reloads.txt" || true
  done
) &
LOOP=$!
run
kill "$LOOP"; LOOP=
echo "reloads applied: $(grep -c '^200$' "$WORK/reloads.txt" || true), other: $(grep -vc '^200$' "$WORK/reloads.txt" || true)"
kill "$PID"; wait "$PID" 2>/dev/null || true
PID=
