"""The router's A2A JSON-RPC face with raw bodies (docs/a2a.md): the A2A 0.3 methods and shapes, the
mapping of a SendMessage onto a FIPA message, and every error the contract lists. Every answer is
checked to be one JSON-RPC 2.0 response in valid UTF-8 JSON (harness.parse_rpc_response)."""
import json
import re

import pytest

from harness import TOKEN_CONFIG, bearer, check_error, check_task_03, text_message, token_agents

PARTS_LANGUAGE = "application/a2a-parts+json"
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def msg03(message_id, text, context_id=None, **metadata):
    m = {"kind": "message", "messageId": message_id, "role": "user", "parts": [{"kind": "text", "text": text}]}
    if context_id:
        m["contextId"] = context_id
    if metadata:
        m["metadata"] = metadata
    return m


# --- A2A 0.3 ----------------------------------------------------------------------------------


def test_v03_message_send_and_tasks_get(start_router):
    r = start_router()
    task = r.call("bob", "message/send", {"message": msg03("v03-1", "hello in 0.3", "c-03", sender="alice")})
    check_task_03(task)
    assert (task["id"], task["contextId"], task["status"]["state"]) == ("v03-1", "c-03", "submitted")
    got = r.pull_one("bob")["message"]
    assert (got["sender"], got["conversation_id"], got["content"], got["performative"]) == \
        ("alice", "c-03", "hello in 0.3", "request")

    def state():
        t = r.call("bob", "tasks/get", {"id": "v03-1"})
        check_task_03(t)
        assert t["id"] == "v03-1"
        return t["status"]["state"]

    assert state() == "working"
    r.settle("bob", ["v03-1"])
    assert state() == "completed"
    # the same with the A2A-Version header
    t = r.call("bob", "message/send", {"message": msg03("v03-2", "again")}, version="0.3")
    check_task_03(t)
    assert t["status"]["state"] == "submitted"
    # cancel the 0.3 way
    t = r.call("bob", "tasks/cancel", {"id": "v03-2"}, version="0.3")
    check_task_03(t)
    assert t["status"]["state"] == "canceled"


def test_v03_data_and_file_parts_are_stored_in_10_shape(start_router):
    r = start_router()
    parts = [{"kind": "data", "data": {"k": [1, "two", None]}},
             {"kind": "file", "file": {"uri": "https://files.example/a.png", "mimeType": "image/png",
                                       "name": "a.png"}},
             {"kind": "file", "file": {"bytes": "aGVsbG8=", "mimeType": "text/plain", "name": "h.txt"}}]
    m = {"kind": "message", "messageId": "v03-parts", "role": "user", "parts": parts}
    r.call("bob", "message/send", {"message": m})
    got = r.pull_one("bob")["message"]
    assert got["language"] == PARTS_LANGUAGE
    assert json.loads(got["content"]) == [
        {"data": {"k": [1, "two", None]}},
        {"url": "https://files.example/a.png", "mediaType": "image/png", "filename": "a.png"},
        {"raw": "aGVsbG8=", "mediaType": "text/plain", "filename": "h.txt"},
    ], got["content"]


def test_versions_are_chosen_by_header_or_method_spelling(start_router):
    r = start_router()
    # 1.0 by header, with a patch suffix
    task = r.send_message("bob", text_message("ver-1", "x"), headers={"A2A-Version": "1.0.2"})
    assert task["status"]["state"] == "TASK_STATE_SUBMITTED"
    # a method of the other version than the header's is -32601
    r.call_error("bob", "message/send", {"message": msg03("ver-2", "x")}, code=-32601, version="1.0")
    r.call_error("bob", "SendMessage", {"message": text_message("ver-3", "x")}, code=-32601, version="0.3")
    # any other version: -32009 naming the served ones
    for v in ("2.0", "0.2"):
        err = r.call_error("bob", "SendMessage", {"message": text_message("ver-4", "x")}, code=-32009,
                           version=v, reason="VersionNotSupported")
        assert "1.0" in err["message"] and "0.3" in err["message"], err
    # nothing of the refused ones was stored
    assert [g["message_id"] for g in r.pull_all("bob")] == ["ver-1"]


