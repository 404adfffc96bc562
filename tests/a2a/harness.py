"""The A2A suite's harness: real switchboard-router processes (the integration suite's Router class,
imported from tests/integration/conftest.py, not copied), JSON-RPC helpers that check every answer
against docs/a2a.md's shapes, and small waits.

All traffic is on 127.0.0.1. The router binary is build/switchboard-router (make a2a-test builds it);
SB_ROUTER names another (e.g. build/switchboard-router-san for the sanitizer build)."""
import hashlib
import importlib.util
import json
import os
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))


def _load_integration_conftest():
    # Loaded by path under its own name: this suite's conftest.py is `conftest` here, so the
    # integration suite's cannot be imported as `conftest` alongside it.
    name = "switchboard_integration_conftest"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "tests", "integration", "conftest.py"))
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


_it = _load_integration_conftest()
Router = _it.Router
strict_json = _it.strict_json
serve_http = _it.serve_http
PushEndpoint = _it.PushEndpoint
free_port = _it.free_port
REL_BIN = _it.REL_BIN

ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
STATES_10 = {"TASK_STATE_SUBMITTED", "TASK_STATE_WORKING", "TASK_STATE_COMPLETED", "TASK_STATE_FAILED",
             "TASK_STATE_CANCELED"}
STATES_03 = {"submitted", "working", "completed", "failed", "canceled"}
# docs/a2a.md: a failed Task's status.message carries one of these reasons
FAIL_REASONS = ("AgentNotResponding", "Timeout", "NetworkError", "InvalidMessage")  # rt_death_name()

# the agents most tests use: alice sends (and gets failure notices), bob receives by pull
DEFAULT_AGENTS = [
    {"id": "alice", "mode": "pull", "notifyOnFailure": True,
     "capabilities": [{"name": "planning", "description": "Plans multi-step tasks"}]},
    {"id": "bob", "mode": "pull",
     "capabilities": [{"name": "search", "description": "Looks things up"},
                      {"name": "review", "description": "Reviews plans"}]},
]


# security.auth: token (docs/a2a.md): every agent has a bearer token; the router keeps only SHA-256s
TOKENS = {"alice": "alice-a2a-token", "bob": "bob-a2a-token", "carol": "carol-a2a-token"}
ADMIN_TOKEN = "admin-a2a-token"
# {adminTokenFile} becomes a file in the router's directory holding ADMIN_TOKEN (token auth needs one)
TOKEN_CONFIG = "security:\n  auth: token\n  adminTokenFile: {adminTokenFile}\n"


def token_agents():
    agents = [dict(a) for a in DEFAULT_AGENTS] + [{"id": "carol", "mode": "pull"}]
    for a in agents:
        a["tokenSha256"] = hashlib.sha256(TOKENS[a["id"]].encode()).hexdigest()
    return agents


def bearer(agent):
    return {"Authorization": f"Bearer {TOKENS[agent]}"}


