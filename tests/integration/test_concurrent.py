"""Everything at once, for the data-race checker: submit, pull, ack, nack, push
delivery, hot reloads and the status/metrics readers from several threads
against one router.

`make tsan` runs this file against build/switchboard-router-tsan
(SB_ROUTER) for 20 s (SB_CONCURRENT_SECONDS); `make integration` runs it
briefly against the ASan build.  The router must report no data race
(ThreadSanitizer writes "WARNING: ThreadSanitizer" to stderr) and exit
cleanly, and every client thread must have done real work."""
import http.client
import json
import os
import signal
import threading
import time

from conftest import PushEndpoint, Router, msg

SECONDS = float(os.environ.get("SB_CONCURRENT_SECONDS", "4"))


class PushAgent(PushEndpoint):
    """A push endpoint: mostly 200, a 400 now and then (dead-lettered at
    once) and runs of 500s (retried) that open the circuit breaker, so every
    branch of push completion and the breaker's states run."""

    def __init__(self):
        super().__init__(lambda n: 500 if ((n + 1) // 15) % 6 == 0 else 400 if (n + 1) % 23 == 0 else 200)


def config_text(head, port, i):
    """The router's config, generation `i`: hot fields (retries, delays, the
    log level, the push agent's timeout and window, an agent that comes and
    goes) change."""
    agents = (f"agents:\n  - id: alice\n  - id: bob\n"
              f"  - id: pusher\n    mode: push\n    endpoint: http://127.0.0.1:{port}/inbox\n"
              f"    timeoutMs: {400 + 50 * (i % 4)}\n    maxInFlight: {2 + i % 3}\n")
    if i % 2:
        agents += f"  - id: extra-{i}\n"
    delivery = (f"delivery:\n  maxRetries: {2 + i % 3}\n  baseRetryDelayMs: {20 + i % 10}\n"
                "  retryJitterMs: 5\n  retryMaxDelayMs: 200\n  leaseTimeoutMs: 300\n"
                "  circuitBreaker: {threshold: 5, timeoutMs: 200, halfOpenMaxCalls: 2}\n")
    obs = f"observability:\n  logLevel: {('info', 'debug')[i % 2]}\n  logSampleRate: 0.05\n"
    return head + delivery + obs + "performance:\n  agentQueueSize: 100000\n  maxConcurrentMessages: 1000000\n" + agents


def test_everything_at_once_is_race_free(tmpdir_path):
    agent = PushAgent()
    r = Router(tmpdir_path, agents=[])
    with open(r.config) as f:
        head = f.read()
    with open(r.config, "w") as f:
        f.write(config_text(head, agent.port, 0))
    r.start()
    stop = threading.Event()
    done = {k: 0 for k in ("submit", "push-submit", "pull", "ack", "nack", "reload", "read")}
    errors = []
    lock = threading.Lock()

    def count(kind, n=1):
        with lock:
            done[kind] += n

    def loop(fn):
        def run():
            try:
                while not stop.is_set():
                    fn()
            except Exception as e:  # noqa: BLE001 -- reported below
                errors.append(f"{fn.__name__}: {e!r}")
                stop.set()
        return run

    def conn(port):
        return http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def post(c, path, body):
        c.request("POST", path, body if isinstance(body, str) else json.dumps(body))
        resp = c.getresponse()
        return resp.status, resp.read()

    seq = iter(range(10**9))
    local = threading.local()

    def data_conn():
        if not hasattr(local, "c"):
            local.c = conn(r.data_port)
        return local.c

    def submit():
        n = next(seq)
        batch = [msg(receiver="bob", message_id=f"b-{n}-{i}", conversation_id=f"c{(n + i) % 5}",
                     delivery={"priority": ("high", "normal", "low")[i % 3]}) for i in range(10)]
        status, body = post(data_conn(), "/v1/messages", {"messages": batch})
        assert status in (202, 207), body
        count("submit", 10)

    def push_submit():
        n = next(seq)
        status, body = post(data_conn(), "/v1/messages",
                            msg(receiver="pusher", message_id=f"p-{n}", conversation_id=f"pc{n % 3}"))
        assert status in (202, 429), body
        count("push-submit")

    def settle(agent_id, keep):
        """Pull `agent_id`'s mailbox; nack a third, leave one in `keep`
        unsettled (its lease expires), ack the rest."""
        c = data_conn()
        c.request("GET", f"/v1/agents/{agent_id}/messages?max=20&wait_ms=100")
        resp = c.getresponse()
        body = json.loads(resp.read())
        assert resp.status == 200, body
        ids = [m["message"]["message_id"] for m in body["messages"]]
        count("pull")
        if keep and ids and next(seq) % keep == 0:
            ids = ids[1:]
        if not ids:
            return
        third = len(ids) // 3
        status, out = post(c, f"/v1/agents/{agent_id}/ack", {"message_ids": ids[third:]})
        assert status == 200, out
        count("ack")
        if third:
            status, out = post(c, f"/v1/agents/{agent_id}/nack", {"message_ids": ids[:third]})
            assert status == 200, out
            count("nack")

    def pull():
        settle("bob", 10)

    def pull_notices():  # failure notices for dead letters go to the sender
        settle("alice", 0)

    gen = iter(range(1, 10**9))

    def reload():
        """Mostly POST /admin/reload; every fourth a file change (the
        watcher thread reloads), every ninth a file change and SIGHUP (the
        main thread reloads)."""
        i = next(gen)
        text = config_text(head, agent.port, i)
        if i % 4 == 0 or i % 9 == 0:
            tmp = r.config + ".tmp"
            with open(tmp, "w") as f:
                f.write(text)
            os.rename(tmp, r.config)
            if i % 9 == 0:
                r.proc.send_signal(signal.SIGHUP)
        else:
            c = conn(r.admin_port)
            try:
                status, body = post(c, "/admin/reload", text)
            finally:
                c.close()
            assert status == 200 and json.loads(body)["result"] == "applied", json.loads(body).get("reason", body)
        count("reload")
        time.sleep(0.05)

    def read():
        for port, path in ((r.admin_port, "/metrics"), (r.admin_port, "/v1/status"), (r.data_port, "/v1/agents"),
                           (r.data_port, "/v1/agents/pusher"), (r.data_port, "/v1/conversations/c1"),
                           (r.data_port, "/v1/deadletters?limit=5"), (r.admin_port, "/readyz")):
            c = conn(port)
            try:
                c.request("GET", path)
                resp = c.getresponse()
                resp.read()
                assert resp.status in (200, 404), (path, resp.status)
            finally:
                c.close()
        c = conn(r.data_port)
        try:
            status, body = post(c, "/v1/deadletters/replay", {"agent": "pusher", "limit": 5})
            assert status == 200, body
        finally:
            c.close()
        count("read")

    fns = [submit, submit, push_submit, pull, pull, pull_notices, reload, read]
    threads = [threading.Thread(target=loop(f)) for f in fns]
    try:
        for t in threads:
            t.start()
        stop.wait(SECONDS)
        stop.set()
        for t in threads:
            t.join(60)
    finally:
        agent_calls = agent.count()
        try:
            r.stop(expect_clean=False)
        finally:
            agent.stop()
    log = r.log()
    race = log.find("WARNING: ThreadSanitizer")
    assert race < 0, "the router reported a data race:\n" + log[race:][:30000]
    assert r.proc.returncode == 0, f"exit {r.proc.returncode}:\n{log[-20000:]}"
    assert not errors, errors
    assert all(done.values()) and agent_calls > 0, (done, agent_calls)
    print(f"\nconcurrent scenario, {SECONDS:g} s: {done}, push calls {agent_calls}")