# --- SendMessage -> FIPA ----------------------------------------------------------------------


def test_send_message_maps_onto_a_fipa_message(start_router):
    r = start_router()
    # without contextId: a generated conversation; without metadata.sender (auth off): anonymous
    task = r.send_message("bob", text_message("map-1", "plain"))
    assert task["id"] == "map-1" and re.fullmatch(r"ctx-[0-9a-f]{32}", task["contextId"]), task
    assert task["status"]["state"] == "TASK_STATE_SUBMITTED" and "timestamp" in task["status"], task
    got = r.pull_one("bob")["message"]
    assert (got["sender"], got["receiver"], got["conversation_id"], got["performative"]) == \
        ("anonymous", "bob", task["contextId"], "request")
    # performative, in_reply_to and traceparent
    r.send_message("bob", text_message("map-2", "yes", "c-map", sender="alice", performative="agree",
                                       inReplyTo="map-1"), headers={"traceparent": TRACEPARENT})
    got = r.pull_one("bob")["message"]
    assert (got["performative"], got["in_reply_to"], got["traceparent"], got["conversation_id"]) == \
        ("agree", "map-1", TRACEPARENT, "c-map")
    # Idempotency-Key names the message (and the Task) whatever the messageId
    key = {"Idempotency-Key": "key-1"}
    t1 = r.send_message("bob", text_message("map-3a", "keyed", sender="alice"), headers=key)
    t2 = r.send_message("bob", text_message("map-3b", "keyed", sender="alice"), headers=key)
    assert t1["id"] == t2["id"] == "key-1", (t1, t2)
    got = r.pull_all("bob", wait_ms=500)
    assert [g["message_id"] for g in got] == ["key-1"]
    assert r.pull_all("bob") == []
    # several text parts, or a text part with metadata: the parts as JSON
    two = {"messageId": "map-4", "role": "ROLE_USER", "parts": [{"text": "a"}, {"text": "b"}]}
    meta = {"messageId": "map-5", "role": "ROLE_USER", "parts": [{"text": "a", "metadata": {"x": 1}}]}
    raw = {"messageId": "map-6", "role": "ROLE_USER", "parts": [{"raw": "aGVsbG8=", "mediaType": "text/plain"}]}
    for m in (two, meta, raw):
        r.send_message("bob", m)
    got = {g["message_id"]: g["message"] for g in r.pull_all("bob", wait_ms=500)}
    for m in (two, meta, raw):
        assert got[m["messageId"]]["language"] == PARTS_LANGUAGE
        assert json.loads(got[m["messageId"]]["content"]) == m["parts"]
    # taskId, referenceTaskIds, extensions and a configuration without push config are accepted
    extra = dict(text_message("map-7", "extras"), taskId="t-9", referenceTaskIds=["map-1"],
                 extensions=["https://example.com/ext"])
    task = r.send_message("bob", extra,
                          configuration={"acceptedOutputModes": ["text/plain"], "returnImmediately": True})
    assert task["id"] == "map-7"


def test_push_notification_config_is_refused(start_router):
    r = start_router()
    push = {"url": "http://127.0.0.1:9/hook"}
    r.call_error("bob", "SendMessage", {"message": text_message("pn-1", "x"),
                                        "configuration": {"taskPushNotificationConfig": push}},
                 code=-32003, reason="PushNotificationNotSupported")
    r.call_error("bob", "message/send", {"message": msg03("pn-2", "x"),
                                         "configuration": {"pushNotificationConfig": push}},
                 code=-32003, reason="PushNotificationNotSupported")
    assert r.pull_all("bob") == []


# --- CancelTask --------------------------------------------------------------------------------


