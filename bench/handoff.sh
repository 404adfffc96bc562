#!/usr/bin/env bash
# `make bench-handoff`: how fast a router hands an agent's stored messages to its new owner
# (docs/cluster.md).  Two routers on 127.0.78.1 and .2 start on a one-replica assignment, so router 0
# owns everything; the load generator's producers store BENCH_MESSAGES messages (default 40,000) for
# four agents that move to router 1 under two replicas; then both routers get cluster.replicas 2
# (router 1 first) and the script times how long router 0 takes to hand them all over.  Release
# build, storage.sync full.  Not part of make test.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${BENCH_MESSAGES:-40000}
A=(127.0.78.1 127.0.78.2)
PD=${BENCH_DATA_PORT:-18280}; PA=${BENCH_ADMIN_PORT:-18281}; PP=${BENCH_PEER_PORT:-18282}
WORK=$(mktemp -d /tmp/sb-bench-handoff.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
AGENTS=$(for i in $(seq 0 31); do printf '{id: a%d}, ' "$i"; done)
RESOLVE="r-0.peers.bench:$PP:${A[0]},r-1.peers.bench:$PP:${A[1]}"
write_cfg() { # $1 ordinal, $2 replicas
  cat > "$WORK/r$1.yaml" <<YAML
profile: production
security: {auth: none}
storage: {path: $WORK/r$1.db, sync: full}
network: {bindAddress: ${A[$1]}, dataPort: $PD, adminPort: $PA, peerPort: $PP}
observability: {logLevel: warn}
performance: {workerThreads: 4, agentQueueSize: 1000000, maxConcurrentMessages: 10000000, memoryLimitBytes: 64Gi}
cluster: {replicas: $2, ordinal: $1, peerHost: "r-{ordinal}.peers.bench", resolve: "$RESOLVE"}
agents: [${AGENTS%, }]
YAML
}
for k in 0 1; do
  write_cfg $k 1
  build/switchboard-router --config "$WORK/r$k.yaml" >"$WORK/r$k.log" 2>&1 &
  PIDS+=($!)
done
for k in 0 1; do
  for _ in $(seq 100); do curl -sf -o /dev/null "http://${A[$k]}:$PA/readyz" && break; sleep 0.1; done
done
# the four agents router 1 will own under two replicas
MOVING=$(for i in $(seq 0 31); do echo "a$i"; done | build/rel/bench/own_of 2 | awk '$2 == 1 {print $1}' | head -4 | paste -sd,)
echo "== storing $N messages for $MOVING on router 0 (it owns every agent under one replica)"
python3 - "$N" "$MOVING" "http://${A[0]}:$PD" <<'PY'
import json, sys, urllib.request
n, agents, url = int(sys.argv[1]), sys.argv[2].split(","), sys.argv[3]
for b in range(0, n, 500):
    msgs = [{"performative": "inform", "sender": "p", "receiver": agents[i % len(agents)],
             "conversation_id": f"c{i % 16}", "message_id": f"m{i}", "content": "x" * 200}
            for i in range(b, min(n, b + 500))]
    req = urllib.request.Request(url + "/v1/messages", json.dumps({"messages": msgs}).encode(),
                                 {"Content-Type": "application/json"})
    assert urllib.request.urlopen(req).status == 202
PY
echo "== the assignment grows to two replicas"
T0=$(date +%s.%N)
for k in 1 0; do
  write_cfg $k 2
  curl -sf -o /dev/null -X POST "http://${A[$k]}:$PA/admin/reload"
done
while :; do
  H=$(curl -sf "http://${A[0]}:$PA/v1/status" | python3 -c 'import json,sys; print(json.load(sys.stdin)["cluster"]["handoffs"])')
  [ "$H" = 0 ] && break
  sleep 0.05
done
T1=$(date +%s.%N)
MOVED=$(curl -sf "http://${A[0]}:$PA/metrics" | awk '/^switchboard_router_messages_handed_off_total/{print $2}')
python3 -c "t=$T1-$T0; print(f'== handed off {int($MOVED)} messages in {t:.2f} s: {int($MOVED)/t:.0f} msg/s (storage.sync full on both sides)')"
