"""Push delivery against real HTTP agents on 127.0.0.1: success, retries with
backoff on 500/429/timeouts/closed connections, permanent 4xx, the circuit
breaker, dead letters, failure notices, and conversation order under retry."""
import json
import os
import time

from conftest import PushEndpoint, Router, msg


class Agent(PushEndpoint):
    """An HTTP agent. `script` is a list of behaviours used in turn (the last
    one repeats): an int status, 'hang' (answer after 2 s), or 'close'."""

    def __init__(self, script):
        super().__init__(lambda n: script[min(n, len(script) - 1)])


DELIVERY = ("delivery:\n  maxRetries: 3\n  baseRetryDelayMs: 100\n  retryBackoffFactor: 2.0\n"
            "  retryJitterMs: 0\n  retryMaxDelayMs: 1000\n  connectionTimeoutMs: 200\n"
            "  circuitBreaker: {threshold: 3, timeoutMs: 600, halfOpenMaxCalls: 1}\n")


def start(tmpdir_path, agent, extra=""):
    r = Router(tmpdir_path, DELIVERY + extra, agents=["alice"])
    with open(r.config, "a") as f:
        f.write(f"  - id: pusher\n    mode: push\n    endpoint: http://127.0.0.1:{agent.port}/inbox\n"
                "    timeoutMs: 400\n    maxInFlight: 4\n")
    return r.start()


def wait_for(cond, timeout=8):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return False


def dead(r):
    return json.loads(r.data("GET", "/v1/deadletters")[2])["deadletters"]


def test_push_delivers_and_acks(tmpdir_path):
    a = Agent([200])
    r = start(tmpdir_path, a)
    try:
        for i in range(5):
            assert r.send(msg(receiver="pusher", message_id=f"p-{i}", content=f"n{i}"))[0] == 202
        assert wait_for(lambda: len(a.ids()) == 5)
        assert sorted(a.ids()) == [f"p-{i}" for i in range(5)]
        assert a.calls[0][1]["sender"] == "alice" and a.calls[0][1]["performative"] == "inform"
        assert wait_for(lambda: json.loads(r.data("GET", "/v1/agents/pusher")[2])["queue_depth"] == 0 and
                        json.loads(r.data("GET", "/v1/agents/pusher")[2])["in_flight"] == 0)
        assert "switchboard_router_messages_delivered_total 5" in r.metrics()
    finally:
        r.stop()
        a.stop()


def test_temporary_failures_retry_with_backoff_then_deliver(tmpdir_path):
    a = Agent([500, 429, 200])
    r = start(tmpdir_path, a)
    try:
        assert r.send(msg(receiver="pusher", message_id="flaky"))[0] == 202
        assert wait_for(lambda: len(a.calls) == 3)
        t = [c[0] for c in a.calls]
        # backoff: 100 ms after the first failure, 200 ms after the second (no jitter)
        assert 0.09 <= t[1] - t[0] < 0.6 and 0.19 <= t[2] - t[1] < 0.8, t
        time.sleep(0.3)
        assert len(a.calls) == 3 and dead(r) == []
        assert "switchboard_router_delivery_retries_total 2" in r.metrics()
    finally:
        r.stop()
        a.stop()


def test_permanent_4xx_dead_letters_at_once_and_notifies(tmpdir_path):
    a = Agent([400])
    r = start(tmpdir_path, a)
    try:
        assert r.send(msg(receiver="pusher", message_id="bad"))[0] == 202
        assert wait_for(lambda: len(dead(r)) == 1)
        d = dead(r)[0]
        assert (d["message_id"], d["reason"], d["attempts"]) == ("bad", "InvalidMessage", 1)
        assert len(a.calls) == 1
        notice = r.pull("alice", wait_ms=2000)["messages"]
        assert notice and notice[0]["message"]["in_reply_to"] == "bad"
    finally:
        r.stop()
        a.stop()