class A2ARouter(Router):
    """A router whose agents are given as dicts (rendered as YAML flow mappings, which JSON is), with
    helpers for its A2A face: /a2a/<agent> and /a2a/<agent>/.well-known/agent-card.json."""

    def __init__(self, tmpdir, config_extra="", agents=None, binary=None):
        if "{adminTokenFile}" in config_extra:
            path = os.path.join(tmpdir, "admin-token")
            with open(path, "w") as f:
                f.write(ADMIN_TOKEN + "\n")
            config_extra = config_extra.replace("{adminTokenFile}", path)
        super().__init__(tmpdir, config_extra, agents=[],
                         binary=binary or os.environ.get("SB_ROUTER") or REL_BIN)
        agents = DEFAULT_AGENTS if agents is None else agents
        with open(self.config, "a") as f:
            f.write("agents:\n" + "".join(f"  - {json.dumps(a)}\n" for a in agents))

    # --- URLs ---------------------------------------------------------------------------------
    def url(self, path=""):
        return f"http://127.0.0.1:{self.data_port}{path}"

    def base(self, agent):
        """The base URL an SDK is given (docs/a2a.md, URLs)."""
        return self.url(f"/a2a/{agent}")

    # --- JSON-RPC -----------------------------------------------------------------------------
    def post_a2a(self, agent, body, headers=None, version=None):
        """POST `body` (a dict or list is sent as JSON, bytes or str as they are) to /a2a/<agent>.
        Returns (HTTP status, headers, the parsed JSON-RPC response). Every answer must be one JSON-RPC
        2.0 response object in valid UTF-8 JSON; anything else fails here, naming what came back."""
        h = {"Content-Type": "application/json"}
        if version:
            h["A2A-Version"] = version
        h.update(headers or {})
        status, rh, data = self.data("POST", f"/a2a/{agent}", body, h)
        return status, rh, parse_rpc_response(status, rh, data, f"POST /a2a/{agent}")

    def rpc(self, agent, method, params=None, rid=1, headers=None, version=None):
        body = {"jsonrpc": "2.0", "id": rid, "method": method}
        if params is not None:
            body["params"] = params
        status, _, resp = self.post_a2a(agent, body, headers, version)
        return status, resp

    def call(self, agent, method, params=None, rid=1, headers=None, version=None):
        """A call that must succeed: HTTP 200, `id` echoed, a `result`. Returns the result."""
        status, resp = self.rpc(agent, method, params, rid, headers, version)
        assert status == 200 and "result" in resp, f"{method} on /a2a/{agent}: HTTP {status} {resp}"
        assert resp["id"] == rid, resp
        return resp["result"]

    def call_error(self, agent, method, params=None, *, code, http=200, rid=1, headers=None, version=None,
                   reason=None, field=None):
        """A call that must fail with JSON-RPC error `code` at HTTP status `http`. Returns the error."""
        status, resp = self.rpc(agent, method, params, rid, headers, version)
        assert "error" in resp, f"{method} on /a2a/{agent}: expected error {code}, got HTTP {status} {resp}"
        # a 401 is answered before the body is read: there is no id to echo (docs/a2a.md)
        assert resp["id"] == (None if http == 401 else rid), resp
        check_error(resp["error"], code, reason, field)
        assert status == http, f"{method}: error {code} should come with HTTP {http}, got {status}: {resp}"
        return resp["error"]

    # --- 1.0 and 0.3 shortcuts ----------------------------------------------------------------
    def send_message(self, agent, message, headers=None, rid=1, **params):
        """A2A 1.0 SendMessage; returns the Task (checked for 1.0 shape)."""
        res = self.call(agent, "SendMessage", {"message": message, **params}, rid, headers)
        assert set(res) == {"task"}, f"a SendMessage answer is {{'task': ...}}: {res}"
        check_task_10(res["task"])
        return res["task"]

    def get_task(self, agent, task_id, headers=None):
        task = self.call(agent, "GetTask", {"id": task_id}, headers=headers)
        check_task_10(task)
        assert task["id"] == task_id, task
        return task

    def state(self, agent, task_id, headers=None):
        return self.get_task(agent, task_id, headers)["status"]["state"]

    def card(self, agent, headers=None):
        status, h, data = self.data("GET", f"/a2a/{agent}/.well-known/agent-card.json", headers=headers)
        return status, h, data

    def pull_one(self, agent, headers=None, wait_ms=2000):
        """Pull `agent`'s mailbox (leasing what it holds) and return the one message it must hold."""
        got = self.pull_all(agent, headers, wait_ms)
        assert len(got) == 1, f"{agent}'s mailbox should hold one message: {got}"
        return got[0]

    def pull_all(self, agent, headers=None, wait_ms=0, max_n=100):
        status, _, data = self.data("GET", f"/v1/agents/{agent}/messages?max={max_n}&wait_ms={wait_ms}",
                                    headers=headers)
        assert status == 200, (status, data)
        return json.loads(data)["messages"]

    def settle(self, agent, ids, verb="ack", headers=None):
        status, _, data = self.data("POST", f"/v1/agents/{agent}/{verb}", {"message_ids": ids}, headers)
        assert status == 200, (status, data)
        return json.loads(data)


