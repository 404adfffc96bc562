#!/usr/bin/env python3
"""Generate docs/config.md from the schema table in lib/cfg.c and the
profile defaults the router prints.  `--check` fails when the committed doc
is out of date (run by make test), so the reference cannot drift."""
import os
import subprocess
import sys
import tempfile

import cfgschema

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BIN = os.path.join(ROOT, "build", "switchboard-router")
DOC = os.path.join(ROOT, "docs", "config.md")
RELOAD_DOC = os.path.join(ROOT, "docs", "reload.md")
RELOAD_INTRO = """# Hot reload

A running router takes a new configuration from any of three triggers:

- **the config file changes**: the router watches the file's directory with inotify, so it sees both an
  edited file and a Kubernetes ConfigMap volume's atomic `..data` symlink swap, and reloads when the
  file's bytes change;
- **SIGHUP**: re-read the config file;
- **`POST /admin/reload`** on the admin port, with the whole new config (YAML or JSON) as the body, or an
  empty body to re-read the file. With `security.auth: token` it needs `Authorization: Bearer <admin
  token>` (the token in `security.adminTokenFile`).

Each reload runs one pipeline, one reload at a time: **parse**, **validate** (every problem, with its
field path), **diff** against the running config field by field, **classify** each change with the
table below (the same table `lib/` gives the operator), then:

| outcome | when | what changes | reply to /admin/reload |
|---|---|---|---|
| `rejected` | the config does not parse or validate | nothing: the running config stays | 422 with every error |
| `unchanged` | no field differs | nothing | 200 |
| `restart_required` | any change is restart-class, or a queue bound would shrink below what is queued | nothing: the router keeps running its current config | 409 with the fields |
| `applied` | every change is hot | all of them, as one swap | 200 with the changes |

An applied config is swapped atomically: the routing core takes it under its lock in one step (no request
ever sees half of it), and the snapshot the HTTP handlers read is published with RCU (liburcu) and the old
one freed once no reader holds it. Agents added start accepting at once; agents removed stop accepting new
messages (409 `AgentNotAccepting`) but keep their queued messages deliverable until they are acked, then
become `Stopped`. Nothing queued is ever dropped by a reload.

Every outcome is reported four ways: the reply (above); `GET /v1/status` (`generation`, `config_hash`,
`restart_required`, `restart_fields`, `last_reload`); a `config reload` log line; and the metrics
`switchboard_router_config_reloads_total{result}`, `switchboard_router_config_last_reload_successful`,
`switchboard_router_config_last_reload_success_timestamp_seconds`, `switchboard_router_config_restart_required`
and `switchboard_router_config_info{hash,generation}`.

## The hot/restart table

Generated from `lib/cfg.c` by `scripts/gen-config-doc.py` (`make test` fails when it is out of date).
Agents (`agents[]`: added, removed or changed) are always hot.

| field | class |
|---|---|
"""