def test_cancel_task(start_router):
    r = start_router()
    r.send_message("bob", text_message("cx-1", "cancel me", sender="alice"))
    r.send_message("bob", text_message("cx-2", "deliver me", sender="alice"))
    t = r.call("bob", "CancelTask", {"id": "cx-1"})
    assert (t["id"], t["status"]["state"]) == ("cx-1", "TASK_STATE_CANCELED"), t
    assert r.state("bob", "cx-1") == "TASK_STATE_CANCELED"
    # a cancelled message is never delivered; the other one is
    assert [g["message_id"] for g in r.pull_all("bob", wait_ms=300)] == ["cx-2"]
    # leased: not cancelable; acknowledged: not cancelable either
    r.call_error("bob", "CancelTask", {"id": "cx-2"}, code=-32002, reason="TaskNotCancelable")
    r.settle("bob", ["cx-2"])
    r.call_error("bob", "CancelTask", {"id": "cx-2"}, code=-32002, reason="TaskNotCancelable")
    assert r.state("bob", "cx-2") == "TASK_STATE_COMPLETED"
    # cancelled already: not cancelable again
    r.call_error("bob", "CancelTask", {"id": "cx-1"}, code=-32002, reason="TaskNotCancelable")
    # unknown
    r.call_error("bob", "CancelTask", {"id": "cx-none"}, code=-32001, reason="TaskNotFound")
    r.call_error("bob", "GetTask", {"id": "cx-none"}, code=-32001, reason="TaskNotFound")
    r.call_error("bob", "tasks/get", {"id": "cx-none"}, code=-32001, reason="TaskNotFound")
    # a task of bob's is not a task of alice's
    r.call_error("alice", "GetTask", {"id": "cx-2"}, code=-32001, reason="TaskNotFound")
    # historyLength is accepted and ignored
    t = r.call("bob", "GetTask", {"id": "cx-2", "historyLength": 5})
    assert t["status"]["state"] == "TASK_STATE_COMPLETED"


# --- bad input ---------------------------------------------------------------------------------


def raw_error(r, body, code, *, rid=None, http=200, agent="bob", headers=None):
    status, _, resp = r.post_a2a(agent, body, headers)
    assert "error" in resp, f"{body!r}: expected error {code}, got HTTP {status} {resp}"
    assert resp["error"]["code"] == code, f"{body!r}: {resp}"
    assert resp["id"] == rid, f"{body!r}: id should be {rid!r}: {resp}"
    assert status == http, f"{body!r}: HTTP {status}: {resp}"
    check_error(resp["error"], code)
    return resp["error"]


def test_malformed_requests(start_router):
    r = start_router()
    # not JSON, not UTF-8: -32700, id null
    for body in (b'{"jsonrpc":"2.0","id":1,"method":', b"", b"nonsense", b'{"jsonrpc":"2.0","id":1}x',
                 b'{"jsonrpc":"2.0","id":"\xff\xfe","method":"GetTask","params":{"id":"a"}}',
                 b'{"jsonrpc":"2.0","id":1,"method":"GetTask","params":{"id":"\xc3"}}'):
        raw_error(r, body, -32700)
    # half a surrogate pair in an escape: refused one way or another, never echoed back broken
    # (post_a2a checks that every answer is valid UTF-8 JSON)
    status, _, resp = r.post_a2a("bob", b'{"jsonrpc":"2.0","id":1,"method":"GetTask","params":{"id":"\\ud800"}}')
    assert status == 200 and resp["error"]["code"] in (-32700, -32602, -32001), resp
    # not a request object, a batch: -32600, id null
    for body in ('"hello"', "42", "null", "[]", json.dumps([{"jsonrpc": "2.0", "id": 1, "method": "GetTask",
                                                            "params": {"id": "a"}}])):
        raw_error(r, body, -32600)
    # jsonrpc missing or not "2.0" (id echoed), no id (a notification: every method returns something)
    raw_error(r, {"id": 3, "method": "GetTask", "params": {"id": "a"}}, -32600, rid=3)
    raw_error(r, {"jsonrpc": "1.0", "id": "s-4", "method": "GetTask", "params": {"id": "a"}}, -32600, rid="s-4")
    raw_error(r, {"jsonrpc": "2.0", "method": "SendMessage", "params": {"message": text_message("n-1", "x")}},
              -32600)
    raw_error(r, {"jsonrpc": "2.0", "id": 5, "params": {}}, -32600, rid=5)  # no method
    raw_error(r, {"jsonrpc": "2.0", "id": 6, "method": 7}, -32600, rid=6)
    # ids of every JSON-RPC kind are echoed
    for rid in (0, -7, "abc", "ünïcödé"):
        status, _, resp = r.post_a2a("bob", {"jsonrpc": "2.0", "id": rid, "method": "GetTask",
                                             "params": {"id": "nope"}})
        assert resp["id"] == rid and resp["error"]["code"] == -32001, resp
    assert r.pull_all("bob") == []  # none of it stored anything


