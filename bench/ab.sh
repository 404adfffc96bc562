#!/usr/bin/env bash
# Compare router builds back to back on the same load: for each ROUTER binary, start it on a fresh
# database (production profile, auth off, four agents) and run bench/loadgen against it.
#   bench/ab.sh [-s full|normal] [-p PRODUCERS=CONSUMERS] [-b BYTES] [-d SECONDS] ROUTER [ROUTER...]
# Example (before/after a change, one worktree per build):
#   git worktree add /tmp/before HEAD~1 && make -C /tmp/before build/switchboard-router
#   bench/ab.sh -p 4 /tmp/before/build/switchboard-router build/switchboard-router
set -euo pipefail
cd "$(dirname "$0")/.."
SYNC=normal PC=1 SIZE=256 DUR=15
while getopts "s:p:b:d:" o; do
  case $o in s) SYNC=$OPTARG ;; p) PC=$OPTARG ;; b) SIZE=$OPTARG ;; d) DUR=$OPTARG ;; *) exit 2 ;; esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || { sed -n 2,8p "$0"; exit 2; }
make -s build/rel/bench/loadgen
. bench/lib.sh
for bin in "$@"; do
  work=$(mktemp -d)
  data=$(free_port) admin=$(free_port)
  bench_router_yaml "$work" "$SYNC" "$data" "$admin"
  "$bin" --config "$work/router.yaml" >"$work/router.log" 2>&1 &
  pid=$!
  wait_port "$admin"
  echo "== $bin (storage.sync $SYNC, $PC/$PC, $SIZE B, $DUR s)"
  build/rel/bench/loadgen --data "http://127.0.0.1:$data" --admin "http://127.0.0.1:$admin" --producers "$PC" \
    --consumers "$PC" --agents "$PC" --batch 200 --size "$SIZE" --duration "$DUR" --warmup 3 --pid "$pid" |
    grep -E "consumed\+acked|latency produce|cpu-s|rss|totals" || true
  kill "$pid"; wait "$pid" 2>/dev/null || true
  rm -rf "$work"
done
