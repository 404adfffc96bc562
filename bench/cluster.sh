#!/usr/bin/env bash
# `make bench-cluster`: the cost of forwarding between router replicas (docs/cluster.md).  Two routers
# act as one (cluster.replicas 2) on 127.0.77.1 and 127.0.77.2; the load generator drives four agents
# that router 1 owns, first through router 1 itself (direct), then through router 0 (every send, pull
# and ack forwarded to router 1).  Both runs in one go, so the ratio is what to read on a shared machine.
# BENCH_DURATION (default 30) and BENCH_WARMUP (default 3) set the seconds per run.  Not part of make test.
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${BENCH_DURATION:-30}
WARM=${BENCH_WARMUP:-3}
P=${BENCH_PRODUCERS:-8}
C=${BENCH_CONSUMERS:-4}
A=(127.0.77.1 127.0.77.2)
PORT_DATA=${BENCH_DATA_PORT:-18180}
PORT_ADMIN=${BENCH_ADMIN_PORT:-18181}
PORT_PEER=${BENCH_PEER_PORT:-18182}
WORK=$(mktemp -d /tmp/sb-bench-cluster.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

AGENTS=$(for i in $(seq 0 31); do printf '{id: a%d}, ' "$i"; done)
RESOLVE="r-0.peers.bench:$PORT_PEER:${A[0]},r-1.peers.bench:$PORT_PEER:${A[1]}"
for k in 0 1; do
  cat > "$WORK/r$k.yaml" <<YAML
profile: production
security: {auth: none}
storage: {path: $WORK/r$k.db, sync: ${BENCH_SYNC:-full}}
network: {bindAddress: ${A[$k]}, dataPort: $PORT_DATA, adminPort: $PORT_ADMIN, peerPort: $PORT_PEER, maxConnections: 128}
observability: {logLevel: warn}
performance: {workerThreads: 4, agentQueueSize: 1000000, maxConcurrentMessages: 10000000, memoryLimitBytes: 64Gi}
cluster: {replicas: 2, ordinal: $k, peerHost: "r-{ordinal}.peers.bench", resolve: "$RESOLVE", peerConnections: 64}
agents: [${AGENTS%, }]
YAML
done

start_cluster() { # fresh databases: message ids repeat between runs, and the dedup window would drop them
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  PIDS=()
  rm -f "$WORK"/r*.db*
  for k in 0 1; do
    build/switchboard-router --config "$WORK/r$k.yaml" >"$WORK/r$k.log" 2>&1 &
    PIDS+=($!)
  done
  for k in 0 1; do
    for _ in $(seq 100); do curl -sf -o /dev/null "http://${A[$k]}:$PORT_ADMIN/readyz" && break; sleep 0.1; done
  done
}
start_cluster
# four agents router 1 owns, as the routers say
OWNED=$(curl -sf "http://${A[0]}:$PORT_DATA/v1/agents" |
  python3 -c 'import json,sys; print(",".join([a["id"] for a in json.load(sys.stdin)["agents"] if a["owner"] == 1][:4]))')
echo "== agents owned by router 1: $OWNED; $P producers, $C consumers, batches of 200, 256-byte payloads, ${DUR}s"

run() { # $1: label, $2: router index the load goes through
  start_cluster
  build/rel/bench/loadgen --data "http://${A[$2]}:$PORT_DATA" --admin "http://${A[1]}:$PORT_ADMIN" \
    --producers "$P" --consumers "$C" --agent-ids "$OWNED" --batch 200 --size 256 --duration "$DUR" \
    --warmup "$WARM" | tee "$WORK/$1.txt"
}
echo "== direct: through router 1, the owner"
run direct 1
echo "== forwarded: through router 0, which forwards every send, pull and ack to router 1"
run forwarded 0
python3 - "$WORK/direct.txt" "$WORK/forwarded.txt" <<'PY'
import re, sys
def grab(path):
    t = open(path).read()
    tp = float(re.search(r"consumed\+acked ([0-9.]+) msg/s", t).group(1))
    p99 = re.search(r"produce->consume p50 [0-9.]+ ms, p99 ([0-9.]+) ms", t)
    return tp, float(p99.group(1)) if p99 else float("nan")
d, f = grab(sys.argv[1]), grab(sys.argv[2])
print(f"== forwarding cost: throughput {f[0]:.0f} vs {d[0]:.0f} msg/s ({f[0] / d[0]:.2f}x), "
      f"p99 produce-to-consume {f[1]:.1f} vs {d[1]:.1f} ms ({f[1] / d[1]:.2f}x)")
PY
