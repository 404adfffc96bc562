"""Several routers acting as one (docs/cluster.md), on local processes: what each router says about
the assignment (its ordinal, the replica count, the epoch) and which ordinal owns each agent."""
import hashlib
import http.client
import json
import os
import re
import socket
import time

from conftest import Router, msg


def status(r):
    s, _, body = r.admin("GET", "/v1/status")
    assert s == 200, body
    return json.loads(body)


def owners(r):
    s, _, body = r.data("GET", "/v1/agents")
    assert s == 200, body
    return {a["id"]: a["owner"] for a in json.loads(body)["agents"]}


def test_router_reports_its_ordinal_and_each_agents_owner(tmpdir_path):
    """The owner comes from rendezvous hashing of the agent id over the replica count (pinned vectors:
    the operator computes the same), and a hot change of cluster.replicas moves the epoch and the owners
    without a restart; the ordinal is the router's own and restart-class."""
    pport = free_ports_on(["127.0.0.1"], 1)[0]
    r = Router(tmpdir_path, "cluster:\n  replicas: 3\n  ordinal: 1\n  peerHost: r-{ordinal}.peers.test\n")
    with open(r.config) as f:
        text = f.read()
    with open(r.config, "w") as f:
        f.write(text.replace("network:\n", f"network:\n  peerPort: {pport}\n", 1))
    r.start()
    try:
        st = status(r)
        assert st["cluster"]["ordinal"] == 1 and st["cluster"]["replicas"] == 3
        epoch3 = st["cluster"]["epoch"]
        assert len(epoch3) == 16
        assert owners(r) == {"alice": 2, "bob": 2}

        with open(r.config) as f:
            text = f.read()
        with open(r.config, "w") as f:
            f.write(text.replace("replicas: 3", "replicas: 5"))
        s, _, body = r._req(r.admin_port, "POST", "/admin/reload", timeout=10)
        assert s == 200 and json.loads(body)["result"] == "applied", body
        st = status(r)
        assert st["cluster"]["replicas"] == 5 and st["cluster"]["epoch"] != epoch3
        assert owners(r) == {"alice": 2, "bob": 4}

        with open(r.config, "w") as f:
            f.write(text.replace("ordinal: 1", "ordinal: 2"))
        s, _, body = r._req(r.admin_port, "POST", "/admin/reload", timeout=10)
        assert s == 409 and "cluster.ordinal" in json.loads(body)["reason"], body
    finally:
        r.stop()


# --- several routers as one: forwarding, fencing -----------------------------------------------

def free_ports_on(addrs, n):
    """n port numbers free on every address (the replicas share port numbers, each on its own
    address, as router pods on host networking do)."""
    out = []
    while len(out) < n:
        with socket.socket() as s:
            s.bind((addrs[0], 0))
            p = s.getsockname()[1]
        try:
            for a in addrs[1:]:
                with socket.socket() as s:
                    s.bind((a, p))
        except OSError:
            continue
        if p not in out:
            out.append(p)
    return out


# owners with 3 replicas (pinned in test_lib): carol -> 0, agent-0002 -> 1, alice -> 2
AGENTS = {"carol": 0, "agent-0002": 1, "alice": 2, "bob": 2}


class Cluster:
    """n local routers acting as one: router k on 127.0.S.(k+1), ordinal k, the peers named
    r-{ordinal}.peers.test and pinned to those addresses with cluster.resolve."""

    def __init__(self, base, n=3, extra="", agents=AGENTS):
        sub = 100 + os.getpid() % 100
        self.addrs = [f"127.0.{sub}.{k + 1}" for k in range(n)]
        dport, aport, pport = free_ports_on(self.addrs, 3)
        resolve = ",".join(f"r-{k}.peers.test:{pport}:{a}" for k, a in enumerate(self.addrs))
        self.routers = []
        for k, a in enumerate(self.addrs):
            d = os.path.join(base, f"r{k}")
            os.mkdir(d)
            cfg = (f"cluster:\n  replicas: {n}\n  ordinal: {k}\n  peerHost: r-{{ordinal}}.peers.test\n"
                   f"  resolve: {resolve}\n  forwardTimeoutMs: 2000\n" + extra)
            r = Router(d, cfg, agents=list(agents), host=a, ports=(dport, aport))
            with open(r.config) as f:
                text = f.read()
            with open(r.config, "w") as f:
                f.write(text.replace("network:\n", f"network:\n  peerPort: {pport}\n", 1))
            self.routers.append(r)

    def start(self):
        for r in self.routers:
            r.start()
        return self

    def stop(self):
        """Stop every router, even when one of them fails its clean-exit check, then report that."""
        errors = []
        for r in self.routers:
            try:
                r.stop()
            except AssertionError as e:
                errors.append(e)
        if errors:
            raise errors[0]


