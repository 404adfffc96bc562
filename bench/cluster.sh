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
CL_ADDRS=(127.0.77.1 127.0.77.2)
CL_DATA=${BENCH_DATA_PORT:-18180}
CL_ADMIN=${BENCH_ADMIN_PORT:-18181}
CL_PEER=${BENCH_PEER_PORT:-18182}
. bench/lib.sh
CL_WORK=$(mktemp -d /tmp/sb-bench-cluster.XXXXXX)
trap 'cluster_stop; rm -rf "$CL_WORK"' EXIT
for k in 0 1; do cluster_yaml $k 2 "${BENCH_SYNC:-full}"; done
OWNED=$(owned_by 1 2)
echo "== agents owned by router 1: $OWNED; $P producers, $C consumers, batches of 200, 256-byte payloads, ${DUR}s"

run() { # $1: label, $2: router index the load goes through
  cluster_start
  build/rel/bench/loadgen --data "http://${CL_ADDRS[$2]}:$CL_DATA" --admin "http://${CL_ADDRS[1]}:$CL_ADMIN" \
    --producers "$P" --consumers "$C" --agent-ids "$OWNED" --batch 200 --size 256 --duration "$DUR" \
    --warmup "$WARM" | tee "$CL_WORK/$1.txt"
}
echo "== direct: through router 1, the owner"
run direct 1
echo "== forwarded: through router 0, which forwards every send, pull and ack to router 1"
run forwarded 0
python3 - "$CL_WORK/direct.txt" "$CL_WORK/forwarded.txt" <<'PY'
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
