"""Hostile input against a real router: each case is a defect once found by fuzzing (tracker issue
17). The answers must be clear errors that name the field, never a crash, and always valid UTF-8 JSON
(conftest.strict_json checks every answer of the integration suite)."""
import hashlib
import json
import os
import subprocess

import pytest

from conftest import Router


@pytest.fixture
def router(tmp_path):
    r = Router(str(tmp_path)).start()
    yield r
    r.stop()


def test_config_with_an_agent_without_id_is_refused_not_a_crash(router, tmp_path):
    """`agents: [{mode: pull}, {id: a}]` once reached a strcmp on NULL: through the reload API it is
    refused naming agents, the router keeps running its config; through --config it does not start,
    with a message, and no signal."""
    with open(router.config) as f:
        good = f.read()
    bad = good.split("agents:")[0] + "agents:\n  - mode: pull\n  - id: a\n"
    with open(router.config, "w") as f:
        f.write(bad)
    s, _, body = router._req(router.admin_port, "POST", "/admin/reload", timeout=10)
    assert s in (400, 422) and b"agents" in body, body
    assert router.admin("GET", "/healthz")[0] == 200
    with open(router.config, "w") as f:
        f.write(good)
    alone = os.path.join(str(tmp_path), "bad.yaml")
    with open(alone, "w") as f:
        f.write(bad.replace(router.db, os.path.join(str(tmp_path), "other.db")))
    p = subprocess.run([router.binary, "--check-config", alone], capture_output=True, timeout=30)
    assert p.returncode > 0 and b"agent needs an id" in p.stdout + p.stderr, p


@pytest.mark.parametrize("body,field", [
    ("1", "(body)"), ('"x"', "(body)"), ("true", "(body)"), ("null", "(body)"), ("[]", "(body)"),
])
def test_a_body_that_is_not_an_object_names_the_body(router, body, field):
    s, _, data = router.data("POST", "/v1/messages", body, {"Content-Type": "application/json"})
    err = json.loads(data)["error"]
    assert s == 400 and err["code"] == "InvalidMessage" and err["field"] == field, data
    assert "(null)" not in err["message"], data


def test_batch_and_ndjson_elements_that_are_not_objects(router):
    s, _, data = router.data("POST", "/v1/messages", '{"messages":[1]}', {"Content-Type": "application/json"})
    assert s in (207, 400) and b"(null)" not in data and b"must be a JSON object" in data, data
    s, _, data = router.data("POST", "/v1/messages", "7\n", {"Content-Type": "application/x-ndjson"})
    assert s in (207, 400) and b"(null)" not in data and b"must be a JSON object" in data, data


@pytest.mark.parametrize("bad", [b"\xc0\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xff"])
def test_content_that_is_not_utf8_is_refused(router, bad):
    body = b'{"performative":"inform","sender":"alice","receiver":"bob","content":"a' + bad + b'"}'
    s, _, data = router.data("POST", "/v1/messages", body, {"Content-Type": "application/json"})
    assert s == 400, data
    assert router.pull("bob")["messages"] == []


def test_a_path_that_is_not_utf8_gets_400_without_echo(router):
    s, _, data = router.data("GET", "/v1/agents/b%95b/messages")
    assert s == 400 and json.loads(data)["error"]["code"] == "InvalidRequest", data
    s, _, data = router.data("GET", "/v1/agents/b%95b")
    assert s == 400, data


def test_token_is_checked_before_the_body_is_parsed(tmp_path):
    admin = os.path.join(str(tmp_path), "admin-token")
    with open(admin, "w") as f:
        f.write("admin-secret\n")
    r = Router(str(tmp_path), config_extra=f"security:\n  auth: token\n  adminTokenFile: {admin}\n", agents=[])
    digest = hashlib.sha256(b"alice-secret").hexdigest()
    with open(r.config, "a") as f:
        f.write(f"agents:\n  - id: alice\n    tokenSha256: {digest}\n")
    r.start()
    try:
        s, _, data = r.data("POST", "/v1/messages", "not json at all {",
                            {"Authorization": "Bearer whatever", "Content-Type": "application/json"})
        assert s == 401 and json.loads(data)["error"]["code"] == "Unauthorized", data
        s, _, data = r.data("POST", "/v1/messages", "not json at all {",
                            {"Authorization": "Bearer alice-secret", "Content-Type": "application/json"})
        assert s == 400, data
    finally:
        r.stop()


def test_views_need_a_known_token_under_token_auth(tmp_path):
    """With token auth, the agents and conversations views are for callers the router knows (an agent's
    token or the admin token): they list agents and message metadata."""
    admin = os.path.join(str(tmp_path), "admin-token")
    with open(admin, "w") as f:
        f.write("admin-secret\n")
    r = Router(str(tmp_path), config_extra=f"security:\n  auth: token\n  adminTokenFile: {admin}\n", agents=[])
    with open(r.config, "a") as f:
        f.write(f"agents:\n  - id: alice\n    tokenSha256: {hashlib.sha256(b'alice-secret').hexdigest()}\n")
    r.start()
    try:
        for path in ("/v1/agents", "/v1/agents/alice", "/v1/conversations/c-1"):
            assert r.data("GET", path)[0] == 401, path
            assert r.data("GET", path, headers={"Authorization": "Bearer nope"})[0] == 401, path
            assert r.data("GET", path, headers={"Authorization": "Bearer alice-secret"})[0] in (200, 404), path
            assert r.data("GET", path, headers={"Authorization": "Bearer admin-secret"})[0] in (200, 404), path
    finally:
        r.stop()


def test_set_applies_to_the_embedded_default(tmp_path):
    """`--set network.dataPort=...` is the example in the router's own --help; with no --config it was
    ignored."""
    p = subprocess.run([Router(str(tmp_path)).binary, "--set", "network.dataPort=9080", "--print-config"],
                       capture_output=True, timeout=30, cwd=str(tmp_path))
    assert p.returncode == 0, p
    out = p.stdout.decode()
    assert "9080" in out and "8080" not in out.split("dataPort")[1][:20], out[:600]
