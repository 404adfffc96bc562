#!/usr/bin/env bash
# `make demo`: start switchboard-router on its embedded default config
# (development profile, two pull-mode agents alice and bob), then send,
# pull and ack a message with curl.  The router keeps running afterwards;
# `make demo-down` stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
DEMO=build/demo
PIDFILE=$DEMO/router.pid
DATA=http://127.0.0.1:8080
ADMIN=http://127.0.0.1:8081

stop() {
  if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    kill -TERM "$(cat "$PIDFILE")"
    for _ in $(seq 50); do kill -0 "$(cat "$PIDFILE")" 2>/dev/null || break; sleep 0.2; done
    echo "demo: router stopped"
  fi
  rm -f "$PIDFILE"
}

if [ "${1:-}" = "down" ]; then stop; exit 0; fi

stop
mkdir -p "$DEMO"
if curl -s -o /dev/null "$ADMIN/healthz" 2>/dev/null; then
  echo "demo: something already listens on 127.0.0.1:8081; stop it first (make demo-down)" >&2
  exit 1
fi
(cd "$DEMO" && exec ../switchboard-router >router.log 2>&1) &
echo $! > "$PIDFILE"
for _ in $(seq 100); do curl -sf -o /dev/null "$ADMIN/readyz" && break; sleep 0.1; done
curl -sf -o /dev/null "$ADMIN/readyz" || { echo "demo: router did not start; see $DEMO/router.log" >&2; exit 1; }

run() { printf '\n$ %s\n' "$*"; eval "$@"; echo; }
echo "== switchboard-router is up (embedded default config, database $DEMO/switchboard.db)"
run "curl -s $DATA/v1/agents"
run "curl -s -X POST $DATA/v1/messages -H 'Content-Type: application/json' -d '{\"performative\":\"request\",\"sender\":\"alice\",\"receiver\":\"bob\",\"conversation_id\":\"demo-1\",\"content\":\"Can you look up the weather in Lisbon?\"}'"
PULLED=$(curl -s "$DATA/v1/agents/bob/messages?max=10&wait_ms=1000")
printf '\n$ curl -s "%s/v1/agents/bob/messages?max=10&wait_ms=1000"\n%s\n' "$DATA" "$PULLED"
ID=$(printf '%s' "$PULLED" | python3 -c 'import json,sys; print(json.load(sys.stdin)["messages"][0]["message_id"])')
run "curl -s -X POST $DATA/v1/agents/bob/ack -d '{\"message_ids\":[\"$ID\"]}'"
run "curl -s $DATA/v1/conversations/demo-1"
run "curl -s $ADMIN/v1/status"
printf '\n$ curl -s %s/metrics | grep -E "messages_(received|routed|delivered)_total"\n' "$ADMIN"
curl -s "$ADMIN/metrics" | grep -E "^switchboard_router_messages_(received|routed|delivered)_total"
echo
echo "== The router is still running (pid $(cat "$PIDFILE"), log $DEMO/router.log)."
echo "   Try the curl commands in README.md, then stop it with: make demo-down"
