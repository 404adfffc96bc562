"""Delivery to A2A agents (egress): an A2A server built with the official SDK as a push agent
(`protocol: a2a` next to `mode: push` and `endpoint`) receives each message as SendMessage and its reply
comes back to the sender; an agent that answers JSON-RPC errors gets retries (transient errors) or a
dead letter (the others), and its sender a FIPA failure.

The SDK agent itself is checked here against the SDK's own client, so the fixture is known good
whatever the router does."""
import asyncio
import json

import pytest

from a2a.client import ClientConfig, ClientFactory
from a2a.helpers import get_message_text
from a2a.types import Message, Part, Role, SendMessageRequest

from harness import DEFAULT_AGENTS, deadletters, status_text, wait_for
from sdk_agent import SdkAgent
from test_tasks import FAST_RETRIES, Endpoint, check_failed


def test_sdk_agent_fixture_answers_the_sdk_client():
    agent = SdkAgent().start()
    try:
        async def go():
            client = await ClientFactory(ClientConfig(streaming=False)).create_from_url(agent.base)
            try:
                m = Message(message_id="fx-1", context_id="ctx-fx", role=Role.ROLE_USER, parts=[Part(text="ping")])
                return [ev async for ev in client.send_message(SendMessageRequest(message=m))]
            finally:
                await client.close()

        events = asyncio.run(asyncio.wait_for(go(), 30))
        assert len(events) == 1 and events[0].HasField("message"), events
        assert get_message_text(events[0].message) == "echo: ping"
        assert events[0].message.context_id == "ctx-fx"
        (received, context_id), = agent.received()
        assert (received.message_id, context_id, get_message_text(received)) == ("fx-1", "ctx-fx", "ping")
    finally:
        agent.stop()


def test_sdk_a2a_server_as_a_push_agent_replies_to_a_fipa_sender(start_router):
    agent = SdkAgent(reply_prefix="menu for: ").start()
    try:
        r = start_router(agents=DEFAULT_AGENTS + [{"id": "sdkagent", "mode": "push", "protocol": "a2a",
                                                   "endpoint": agent.base + "/", "timeoutMs": 2000}])
        sent = {"performative": "request", "sender": "alice", "receiver": "sdkagent", "message_id": "eg-1",
                "conversation_id": "conv-egress", "content": "what is on the menu?"}
        assert r.send(sent)[0] == 202
        # the SDK agent received it as an A2A message in the conversation's context
        assert wait_for(lambda: agent.received(), 10), "the SDK agent received nothing"
        (received, context_id), = agent.received()
        assert get_message_text(received) == "what is on the menu?" and context_id == "conv-egress"
        # its reply comes back to the sender's mailbox, in the same conversation, as a reply
        reply = r.pull_one("alice", wait_ms=5000)["message"]
        assert (reply["sender"], reply["receiver"], reply["conversation_id"], reply["in_reply_to"]) == \
            ("sdkagent", "alice", "conv-egress", "eg-1"), reply
        assert reply["content"] == "menu for: what is on the menu?", reply
        # and the request is settled: delivered, a completed Task
        assert wait_for(lambda: json.loads(r.data("GET", "/v1/agents/sdkagent")[2])["queue_depth"] == 0)
        assert r.state("sdkagent", "eg-1") == "TASK_STATE_COMPLETED"
    finally:
        agent.stop()


def rpc_error(code, message):
    return (200, json.dumps({"jsonrpc": "2.0", "id": "x", "error": {"code": code, "message": message}}).encode())


def a2a_pusher(port, extra=None):
    return DEFAULT_AGENTS + [{"id": "pusher", "mode": "push", "protocol": "a2a",
                              "endpoint": f"http://127.0.0.1:{port}/rpc", "timeoutMs": 500, **(extra or {})}]