HELP = {
    "profile": "Defaults to start from: development, production or highThroughput. Explicit fields override them.",
    "performance.inboundQueueSize": "Messages the router accepts before back-pressure, summed over agents. Must be at least 2x batchSize.",
    "performance.agentQueueSize": "Default bound of each agent's queue; a full queue answers 429 with Retry-After.",
    "performance.workerThreads": "Threads for push delivery; a warning is given above 2x the cores.",
    "performance.batchSize": "Messages processed per batch internally.",
    "performance.messageTimeoutMs": "Default delivery deadline of a message (its delivery.timeout_ms overrides).",
    "performance.processingTimeoutMs": "Longest a single delivery attempt may take; must be below messageTimeoutMs.",
    "performance.maxConcurrentMessages": "Largest number of messages held (queued plus in flight) across all agents.",
    "performance.memoryLimitBytes": "Memory the router may use; the estimate (docs/router.md) must fit. Accepts 512Mi, 1Gi ...",
    "performance.estimatedMessageBytes": "Average message size used by the memory estimate.",
    "delivery.maxRetries": "Delivery attempts after the first before a message is dead-lettered.",
    "delivery.baseRetryDelayMs": "First retry delay.",
    "delivery.retryBackoffFactor": "Multiplier between successive retry delays.",
    "delivery.retryJitterMs": "Random jitter added to each retry delay.",
    "delivery.retryMaxDelayMs": "Cap on the retry delay; must be at least baseRetryDelayMs.",
    "delivery.connectionPoolSize": "Keep-alive connections per push endpoint.",
    "delivery.connectionTimeoutMs": "TCP/TLS connect timeout for push delivery; at most requestTimeoutMs.",
    "delivery.requestTimeoutMs": "Timeout of one push request.",
    "delivery.leaseTimeoutMs": "How long pulled messages stay leased before they are redelivered.",
    "delivery.maxPullBatch": "Largest `max` a pull may ask for.",
    "delivery.maxWaitMs": "Largest `wait_ms` a long poll may ask for.",
    "delivery.dedupWindowMs": "How long an accepted message_id is remembered; 0 disables deduplication.",
    "delivery.circuitBreaker.threshold": "Consecutive failures that open an endpoint's breaker.",
    "delivery.circuitBreaker.timeoutMs": "How long a breaker stays open before half-open probes.",
    "delivery.circuitBreaker.halfOpenMaxCalls": "Probe requests allowed while half-open.",
    "delivery.deadLetter.maxSize": "Bound on dead-letter entries; the oldest are dropped past it.",
    "delivery.deadLetter.retentionMs": "How long dead letters are kept.",
    "delivery.batch.enabled": "Group push deliveries into batches.",
    "delivery.batch.maxSize": "Messages per push batch.",
    "delivery.batch.timeoutMs": "Longest a push batch waits to fill.",
    "conversation.timeoutMs": "A conversation with no message for this long expires.",
    "conversation.maxParticipants": "Distinct agents allowed in one conversation.",
    "conversation.maxActive": "Active conversations allowed; new ones beyond get 429.",
    "observability.logLevel": "debug, info, warn or error.",
    "observability.logSampleRate": "Fraction of per-message routing logs written (0 to 1).",
    "observability.tracingEnabled": "Propagate and log W3C trace context.",
    "observability.traceSamplingRatio": "Fraction of traces recorded.",
    "observability.metricsEnabled": "Serve /metrics.",
    "storage.path": "SQLite database file.",
    "storage.sync": "full: every commit is fsynced before any message in it is acknowledged. normal: the WAL is fsynced at checkpoints; a process crash loses nothing, a power loss can lose the last commits.",
    "storage.commitBatchMax": "Most operations in one transaction (group commit).",
    "storage.commitDelayUs": "Longest the writer waits for more work before committing (0: commit at once).",
    "storage.busyTimeoutMs": "SQLite busy timeout.",
    "network.bindAddress": "Address both ports listen on (numeric IPv4 or IPv6).",
    "network.dataPort": "Port of the message API.",
    "network.adminPort": "Port of /healthz, /readyz, /metrics and /v1/status.",
    "network.maxConnections": "Concurrent connections on the data port (one thread each); one more is closed at "
                              "accept.",
    "network.maxConnectionsPerAddress": "Concurrent data-port connections from one client address (0: no limit of "
                                        "its own), so one client cannot take every connection. Behind a proxy or a "
                                        "service-mesh sidecar every client has the proxy's address: raise it or set "
                                        "0 there.",
    "network.idleTimeoutSeconds": "A connection (data, admin and peer ports) is closed after this long without "
                                  "traffic, or when it has not sent a whole request's headers this long after it "
                                  "opened or after its previous answer (a client trickling a byte at a time). A "
                                  "request at work, such as a long poll waiting, is never cut.",
    "shutdown.timeoutMs": "On SIGTERM the process exits within this time, forcibly if need be.",
    "security.auth": "none (development only) or token (per-agent bearer tokens).",
    "security.maxMessageBytes": "Largest message content (decoded); larger gets 413.",
    "security.maxRequestBytes": "Largest request body; must be at least maxMessageBytes.",
    "security.adminTokenFile": "File holding the admin token for reload and dead-letter replay.",
    "cluster.replicas": "Router replicas that act as one router: each agent is owned by one ordinal "
                        "(rendezvous hashing of its id). Rendered by the operator; see docs/cluster.md.",
    "cluster.peerHost": "A peer's host name with {ordinal} for its ordinal, e.g. r1-{ordinal}.r1-peers.ns.svc "
                        "(rendered by the operator); required with more than one replica. The peer port is served only "
                        "when it is set.",
    "cluster.resolve": "host:port:address entries, comma-separated, that pin peer names to addresses "
                       "(libcurl CURLOPT_RESOLVE) instead of the resolver; for clusters without DNS and tests.",
    "cluster.forwardTimeoutMs": "How long a forwarded request may take before the client gets 503.",
    "cluster.handoffTimeoutMs": "How long a router holds an agent that moves to it (503 for new messages) while its "
                                "previous owner hands its stored messages off; after that it delivers what it has.",
    "cluster.peerConnections": "Kept-alive connections to each peer, at most; more requests wait for one.",
    "network.peerPort": "Where the other replicas forward requests; 0 picks a free port (tests).",
    "cluster.ordinal": "This router's ordinal (its StatefulSet pod index, set by the operator with --set).",
    "security.tls.enabled": "Serve the data port over TLS (and the admin port, see admin).",
    "security.tls.admin": "With TLS, serve the admin port over TLS too. The operator sets it to false: it reaches "
                          "the admin port over plain HTTP on the pod network.",
    "security.tls.certFile": "PEM certificate chain (required with TLS). A replaced file is picked up within "
                             "a second, without a restart.",
    "security.tls.keyFile": "PEM private key matching certFile (required with TLS); reloaded with it.",
    "agents[].id": "Agent id: letters, digits, '.', '_' and '-', at most 253.",
    "agents[].mode": "pull (the agent long-polls its mailbox) or push (the router POSTs to endpoint).",
    "agents[].state": "Unloaded, Loaded, Running, Draining or Stopped. Only Loaded and Running accept new messages.",
    "agents[].endpoint": "http(s) URL for push mode; forbidden in pull mode.",
    "agents[].protocol": "How a push agent receives each message: fipa (the FIPA-ACL message POSTed as JSON) or "
                         "a2a (an A2A JSON-RPC SendMessage call, docs/a2a.md). a2a requires mode push. Default fipa.",
    "agents[].timeoutMs": "Per-request timeout for push delivery to this agent.",
    "agents[].maxInFlight": "Push requests in flight to this agent.",
    "agents[].queueSize": "Overrides performance.agentQueueSize for this agent (0: use the default).",
    "agents[].tokenSha256": "SHA-256 (hex) of the agent's bearer token; the token itself is never stored.",
    "agents[].rateLimit.messagesPerSecond": "Token-bucket rate for messages this agent sends (0: unlimited).",
    "agents[].rateLimit.burst": "Token-bucket burst.",
    "agents[].notifyOnFailure": "Send this agent a FIPA failure message when one of its messages dies.",
    "agents[].capabilities": "List of {name, description}.",
}

