"""schemathesis hooks of the API contract test (tests/api/run.py loads them with SCHEMATHESIS_HOOKS).

A long poll may wait up to delivery.maxWaitMs (30 s by default) and the contract says so; here a
valid `wait_ms` is scaled down to at most 50 ms before the request goes out, so that every phase
(examples, coverage, fuzzing) still asks for a real wait without the run lasting minutes. The
router under test also has delivery.maxWaitMs 200, which bounds what this hook does not see.
"""
import json
import os

import schemathesis

MAX_WAIT_MS = 50


@schemathesis.hook
def before_call(context, case, kwargs):
    q = case.query
    if not isinstance(q, dict) or "wait_ms" not in q:
        return
    v = q["wait_ms"]
    if isinstance(v, bool) or not isinstance(v, int):
        return
    if v > MAX_WAIT_MS:
        q["wait_ms"] = v % (MAX_WAIT_MS + 1)


@schemathesis.hook
def after_call(context, case, response):
    """One line per request (method, path template, status) for run.py's summary."""
    path = os.environ.get("SB_API_CALLS")
    if path:
        with open(path, "a") as f:
            f.write(f"{case.method} {case.path} {response.status_code}\n")


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx, value):
    """The contract describes an NDJSON body as the array of its lines' messages: one JSON line each."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, list):
        return "".join(json.dumps(v, ensure_ascii=False) + "\n" for v in value).encode()
    return (json.dumps(value, ensure_ascii=False) + "\n").encode()


AGENTS = ("alice", "bob")


def _known_agents(case, m, i):
    """Most generated messages name agents that exist (the caller's own id as sender), so that they
    reach the store, the queues, conversations and pulls rather than stopping at 404 or 403."""
    if not isinstance(m, dict) or i % 4 == 3:
        return
    if isinstance(m.get("receiver"), str):
        m["receiver"] = AGENTS[i % 2]
    if isinstance(m.get("sender"), str):
        m["sender"] = os.environ.get("SB_API_SENDER") or AGENTS[(i + 1) % 2]


@schemathesis.hook("before_call")
def known_agents(context, case, kwargs):
    if case.method != "POST" or case.path != "/v1/messages":
        return
    body = case.body
    if isinstance(body, dict) and isinstance(body.get("messages"), list):
        items = body["messages"]
    elif isinstance(body, list):
        items = body
    else:
        items = [body]
    for i, m in enumerate(items):
        _known_agents(case, m, i)
