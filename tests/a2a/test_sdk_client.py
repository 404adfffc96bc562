"""The official Python SDK's client (a2a-sdk) against the router's A2A face (docs/a2a.md): card
resolution, SendMessage, delivery to a pull agent, a Task's life from submitted to completed, parts,
idempotency, CancelTask and the SDK's errors, and bearer tokens."""
import asyncio
import json
import re

import httpx
import pytest
from google.protobuf.json_format import MessageToDict

from a2a.client import A2ACardResolver, ClientConfig, ClientFactory
from a2a.helpers import new_data_part, new_text_part, new_url_part
from a2a.types import CancelTaskRequest, GetTaskRequest, Message, Part, Role, SendMessageRequest, TaskState
from a2a.utils.errors import TaskNotFoundError

from harness import TOKEN_CONFIG, bearer, metric, token_agents

PARTS_LANGUAGE = "application/a2a-parts+json"


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


async def sdk_client(base, headers=None):
    """The SDK's ClientFactory resolving the card from the base URL, as an application would do it.
    `headers` (e.g. Authorization) go on every request, card included."""
    config = ClientConfig(streaming=False)
    if headers:
        config.httpx_client = httpx.AsyncClient(headers=headers, timeout=10)
    return await ClientFactory(config).create_from_url(base)


async def sdk_send(client, message):
    """SendMessage through the SDK; returns the Task (the router answers with a Task, never a Message)."""
    events = [ev async for ev in client.send_message(SendMessageRequest(message=message))]
    assert len(events) == 1 and events[0].HasField("task"), events
    return events[0].task


def message(message_id, parts, context_id=None, **metadata):
    m = Message(message_id=message_id, role=Role.ROLE_USER, parts=parts)
    if context_id:
        m.context_id = context_id
    if metadata:
        m.metadata.update(metadata)
    return m


def test_sdk_resolves_the_card(start_router):
    r = start_router()

    async def go():
        async with httpx.AsyncClient(timeout=10) as h:
            return await A2ACardResolver(h, r.base("bob")).get_agent_card()

    card = run(go())
    assert card.name == "bob"
    assert card.description == "Switchboard agent bob"
    assert card.version  # the router's version
    assert [(s.id, s.name, s.description, list(s.tags)) for s in card.skills] == [
        ("search", "search", "Looks things up", ["switchboard"]),
        ("review", "review", "Reviews plans", ["switchboard"]),
    ]
    ifaces = {(i.url, i.protocol_binding, i.protocol_version) for i in card.supported_interfaces}
    assert ifaces == {(r.base("bob"), "JSONRPC", "1.0"), (r.base("bob"), "JSONRPC", "0.3")}, ifaces
    assert not card.capabilities.streaming and not card.capabilities.push_notifications
    assert set(card.default_input_modes) == {"text/plain", "application/json"}
    assert set(card.default_output_modes) == {"text/plain", "application/json"}
    assert not card.security_schemes and not card.security_requirements  # auth off

    # the raw card: JSON, the same interface, no credentials needed
    status, headers, data = r.card("alice")
    assert status == 200 and "json" in headers["Content-Type"], (status, data)
    raw = json.loads(data)
    assert raw["name"] == "alice" and [s["id"] for s in raw["skills"]] == ["planning"]
    assert {"url": r.base("alice"), "protocolBinding": "JSONRPC", "protocolVersion": "1.0"} in \
        raw["supportedInterfaces"]


def test_card_names_the_host_the_client_reached(start_router):
    r = start_router()
    # the interface URL follows the request's Host (a Service, an Ingress, a port-forward)
    for host in ("switchboard.example:9999", "switchboard.example", "127.0.0.2:8080"):
        status, _, data = r.card("bob", headers={"Host": host})
        assert status == 200, data
        urls = {i["url"] for i in json.loads(data)["supportedInterfaces"]}
        assert urls == {f"http://{host}/a2a/bob"}, (host, urls)
    # a Host that is not a plain host name or address with an optional port is ignored
    for host in ("evil.example/path", "user@evil.example", "evil.example:port"):
        status, _, data = r.card("bob", headers={"Host": host})
        assert status == 200, data
        urls = {i["url"] for i in json.loads(data)["supportedInterfaces"]}
        assert urls == {f"http://127.0.0.1:{r.data_port}/a2a/bob"}, (host, urls)


def test_unknown_agent_card_is_404_agent_not_found(start_router):
    r = start_router()
    status, _, data = r.card("nobody")
    assert status == 404, data
    assert json.loads(data)["error"]["code"] == "AgentNotFound", data


def test_sdk_send_message_is_pulled_and_the_task_goes_submitted_working_completed(start_router):
    r = start_router()

    async def go():
        client = await sdk_client(r.base("bob"))
        try:
            task = await sdk_send(client, message("sdk-m-1", [new_text_part("Book a table for two")],
                                                  "trip-42", sender="alice"))
            assert task.id == "sdk-m-1"  # the Task's id is the router's message_id
            assert task.context_id == "trip-42"
            assert task.status.state == TaskState.TASK_STATE_SUBMITTED
            assert task.status.HasField("timestamp")

            async def state():
                return (await client.get_task(GetTaskRequest(id=task.id))).status.state

            assert await state() == TaskState.TASK_STATE_SUBMITTED
            got = r.pull_one("bob")  # leased now
            assert got["message_id"] == "sdk-m-1"
            m = got["message"]
            assert (m["sender"], m["receiver"], m["performative"]) == ("alice", "bob", "request")
            assert (m["conversation_id"], m["message_id"], m["content"]) == ("trip-42", "sdk-m-1",
                                                                            "Book a table for two")
            assert m.get("language") != PARTS_LANGUAGE  # one text part is plain text
            assert await state() == TaskState.TASK_STATE_WORKING
            r.settle("bob", ["sdk-m-1"], "nack")  # back in the queue
            assert await state() == TaskState.TASK_STATE_SUBMITTED
            assert [g["message_id"] for g in r.pull_all("bob")] == ["sdk-m-1"]
            assert await state() == TaskState.TASK_STATE_WORKING
            r.settle("bob", ["sdk-m-1"])
            assert await state() == TaskState.TASK_STATE_COMPLETED
        finally:
            await client.close()

    run(go())
    # an A2A message counts in the message metrics as any message does
    assert metric(r, "switchboard_router_messages_received_total") == 1
    assert metric(r, "switchboard_router_messages_routed_total") == 1
    text = r.metrics()
    assert re.search(r'^switchboard_(router_)?a2a_requests_total\{[^}]*method="SendMessage"', text, re.M), \
        "switchboard_a2a_requests_total{method,code} counts A2A requests"


