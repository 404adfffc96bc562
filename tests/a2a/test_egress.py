"""An A2A server built with the official SDK as a push agent (egress: the router delivers to an A2A
agent with SendMessage and routes its reply back). Egress is the next step of issue 15 and is not
built yet: its test runs and must fail (strict xfail) until it lands. Its config uses the agent field
`protocol: a2a` next to push delivery's `mode: push` and `endpoint`.

The SDK agent itself is checked here against the SDK's own client, so the fixture is known good
whatever the router does."""
import asyncio
import json

import pytest

from a2a.client import ClientConfig, ClientFactory
from a2a.helpers import get_message_text
from a2a.types import Message, Part, Role, SendMessageRequest

from harness import DEFAULT_AGENTS, wait_for
from sdk_agent import SdkAgent


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


@pytest.mark.xfail(strict=True, reason="egress: issue 15 step 2")
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
