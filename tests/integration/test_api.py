"""The data and admin HTTP APIs of a real router process."""
import http.client
import json
import signal
import threading
import time

import pytest

from conftest import Router, msg


def test_send_pull_ack_round_trip(router):
    status, body, _ = router.send(msg(content="hi bob", conversation_id="conv-1"))
    assert status == 202 and body["status"] == "accepted" and body["duplicate"] is False
    mid = body["message_id"]
    got = router.pull("bob", wait_ms=1000)
    assert [m["message_id"] for m in got["messages"]] == [mid]
    assert got["messages"][0]["message"]["content"] == "hi bob"
    assert got["messages"][0]["attempt"] == 1
    assert router.ack("bob", [mid]) == {"acked": 1, "not_leased": []}
    assert router.pull("bob")["messages"] == []
    status, _, data = router.data("GET", "/v1/conversations/conv-1")
    conv = json.loads(data)
    assert status == 200 and conv["participants"] == ["alice", "bob"] and conv["message_count"] == 1


def test_batch_json_and_ndjson_give_per_item_results(router):
    batch = {"messages": [msg(message_id="b-1"), msg(performative="shout"), msg(receiver="nobody")]}
    status, _, data = router.data("POST", "/v1/messages", batch)
    res = json.loads(data)
    assert status == 207
    assert res["accepted"] == 1 and res["rejected"] == 2
    assert [r["status"] for r in res["results"]] == [202, 400, 404]
    assert res["results"][1]["error"]["field"] == "performative"
    assert res["results"][2]["error"]["code"] == "AgentNotFound"

    lines = "\n".join(json.dumps(msg(message_id=f"nd-{i}")) for i in range(5)) + "\n"
    status, _, data = router.data("POST", "/v1/messages", lines, {"Content-Type": "application/x-ndjson"})
    res = json.loads(data)
    assert status == 202 and res["accepted"] == 5
    ids = [m["message_id"] for m in router.pull("bob", 100)["messages"]]
    assert ids == ["b-1"] + [f"nd-{i}" for i in range(5)]


BAD_INPUTS = [
    # (body, content-type, status, code, field)
    ("{not json", None, 400, "InvalidMessage", "(body)"),
    ("", None, 400, "InvalidMessage", "(body)"),
    ('[1,2]', None, 400, "InvalidMessage", "(body)"),
    (json.dumps({"sender": "alice", "receiver": "bob"}), None, 400, "InvalidMessage", "performative"),
    (json.dumps(msg(performative="yell")), None, 400, "InvalidMessage", "performative"),
    (json.dumps(msg(receiver=["bob"])), None, 400, "InvalidMessage", "receiver"),
    (json.dumps(msg(content={"x": 1})), None, 400, "InvalidMessage", "content"),
    (json.dumps({k: v for k, v in msg().items() if k != "sender"}), None, 400, "InvalidMessage", "sender"),
    (json.dumps(msg(traceparent="00-xyz-abc-01")), None, 400, "InvalidMessage", "traceparent"),
    (json.dumps(msg(traceparent="00-00000000000000000000000000000000-00f067aa0ba902b7-01")), None, 400,
     "InvalidMessage", "traceparent"),
    (json.dumps(msg(delivery={"priority": "asap"})), None, 400, "InvalidMessage", "delivery.priority"),
    (json.dumps(msg(receiver="nobody")), None, 404, "AgentNotFound", "receiver"),
    (b'{"performative":"inform","sender":"alice","receiver":"bob","content":"\xff\xfe"}', None, 400,
     "InvalidMessage", "content"),
    (json.dumps({"messages": "nope"}), None, 400, "InvalidMessage", "messages"),
    ('{"performative":"inform"}\n{oops', "application/x-ndjson", 400, "InvalidMessage", "(body)"),
]


def test_bad_inputs_are_rejected_with_the_field_and_lose_nothing(router):
    status, body, _ = router.send(msg(message_id="survivor"))
    assert status == 202
    for raw, ctype, want_status, want_code, want_field in BAD_INPUTS:
        headers = {"Content-Type": ctype} if ctype else {}
        status, _, data = router.data("POST", "/v1/messages", raw, headers)
        err = json.loads(data)["error"]
        assert (status, err["code"], err.get("field")) == (want_status, want_code, want_field), (raw, err)
        assert err["message"]
    # the router is still healthy and the accepted message is intact
    assert router.admin("GET", "/healthz")[0] == 200
    ids = [m["message_id"] for m in router.pull("bob")["messages"]]
    assert ids == ["survivor"]
    assert 'reason="invalid_message"' in router.metrics()


def test_oversized_content_and_body(tmpdir_path):
    r = Router(tmpdir_path, "security:\n  maxMessageBytes: 2048\n  maxRequestBytes: 8192\n").start()
    try:
        status, body, _ = r.send(msg(content="x" * 3000))
        assert status == 413 and body["error"]["code"] == "MessageTooLarge" and body["error"]["field"] == "content"
        status, _, data = r.data("POST", "/v1/messages", "x" * 20000)
        assert status == 413 and json.loads(data)["error"]["code"] == "PayloadTooLarge"
        assert r.send(msg(content="x" * 1000))[0] == 202
    finally:
        r.stop()


