"""Dead letters on a real router: retries exhausted by nacks or by expired
leases, deadlines, the FIPA failure notice to the sender, listing with
filters and paging, replay, and persistence across a restart."""
import json
import time

from conftest import Router, msg

CFG = "delivery:\n  maxRetries: 1\n  leaseTimeoutMs: 200\n"


def deadletters(r, query=""):
    status, _, body = r.data("GET", "/v1/deadletters" + query)
    assert status == 200, body
    return json.loads(body)


def wait_dead(r, n, query="", timeout=5):
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = deadletters(r, query)
        if len(got["deadletters"]) >= n:
            return got
        time.sleep(0.05)
    raise AssertionError(f"expected {n} dead letters: {deadletters(r)}")


def test_nacks_beyond_max_retries_dead_letter_and_notify_the_sender(tmpdir_path):
    r = Router(tmpdir_path, CFG).start()
    try:
        assert r.send(msg(message_id="d-1", conversation_id="c9", content="please"))[0] == 202
        for attempt in (1, 2):
            got = r.pull("bob")["messages"]
            assert [(m["message_id"], m["attempt"]) for m in got] == [("d-1", attempt)]
            r.ack("bob", ["d-1"], verb="nack")
        dl = wait_dead(r, 1)["deadletters"][0]
        assert (dl["message_id"], dl["receiver"], dl["sender"], dl["reason"], dl["attempts"]) == \
            ("d-1", "bob", "alice", "AgentNotResponding", 2)
        assert dl["message"]["content"] == "please"
        assert r.pull("bob")["messages"] == []  # not redelivered
        notice = r.pull("alice", wait_ms=2000)["messages"]
        assert len(notice) == 1
        f = notice[0]["message"]
        assert f["performative"] == "failure" and f["in_reply_to"] == "d-1" and f["conversation_id"] == "c9"
        assert json.loads(f["content"])["reason"] == "AgentNotResponding"
        assert 'switchboard_router_dead_letters_total{reason="AgentNotResponding"} 1' in r.metrics()
    finally:
        r.stop()


def test_expired_leases_count_as_attempts(tmpdir_path):
    r = Router(tmpdir_path, CFG).start()
    try:
        assert r.send(msg(message_id="l-1"))[0] == 202
        assert len(r.pull("bob")["messages"]) == 1
        time.sleep(0.4)
        assert r.pull("bob")["messages"][0]["attempt"] == 2
        time.sleep(0.4)  # the second lease expires too: out of attempts
        assert wait_dead(r, 1)["deadletters"][0]["reason"] == "AgentNotResponding"
    finally:
        r.stop()


def test_deadline_and_replay_and_restart(tmpdir_path):
    r = Router(tmpdir_path, "conversation:\n  timeoutMs: 60000\n").start()
    try:
        assert r.send(msg(message_id="t-1", delivery={"timeout_ms": 300}))[0] == 202
        assert r.send(msg(message_id="t-2", delivery={"timeout_ms": 300}))[0] == 202
        assert r.send(msg(message_id="ok", receiver="alice", sender="bob"))[0] == 202
        got = wait_dead(r, 2)["deadletters"]
        assert [(d["message_id"], d["reason"]) for d in got] == [("t-1", "Timeout"), ("t-2", "Timeout")]
        assert 'switchboard_router_messages_failed_total{reason="timeout"} 2' in r.metrics()
        # filters and paging
        assert deadletters(r, "?agent=alice")["deadletters"] == []
        page = deadletters(r, "?limit=1")
        assert len(page["deadletters"]) == 1 and page["next_after"] == got[0]["seq"]
        page2 = deadletters(r, f"?limit=1&after={page['next_after']}")
        assert [d["message_id"] for d in page2["deadletters"]] == ["t-2"]
        assert r.data("GET", "/v1/deadletters?limit=0")[0] == 400
        # dead letters survive a restart
        r.stop()
        r.start()
        assert len(deadletters(r)["deadletters"]) == 2
        # replay one by sequence: back in the mailbox, with its id, and out of the table
        status, _, body = r.data("POST", "/v1/deadletters/replay", {"seqs": [got[0]["seq"]]})
        assert status == 200 and json.loads(body) == {"replayed": 1, "skipped": 0}
        assert [m["message_id"] for m in r.pull("bob")["messages"]] == ["t-1"]
        assert [d["message_id"] for d in deadletters(r)["deadletters"]] == ["t-2"]
        status, _, body = r.data("POST", "/v1/deadletters/replay", {"agent": "bob"})
        assert json.loads(body)["replayed"] == 1 and deadletters(r)["deadletters"] == []
        assert r.data("POST", "/v1/deadletters/replay", {"seqs": "all"})[0] == 400
    finally:
        r.stop()


def test_no_failure_notice_when_the_sender_opted_out(tmpdir_path):
    r = Router(tmpdir_path, CFG, agents=[])
    with open(r.config, "a") as f:
        f.write("agents:\n  - id: alice\n    notifyOnFailure: false\n  - id: bob\n")
    r.start()
    try:
        assert r.send(msg(message_id="q-1"))[0] == 202
        for _ in range(2):
            r.pull("bob")
            r.ack("bob", ["q-1"], verb="nack")
        wait_dead(r, 1)
        time.sleep(0.3)
        assert r.pull("alice")["messages"] == []
    finally:
        r.stop()


def test_dead_letter_queue_is_bounded(tmpdir_path):
    r = Router(tmpdir_path, CFG + "  deadLetter: {maxSize: 2}\n").start()
    try:
        for i in range(3):
            assert r.send(msg(message_id=f"b-{i}"))[0] == 202
        for _ in range(2):
            got = r.pull("bob")["messages"]
            r.ack("bob", [m["message_id"] for m in got], verb="nack")
        time.sleep(0.5)
        kept = [d["message_id"] for d in deadletters(r)["deadletters"]]
        assert kept == ["b-1", "b-2"], kept  # the oldest went first
    finally:
        r.stop()
