#!/usr/bin/env bash
# `make bench-cluster`, second part: how fast a router hands an agent's stored messages to its new owner
# (docs/cluster.md).  Two routers on 127.0.78.1 and .2 start on a one-replica assignment, so router 0
# owns everything; the load generator's producers store BENCH_MESSAGES messages (default 40,000) for
# four agents that move to router 1 under two replicas; then both routers get cluster.replicas 2
# (router 1 first) and the script times how long router 0 takes to hand them all over.  Release
# build, storage.sync full.  Not part of make test.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${BENCH_MESSAGES:-40000}
CL_ADDRS=(127.0.78.1 127.0.78.2)
CL_DATA=${BENCH_DATA_PORT:-18280}
CL_ADMIN=${BENCH_ADMIN_PORT:-18281}
CL_PEER=${BENCH_PEER_PORT:-18282}
. bench/lib.sh
CL_WORK=$(mktemp -d /tmp/sb-bench-handoff.XXXXXX)
trap 'cluster_stop; rm -rf "$CL_WORK"' EXIT
for k in 0 1; do cluster_yaml $k 1 full; done
cluster_start
MOVING=$(owned_by 1 2) # the four agents router 1 will own under two replicas
echo "== storing $N messages for $MOVING on router 0 (it owns every agent under one replica)"
python3 - "$N" "$MOVING" "http://${CL_ADDRS[0]}:$CL_DATA" <<'PY'
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
  cluster_yaml $k 2 full
  curl -sf -o /dev/null -X POST "http://${CL_ADDRS[$k]}:$CL_ADMIN/admin/reload"
done
while :; do
  H=$(curl -sf "http://${CL_ADDRS[0]}:$CL_ADMIN/v1/status" | python3 -c 'import json,sys; print(json.load(sys.stdin)["cluster"]["handoffs"])')
  [ "$H" = 0 ] && break
  sleep 0.05
done
T1=$(date +%s.%N)
MOVED=$(curl -sf "http://${CL_ADDRS[0]}:$CL_ADMIN/metrics" | awk '/^switchboard_router_messages_handed_off_total/{print $2}')
python3 -c "t=$T1-$T0; print(f'== handed off {int($MOVED)} messages in {t:.2f} s: {int($MOVED)/t:.0f} msg/s (storage.sync full on both sides)')"