def test_full_queue_gives_429_with_retry_after(tmpdir_path):
    r = Router(tmpdir_path, "performance:\n  agentQueueSize: 3\n").start()
    try:
        for i in range(3):
            assert r.send(msg(message_id=f"q{i}"))[0] == 202
        status, body, headers = r.send(msg(message_id="q3"))
        assert status == 429 and body["error"]["code"] == "QueueFull"
        assert headers.get("Retry-After") == "1"
        got = r.pull("bob")
        r.ack("bob", [m["message_id"] for m in got["messages"]])
        assert r.send(msg(message_id="q3"))[0] == 202
    finally:
        r.stop()


def test_duplicate_message_id_returns_original_acceptance(router):
    s1, b1, _ = router.send(msg(message_id="same-id", content="first"))
    s2, b2, _ = router.send(msg(message_id="same-id", content="second"))
    assert (s1, s2) == (202, 202)
    assert b1["duplicate"] is False and b2["duplicate"] is True
    got = router.pull("bob")["messages"]
    assert len(got) == 1 and got[0]["message"]["content"] == "first"


def test_long_poll_returns_when_a_message_arrives(router):
    result = {}

    def poll():
        t0 = time.time()
        result["resp"] = router.pull("bob", wait_ms=10000)
        result["elapsed"] = time.time() - t0

    t = threading.Thread(target=poll)
    t.start()
    time.sleep(0.3)
    assert router.send(msg(message_id="wake"))[0] == 202
    t.join(15)
    assert [m["message_id"] for m in result["resp"]["messages"]] == ["wake"]
    assert 0.25 < result["elapsed"] < 5


def test_nack_and_expired_lease_redeliver(tmpdir_path):
    r = Router(tmpdir_path, "delivery:\n  leaseTimeoutMs: 300\n").start()
    try:
        assert r.send(msg(message_id="n1"))[0] == 202
        first = r.pull("bob")["messages"]
        assert first[0]["attempt"] == 1
        assert r.ack("bob", ["n1"], verb="nack") == {"nacked": 1, "not_leased": []}
        second = r.pull("bob")["messages"]
        assert second[0]["message_id"] == "n1" and second[0]["attempt"] == 2
        time.sleep(0.6)  # let the lease expire
        third = r.pull("bob")["messages"]
        assert third[0]["attempt"] == 3
        assert r.ack("bob", ["n1", "never"]) == {"acked": 1, "not_leased": ["never"]}
        assert "switchboard_router_lease_expirations_total 1" in r.metrics()
    finally:
        r.stop()


def test_agent_views_and_unknown_paths(router):
    status, _, data = router.data("GET", "/v1/agents")
    agents = {a["id"]: a for a in json.loads(data)["agents"]}
    assert set(agents) == {"alice", "bob"} and agents["bob"]["state"] == "Running"
    router.send(msg())
    status, _, data = router.data("GET", "/v1/agents/bob")
    assert status == 200 and json.loads(data)["queue_depth"] == 1
    assert router.data("GET", "/v1/agents/nobody")[0] == 404
    assert router.data("GET", "/v1/agents/nobody/messages")[0] == 404
    assert router.data("GET", "/v1/agents/bob/messages?max=0")[0] == 400
    assert router.data("GET", "/v1/agents/bob/messages?wait_ms=abc")[0] == 400
    assert router.data("POST", "/v1/agents/bob/ack", "{}")[0] == 400
    assert router.data("GET", "/v2/nothing")[0] == 404
    assert router.data("DELETE", "/v1/messages")[0] == 405
    status, _, data = router.admin("GET", "/v1/status")
    st = json.loads(data)
    assert status == 200 and len(st["config_hash"]) == 64 and st["generation"] == 1


def test_sigterm_drains_then_exits_cleanly(tmpdir_path):
    r = Router(tmpdir_path).start()
    assert r.send(msg(message_id="before"))[0] == 202
    conn = http.client.HTTPConnection("127.0.0.1", r.data_port, timeout=10)
    conn.request("GET", "/v1/agents")  # open a keep-alive connection
    conn.getresponse().read()
    poll = {}
    t = threading.Thread(target=lambda: poll.update(resp=r.pull("alice", wait_ms=20000)))
    t.start()
    time.sleep(0.2)
    t0 = time.time()
    r.proc.send_signal(signal.SIGTERM)
    time.sleep(0.1)
    assert r.admin("GET", "/readyz")[0] == 503
    conn.request("POST", "/v1/messages", json.dumps(msg(message_id="after")))
    resp = conn.getresponse()
    body = json.loads(resp.read())
    assert resp.status == 503 and body["error"]["code"] == "ShuttingDown"
    t.join(10)
    assert poll["resp"]["messages"] == []  # the long poll was released, not left hanging
    r.proc.wait(10)
    assert r.proc.returncode == 0 and time.time() - t0 < 8
    assert '"stopped cleanly"' in r.log()
    # the message accepted before the drain is still there after a restart
    r.start()
    try:
        assert [m["message_id"] for m in r.pull("bob")["messages"]] == ["before"]
    finally:
        r.stop()