@pytest.mark.parametrize("method", [
    "Frobnicate", "sendmessage", "message/frobnicate",
    "SendStreamingMessage", "SubscribeToTask", "message/stream", "tasks/resubscribe",
    "ListTasks", "GetExtendedAgentCard", "agent/getAuthenticatedExtendedCard",
    "CreateTaskPushNotificationConfig", "GetTaskPushNotificationConfig", "tasks/pushNotificationConfig/set",
    "tasks/pushNotificationConfig/get",
])
def test_unknown_and_unserved_methods(shared_router, method):
    r = shared_router
    r.call_error("bob", method, {"message": text_message("um-1", "x"), "id": "um-1"}, code=-32601, rid=11)


def test_wrong_types_name_the_field(start_router):
    r = start_router()
    good = text_message("wt-ok", "fine")
    # the two the contract spells out: data[0].metadata.field names the field exactly
    r.call_error("bob", "SendMessage", {"message": dict(good, parts="a string")}, code=-32602,
                 reason="InvalidParams", field="params.message.parts")
    err = r.call_error("bob", "SendMessage", {"message": {k: v for k, v in good.items() if k != "messageId"}},
                       code=-32602, reason="InvalidParams", field="params.message.messageId")
    assert "messageId" in err["message"], err
    cases = [
        # (params, the field named), each a missing or wrong-typed parameter
        ({"message": dict(good, messageId=42)}, "params.message.messageId"),
        ({"message": dict(good, contextId=["x"])}, "params.message.contextId"),
        ({"message": dict(good, metadata="x")}, "params.message.metadata"),
        ({"message": "not an object"}, "params.message"),
        ({}, "params.message"),
        ({"message": dict(good, parts=[{"text": 5}])}, "params.message.parts"),  # parts[0].text, in some spelling
        ({"message": dict(good, parts=["text"])}, "params.message.parts"),
        ({"message": dict(good, metadata={"performative": "shout"})}, "params.message.metadata.performative"),
        ({"message": dict(good, messageId="has spaces")}, "params.message.messageId"),  # the router's id rules
    ]
    for params, field in cases:
        err = r.call_error("bob", "SendMessage", params, code=-32602, reason="InvalidParams")
        named = err["data"][0].get("metadata", {}).get("field", "")
        assert named.startswith(field), f"{params}: the field named should be {field}: {err}"
    err = r.call_error("bob", "SendMessage", None, code=-32602)  # no params at all
    assert err["data"][0]["metadata"]["field"].startswith("params"), err
    r.call_error("bob", "SendMessage", [good], code=-32602)  # positional params
    r.call_error("bob", "GetTask", {"id": 5}, code=-32602, field="params.id")
    r.call_error("bob", "GetTask", {}, code=-32602, field="params.id")
    r.call_error("bob", "CancelTask", {"id": None}, code=-32602, field="params.id")
    r.call_error("bob", "tasks/get", {"id": ["x"]}, code=-32602, field="params.id")
    assert r.pull_all("bob") == []


