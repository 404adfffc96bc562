# Shared helpers for the benchmark scripts (sourced, not run): free ports on 127.0.0.1, waiting for a
# listener, and the router config every router benchmark uses, so bench/ab.sh and bench/peers/run.sh
# measure the same router.

# A free TCP port on 127.0.0.1 (the kernel picks it).
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Wait up to 10 s for a listener on 127.0.0.1:PORT.
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }

# bench_router_yaml DIR SYNC DATA_PORT ADMIN_PORT: write DIR/router.yaml (production profile, auth off, four
# agents a0..a3, one per consumer of the load generators, database DIR/bench.db, storage.sync SYNC).
bench_router_yaml() {
  cat >"$1/router.yaml" <<YAML
profile: production
security: {auth: none}
storage: {path: $1/bench.db, sync: $2}
network: {bindAddress: 127.0.0.1, dataPort: $3, adminPort: $4, maxConnections: 64}
observability: {logLevel: warn}
performance: {workerThreads: 4, agentQueueSize: 1000000, maxConcurrentMessages: 10000000, memoryLimitBytes: 64Gi}
delivery: {dedupWindowMs: 60000}
agents: [{id: a0}, {id: a1}, {id: a2}, {id: a3}]
YAML
}

# --- two routers acting as one (bench/cluster.sh, bench/handoff.sh) ------------------------------
# Set CL_ADDRS (two addresses), CL_DATA, CL_ADMIN, CL_PEER (ports every router uses on its own address)
# and CL_WORK (a directory, e.g. from mktemp -d) before calling these.

# cluster_yaml ORDINAL REPLICAS SYNC: write $CL_WORK/rORDINAL.yaml, agents a0..a31, the peers named
# r-{ordinal}.peers.bench and pinned to CL_ADDRS with cluster.resolve.
cluster_yaml() {
  local agents resolve
  agents=$(for i in $(seq 0 31); do printf '{id: a%d}, ' "$i"; done)
  resolve="r-0.peers.bench:$CL_PEER:${CL_ADDRS[0]},r-1.peers.bench:$CL_PEER:${CL_ADDRS[1]}"
  cat >"$CL_WORK/r$1.yaml" <<YAML
profile: production
security: {auth: none}
storage: {path: $CL_WORK/r$1.db, sync: $3}
network: {bindAddress: ${CL_ADDRS[$1]}, dataPort: $CL_DATA, adminPort: $CL_ADMIN, peerPort: $CL_PEER, maxConnections: 128}
observability: {logLevel: warn}
performance: {workerThreads: 4, agentQueueSize: 1000000, maxConcurrentMessages: 10000000, memoryLimitBytes: 64Gi}
cluster: {replicas: $2, ordinal: $1, peerHost: "r-{ordinal}.peers.bench", resolve: "$resolve", peerConnections: 64}
agents: [${agents%, }]
YAML
}

# cluster_start: stop the routers in CL_PIDS, then start one per $CL_WORK/rK.yaml on fresh databases
# (message ids repeat between runs, and the dedup window would drop them) and wait until they are ready.
CL_PIDS=()
cluster_start() {
  cluster_stop
  rm -f "$CL_WORK"/r*.db*
  for k in 0 1; do
    build/switchboard-router --config "$CL_WORK/r$k.yaml" >"$CL_WORK/r$k.log" 2>&1 &
    CL_PIDS+=($!)
  done
  for k in 0 1; do
    for _ in $(seq 100); do curl -sf -o /dev/null "http://${CL_ADDRS[$k]}:$CL_ADMIN/readyz" && break; sleep 0.1; done
  done
}

# cluster_stop: stop every router this script started, by PID.
cluster_stop() {
  for p in "${CL_PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  CL_PIDS=()
}

# owned_by ORDINAL REPLICAS: four of the agents a0..a31 that ORDINAL owns under REPLICAS, comma-separated
# (the routers' own rendezvous hashing, through build/rel/bench/own_of).
owned_by() {
  for i in $(seq 0 31); do echo "a$i"; done | build/rel/bench/own_of "$2" | awk -v o="$1" '$2 == o {print $1}' |
    head -4 | paste -sd,
}
