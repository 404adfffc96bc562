"""A Task is the A2A view of one stored message (docs/a2a.md): it survives a SIGKILL of the router,
and a message that dies (retries exhausted on a push agent that answers 500 or is down) is a FAILED
Task whose status names the reason, while its sender gets the usual FIPA failure notice."""
import json

from harness import DEFAULT_AGENTS, FAIL_REASONS, PushEndpoint, deadletters, status_text, text_message, wait_for


def test_sigkill_between_send_message_and_delivery(start_router):
    r = start_router()
    t = r.send_message("bob", text_message("dur-1", "survive this", "c-dur", sender="alice"))
    assert t["status"]["state"] == "TASK_STATE_SUBMITTED"
    r.send_message("bob", text_message("dur-2", "and cancel that", "c-dur2", sender="alice"))
    assert r.call("bob", "CancelTask", {"id": "dur-2"})["status"]["state"] == "TASK_STATE_CANCELED"
    r.kill9()  # before any pull: the acceptance was the commit
    r.start()  # the same data directory and ports
    t = r.get_task("bob", "dur-1")
    assert (t["status"]["state"], t["contextId"]) == ("TASK_STATE_SUBMITTED", "c-dur"), t
    # a cancelled message is remembered as cancelled across restarts, and stays undelivered
    assert r.state("bob", "dur-2") == "TASK_STATE_CANCELED"
    got = r.pull_one("bob")
    assert got["message_id"] == "dur-1"
    m = got["message"]
    assert (m["sender"], m["conversation_id"], m["content"]) == ("alice", "c-dur", "survive this")
    assert r.state("bob", "dur-1") == "TASK_STATE_WORKING"
    r.settle("bob", ["dur-1"])
    assert r.state("bob", "dur-1") == "TASK_STATE_COMPLETED"
    # the idempotency record survives too: the same messageId again is the same Task, not a new message
    again = r.send_message("bob", text_message("dur-1", "survive this", "c-dur", sender="alice"))
    assert (again["id"], again["status"]["state"]) == ("dur-1", "TASK_STATE_COMPLETED")
    assert r.pull_all("bob", wait_ms=200) == []


class Endpoint(PushEndpoint):
    """A push agent's HTTP endpoint that answers every POST with `status` (or, given `answers`, with
    each (status, body) in turn, the last one repeated); each answer closes its connection."""

    def __init__(self, status=500, answers=None):
        answers = answers or [status]
        super().__init__(lambda n: answers[min(n, len(answers) - 1)], close=True)


# small retries, no jitter, and a breaker that stays closed: three attempts within a second
FAST_RETRIES = ("delivery:\n  maxRetries: 2\n  baseRetryDelayMs: 50\n  retryBackoffFactor: 2.0\n"
                "  retryJitterMs: 0\n  retryMaxDelayMs: 200\n  connectionTimeoutMs: 200\n"
                "  circuitBreaker: {threshold: 100, timeoutMs: 1000, halfOpenMaxCalls: 1}\n")


def push_agents(port):
    return DEFAULT_AGENTS + [{"id": "pusher", "mode": "push", "endpoint": f"http://127.0.0.1:{port}/inbox",
                              "timeoutMs": 500}]


def check_failed(r, task_id, reason, context_id):
    """GetTask says FAILED with `reason` in status.message, and the sender alice got a FIPA failure."""
    assert wait_for(lambda: any(d["message_id"] == task_id for d in deadletters(r)), 10), deadletters(r)
    t = r.get_task("pusher", task_id)
    assert t["status"]["state"] == "TASK_STATE_FAILED", t
    text = status_text(t["status"])
    assert reason in text, f"status.message should carry the reason {reason}: {t}"
    assert any(x in text for x in FAIL_REASONS), t
    # 0.3 spelling of the same
    t03 = r.call("pusher", "tasks/get", {"id": task_id}, version="0.3")
    assert t03["status"]["state"] == "failed" and reason in status_text(t03["status"]), t03
    # dead-lettered: not cancelable
    r.call_error("pusher", "CancelTask", {"id": task_id}, code=-32002, reason="TaskNotCancelable")
    # the FIPA failure notice to the sender, in the same conversation
    notice = r.pull_one("alice")["message"]
    assert (notice["performative"], notice["receiver"], notice["in_reply_to"], notice["conversation_id"]) == \
        ("failure", "alice", task_id, context_id), notice
    assert json.loads(notice["content"])["reason"], notice


def test_push_agent_answering_500_fails_the_task(start_router):
    ep = Endpoint(500)
    try:
        r = start_router(FAST_RETRIES, push_agents(ep.port))
        t = r.send_message("pusher", text_message("fail-500", "will not land", "c-fail", sender="alice"))
        assert t["status"]["state"] in ("TASK_STATE_SUBMITTED", "TASK_STATE_WORKING")
        check_failed(r, "fail-500", "NotResponding", "c-fail")
        assert ep.count() == 3  # the first attempt and maxRetries retries
        d = [d for d in deadletters(r) if d["message_id"] == "fail-500"][0]
        assert d["reason"] == "AgentNotResponding" and d["attempts"] == 3, d
    finally:
        ep.stop()


def test_push_agent_that_is_down_fails_the_task(start_router):
    ep = Endpoint(500)
    ep.stop()  # its port now refuses connections
    r = start_router(FAST_RETRIES, push_agents(ep.port))
    r.send_message("pusher", text_message("fail-down", "nobody home", "c-down", sender="alice"))
    check_failed(r, "fail-down", "NetworkError", "c-down")


def test_push_agent_answering_errors_then_down(start_router):
    """The issue's sequence: the agent answers errors, then is down: retries, then a dead letter."""
    ep = Endpoint(503)
    extra = FAST_RETRIES.replace("maxRetries: 2", "maxRetries: 4").replace("baseRetryDelayMs: 50",
                                                                          "baseRetryDelayMs: 300")
    extra = extra.replace("retryMaxDelayMs: 200", "retryMaxDelayMs: 1200")
    r = start_router(extra, push_agents(ep.port))
    try:
        r.send_message("pusher", text_message("fail-seq", "errors then silence", "c-seq", sender="alice"))
        assert wait_for(lambda: ep.count() >= 2, 5), ep.count()
        assert r.state("pusher", "fail-seq") in ("TASK_STATE_SUBMITTED", "TASK_STATE_WORKING")
    finally:
        ep.stop()  # the next retries (600 ms, 1200 ms ... later) find the port closed
    check_failed(r, "fail-seq", "NetworkError", "c-seq")
    assert 2 <= ep.count() < 5
