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
