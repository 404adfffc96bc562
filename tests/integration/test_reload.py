"""Safe hot reload on a running router: triggers (file change, ConfigMap-style
symlink swap, SIGHUP, POST /admin/reload), classification, invalid configs,
draining of removed agents, and reloads under traffic with nothing lost."""
import http.client
import json
import os
import signal
import threading
import time

from conftest import Router, msg


def base_text(r, agents, extra=""):
    with open(r.config) as f:
        head = f.read().split("agents:\n")[0]
    return head + extra + "agents:\n" + "".join(f"  - id: {a}\n" for a in agents)


def write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def status(r):
    return json.loads(r.admin("GET", "/v1/status")[2])


def wait_generation(r, gen, timeout=5):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if status(r)["generation"] >= gen:
            return status(r)
        time.sleep(0.05)
    raise AssertionError(f"generation {gen} not reached: {status(r)}\n{r.log()[-2000:]}")


def reload(r, text=None, token=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    c = http.client.HTTPConnection("127.0.0.1", r.admin_port, timeout=30)
    c.request("POST", "/admin/reload", body=text or "", headers=headers)
    resp = c.getresponse()
    body = resp.read()
    c.close()
    return resp.status, json.loads(body)


def test_file_change_and_sighup(router):
    write_atomic(router.config, base_text(router, ["alice", "bob", "carol"]))
    st = wait_generation(router, 2)
    assert st["last_reload"]["result"] == "applied" and st["restart_required"] is False
    assert router.send(msg(receiver="carol"))[0] == 202
    router.proc.send_signal(signal.SIGHUP)  # same bytes: nothing to do
    time.sleep(0.5)
    st = status(router)
    assert st["generation"] == 2 and st["last_reload"]["result"] == "unchanged"
    m = router.metrics()
    assert 'switchboard_router_config_reloads_total{result="applied"} 1' in m
    assert "switchboard_router_config_last_reload_successful 1" in m
    assert f'switchboard_router_config_info{{hash="{st["config_hash"]}",generation="2"}} 1' in m


def test_invalid_config_changes_nothing(router):
    before = status(router)
    code, body = reload(router, base_text(router, ["alice"], "delivery:\n  maxRetries: -3\n  nope: 1\n"))
    assert code == 422 and body["result"] == "rejected"
    fields = {e["field"] for e in body["errors"]}
    assert {"delivery.maxRetries", "delivery.nope"} <= fields, body
    after = status(router)
    assert after["config_hash"] == before["config_hash"] and after["generation"] == before["generation"]
    assert router.send(msg(receiver="bob"))[0] == 202  # bob is still configured
    assert "switchboard_router_config_last_reload_successful 0" in router.metrics()
    code, body = reload(router, "performance: [1, 2\n")  # not even YAML
    assert code == 422 and body["errors"][0]["field"] == "(document)"
    code, body = reload(router, base_text(router, ["alice", "bob"], "delivery:\n  maxRetries: 4\n"))
    assert code == 200 and body["result"] == "applied"
    assert [c["field"] for c in body["changes"]] == ["delivery.maxRetries"]
    assert "switchboard_router_config_last_reload_successful 1" in router.metrics()


def test_restart_class_change_is_reported_not_applied(router):
    before = status(router)
    code, body = reload(router, base_text(router, ["alice", "bob"], "delivery:\n  maxRetries: 4\n")
                        .replace("  sync: full\n", "  sync: normal\n"))
    assert code == 409 and body["result"] == "restart_required", body
    assert "storage.sync" in body["reason"]
    st = status(router)
    assert st["restart_required"] is True and "storage.sync" in st["restart_fields"]
    assert st["config_hash"] == before["config_hash"]  # the hot part was not applied either
    assert "switchboard_router_config_restart_required 1" in router.metrics()


def test_agent_protocol_change_is_hot(router):
    """agents[].protocol: fipa -> a2a is a hot agent change; a2a on a pull agent is refused by name."""
    head = base_text(router, ["alice"])
    bob = "  - {id: bob, mode: push, endpoint: 'http://127.0.0.1:9/'%s}\n"
    code, body = reload(router, head + bob % "")
    assert code == 200 and body["result"] == "applied", body
    code, body = reload(router, head + bob % ", protocol: a2a")
    assert code == 200 and body["result"] == "applied", body
    assert [c["field"] for c in body["changes"]] == ["agents[bob]"], body
    assert status(router)["restart_required"] is False
    before = status(router)
    code, body = reload(router, head + "  - {id: bob, protocol: a2a}\n")
    assert code == 422 and body["result"] == "rejected", body
    assert [e["field"] for e in body["errors"]] == ["agents[1].protocol"], body
    assert status(router)["config_hash"] == before["config_hash"]


def test_configmap_symlink_swap_is_picked_up(tmpdir_path):
    # the kubelet's layout: config.yaml -> ..data/config.yaml, ..data -> ..<timestamp>
    r = Router(tmpdir_path)
    d = os.path.join(tmpdir_path, "cm")
    os.makedirs(os.path.join(d, "..2026_01"))
    with open(r.config) as f:
        first = f.read()
    with open(os.path.join(d, "..2026_01", "config.yaml"), "w") as f:
        f.write(first)
    os.symlink("..2026_01", os.path.join(d, "..data"))
    os.symlink("..data/config.yaml", os.path.join(d, "config.yaml"))
    r.config = os.path.join(d, "config.yaml")
    r.start()
    try:
        os.makedirs(os.path.join(d, "..2026_02"))
        with open(os.path.join(d, "..2026_02", "config.yaml"), "w") as f:
            f.write(first.replace("  - id: bob\n", "  - id: bob\n  - id: dave\n"))
        os.symlink("..2026_02", os.path.join(d, "..data_tmp"))
        os.rename(os.path.join(d, "..data_tmp"), os.path.join(d, "..data"))  # the atomic swap
        wait_generation(r, 2)
        assert r.send(msg(receiver="dave"))[0] == 202
    finally:
        r.stop()


def test_removed_agent_drains_its_queue(router):
    for i in range(2):
        assert router.send(msg(message_id=f"keep-{i}"))[0] == 202
    code, body = reload(router, base_text(router, ["alice"]))
    assert code == 200, body
    status_code, err, _ = router.send(msg(message_id="late"))
    assert status_code == 409 and err["error"]["code"] == "AgentNotAccepting"
    got = router.pull("bob")
    assert [m["message_id"] for m in got["messages"]] == ["keep-0", "keep-1"]
    router.ack("bob", ["keep-0", "keep-1"])
    agent = json.loads(router.data("GET", "/v1/agents/bob")[2])
    assert agent["state"] == "Stopped" and agent["configured"] is False


def test_queue_shrink_that_does_not_fit_needs_a_restart(router):
    for i in range(5):
        assert router.send(msg(message_id=f"q-{i}"))[0] == 202
    text = base_text(router, ["alice"]) + "  - id: bob\n    queueSize: 2\n"
    code, body = reload(router, text)
    assert code == 409 and "would not fit" in body["reason"], body
    assert len(router.pull("bob")["messages"]) == 5


def test_admin_reload_needs_the_admin_token(tmpdir_path):
    token_file = os.path.join(tmpdir_path, "admin-token")
    with open(token_file, "w") as f:
        f.write("s3cret-admin\n")
    digest = "b" * 64
    r = Router(tmpdir_path, f"security:\n  auth: token\n  adminTokenFile: {token_file}\n", agents=[])
    with open(r.config, "a") as f:
        f.write(f"agents:\n  - id: alice\n    tokenSha256: {digest}\n")
    r.start()
    try:
        assert reload(r)[0] == 401
        assert reload(r, token="wrong")[0] == 401
        code, body = reload(r, token="s3cret-admin")
        assert code == 200 and body["result"] == "unchanged"
        assert "s3cret-admin" not in r.log()
    finally:
        r.stop()


def test_reloads_under_traffic_lose_nothing(tmpdir_path):
    r = Router(tmpdir_path, "performance:\n  agentQueueSize: 100000\n  maxConcurrentMessages: 1000000\n",
               agents=["alice", "bob"]).start()
    stop = threading.Event()
    acked, errors = set(), []

    def sender(idx):
        conn = http.client.HTTPConnection("127.0.0.1", r.data_port, timeout=10)
        n = 0
        while not stop.is_set():
            batch = [msg(receiver="bob", message_id=f"s{idx}-{n + i}") for i in range(20)]
            n += 20
            conn.request("POST", "/v1/messages", json.dumps({"messages": batch}))
            res = json.loads(conn.getresponse().read())
            for item in res["results"]:
                if item["status"] == 202:
                    acked.add(item["message_id"])
                else:
                    errors.append(item)

    threads = [threading.Thread(target=sender, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    latencies, results = [], []
    for i in range(50):
        agents = ["alice", "bob"] + ([f"extra-{i}"] if i % 2 == 0 else [])
        text = base_text(r, agents, f"delivery:\n  maxRetries: {i % 5}\n  baseRetryDelayMs: {100 + i}\n")
        if i % 10 == 5:
            text = base_text(r, agents, "delivery:\n  maxRetries: many\n")  # invalid
        t0 = time.time()
        code, body = reload(r, text)
        latencies.append(time.time() - t0)
        results.append(body["result"])
        time.sleep(0.03)  # keep traffic flowing between reloads
    stop.set()
    for t in threads:
        t.join(10)
    assert results.count("rejected") == 5 and results.count("applied") == 45, results
    assert not errors, errors[:3]
    delivered = set()
    while True:
        got = r.pull("bob", 1000)["messages"]
        if not got:
            break
        ids = [m["message_id"] for m in got]
        delivered.update(ids)
        r.ack("bob", ids)
    r.stop()
    assert acked and acked <= delivered, f"{len(acked - delivered)} acknowledged messages lost"
    latencies.sort()
    print(f"reloads under traffic: {len(acked)} messages, reload p50 {latencies[25] * 1e3:.1f} ms, "
          f"max {latencies[-1] * 1e3:.1f} ms")
