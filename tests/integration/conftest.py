"""Shared fixtures: start real switchboard-router processes on 127.0.0.1.

Each router gets its own temporary directory, database and free ports. The
binary defaults to the ASan/UBSan build so that memory errors and leaks in
any request path fail the test (the sanitizer makes the process exit
non-zero, which `stop()` asserts against).
"""
import http.client
import http.server
import json
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SAN_BIN = os.path.join(ROOT, "build", "switchboard-router-san")
REL_BIN = os.path.join(ROOT, "build", "switchboard-router")


def strict_json(ctype, data, what):
    """Every JSON answer of every test is valid UTF-8 JSON (RFC 8259): decoded strictly, parsed whole
    (NDJSON line by line). A router that echoes a client's invalid bytes fails here."""
    if "json" not in ctype or not data:
        return
    try:
        text = data.decode("utf-8", errors="strict")
        for doc in (text.splitlines() if "ndjson" in ctype else [text]):
            if doc.strip():
                json.loads(doc)
    except (UnicodeDecodeError, ValueError) as e:
        raise AssertionError(f"{what}: the answer is not valid UTF-8 JSON ({e}): {data[:200]!r}") from None


def serve_http(handler):
    """A ThreadingHTTPServer for `handler` on a free 127.0.0.1 port, served from a daemon thread (a
    test's push agent). Returns (server, port); stop it with server.shutdown(), server.server_close()."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


class PushEndpoint:
    """A push agent's HTTP endpoint on 127.0.0.1 (`.port`). `answer(n)` says what to do with the n-th
    POST (from 0): an int status with an empty body, a (status, bytes) pair with a JSON body, 'hang'
    (answer 200 after 2 s) or 'close' (drop the connection). Every call is recorded in `.calls` as
    (time, parsed JSON body, headers). `close` makes each answer end its connection, so none outlives
    stop()."""

    def __init__(self, answer, close=False):
        self.calls, self.lock = [], threading.Lock()
        ep = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with ep.lock:
                    act = answer(len(ep.calls))
                    ep.calls.append((time.time(), json.loads(body), dict(self.headers)))
                if act == "close":
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                if act == "hang":
                    time.sleep(2)
                    act = 200
                code, data = act if isinstance(act, tuple) else (act, b"")
                self.send_response(code)
                if data:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if close:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()
                self.wfile.write(data)

        self.server, self.port = serve_http(H)

    def count(self):
        with self.lock:
            return len(self.calls)

    def ids(self):
        with self.lock:
            return [c[1]["message_id"] for c in self.calls]

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Router:
    def __init__(self, tmpdir, config_extra="", agents=None, binary=None, sync="full", host="127.0.0.1",
                 ports=None):
        self.dir = tmpdir
        self.host = host
        self.binary = binary or os.environ.get("SB_ROUTER", SAN_BIN)
        self.data_port, self.admin_port = ports or (free_port(), free_port())
        self.db = os.path.join(tmpdir, "router.db")
        self.config = os.path.join(tmpdir, "router.yaml")
        self.log_path = os.path.join(tmpdir, "router.log")
        agents = agents if agents is not None else ["alice", "bob"]
        lines = [
            "profile: development",
            "network:",
            f"  bindAddress: {host}",
            f"  dataPort: {self.data_port}",
            f"  adminPort: {self.admin_port}",
            "storage:",
            f"  path: {self.db}",
            f"  sync: {sync}",
            "shutdown:",
            "  timeoutMs: 8000",
        ]
        text = "\n".join(lines) + "\n" + config_extra
        if agents:
            text += "agents:\n" + "".join(f"  - id: {a}\n" for a in agents)
        with open(self.config, "w") as f:
            f.write(text)
        self.proc = None

    def start(self, wait=True):
        self.logf = open(self.log_path, "ab")
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
        self.proc = subprocess.Popen([self.binary, "--config", self.config, "--log-level", "info"],
                                     stdout=self.logf, stderr=self.logf, env=env)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=15):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"router exited with {self.proc.returncode}:\n{self.log()}")
            try:
                status, _, _ = self.admin("GET", "/readyz")
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError("router did not become ready:\n" + self.log())

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def _req(self, port, method, path, body=None, headers=None, timeout=30):
        c = http.client.HTTPConnection(self.host, port, timeout=timeout)
        try:
            if isinstance(body, (dict, list)):
                body = json.dumps(body)
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            data = r.read()
            strict_json(r.getheader("Content-Type") or "", data, f"{method} {path}")
            return r.status, dict(r.getheaders()), data
        finally:
            c.close()

    def data(self, method, path, body=None, headers=None, timeout=30):
        return self._req(self.data_port, method, path, body, headers, timeout)

    def admin(self, method, path):
        return self._req(self.admin_port, method, path, timeout=5)

    def send(self, msg):
        status, headers, data = self.data("POST", "/v1/messages", msg)
        return status, json.loads(data), headers

    def pull(self, agent, max_n=100, wait_ms=0):
        status, _, data = self.data("GET", f"/v1/agents/{agent}/messages?max={max_n}&wait_ms={wait_ms}")
        assert status == 200, data
        return json.loads(data)

    def ack(self, agent, ids, verb="ack"):
        status, _, data = self.data("POST", f"/v1/agents/{agent}/{verb}", {"message_ids": ids})
        assert status == 200, data
        return json.loads(data)

    def metrics(self):
        status, _, data = self.admin("GET", "/metrics")
        assert status == 200
        return data.decode()

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.logf.close()

    def stop(self, expect_clean=True):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("router did not stop on SIGTERM:\n" + self.log())
        if self.proc:
            self.logf.close()
            if expect_clean:
                assert self.proc.returncode == 0, f"exit {self.proc.returncode}:\n{self.log()}"


@pytest.fixture
def tmpdir_path():
    with tempfile.TemporaryDirectory(prefix="sb-it-") as d:
        yield d


@pytest.fixture
def router(tmpdir_path):
    r = Router(tmpdir_path).start()
    yield r
    r.stop()


def msg(sender="alice", receiver="bob", **kw):
    m = {"performative": "inform", "sender": sender, "receiver": receiver, "content": "hello"}
    m.update(kw)
    return m