def test_hanging_and_closing_agents_exhaust_retries(tmpdir_path):
    for behaviour in ("hang", "close"):
        workdir = os.path.join(tmpdir_path, behaviour)
        os.makedirs(workdir)
        a = Agent([behaviour])
        r = start(workdir, a)
        try:
            assert r.send(msg(receiver="pusher", message_id=f"x-{behaviour}"))[0] == 202
            assert wait_for(lambda: len(dead(r)) == 1, timeout=15), behaviour
            d = dead(r)[0]
            assert d["reason"] == "NetworkError" and d["attempts"] == 4, d  # 1 + maxRetries
            assert len(a.calls) == 4
        finally:
            r.stop()
            a.stop()


def breaker_state(r):
    for line in r.metrics().splitlines():
        if line.startswith('switchboard_router_circuit_breaker_state{agent="pusher"'):
            return int(line.rsplit(" ", 1)[1])
    return None


def test_circuit_breaker_opens_then_probes(tmpdir_path):
    a = Agent([500] * 6 + [200])
    r = start(tmpdir_path, a)
    try:
        for i in range(3):
            assert r.send(msg(receiver="pusher", message_id=f"cb-{i}", delivery={"max_retries": 10}))[0] == 202
        assert wait_for(lambda: breaker_state(r) == 2)  # open after 3 consecutive failures
        n = len(a.calls)
        time.sleep(0.4)  # while open, nothing reaches the agent
        assert len(a.calls) == n
        # after timeoutMs it probes one request at a time; the agent recovers and all are delivered
        assert wait_for(lambda: {"cb-0", "cb-1", "cb-2"} <= set(a.ids()), 15)
        assert wait_for(lambda: json.loads(r.data("GET", "/v1/agents/pusher")[2])["in_flight"] == 0, 15)
        assert dead(r) == [] and breaker_state(r) == 0
    finally:
        r.stop()
        a.stop()


def test_conversation_order_holds_under_retry(tmpdir_path):
    a = Agent([500, 500, 200])
    r = start(tmpdir_path, a)
    try:
        for i in range(3):
            assert r.send(msg(receiver="pusher", message_id=f"c-{i}", conversation_id="conv"))[0] == 202
        assert wait_for(lambda: len(a.calls) == 5)
        assert a.ids() == ["c-0", "c-0", "c-0", "c-1", "c-2"]
    finally:
        r.stop()
        a.stop()


def test_batches_hold_at_most_max_size(tmpdir_path):
    a = Agent([200])
    r = start(tmpdir_path, a, "  batch: {enabled: true, maxSize: 3, timeoutMs: 10}\n")
    try:
        batch = {"messages": [msg(receiver="pusher", message_id=f"b-{i}") for i in range(7)]}
        assert r.data("POST", "/v1/messages", batch)[0] == 202
        assert wait_for(lambda: sum(len(c[1]["messages"]) for c in a.calls) == 7)
        sizes = [len(c[1]["messages"]) for c in a.calls]
        assert max(sizes) <= 3 and len(sizes) >= 3, sizes
        got = [m["message_id"] for c in a.calls for m in c[1]["messages"]]
        assert sorted(got) == [f"b-{i}" for i in range(7)]
    finally:
        r.stop()
        a.stop()


def test_batches_wait_up_to_timeout_to_fill(tmpdir_path):
    a = Agent([200])
    r = start(tmpdir_path, a, "  batch: {enabled: true, maxSize: 5, timeoutMs: 400}\n")
    try:
        t0 = time.time()
        for i in range(3):  # fewer than maxSize, trickling in
            assert r.send(msg(receiver="pusher", message_id=f"w-{i}"))[0] == 202
            time.sleep(0.05)
        assert wait_for(lambda: sum(len(c[1]["messages"]) for c in a.calls) == 3)
        assert len(a.calls) == 1, [len(c[1]["messages"]) for c in a.calls]  # one request carried all three
        assert 0.3 <= a.calls[0][0] - t0 < 1.5  # sent when the oldest had waited timeoutMs
        for i in range(5):  # a full batch goes at once
            assert r.send(msg(receiver="pusher", message_id=f"f-{i}"))[0] == 202
        t1 = time.time()
        assert wait_for(lambda: len(a.calls) == 2)
        assert a.calls[1][0] - t1 < 0.3 and len(a.calls[1][1]["messages"]) == 5
    finally:
        r.stop()
        a.stop()
