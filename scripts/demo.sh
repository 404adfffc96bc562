#!/usr/bin/env bash
# `make demo`: Switchboard end to end on a local control plane (scripts/demo.py says what it does).
# `make demo-down` (scripts/demo.sh down): stop the operator, the routers, the demo agent and the cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
DEMO=build/demo

down() {
  if [ -f "$DEMO/pids" ]; then
    while read -r pid; do
      [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null || true
    done <"$DEMO/pids"
    for _ in $(seq 100); do
      alive=0
      while read -r pid; do [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && alive=1; done <"$DEMO/pids"
      [ $alive = 0 ] && break
      sleep 0.2
    done
    rm -f "$DEMO/pids"
  fi
  bash e2e/cluster down demo
  echo "demo: stopped"
}

if [ "${1:-}" = "down" ]; then down; exit 0; fi
[ -f "$DEMO/pids" ] && down
rm -rf "$DEMO"
bash e2e/cluster build >/dev/null
exec /usr/bin/python3 scripts/demo.py
