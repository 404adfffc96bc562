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
    "network.maxConnections": "Concurrent connections on the data port (one thread each).",
    "shutdown.timeoutMs": "On SIGTERM the process exits within this time, forcibly if need be.",
    "security.auth": "none (development only) or token (per-agent bearer tokens).",
    "security.maxMessageBytes": "Largest message content (decoded); larger gets 413.",
    "security.maxRequestBytes": "Largest request body; must be at least maxMessageBytes.",
    "security.adminTokenFile": "File holding the admin token for reload and dead-letter replay.",
    "security.tls.enabled": "Serve both ports over TLS.",
    "security.tls.certFile": "PEM certificate (required with TLS).",
    "security.tls.keyFile": "PEM private key (required with TLS).",
    "agents[].id": "Agent id: letters, digits, '.', '_' and '-', at most 253.",
    "agents[].mode": "pull (the agent long-polls its mailbox) or push (the router POSTs to endpoint).",
    "agents[].state": "Unloaded, Loaded, Running, Draining or Stopped. Only Loaded and Running accept new messages.",
    "agents[].endpoint": "http(s) URL for push mode; forbidden in pull mode.",
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


def main():
    text = render()
    if "--check" in sys.argv:
        if not os.path.exists(DOC) or open(DOC).read() != text:
            print("docs/config.md is out of date: run scripts/gen-config-doc.py", file=sys.stderr)
            return 1
        return 0
    with open(DOC, "w") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
