"""Security on a real router: per-agent bearer tokens (spoofing refused,
mailboxes private), the admin token, per-sender rate limits, and TLS."""
import hashlib
import http.client
import json
import os
import ssl
import subprocess
import time

from conftest import Router, msg

TOKENS = {"alice": "alice-token-123", "bob": "bob-token-456", "carol": "carol-token-789"}


def sha(t):
    return hashlib.sha256(t.encode()).hexdigest()


def token_router(tmpdir_path, extra=""):
    admin = os.path.join(tmpdir_path, "admin-token")
    with open(admin, "w") as f:
        f.write("admin-secret\n")
    r = Router(tmpdir_path, f"security:\n  auth: token\n  adminTokenFile: {admin}\n" + extra, agents=[])
    with open(r.config, "a") as f:
        f.write("agents:\n")
        f.write(f"  - id: alice\n    tokenSha256: {sha(TOKENS['alice'])}\n")
        f.write(f"  - id: bob\n    tokenSha256: {sha(TOKENS['bob'])}\n")
        f.write(f"  - id: carol\n    tokenSha256: {sha(TOKENS['carol'])}\n"
                "    rateLimit: {messagesPerSecond: 2, burst: 5}\n")
    return r.start()


def auth(agent):
    return {"Authorization": f"Bearer {TOKENS[agent]}"}


def test_tokens_identify_senders_and_mailbox_owners(tmpdir_path):
    r = token_router(tmpdir_path)
    try:
        assert r.data("POST", "/v1/messages", msg())[0] == 401
        # a token that belongs to no agent does not authenticate: 401, not 403
        status, _, body = r.data("POST", "/v1/messages", msg(), {"Authorization": "Bearer nope"})
        assert status == 401 and json.loads(body)["error"]["code"] == "Unauthorized", body
        assert r.data("GET", "/v1/agents/bob/messages", headers={"Authorization": "Bearer nope"})[0] == 401
        status, _, body = r.data("POST", "/v1/messages", msg(message_id="ok-1"), auth("alice"))
        assert status == 202, body
        # alice's token cannot send as bob
        status, _, body = r.data("POST", "/v1/messages", msg(sender="bob", receiver="alice"), auth("alice"))
        err = json.loads(body)["error"]
        assert status == 403 and err["code"] == "Forbidden" and err["field"] == "sender"
        # only bob reads bob's mailbox, and only bob acks it
        assert r.data("GET", "/v1/agents/bob/messages", headers=auth("alice"))[0] == 403
        assert r.data("GET", "/v1/agents/bob/messages")[0] == 401
        status, _, body = r.data("GET", "/v1/agents/bob/messages", headers=auth("bob"))
        assert status == 200 and [m["message_id"] for m in json.loads(body)["messages"]] == ["ok-1"]
        assert r.data("POST", "/v1/agents/bob/ack", {"message_ids": ["ok-1"]}, auth("alice"))[0] == 403
        assert r.data("POST", "/v1/agents/bob/ack", {"message_ids": ["ok-1"]}, auth("bob"))[0] == 200
        m = r.metrics()
        assert 'switchboard_router_messages_failed_total{reason="forbidden"} 1' in m
        assert 'switchboard_router_messages_failed_total{reason="unauthorized"} 1' in m
    finally:
        r.stop()
    log = r.log()
    for t in list(TOKENS.values()) + ["admin-secret"]:
        assert t not in log


def test_rate_limit_per_sender(tmpdir_path):
    r = token_router(tmpdir_path)
    try:
        batch = {"messages": [msg(sender="carol", message_id=f"r-{i}") for i in range(8)]}
        status, headers, body = r.data("POST", "/v1/messages", batch, auth("carol"))
        res = json.loads(body)
        assert status == 207 and res["accepted"] == 5  # the burst
        limited = [x for x in res["results"] if x["status"] == 429]
        assert len(limited) == 3 and limited[0]["error"]["code"] == "RateLimited"
        assert int(headers["Retry-After"]) >= 1
        assert 'switchboard_router_messages_failed_total{reason="rate_limited"} 3' in r.metrics()
        # other senders are not affected
        assert r.data("POST", "/v1/messages", msg(message_id="a-1"), auth("alice"))[0] == 202
    finally:
        r.stop()


