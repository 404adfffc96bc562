"""The JavaScript SDK (@a2a-js/sdk, pinned in js/package-lock.json) against the router: node runs
js/client.mjs, which resolves the agent card with the SDK's ClientFactory and sends with its JSON-RPC
client's sendMessage, then reads the Task back with getTask.

Needs node >= 20 and `npm ci` in tests/a2a/js (make a2a-test runs scripts/jstools.sh, which does it);
skipped when either is missing. The script is first checked against the Python SDK's A2A server, so a
failure against the router is the router's."""
import json
import os
import shutil
import subprocess

import pytest

from harness import HERE
from sdk_agent import SdkAgent

JS = os.path.join(HERE, "js")


def node_ready():
    node = shutil.which("node")
    if not node:
        return "node is not installed"
    try:
        major = int(subprocess.run([node, "--version"], capture_output=True, text=True, timeout=10)
                    .stdout.strip().lstrip("v").split(".")[0])
    except (ValueError, OSError, subprocess.SubprocessError):
        return "node --version failed"
    if major < 20:
        return f"@a2a-js/sdk needs node >= 20, this is node {major}"
    if not os.path.isdir(os.path.join(JS, "node_modules", "@a2a-js", "sdk")):
        return "tests/a2a/js has no node_modules: run scripts/jstools.sh tests/a2a/js (make a2a-test does)"
    return None


pytestmark = pytest.mark.skipif(node_ready() is not None, reason=str(node_ready()))


def js_client(base, message_id, context_id, text, sender=None):
    args = ["node", os.path.join(JS, "client.mjs"), base, message_id, context_id, text] + ([sender] if sender else [])
    p = subprocess.run(args, capture_output=True, text=True, timeout=60, cwd=JS)
    try:
        out = json.loads(p.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise AssertionError(f"client.mjs printed no JSON (exit {p.returncode}): {p.stdout!r} {p.stderr[-2000:]}")
    assert p.returncode == 0 and "error" not in out, f"client.mjs failed: {out.get('error', out)}"
    return out


def test_js_client_against_the_python_sdk_server():
    agent = SdkAgent().start()
    try:
        out = js_client(agent.base, "js-fx-1", "ctx-js-fx", "hello from node")
        assert out["card"]["name"] == "sdkagent"
        assert out["sent"]["parts"] == [{"text": "echo: hello from node"}]
        (received, context_id), = agent.received()
        assert (received.message_id, context_id) == ("js-fx-1", "ctx-js-fx")
    finally:
        agent.stop()


def test_js_client_resolves_the_card_and_sends_through_the_router(start_router):
    r = start_router()
    out = js_client(r.base("bob"), "js-1", "ctx-js", "sent by @a2a-js/sdk", "alice")
    card = out["card"]
    assert card["name"] == "bob" and [s["id"] for s in card["skills"]] == ["search", "review"]
    assert {"url": r.base("bob"), "protocolBinding": "JSONRPC", "protocolVersion": "1.0"} in \
        card["supportedInterfaces"]
    task = out["sent"]
    assert (task["id"], task["contextId"], task["status"]["state"]) == ("js-1", "ctx-js", "TASK_STATE_SUBMITTED")
    assert out["got"]["id"] == "js-1" and out["got"]["status"]["state"] == "TASK_STATE_SUBMITTED"
    got = r.pull_one("bob")
    m = got["message"]
    assert (got["message_id"], m["sender"], m["conversation_id"], m["content"], m["performative"]) == \
        ("js-1", "alice", "ctx-js", "sent by @a2a-js/sdk", "request")