def test_data_and_url_parts_are_stored_as_parts_json(start_router):
    r = start_router()
    parts = [new_text_part("see attached"), new_data_part({"city": "Lyon", "seats": 2, "tags": ["a", "b"]}),
             new_url_part("https://files.example/menu.pdf", media_type="application/pdf", filename="menu.pdf")]

    async def go():
        client = await sdk_client(r.base("bob"))
        try:
            await sdk_send(client, message("sdk-parts-1", parts, "c-parts", sender="alice"))
            await sdk_send(client, message("sdk-parts-2", [new_data_part([1, 2, 3])], "c-parts", sender="alice"))
        finally:
            await client.close()

    run(go())
    got = r.pull_all("bob", wait_ms=1000)
    assert [g["message_id"] for g in got] == ["sdk-parts-1", "sdk-parts-2"]
    m1, m2 = got[0]["message"], got[1]["message"]
    assert m1["language"] == PARTS_LANGUAGE and m2["language"] == PARTS_LANGUAGE
    # the parts as JSON text in A2A 1.0 shape: what the SDK sent, part for part
    assert json.loads(m1["content"]) == [MessageToDict(p) for p in parts], m1["content"]
    assert json.loads(m2["content"]) == [{"data": [1, 2, 3]}], m2["content"]


def test_the_same_message_id_twice_is_one_task_delivered_once(start_router):
    r = start_router()

    async def go():
        client = await sdk_client(r.base("bob"))
        try:
            m = message("sdk-dup-1", [new_text_part("only once")], "c-dup", sender="alice")
            t1 = await sdk_send(client, m)
            t2 = await sdk_send(client, m)
            assert t1.id == t2.id == "sdk-dup-1" and t2.context_id == "c-dup"
            assert t2.status.state == TaskState.TASK_STATE_SUBMITTED
            got = r.pull_all("bob", wait_ms=1000)
            assert [g["message_id"] for g in got] == ["sdk-dup-1"]
            # again while leased: the same Task, in its current state, and still nothing new to pull
            t3 = await sdk_send(client, m)
            assert t3.id == "sdk-dup-1" and t3.status.state == TaskState.TASK_STATE_WORKING
            assert r.pull_all("bob") == []
            r.settle("bob", ["sdk-dup-1"])
            t4 = await sdk_send(client, m)
            assert t4.id == "sdk-dup-1" and t4.status.state == TaskState.TASK_STATE_COMPLETED
            assert r.pull_all("bob") == []
        finally:
            await client.close()

    run(go())
    assert metric(r, "switchboard_router_messages_routed_total") == 1
    assert metric(r, "switchboard_router_duplicate_messages_total") == 3


def test_sdk_cancel_task_and_task_not_found(start_router):
    r = start_router()

    async def go():
        client = await sdk_client(r.base("bob"))
        try:
            t = await sdk_send(client, message("sdk-cancel-1", [new_text_part("never mind")], sender="alice"))
            canceled = await client.cancel_task(CancelTaskRequest(id=t.id))
            assert canceled.id == t.id and canceled.status.state == TaskState.TASK_STATE_CANCELED
            assert (await client.get_task(GetTaskRequest(id=t.id))).status.state == TaskState.TASK_STATE_CANCELED
            assert r.pull_all("bob", wait_ms=300) == []  # never delivered
            with pytest.raises(TaskNotFoundError):
                await client.get_task(GetTaskRequest(id="no-such-task"))
            with pytest.raises(TaskNotFoundError):
                await client.cancel_task(CancelTaskRequest(id="no-such-task"))
        finally:
            await client.close()

    run(go())


def test_sdk_with_a_bearer_token_sends_as_the_tokens_agent(start_router):
    r = start_router(TOKEN_CONFIG, token_agents())

    async def go():
        # the card is public, and announces the bearer scheme
        async with httpx.AsyncClient(timeout=10) as h:
            card = await A2ACardResolver(h, r.base("bob")).get_agent_card()
        assert "bearer" in card.security_schemes, card
        assert card.security_schemes["bearer"].http_auth_security_scheme.scheme.lower() == "bearer"
        assert any("bearer" in req.schemes for req in card.security_requirements), card
        client = await sdk_client(r.base("bob"), bearer("alice"))
        try:
            t = await sdk_send(client, Message(message_id="sdk-auth-1", role=Role.ROLE_USER,
                                               parts=[Part(text="from alice, by token")]))
            assert t.status.state == TaskState.TASK_STATE_SUBMITTED
            assert (await client.get_task(GetTaskRequest(id=t.id))).status.state == TaskState.TASK_STATE_SUBMITTED
        finally:
            await client.close()

    run(go())
    got = r.pull_one("bob", headers=bearer("bob"))
    assert got["message"]["sender"] == "alice" and got["message"]["content"] == "from alice, by token"