def test_tls_on_both_ports(tmpdir_path):
    key, crt = os.path.join(tmpdir_path, "tls.key"), os.path.join(tmpdir_path, "tls.crt")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                    "-keyout", key, "-out", crt], check=True, capture_output=True)
    r = Router(tmpdir_path, f"security:\n  tls:\n    enabled: true\n    certFile: {crt}\n    keyFile: {key}\n")
    r.start(wait=False)
    ctx = ssl.create_default_context(cafile=crt)
    try:
        import time
        for _ in range(100):
            try:
                c = http.client.HTTPSConnection("127.0.0.1", r.admin_port, context=ctx, timeout=5)
                c.request("GET", "/readyz")
                if c.getresponse().status == 200:
                    break
            except OSError:
                time.sleep(0.1)
        c = http.client.HTTPSConnection("127.0.0.1", r.data_port, context=ctx, timeout=5)
        c.request("POST", "/v1/messages", json.dumps(msg(message_id="tls-1")))
        resp = c.getresponse()
        assert resp.status == 202, resp.read()
        # plain HTTP is not served
        try:
            status = r.data("GET", "/v1/agents", timeout=3)[0]
        except (OSError, http.client.HTTPException):
            status = None
        assert status != 200
    finally:
        r.stop()


def test_dead_letter_endpoints_need_the_admin_token(tmpdir_path):
    r = token_router(tmpdir_path)
    try:
        assert r.data("GET", "/v1/deadletters")[0] == 401
        assert r.data("GET", "/v1/deadletters", headers=auth("alice"))[0] == 401
        assert r.data("POST", "/v1/deadletters/replay", {"agent": "bob"}, auth("bob"))[0] == 401
        ok = {"Authorization": "Bearer admin-secret"}
        assert r.data("GET", "/v1/deadletters", headers=ok)[0] == 200
        assert r.data("POST", "/v1/deadletters/replay", {"agent": "bob"}, ok)[0] == 200
    finally:
        r.stop()


def test_an_agent_removed_from_the_config_cannot_send_with_its_token(tmpdir_path):
    """Revocation: once a reload drops carol, her token authenticates nothing, even while the router
    keeps her mailbox (messages stored for her are drained, not lost)."""
    import signal
    import time
    r = token_router(tmpdir_path)
    try:
        assert r.data("POST", "/v1/messages", msg(sender="carol", receiver="bob"), auth("carol"))[0] == 202
        assert r.data("POST", "/v1/messages", msg(sender="alice", receiver="carol"), auth("alice"))[0] == 202
        with open(r.config) as f:
            text = f.read()
        with open(r.config, "w") as f:
            f.write(text[:text.index("  - id: carol")])
        r.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 10
        while time.time() < deadline:
            status = r.data("POST", "/v1/messages", msg(sender="carol", receiver="bob"), auth("carol"))[0]
            if status != 202:
                break
            time.sleep(0.1)
        assert status == 401, status  # a removed agent's token authenticates nobody
        assert r.data("POST", "/v1/messages", msg(sender="alice", receiver="bob"), auth("alice"))[0] == 202
    finally:
        r.stop()


def make_cert(directory, name, cn="localhost"):
    """A self-signed certificate for 127.0.0.1 and its key, as PEM files."""
    key, crt = os.path.join(directory, f"{name}.key"), os.path.join(directory, f"{name}.crt")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-days", "1", "-subj", f"/CN={cn}", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                    "-keyout", key, "-out", crt], check=True, capture_output=True)
    return crt, key


