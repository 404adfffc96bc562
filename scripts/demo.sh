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
  # the machine as it was: nothing of the demo cluster left running, host settings restored
  local left
  left=$(pgrep -af "${SB_E2E_STATE:-/tmp/switchboard-e2e}/demo/" || true)
  if [ -n "$left" ]; then echo "demo: processes left behind:"; echo "$left"; return 1; fi
  if ls -d /sys/fs/cgroup/*/sb-e2e-demo-* 2>/dev/null; then echo "demo: node cgroups left behind"; return 1; fi
  echo "demo: stopped; host settings: $(sysctl -n vm.overcommit_memory kernel.panic kernel.panic_on_oops | paste -sd' ')"
}

if [ "${1:-}" = "down" ]; then down; exit 0; fi
[ -f "$DEMO/pids" ] && down
rm -rf "$DEMO"
bash e2e/cluster build >/dev/null
exec /usr/bin/python3 scripts/demo.py