RELOAD = {"H": "hot", "G": "hot if it grows (shrinking: hot only if current depth fits)", "R": "restart"}


def defaults(profile):
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
        f.write(f"profile: {profile}\nsecurity: {{auth: none}}\n")
        f.flush()
        out = subprocess.run([BIN, "--print-config", "--config", f.name], capture_output=True, text=True)
    vals, stack = {}, []
    for line in out.stdout.splitlines():
        if line.startswith("agents") or line.startswith("- "):
            break
        indent = (len(line) - len(line.lstrip())) // 2
        key, _, val = line.strip().partition(":")
        stack = stack[:indent] + [key]
        if val.strip():
            vals[".".join(stack)] = val.strip()
    return vals


def fmt(v):
    return f"{v:g}" if isinstance(v, float) and v != int(v) else f"{int(v)}"


def render():
    rows = cfgschema.table()
    prof = {p: defaults(p) for p in ("development", "production", "highThroughput")}
    lines = ["# Router configuration reference", "",
             "Generated by `scripts/gen-config-doc.py` from the schema table in `lib/cfg.c`; `make test` fails",
             "when it is out of date. The same schema is the `spec.router` section of the RouterConfig CRD.",
             "Keys are camelCase; unknown keys are rejected. Profiles supply defaults, explicit fields override",
             "them (the production default of `security.auth` is `token`; the columns below show it with `none`",
             "so that the rest of the profile prints). `reload` says how a change reaches a running router:",
             "see docs/reload.md.", "",
             "| field | type | range | development | production | highThroughput | reload | meaning |",
             "|---|---|---|---|---|---|---|---|"]
    for path, lo, hi, en, ftype, reload in rows:
        if ftype == "F_ENUM":
            rng, typ = " \\| ".join(en), "enum"
        elif ftype == "F_STR":
            rng, typ = f"length ≤ {fmt(hi)}", "string"
        elif ftype == "F_BOOL":
            rng, typ = "true/false", "bool"
        else:
            typ = {"F_INT": "integer", "F_BYTES": "bytes", "F_DOUBLE": "number"}[ftype]
            rng = f"{fmt(lo)} – {fmt(hi)}"
        d = [prof[p].get(path, "") if not path.startswith("agents") else "" for p in prof]
        lines.append(f"| `{path}` | {typ} | {rng} | {d[0]} | {d[1]} | {d[2]} | {RELOAD[reload]} | {HELP.get(path, '')} |")
    lines.append(f"| `agents[].capabilities` | list | ≤ 100 / ≤ 1000 chars | | | | hot | {HELP['agents[].capabilities']} |")
    return "\n".join(lines) + "\n"


def render_reload():
    rows = [r for r in cfgschema.table() if not r[0].startswith("agents[]")]
    return RELOAD_INTRO + "".join(f"| `{p}` | {RELOAD[rl]} |\n" for p, _, _, _, _, rl in rows)


def main():
    docs = {DOC: render(), RELOAD_DOC: render_reload()}
    if "--check" in sys.argv:
        stale = [p for p, t in docs.items() if not os.path.exists(p) or open(p).read() != t]
        if stale:
            print(", ".join(os.path.relpath(p, ROOT) for p in stale) + " out of date: run scripts/gen-config-doc.py",
                  file=sys.stderr)
            return 1
        return 0
    for p, t in docs.items():
        with open(p, "w") as f:
            f.write(t)
    return 0


if __name__ == "__main__":
    sys.exit(main())