def test_a2a_agent_refusing_with_a_jsonrpc_error_dead_letters_at_once(start_router):
    ep = Endpoint(answers=[rpc_error(-32602, "Invalid params: no such skill")])
    try:
        r = start_router(FAST_RETRIES, a2a_pusher(ep.port))
        sent = {"performative": "request", "sender": "alice", "receiver": "pusher", "message_id": "eg-err",
                "conversation_id": "c-err", "content": "do the impossible"}
        assert r.send(sent)[0] == 202
        check_failed(r, "eg-err", "InvalidMessage", "c-err")
        assert ep.count() == 1  # a JSON-RPC error other than a transient one is not retried
        # the A2A error is the dead letter's detail, and the failed Task says it
        d = [d for d in deadletters(r) if d["message_id"] == "eg-err"][0]
        assert d["detail"] == "A2A error -32602: Invalid params: no such skill", d
        assert "A2A error -32602" in status_text(r.get_task("pusher", "eg-err")["status"])
        # what the agent got: A2A 1.0 SendMessage, the message id as messageId, the conversation as contextId
        _, call, headers = ep.calls[0]
        assert (call["method"], call["id"]) == ("SendMessage", "eg-err"), call
        m = call["params"]["message"]
        assert (m["messageId"], m["contextId"], m["role"], m["parts"]) == \
            ("eg-err", "c-err", "ROLE_USER", [{"text": "do the impossible"}]), m
        assert m["metadata"] == {"sender": "alice", "performative": "request"}, m
        assert headers.get("A2A-Version") == "1.0", headers
    finally:
        ep.stop()


def test_a2a_agent_answering_errors_then_down_retries_then_dead_letters(start_router):
    """The issue's sequence for an A2A agent: transient JSON-RPC errors (retried), then down."""
    ep = Endpoint(answers=[rpc_error(-32603, "Internal error")])
    extra = FAST_RETRIES.replace("maxRetries: 2", "maxRetries: 4").replace("baseRetryDelayMs: 50",
                                                                          "baseRetryDelayMs: 300")
    extra = extra.replace("retryMaxDelayMs: 200", "retryMaxDelayMs: 1200")
    r = start_router(extra, a2a_pusher(ep.port))
    try:
        sent = {"performative": "request", "sender": "alice", "receiver": "pusher", "message_id": "eg-seq",
                "conversation_id": "c-eg-seq", "content": "errors then silence"}
        assert r.send(sent)[0] == 202
        assert wait_for(lambda: ep.count() >= 2, 5), ep.count()
        assert r.state("pusher", "eg-seq") in ("TASK_STATE_SUBMITTED", "TASK_STATE_WORKING")
    finally:
        ep.stop()
    check_failed(r, "eg-seq", "NetworkError", "c-eg-seq")
    assert 2 <= ep.count() < 5
    d = [d for d in deadletters(r) if d["message_id"] == "eg-seq"][0]
    assert "connect" in d["detail"].lower(), d  # the last failure: the agent is down


def test_a2a_agent_transient_error_then_success_is_delivered_once(start_router):
    ok = (200, json.dumps({"jsonrpc": "2.0", "id": "x", "result": {"task": {
        "id": "t1", "contextId": "c", "status": {"state": "TASK_STATE_SUBMITTED"}}}}).encode())
    ep = Endpoint(answers=[rpc_error(-32603, "try later"), ok])
    try:
        r = start_router(FAST_RETRIES, a2a_pusher(ep.port))
        sent = {"performative": "inform", "sender": "alice", "receiver": "pusher", "message_id": "eg-ok",
                "content": "second time lucky"}
        assert r.send(sent)[0] == 202
        assert wait_for(lambda: r.state("pusher", "eg-ok") == "TASK_STATE_COMPLETED", 10)
        assert ep.count() == 2 and [c[1]["id"] for c in ep.calls] == ["eg-ok", "eg-ok"]
        assert r.pull_all("alice", wait_ms=300) == []  # a Task answer is no reply, and nothing failed
    finally:
        ep.stop()