def test_unknown_agent_is_404(start_router):
    r = start_router()
    r.call_error("nobody", "SendMessage", {"message": text_message("ua-1", "x")}, code=-32052, http=404,
                 reason="AgentNotFound", rid="ua")
    r.call_error("nobody", "GetTask", {"id": "ua-1"}, code=-32052, http=404, reason="AgentNotFound")


def test_oversized_content_is_413(start_router):
    r = start_router("security:\n  maxMessageBytes: 1024\n  maxRequestBytes: 4096\n")
    # at the limit: accepted (the same limit as /v1/messages)
    r.send_message("bob", text_message("big-0", "x" * 1024))
    # over it: 413 with -32053, and nothing stored
    r.call_error("bob", "SendMessage", {"message": text_message("big-1", "x" * 1025)}, code=-32053, http=413,
                 reason="MessageTooLarge")
    r.call_error("bob", "message/send", {"message": msg03("big-2", "é" * 600)}, code=-32053, http=413,
                 reason="MessageTooLarge")
    # parts JSON counts as the content it becomes
    r.call_error("bob", "SendMessage", {"message": {"messageId": "big-3", "role": "ROLE_USER",
                                                    "parts": [{"data": {"k": "y" * 1100}}]}},
                 code=-32053, http=413, reason="MessageTooLarge")
    # a body over the HTTP limit: the router's PayloadTooLarge, before any parsing
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "SendMessage",
                       "params": {"message": text_message("big-4", "z" * 5000)}})
    status, _, data = r.data("POST", "/a2a/bob", body, {"Content-Type": "application/json"})
    assert status == 413 and json.loads(data)["error"]["code"] == "PayloadTooLarge", (status, data)
    assert [g["message_id"] for g in r.pull_all("bob")] == ["big-0"]


def test_token_auth(start_router):
    r = start_router(TOKEN_CONFIG, token_agents())
    params = {"message": text_message("auth-1", "hi")}
    # no token, or a token of no agent: 401
    r.call_error("bob", "SendMessage", params, code=-32050, http=401, reason="Unauthorized")
    r.call_error("bob", "SendMessage", params, code=-32050, http=401, reason="Unauthorized",
                 headers={"Authorization": "Bearer not-a-token"})
    r.call_error("bob", "GetTask", {"id": "auth-1"}, code=-32050, http=401, reason="Unauthorized")
    # carol's token with metadata.sender spoofed as alice: 403
    spoof = {"message": text_message("auth-2", "I am alice", sender="alice")}
    r.call_error("bob", "SendMessage", spoof, code=-32051, http=403, reason="Forbidden", headers=bearer("carol"))
    # the right token with no metadata.sender: the token's agent is the sender; naming it is fine too
    r.send_message("bob", text_message("auth-3", "from alice"), headers=bearer("alice"))
    r.send_message("bob", text_message("auth-4", "from alice again", sender="alice"), headers=bearer("alice"))
    got = r.pull_all("bob", headers=bearer("bob"), wait_ms=500)
    assert [(g["message_id"], g["message"]["sender"]) for g in got] == [("auth-3", "alice"), ("auth-4", "alice")]
    # GetTask: any agent's token; CancelTask: the sender's
    r.send_message("bob", text_message("auth-5", "to cancel"), headers=bearer("alice"))
    assert r.state("bob", "auth-5", headers=bearer("carol")) == "TASK_STATE_SUBMITTED"
    r.call_error("bob", "CancelTask", {"id": "auth-5"}, code=-32051, http=403, reason="Forbidden",
                 headers=bearer("carol"))
    t = r.call("bob", "CancelTask", {"id": "auth-5"}, headers=bearer("alice"))
    assert t["status"]["state"] == "TASK_STATE_CANCELED"
    # the card stays public
    status, _, data = r.card("bob")
    assert status == 200, data
    card = json.loads(data)
    assert "bearer" in card.get("securitySchemes", {}), card
    # nothing refused was stored
    assert r.pull_all("bob", headers=bearer("bob")) == []