def publish(volume, version, crt, key):
    """Update a directory the way a kubelet updates a Secret volume: the
    files go into a new timestamped directory and the `..data` symlink is
    swapped atomically; tls.crt and tls.key are symlinks through it."""
    target = os.path.join(volume, f"..{version}")
    os.mkdir(target)
    for src, dst in ((crt, "tls.crt"), (key, "tls.key")):
        with open(src, "rb") as f, open(os.path.join(target, dst), "wb") as g:
            g.write(f.read())
    tmp = os.path.join(volume, "..data_tmp")
    os.symlink(f"..{version}", tmp)
    os.rename(tmp, os.path.join(volume, "..data"))
    for name in ("tls.crt", "tls.key"):
        if not os.path.islink(os.path.join(volume, name)):
            os.symlink(os.path.join("..data", name), os.path.join(volume, name))


def tls_status(port, cafile):
    """The data port's answer to GET /v1/agents for a client that trusts only
    `cafile`; None when the handshake or the verification fails."""
    ctx = ssl.create_default_context(cafile=cafile)
    c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=5)
    try:
        c.request("GET", "/v1/agents")
        return c.getresponse().status
    except (OSError, ssl.SSLError, http.client.HTTPException):
        return None
    finally:
        c.close()


def wait_for(pred, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


def test_tls_certificate_renewed_without_restart(tmpdir_path):
    """A renewed certificate (the kubelet's symlink swap) is presented to new
    connections within seconds, by the same process; a broken renewal (key of
    another certificate) never replaces the good one; the admin port can stay
    plain HTTP (security.tls.admin: false, what the operator renders); and a
    hot reload may move the files."""
    vol = os.path.join(tmpdir_path, "tls")
    os.mkdir(vol)
    a_crt, a_key = make_cert(tmpdir_path, "a")
    b_crt, b_key = make_cert(tmpdir_path, "b")
    c_crt, c_key = make_cert(tmpdir_path, "c")
    publish(vol, "v1", a_crt, a_key)
    extra = (f"security:\n  tls:\n    enabled: true\n    admin: false\n"
             f"    certFile: {vol}/tls.crt\n    keyFile: {vol}/tls.key\n")
    r = Router(tmpdir_path, extra).start()
    try:
        pid = r.proc.pid
        assert tls_status(r.data_port, a_crt) == 200
        assert tls_status(r.data_port, b_crt) is None  # a client that trusts only B refuses A
        m = r.metrics()  # plain HTTP on the admin port
        assert 'switchboard_router_tls_certificate_loads_total{result="applied"} 1' in m

        t0 = time.time()
        publish(vol, "v2", b_crt, b_key)
        assert wait_for(lambda: tls_status(r.data_port, b_crt) == 200, 10), r.log()
        took = time.time() - t0
        print(f"renewed certificate served after {took:.2f} s")
        assert tls_status(r.data_port, a_crt) is None
        assert 'switchboard_router_tls_certificate_loads_total{result="applied"} 2' in r.metrics()

        # a renewal whose key belongs to another certificate is refused: B stays
        publish(vol, "v3", c_crt, b_key)
        assert wait_for(lambda: 'loads_total{result="rejected"} 1' in r.metrics(), 10), r.log()
        assert tls_status(r.data_port, b_crt) == 200
        assert "TLS files changed but do not load" in r.log()

        # a hot reload that points at other files takes effect at once
        with open(r.config) as f:
            text = f.read()
        with open(r.config, "w") as f:
            f.write(text.replace(f"{vol}/tls.crt", c_crt).replace(f"{vol}/tls.key", c_key))
        status, _, body = r._req(r.admin_port, "POST", "/admin/reload", timeout=10)
        assert status == 200 and json.loads(body)["result"] == "applied", body
        assert tls_status(r.data_port, c_crt) == 200
        # ...and one that points at a key of another certificate is refused whole
        with open(r.config, "w") as f:
            f.write(text.replace(f"{vol}/tls.crt", a_crt).replace(f"{vol}/tls.key", c_key))
        status, _, body = r._req(r.admin_port, "POST", "/admin/reload", timeout=10)
        res = json.loads(body)
        assert status == 422 and res["errors"][0]["field"] == "security.tls.certFile", body
        assert tls_status(r.data_port, c_crt) == 200
        assert r.proc.pid == pid and r.proc.poll() is None
    finally:
        r.stop()