def send(r, receiver, mid, sender="carol", headers=None):
    s, h, body = r.data("POST", "/v1/messages", msg(sender=sender, receiver=receiver, message_id=mid), headers)
    return s, h, json.loads(body)


def pull_all(r, agent, headers=None):
    s, _, body = r.data("GET", f"/v1/agents/{agent}/messages?max=100&wait_ms=0", headers=headers)
    assert s == 200, body
    return [m["message_id"] for m in json.loads(body)["messages"]]


def test_any_router_serves_any_agent(tmpdir_path):
    """Three routers, one assignment: a message sent through any router is committed by its
    receiver's owner and can be pulled and acked through any other router, exactly once; a batch is
    split by owner; each router says the agents it does not own are empty there."""
    c = Cluster(tmpdir_path).start()
    try:
        sent = {}
        for i, r in enumerate(c.routers):
            for agent in AGENTS:
                mid = f"m-{agent}-{i}"
                s, h, body = send(r, agent, mid)
                assert s == 202 and body["message_id"] == mid, body
                sent.setdefault(agent, []).append(mid)
        # a batch through router 0 with one item per owner
        batch = {"messages": [msg(sender="carol", receiver=a, message_id=f"b-{a}") for a in AGENTS]}
        s, _, body = c.routers[0].data("POST", "/v1/messages", batch)
        res = json.loads(body)
        assert s == 202 and res["accepted"] == len(AGENTS), body
        for a in AGENTS:
            sent[a].append(f"b-{a}")
        # each agent pulls through a router that does not own it, and acks through another one
        for agent, owner in AGENTS.items():
            via = c.routers[(owner + 1) % 3]
            got = pull_all(via, agent)
            assert sorted(got) == sorted(sent[agent]), (agent, got)
            s, _, body = c.routers[(owner + 2) % 3].data("POST", f"/v1/agents/{agent}/ack", {"message_ids": got})
            assert s == 200 and json.loads(body)["acked"] == len(got), body
            assert pull_all(c.routers[owner], agent) == []
        # only the owners stored them: the routers' own views
        for k, r in enumerate(c.routers):
            m = r.metrics()
            mine = sum(len(v) for a, v in sent.items() if AGENTS[a] == k)
            assert f"switchboard_router_messages_received_total {mine}" in m, (k, mine)
    finally:
        c.stop()


def test_owner_down_gives_503_never_a_lost_202(tmpdir_path):
    """With an agent's owner gone, sends and pulls for it through the other routers get 503 with
    Retry-After, never a 202; the other agents keep flowing; once the owner is back with its database,
    everything it had acknowledged is delivered."""
    c = Cluster(tmpdir_path).start()
    try:
        assert send(c.routers[0], "alice", "before-1")[0] == 202
        c.routers[2].kill9()
        s, h, body = send(c.routers[0], "alice", "during-1")
        assert s == 503 and h.get("Retry-After") == "1" and body["error"]["code"] == "OwnerUnavailable", body
        s, _, body = c.routers[1].data("GET", "/v1/agents/alice/messages?max=10&wait_ms=0")
        assert s == 503 and json.loads(body)["error"]["code"] == "OwnerUnavailable", body
        assert send(c.routers[1], "carol", "carol-1")[0] == 202
        assert 'switchboard_router_forwarded_requests_total{result="unavailable"} 1' in c.routers[0].metrics()
        assert 'switchboard_router_forwarded_requests_total{result="unavailable"} 1' in c.routers[1].metrics()
        assert pull_all(c.routers[2 - 1], "carol") == ["carol-1"]
        c.routers[2].start()
        assert pull_all(c.routers[0], "alice") == ["before-1"]
    finally:
        c.stop()


