#!/usr/bin/env bash
# `make bench-peers`: Switchboard's router, Redis Streams, NATS JetStream and RabbitMQ side by side, in one
# run, on 127.0.0.1. For each durability level (batch: fsync per batch; second: fsync about every second),
# payload size (256 B, 4 KiB) and concurrency (1 producer/1 consumer, 4/4): the maximum sustained
# throughput (messages acked by consumers per second), then latency at 50 % of that system's own
# maximum. A run that loses messages is recorded as a failure. Results: bench/results/peers.tsv, then
# bench/peers/report.py writes bench/results/peers.md and bench/results/peers.png.
#   Systems (short names): switchboard, redis (Redis Streams), nats (NATS JetStream, nats-server built from
#   the Go module proxy: build/peers/bin/nats-server), rabbitq (RabbitMQ, a quorum queue) and rabbitc
#   (RabbitMQ, a durable classic queue). RabbitMQ has no fsync-every-second setting: its two levels run
#   the same broker settings (the report's settings table says so).
#   BENCH_DURATION (default 60) and BENCH_WARMUP (default 5): seconds per point.
#   PEERS_SYSTEMS (default "switchboard redis nats rabbitq rabbitc") and PEERS_LEVELS (default "batch
#   second") re-measure some cells only: their rows in peers.tsv are replaced, the others kept, and
#   bench/results/peers-runs.tsv (one line per invocation: start, end, systems, levels, router commit)
#   lets the report say so.
# A load generator that crashes (libnats 3.4.1 corrupts its heap now and then) is run again, at most
# twice more, on a fresh server; a point that never completes is reported as CRASHED.
set -euo pipefail
cd "$(dirname "$0")/../.."
DUR=${BENCH_DURATION:-60}
WARM=${BENCH_WARMUP:-5}
OUT=bench/results
WORK=$(mktemp -d /tmp/sb-peers.XXXXXX)
mkdir -p "$OUT"
TSV=$OUT/peers.tsv
PIDS=()
cleanup() {
  [ -z "${RABBIT_PGID:-}" ] || stop_rabbit
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

. bench/lib.sh  # free_port, wait_port, bench_router_yaml

# --- servers -------------------------------------------------------------------------------------------
start_switchboard() { # durability
  local sync=full
  [ "$1" = second ] && sync=normal
  SB_DATA=$(free_port) SB_ADMIN=$(free_port)
  rm -rf "$WORK/sb" && mkdir -p "$WORK/sb"
  bench_router_yaml "$WORK/sb" "$sync" "$SB_DATA" "$SB_ADMIN"
  build/switchboard-router --config "$WORK/sb/router.yaml" >"$WORK/sb/router.log" 2>&1 &
  SERVER=$!
  PIDS+=("$SERVER")
  wait_port "$SB_ADMIN"
  SETTINGS="storage.sync: $sync (group commit)"
}

start_redis() { # durability
  local fsync=always
  [ "$1" = second ] && fsync=everysec
  RPORT=$(free_port)
  rm -rf "$WORK/redis" && mkdir -p "$WORK/redis"
  redis-server --port "$RPORT" --bind 127.0.0.1 --dir "$WORK/redis" --appendonly yes --appendfsync "$fsync" \
    --save "" --daemonize no --logfile "$WORK/redis/redis.log" &
  SERVER=$!
  PIDS+=("$SERVER")
  wait_port "$RPORT"
  SETTINGS="appendonly yes, appendfsync $fsync"
}

# nats-server from the Go module proxy (make build/peers/bin/nats-server, pinned in bench/peers/tools):
# Debian's 2.9 refuses sync_interval, so "fsync per batch" (always) and "about every second" (1s, not the
# default 2 min) could not be set.
NATS_SERVER=build/peers/bin/nats-server
start_nats() { # durability
  local sync=1s
  [ "$1" = batch ] && sync=always
  NPORT=$(free_port)
  rm -rf "$WORK/nats" && mkdir -p "$WORK/nats"
  SETTINGS="file storage, R1, sync_interval: $sync"
  printf 'listen: 127.0.0.1:%s\njetstream { store_dir: "%s", sync_interval: %s }\n' "$NPORT" "$WORK/nats" "$sync" >"$WORK/nats/nats.conf"
  if ! "$NATS_SERVER" -c "$WORK/nats/nats.conf" -t >"$WORK/nats/check.log" 2>&1; then
    echo "run.sh: $NATS_SERVER refuses $WORK/nats/nats.conf:" >&2
    cat "$WORK/nats/check.log" >&2
    exit 1
  fi
  "$NATS_SERVER" -c "$WORK/nats/nats.conf" >"$WORK/nats/nats.log" 2>&1 &
  SERVER=$!
  PIDS+=("$SERVER")
  wait_port "$NPORT"
}

# RabbitMQ (Debian's rabbitmq-server), not the system service: a broker of its own per point, its data,
# logs, config, Erlang cookie ($HOME) and plugins list (empty: no management plugin) in the run's
# directory; AMQP, distribution and epmd on free ports of 127.0.0.1; a unique node name; as the rabbitmq
# system user when run.sh runs as root. epmd is started here in the foreground (the VM is told not to
# start one), the broker's wrapper script in a process group of its own; stop_rabbit stops both by the
# PIDs recorded here.
RABBIT_PGID="" EPMD_PID=""
start_rabbitq() { start_rabbit quorum "$1"; }
start_rabbitc() { start_rabbit classic "$1"; }

rabbit_conf() { # dir: the broker's config and environment files
  printf 'listeners.tcp.default = 127.0.0.1:%s\nlog.console = false\nlog.file.level = warning\n' "$APORT" \
    >"$1/rabbitmq.conf"
  printf '[].\n' >"$1/enabled_plugins"
  : >"$1/rabbitmq-env.conf"
}

start_rabbit() { # queue-type (quorum|classic) durability: the same broker settings at both levels
  local d=$WORK/rabbit as=()
  APORT=$(free_port) RDIST=$(free_port) REPMD=$(free_port)
  rm -rf "$d" && mkdir -p "$d/mnesia" "$d/log" "$d/home"
  rabbit_conf "$d"
  if [ "$(id -u)" = 0 ] && id rabbitmq >/dev/null 2>&1; then
    chmod 711 "$WORK" && chown -R rabbitmq:rabbitmq "$d"
    as=(setpriv --reuid=rabbitmq --regid=rabbitmq --clear-groups)
  fi
  setsid "${as[@]}" env ERL_EPMD_ADDRESS=127.0.0.1 epmd -port "$REPMD" -address 127.0.0.1 >"$d/epmd.log" 2>&1 &
  EPMD_PID=$!
  wait_port "$REPMD"
  setsid "${as[@]}" env HOME="$d/home" ERL_EPMD_ADDRESS=127.0.0.1 ERL_EPMD_PORT="$REPMD" \
    ERL_CRASH_DUMP="$d/erl_crash.dump" RABBITMQ_NODENAME="sbbench-$$-$RANDOM@localhost" \
    RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT="$APORT" RABBITMQ_DIST_PORT="$RDIST" \
    RABBITMQ_MNESIA_BASE="$d/mnesia" RABBITMQ_LOG_BASE="$d/log" RABBITMQ_CONFIG_FILE="$d/rabbitmq.conf" \
    RABBITMQ_ADVANCED_CONFIG_FILE="$d/advanced.config" RABBITMQ_CONF_ENV_FILE="$d/rabbitmq-env.conf" \
    RABBITMQ_ENABLED_PLUGINS_FILE="$d/enabled_plugins" RABBITMQ_PID_FILE="$d/rabbit.pid" \
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-start_epmd false -kernel inet_dist_use_interface {127,0,0,1}" \
    /usr/lib/rabbitmq/bin/rabbitmq-server >"$d/server.log" 2>&1 &
  RABBIT_PGID=$!
  rabbit_wait "$d"
  SETTINGS="quorum queue (1 node), persistent messages, publisher confirms: a confirm follows the Raft log's fsync"
  [ "$1" = classic ] && SETTINGS="durable classic queue, persistent messages, publisher confirms: a confirm follows \
the fsync (batched) of the message store or queue index"
  [ "$2" = second ] && SETTINGS="the same as fsync per batch: RabbitMQ has no weaker setting with confirms"
  return 0
}

rabbit_wait() { # dir: the VM (SERVER, for CPU and RSS) and then the AMQP listener, up to 60 s
  SERVER=""
  for _ in $(seq 600); do
    [ -n "$SERVER" ] || SERVER=$(pgrep -P "$RABBIT_PGID" -x beam.smp || true)
    [ -n "$SERVER" ] && (exec 3<>"/dev/tcp/127.0.0.1/$APORT") 2>/dev/null && return 0
    kill -0 "$RABBIT_PGID" 2>/dev/null || break
    sleep 0.1
  done
  echo "run.sh: rabbitmq-server did not start; its log:" >&2
  tail -n 30 "$1/server.log" "$1"/log/*.log >&2 || true
  return 1
}

# A process's start time (field 22 of /proc/PID/stat), empty once it has exited (or is a zombie): with the
# PID it names one process, not a later one that reuses the PID.
start_time() { awk '{sub(/^.*\) /, ""); if ($1 != "Z") print $20}' "/proc/$1/stat" 2>/dev/null || true; }

tree_ids() { # pid: "pid:start-time" of it and of each of its descendants
  local c
  echo "$1:$(start_time "$1")"
  for c in $(pgrep -P "$1" || true); do tree_ids "$c"; done
}

# The broker's wrapper script stops the VM cleanly on SIGTERM; the VM's erl_child_setup and inet_gethost run
# in sessions of their own and leave with it. Its process tree is recorded first: whatever of it is still
# there afterwards is killed by PID (the same start time, so never a process that reused the PID), then epmd
# is stopped.
stop_rabbit() {
  local id left tree
  tree=$(tree_ids "$RABBIT_PGID")
  kill -TERM "$RABBIT_PGID" 2>/dev/null || true
  for _ in $(seq 300); do
    if [ -z "$SERVER" ] || ! kill -0 "$SERVER" 2>/dev/null; then break; fi
    sleep 0.1
  done
  kill -KILL -- "-$RABBIT_PGID" 2>/dev/null || true
  wait "$RABBIT_PGID" 2>/dev/null || true
  for _ in $(seq 50); do
    left=0
    for id in $tree; do
      if [ -n "${id#*:}" ] && [ "$(start_time "${id%%:*}")" = "${id#*:}" ]; then
        kill -KILL "${id%%:*}" 2>/dev/null || true
        left=1
      fi
    done
    [ "$left" = 1 ] || break
    sleep 0.1
  done
  kill -TERM "$EPMD_PID" 2>/dev/null || true
  wait "$EPMD_PID" 2>/dev/null || true
  RABBIT_PGID="" EPMD_PID=""
}

stop_server() {
  if [ -n "$RABBIT_PGID" ]; then
    stop_rabbit
    return
  fi
  kill "$SERVER" 2>/dev/null || true
  wait "$SERVER" 2>/dev/null || true
}

# --- one point -----------------------------------------------------------------------------------------
load() { # system pc size rate -> report on stdout
  local sys=$1 pc=$2 size=$3 rate=$4
  case $sys in
    switchboard) build/rel/bench/loadgen --data "http://127.0.0.1:$SB_DATA" --admin "http://127.0.0.1:$SB_ADMIN" \
        --producers "$pc" --consumers "$pc" --agents "$pc" --batch 200 --size "$size" --duration "$DUR" --warmup "$WARM" \
        --rate "$rate" --pid "$SERVER" ;;
    redis) build/peers/peer_redis --url "127.0.0.1:$RPORT" --producers "$pc" --consumers "$pc" --batch 200 \
        --size "$size" --duration "$DUR" --warmup "$WARM" --rate "$rate" --server-pid "$SERVER" ;;
    nats) build/peers/peer_nats --url "nats://127.0.0.1:$NPORT" --producers "$pc" --consumers "$pc" --batch 200 \
        --size "$size" --duration "$DUR" --warmup "$WARM" --rate "$rate" --server-pid "$SERVER" ;;
    rabbitq|rabbitc) build/peers/peer_rabbit --queue "$([ "$sys" = rabbitq ] && echo quorum || echo classic)" \
        --url "127.0.0.1:$APORT" --producers "$pc" --consumers "$pc" --batch 200 --size "$size" --duration "$DUR" \
        --warmup "$WARM" --rate "$rate" --server-pid "$SERVER" ;;
  esac
}

field() { # report-file awk-program
  awk "$2" "$1"
}

record() { # system durability pc size mode rate file
  local f=$7 tput p50 p99 p999 cpu rss lost lgcpu status=ok
  tput=$(field "$f" '/consumed\+acked/{print int($(NF-1))}')
  p50=$(field "$f" '/latency produce->consume/{gsub(",","");print $5}')
  p99=$(field "$f" '/latency produce->consume/{gsub(",","");print $8}')
  p999=$(field "$f" '/latency produce->consume/{gsub(",","");print $11}')
  cpu=$(field "$f" '/cpu-s per million/{for(i=1;i<=NF;i++) if($i=="cpu-s") print $(i-1)}')
  lgcpu=$(field "$f" '/loadgen cpu/{for(i=1;i<NF;i++) if($i=="loadgen" && $(i+1)=="cpu") print $(i+2)}')
  rss=$(field "$f" '/ rss /{print $(NF-1)}')
  lost=$(field "$f" '/totals/{print $NF}')
  grep -q FAILURE "$f" && status=LOST
  grep -q "e2e: totals" "$f" || status=CRASHED
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" "$6" "${tput:-0}" \
    "${p50:-}" "${p99:-}" "${p999:-}" "${cpu:-}" "${rss:-}" "${lost:-}" "$status" "${lgcpu:-}" >>"$TSV"
}

measure() { # system durability pc size rate out-file: one point on a fresh server, retried after a crash
  local try
  for try in 1 2 3; do
    "start_$1" "$2"
    load "$1" "$3" "$4" "$5" 2>&1 | tee "$6" || true
    stop_server
    grep -q "e2e: totals" "$6" && return 0
    echo "== $1: the load generator did not finish (attempt $try of 3)"
  done
}

SYSTEMS=${PEERS_SYSTEMS:-switchboard redis nats rabbitq rabbitc}
LEVELS=${PEERS_LEVELS:-batch second}
STARTED=$(date -u +%Y-%m-%dT%H:%M:%SZ)
REV=$(git describe --always)
[ -z "$(git status --porcelain --untracked-files=no -- . ':(exclude)bench/results')" ] || REV=$REV-dirty
HEADER='system\tdurability\tpc\tsize\tmode\trate\tthroughput\tp50_ms\tp99_ms\tp999_ms\tcpu_s_per_m\trss_mib\tlost\tstatus\tloadgen_cpu\n'
if [ -z "${PEERS_SYSTEMS:-}${PEERS_LEVELS:-}" ] || [ ! -s "$TSV" ]; then
  printf "$HEADER" >"$TSV"
  : >"$OUT/peers-settings.tsv"
  : >"$OUT/peers-runs.tsv"
else # a partial run: drop the rows about to be measured again
  for sys in $SYSTEMS; do
    for dur in $LEVELS; do
      awk -F'\t' -v s="$sys" -v d="$dur" '!($1 == s && $2 == d)' "$TSV" >"$WORK/tsv" && cat "$WORK/tsv" >"$TSV"
      awk -F'\t' -v s="$sys" -v d="$dur" '!($1 == s && $2 == d)' "$OUT/peers-settings.tsv" >"$WORK/set" &&
        cat "$WORK/set" >"$OUT/peers-settings.tsv"
    done
  done
fi
for dur in $LEVELS; do
  for sys in $SYSTEMS; do
    for size in 256 4096; do
      for pc in 1 4; do
        echo "== $sys, fsync per $dur, ${size} B, $pc producer(s)/$pc consumer(s): maximum"
        measure "$sys" "$dur" "$pc" "$size" 0 "$WORK/max.txt"
        printf '%s\t%s\t%s\n' "$sys" "$dur" "$SETTINGS" >>"$OUT/peers-settings.tsv"
        record "$sys" "$dur" "$pc" "$size" max 0 "$WORK/max.txt"
        max=$(field "$WORK/max.txt" '/consumed\+acked/{print int($(NF-1))}')
        half=$(( ${max:-0} / 2 ))
        [ "$half" -gt 0 ] || continue
        echo "== $sys, fsync per $dur, ${size} B, $pc/$pc: latency at 50 % of its maximum ($half msg/s)"
        measure "$sys" "$dur" "$pc" "$size" "$half" "$WORK/half.txt"
        record "$sys" "$dur" "$pc" "$size" half "$half" "$WORK/half.txt"
      done
    done
  done
done
sort -u "$OUT/peers-settings.tsv" -o "$OUT/peers-settings.tsv"
printf '%s\t%s\t%s\t%s\t%s\n' "$STARTED" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$SYSTEMS" "$LEVELS" "$REV" \
  >>"$OUT/peers-runs.tsv"
/usr/bin/python3 bench/peers/report.py