def parse_rpc_response(status, headers, data, what):
    ctype = headers.get("Content-Type", "")
    assert "json" in ctype, f"{what}: HTTP {status}, Content-Type {ctype!r}, not a JSON-RPC response: {data[:300]!r}"
    strict_json(ctype, data, what)
    resp = json.loads(data)
    assert isinstance(resp, dict) and resp.get("jsonrpc") == "2.0" and "id" in resp, \
        f"{what}: HTTP {status}, not a JSON-RPC 2.0 response object: {data[:300]!r}"
    assert ("result" in resp) != ("error" in resp), f"{what}: exactly one of result and error: {resp}"
    return resp


def check_error(err, code, reason=None, field=None):
    """docs/a2a.md, Errors: {code, message, data: [one google.rpc.ErrorInfo]}, the router's error code in
    `reason` and the offending field in metadata.field."""
    assert err.get("code") == code, f"expected JSON-RPC error {code}: {err}"
    assert isinstance(err.get("message"), str) and err["message"], err
    data = err.get("data")
    assert isinstance(data, list) and len(data) == 1, f"error data is a list with one ErrorInfo: {err}"
    info = data[0]
    assert info.get("@type") == ERROR_INFO and isinstance(info.get("reason"), str) and info["reason"], err
    # A2A's own errors (-32001 ... -32009) carry A2A's ErrorInfo, as the SDKs' servers write it: domain
    # a2a-protocol.org and the reason in upper snake case (TASK_NOT_FOUND); the others are the router's
    a2a = -32009 <= code <= -32001
    assert info.get("domain") == ("a2a-protocol.org" if a2a else "switchboard.dev"), err
    if reason is not None:
        want = re.sub(r"(?<!^)(?=[A-Z])", "_", reason).upper() if a2a else reason
        assert info["reason"] == want, f"expected reason {want}: {err}"
    if field is not None:
        assert (info.get("metadata") or {}).get("field") == field, f"expected metadata.field {field!r}: {err}"


def check_task_10(task):
    assert isinstance(task, dict) and isinstance(task.get("id"), str) and task["id"], task
    assert "kind" not in task, f"1.0 Tasks have no kind: {task}"
    st = task.get("status")
    assert isinstance(st, dict) and st.get("state") in STATES_10, f"a 1.0 task state: {task}"
    if "timestamp" in st:
        assert TIMESTAMP.match(st["timestamp"]), st


def check_task_03(task):
    assert isinstance(task, dict) and task.get("kind") == "task" and isinstance(task.get("id"), str), task
    st = task.get("status")
    assert isinstance(st, dict) and st.get("state") in STATES_03, f"a 0.3 task state: {task}"


def text_message(message_id, text, context_id=None, **metadata):
    """An A2A 1.0 Message (JSON) of one text part; metadata keys as given (sender, performative,
    inReplyTo)."""
    m = {"messageId": message_id, "role": "ROLE_USER", "parts": [{"text": text}]}
    if context_id:
        m["contextId"] = context_id
    if metadata:
        m["metadata"] = metadata
    return m


def status_text(status):
    """The text of a Task status' message (1.0 or 0.3 parts), '' when it has none."""
    msg = status.get("message") or {}
    return " ".join(p.get("text", "") for p in msg.get("parts", []) if isinstance(p, dict))


def wait_for(cond, timeout=8.0, step=0.02):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(step)
    return cond()


def deadletters(r):
    status, _, data = r.data("GET", "/v1/deadletters")
    assert status == 200, data
    return json.loads(data)["deadletters"]


def metric(r, name):
    """The value of an unlabelled metric line `name value`, or None."""
    for line in r.metrics().splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return None