def test_epoch_mismatch_never_commits_on_the_wrong_owner(tmpdir_path):
    """Router 1 still on another assignment (2 replicas): forwards between it and the others are refused
    with 503 EpochMismatch in both directions, and nothing is committed for an agent it would not own."""
    c = Cluster(tmpdir_path).start()
    try:
        r1 = c.routers[1]
        with open(r1.config) as f:
            text = f.read()
        with open(r1.config, "w") as f:
            f.write(text.replace("replicas: 3", "replicas: 2"))
        s, _, body = r1._req(r1.admin_port, "POST", "/admin/reload", timeout=10)
        assert s == 200, body
        s, h, body = send(c.routers[0], "agent-0002", "x-1")  # owned by 1 under 3 replicas
        assert s == 503 and body["error"]["code"] == "EpochMismatch" and h.get("Retry-After") == "1", body
        # router 1 thinks 2 replicas: alice's owner is 1, itself, and it holds her until her previous owner
        # (router 2, on the other assignment) hands her off
        s, h, body = send(r1, "alice", "x-2")
        assert s == 503 and body["error"]["code"] == "HandoffInProgress" and h.get("Retry-After") == "1", body
        assert "x-1" not in pull_all(r1, "agent-0002")
        assert "switchboard_router_epoch_mismatches_total 1" in r1.metrics()
        assert 'switchboard_router_forwarded_requests_total{result="refused"} 1' in c.routers[0].metrics()
    finally:
        c.stop()


def test_a_handoff_that_runs_out_of_time_is_reported(tmpdir_path):
    """Router 1 moves to another assignment (2 replicas) with a 1 s handoff timeout: it holds alice, whose
    previous owner (router 2, still on 3 replicas) never hands her off. When the hold runs out, router 1
    delivers what it has, counts it, and says so in GET /v1/status (cluster.handoff_timeouts), which the
    operator turns into the HandoffsInOrder condition."""
    c = Cluster(tmpdir_path).start()
    try:
        r1 = c.routers[1]
        assert status(r1)["cluster"]["handoff_timeouts"] == 0
        with open(r1.config) as f:
            text = f.read().replace("replicas: 3", "replicas: 2").replace(
                "forwardTimeoutMs: 2000\n", "forwardTimeoutMs: 2000\n  handoffTimeoutMs: 1000\n")
        with open(r1.config, "w") as f:
            f.write(text)
        s, _, body = r1._req(r1.admin_port, "POST", "/admin/reload", timeout=10)
        assert s == 200, body
        assert send(r1, "alice", "h-1")[0] == 503  # held
        time.sleep(1.2)
        s, _, body = send(r1, "alice", "h-2")
        assert s == 202, body
        assert status(r1)["cluster"]["handoff_timeouts"] == 1
        assert "switchboard_router_handoff_timeouts_total 1" in r1.metrics()
    finally:
        c.stop()


def test_forwarding_keeps_senders_honest(tmpdir_path):
    """With token auth, the router that sees the token checks the sender before forwarding: another
    agent's token gets 403 and an unknown one 401 through a non-owner, and the owner never commits
    them; a peer request without the peers' secret is refused."""
    tokens = {"carol": "carol-secret", "alice": "alice-secret"}
    admin = os.path.join(tmpdir_path, "admin-token")
    with open(admin, "w") as f:
        f.write("peer-secret\n")
    extra = f"security:\n  auth: token\n  adminTokenFile: {admin}\n"
    c = Cluster(tmpdir_path, extra=extra, agents={})
    for r in c.routers:
        with open(r.config, "a") as f:
            f.write("agents:\n" + "".join(
                f"  - id: {a}\n    tokenSha256: {hashlib.sha256(t.encode()).hexdigest()}\n" for a, t in tokens.items()))
    c.start()
    try:
        via = c.routers[0]  # alice is owned by router 2
        bearer = lambda t: {"Authorization": f"Bearer {t}"}
        assert send(via, "alice", "ok-1", headers=bearer("carol-secret"))[0] == 202
        s, _, body = send(via, "alice", "spoof-1", sender="alice", headers=bearer("carol-secret"))
        assert s == 403 and body["error"]["code"] == "Forbidden", body
        s, _, body = send(via, "alice", "nope-1", headers=bearer("made-up"))
        assert s == 401, body
        # the mailbox is private through any router, and the owner has only the honest message
        assert c.routers[1].data("GET", "/v1/agents/alice/messages", headers=bearer("carol-secret"))[0] == 403
        assert pull_all(c.routers[1], "alice", headers=bearer("alice-secret")) == ["ok-1"]
        # the peer port wants the peers' secret
        r2 = c.routers[2]
        pport = int(re.search(r"peerPort: (\d+)", open(r2.config).read()).group(1))
        conn = http.client.HTTPConnection(r2.host, pport, timeout=5)
        conn.request("POST", "/peer/v1/messages", json.dumps(msg(sender="alice", receiver="alice")),
                     {"X-Switchboard-Epoch": "0"})
        assert conn.getresponse().status == 401
    finally:
        c.stop()


