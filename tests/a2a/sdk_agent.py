"""An A2A agent built with the official Python SDK (a2a.server): DefaultRequestHandler with an
in-memory task store, the JSON-RPC route and the agent-card route in a Starlette app, served by uvicorn
on a free 127.0.0.1 port from a thread.

Its executor records every message it receives and answers each with one agent Message whose text is
`reply_prefix` + the received text, in the received context. `fail_with` makes it raise instead (the
SDK turns that into an error answer)."""
import asyncio
import socket
import threading
import time

import uvicorn
from starlette.applications import Starlette

from a2a.helpers import get_message_text, new_text_message
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
from a2a.server.tasks import InMemoryTaskStore
from a2a.types import AgentCapabilities, AgentCard, AgentInterface, AgentSkill
from a2a.utils.errors import UnsupportedOperationError


class RecordingExecutor(AgentExecutor):
    def __init__(self, reply_prefix="echo: "):
        self.reply_prefix = reply_prefix
        self.received = []  # (message, context_id) as the SDK handed them over
        self.lock = threading.Lock()
        self.fail_with = None

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        with self.lock:
            self.received.append((context.message, context.context_id))
        if self.fail_with is not None:
            raise self.fail_with
        text = get_message_text(context.message) if context.message else ""
        await event_queue.enqueue_event(new_text_message(self.reply_prefix + text, context_id=context.context_id))

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        raise UnsupportedOperationError()


class SdkAgent:
    """start() serves; .base is the agent's URL (JSON-RPC endpoint and card base); stop() ends it."""

    def __init__(self, name="sdkagent", reply_prefix="echo: "):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.executor = RecordingExecutor(reply_prefix)
        self.card = AgentCard(
            name=name,
            description=f"an A2A SDK agent for the Switchboard tests ({name})",
            version="1.0.0",
            supported_interfaces=[AgentInterface(url=self.base + "/", protocol_binding="JSONRPC",
                                                 protocol_version="1.0")],
            capabilities=AgentCapabilities(streaming=False, push_notifications=False),
            default_input_modes=["text/plain"],
            default_output_modes=["text/plain"],
            skills=[AgentSkill(id="echo", name="echo", description="Echoes the text it gets", tags=["test"])],
        )
        handler = DefaultRequestHandler(agent_executor=self.executor, task_store=InMemoryTaskStore(),
                                        agent_card=self.card)
        app = Starlette(routes=create_agent_card_routes(self.card) + create_jsonrpc_routes(handler, rpc_url="/"))
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self.thread = None

    def start(self):
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve(sockets=[self.sock])),
                                       daemon=True)
        self.thread.start()
        deadline = time.time() + 10
        while not self.server.started:
            if time.time() > deadline or not self.thread.is_alive():
                raise AssertionError("the SDK agent did not start")
            time.sleep(0.02)
        return self

    def received(self):
        with self.executor.lock:
            return list(self.executor.received)

    def stop(self):
        self.server.should_exit = True
        if self.thread:
            self.thread.join(10)
        self.sock.close()