def reload_all(c, replicas):
    """Push a new assignment to every router (as the operator's hot push does), router 2 first."""
    for r in sorted(c.routers, key=lambda r: -c.routers.index(r)):
        with open(r.config) as f:
            text = re.sub(r"replicas: \d+", f"replicas: {replicas}", f.read())
        with open(r.config, "w") as f:
            f.write(text)
        s, _, body = r._req(r.admin_port, "POST", "/admin/reload", timeout=10)
        assert s == 200 and json.loads(body)["result"] == "applied", body


def send_until_accepted(c, agent, mid, conv, seq, timeout=20):
    """Send one message of a conversation, retrying 503s (handoff, epoch change) as a client would."""
    deadline = time.time() + timeout
    k = seq
    while time.time() < deadline:
        r = c.routers[k % len(c.routers)]
        k += 1
        s, h, body = r.data("POST", "/v1/messages", msg(sender="carol", receiver=agent, message_id=mid,
                                                        conversation_id=conv, content=str(seq)))
        if s == 202:
            return
        assert s == 503 and h.get("Retry-After"), (s, body)
        time.sleep(0.05)
    raise AssertionError(f"{mid} not accepted in {timeout} s")


def drain(c, agent):
    """Every message of `agent`, pulled and acked through some router, as (message_id, content)."""
    got = []
    for _ in range(200):
        r = c.routers[len(got) % len(c.routers)]
        s, _, body = r.data("GET", f"/v1/agents/{agent}/messages?max=50&wait_ms=200")
        if s == 503:
            time.sleep(0.1)
            continue
        assert s == 200, body
        ms = json.loads(body)["messages"]
        if not ms:
            break
        got += [(m["message_id"], m["message"]["content"]) for m in ms]
        s, _, body = r.data("POST", f"/v1/agents/{agent}/ack", {"message_ids": [m["message_id"] for m in ms]})
        assert s == 200, body
    return got


def wait_handoffs_done(c, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if all(status(r)["cluster"]["handoffs"] == 0 for r in c.routers):
            return
        time.sleep(0.1)
    raise AssertionError("handoffs still in progress: " + str([status(r)["cluster"] for r in c.routers]))


def test_scaling_hands_agents_off_in_order(tmpdir_path):
    """Three routers on a 2-replica assignment, messages stored for agents in conversations; the
    assignment grows to 3 (alice and bob move to router 2), more messages are sent at once, then it shrinks
    back to 2. Every message is delivered exactly once, in conversation order, to the agent's owner of
    the moment; the routers an agent left hold nothing of it; new messages sent during a handoff wait
    (503, Retry-After) instead of overtaking the handed-off ones."""
    extra = "  handoffTimeoutMs: 20000\n"
    c = Cluster(tmpdir_path, extra="")
    for r in c.routers:
        with open(r.config) as f:
            text = f.read().replace("replicas: 3", "replicas: 2").replace("forwardTimeoutMs: 2000\n",
                                                                           "forwardTimeoutMs: 2000\n" + extra)
        with open(r.config, "w") as f:
            f.write(text)
    c.start()
    try:
        agents = ["alice", "bob", "carol", "agent-0002"]
        sent = {a: [] for a in agents}
        for i in range(40):
            for a in agents:
                mid = f"{a}-{i}"
                send_until_accepted(c, a, mid, f"conv-{a}", i)
                sent[a].append(mid)
        t0 = time.time()
        reload_all(c, 3)
        for i in range(40, 60):  # right behind the new assignment
            for a in agents:
                mid = f"{a}-{i}"
                send_until_accepted(c, a, mid, f"conv-{a}", i)
                sent[a].append(mid)
        wait_handoffs_done(c)
        took = time.time() - t0
        moved = sum(int(re.search(r"switchboard_router_messages_handed_off_total (\d+)", r.metrics()).group(1))
                    for r in c.routers)
        print(f"2 -> 3 replicas: {moved} messages handed off, every handoff done {took:.2f} s after the push")
        assert moved >= 80, moved  # alice's and bob's first 40 each left their old owners
        owners3 = {a: own for a, own in AGENTS.items()}
        for a in ("alice", "bob"):
            assert owners3[a] == 2
        reload_all(c, 2)
        wait_handoffs_done(c)
        for a in agents:
            got = drain(c, a)
            assert [m for m, _ in got] == sent[a], (a, got[:5], len(got), len(sent[a]))
        # router 2 owns nothing under 2 replicas and keeps nothing
        s, _, body = c.routers[2].data("GET", "/v1/agents")
        assert all(x["queue_depth"] == 0 and x["in_flight"] == 0 for x in json.loads(body)["agents"]), body
    finally:
        c.stop()
