"""Limits under load from hostile clients (tracker issue 17, item 6), against real routers.

Clients that hold connections (idle, or sending headers a byte at a time) from one address must not
starve the others; headers and bodies over the limits are refused before they are buffered; a long
poll whose reply is never read does not hold its lease past the lease timeout, and one whose client has
gone holds none. Traffic stays on 127.0.0.0/8: the hostile clients bind 127.0.0.2 (and 127.0.0.3...).
"""
import json
import re
import socket
import threading
import time

import pytest

from conftest import REL_BIN, Router, msg

HOSTILE = "127.0.0.2"


def limits_router(tmp_path, network="", extra="", **kw):
    """A router whose network section gets `network` (indented YAML lines) and whose config ends with
    `extra`."""
    r = Router(str(tmp_path), config_extra=extra, **kw)
    with open(r.config) as f:
        text = f.read()
    with open(r.config, "w") as f:
        f.write(text.replace("network:\n", "network:\n" + network, 1))
    return r.start()


def connect(r, source=HOSTILE, timeout=5):
    return socket.create_connection((r.host, r.data_port), timeout=timeout, source_address=(source, 0))


def closed_by_server(s, within):
    """True when the server closes (EOF or reset) `s` within `within` seconds; False if it is still open."""
    s.settimeout(within)
    try:
        while True:
            data = s.recv(65536)
            if not data:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


def metric(r, name):
    m = re.search(r"^" + re.escape(name) + r" (\S+)$", r.metrics(), re.M)
    return float(m.group(1)) if m else None


def rss_kib(r):
    with open(f"/proc/{r.proc.pid}/status") as f:
        return int(next(line for line in f if line.startswith("VmRSS")).split()[1])


def timed(fn):
    t = time.monotonic()
    out = fn()
    return out, (time.monotonic() - t) * 1000


def http_answer(s, timeout=10):
    """Read one HTTP answer from `s`: (status, headers text, body bytes)."""
    s.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    m = re.search(rb"content-length: *(\d+)", head, re.I)
    while m and len(body) < int(m.group(1)):
        chunk = s.recv(65536)
        if not chunk:
            break
        body += chunk
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else None
    return status, head.decode("latin-1"), body


# --- slow and idle connections ------------------------------------------------------------------


def test_idle_and_trickling_connections_from_one_address_do_not_starve_others(tmp_path):
    """maxConnections (64) idle or trickling connections from 127.0.0.2: only
    maxConnectionsPerAddress (16) of them are accepted, a client from 127.0.0.1 is answered at once,
    and the ones held are closed by the server after idleTimeoutSeconds, the trickling ones too (they
    are never silent: their headers are overdue)."""
    r = limits_router(tmp_path, "  maxConnections: 64\n  maxConnectionsPerAddress: 16\n  idleTimeoutSeconds: 3\n")
    socks = []
    try:
        for _ in range(64):
            socks.append(connect(r))
        time.sleep(0.3)  # the router accepts (or turns away) every one
        for s in socks[:8]:  # these send a request's headers a byte at a time
            s.sendall(b"G")
        t0 = time.monotonic()
        (status, _, body), ms = timed(lambda: r.data("GET", "/v1/agents", timeout=5))
        assert status == 200 and b"alice" in body, body
        print(f"with 64 connections opened from {HOSTILE}, a request from 127.0.0.1 answered in {ms:.1f} ms")
        assert ms < 1000
        assert metric(r, "switchboard_router_http_open_connections") <= 16 + 1
        assert metric(r, 'switchboard_router_http_connections_dropped_total{reason="connection_limit"}') >= 48

        # trickle a byte every 0.5 s: never silent for 3 s, yet closed once the headers are overdue
        stop = threading.Event()

        def trickle():
            while not stop.is_set():
                for s in socks[:8]:
                    try:
                        s.send(b"E")
                    except OSError:
                        pass
                time.sleep(0.5)

        th = threading.Thread(target=trickle, daemon=True)
        th.start()
        try:
            closed = [closed_by_server(s, max(0.1, t0 + 5.5 - time.monotonic())) for s in socks]
        finally:
            stop.set()
            th.join()
        took = time.monotonic() - t0
        assert all(closed), f"{closed.count(False)} connections still open after {took:.1f} s"
        print(f"all 64 closed by the server {took:.1f} s after they opened (idleTimeoutSeconds: 3)")
        assert metric(r, 'switchboard_router_http_connections_dropped_total{reason="header_timeout"}') >= 8  # the trickling ones
        assert metric(r, "switchboard_router_http_open_connections") == 0
        # the router keeps serving, and its log says why in JSON lines
        assert r.data("GET", "/v1/agents")[0] == 200
        lines = [json.loads(line) for line in r.log().splitlines() if line.startswith("{")]
        assert any(line.get("msg") == "libmicrohttpd" for line in lines), r.log()[-2000:]
        assert all(line.startswith("{") for line in r.log().splitlines() if line.strip()), r.log()[-2000:]
    finally:
        for s in socks:
            s.close()
        r.stop()


def test_max_connections_holds_and_the_router_stays_healthy(tmp_path):
    """With every one of maxConnections (8) held by idle clients from several addresses, each further
    connection is closed at once without an answer (counted), the admin port still answers, and once
    the idle timeout has closed the idle ones a new client is served."""
    r = limits_router(tmp_path, "  maxConnections: 8\n  maxConnectionsPerAddress: 4\n  idleTimeoutSeconds: 2\n")
    socks = []
    try:
        t0 = time.monotonic()
        for i in range(8):
            socks.append(connect(r, source=f"127.0.0.{2 + i // 4}"))
        time.sleep(0.3)
        assert metric(r, "switchboard_router_http_open_connections") == 8
        for _ in range(5):
            extra = connect(r, source="127.0.0.4")
            try:
                extra.sendall(b"GET /v1/agents HTTP/1.1\r\nHost: x\r\n\r\n")
            except OSError:
                pass
            assert closed_by_server(extra, 1), "a connection over maxConnections was kept"
            extra.close()
        assert metric(r, 'switchboard_router_http_connections_dropped_total{reason="connection_limit"}') == 5
        assert metric(r, "switchboard_router_http_open_connections") == 8
        assert r.admin("GET", "/healthz")[0] == 200 and r.admin("GET", "/readyz")[0] == 200
        assert all(closed_by_server(s, max(0.1, t0 + 4 - time.monotonic())) for s in socks)
        print(f"the 8 idle connections were closed {time.monotonic() - t0:.1f} s after they opened")
        while metric(r, "switchboard_router_http_open_connections") and time.monotonic() - t0 < 6:
            time.sleep(0.05)  # the router reaps a closed connection's thread just after closing it
        assert r.data("GET", "/v1/agents", timeout=2)[0] == 200
        assert r.proc.poll() is None
    finally:
        for s in socks:
            s.close()
        r.stop()


def test_a_long_poll_longer_than_the_idle_timeout_is_not_cut(tmp_path):
    """The idle timeout counts silence while the router waits on the client, never while a handler
    works: a 4 s long poll on a router with idleTimeoutSeconds 1 gets its message, and an empty one its
    empty answer."""
    r = limits_router(tmp_path, "  idleTimeoutSeconds: 1\n")
    try:
        (status, _, body), ms = timed(lambda: r.data("GET", "/v1/agents/bob/messages?wait_ms=2500", timeout=10))
        assert status == 200 and json.loads(body)["messages"] == [] and ms >= 2400, (status, body, ms)
        threading.Timer(2.5, lambda: r.send(msg(content="late"))).start()
        (status, _, body), ms = timed(lambda: r.data("GET", "/v1/agents/bob/messages?wait_ms=4000", timeout=10))
        got = json.loads(body)["messages"]
        assert status == 200 and len(got) == 1 and got[0]["message"]["content"] == "late", body
        assert ms >= 2400
    finally:
        r.stop()


# --- headers and bodies over the limits ---------------------------------------------------------


def send_until_answered(s, data, chunk=16384):
    """Send `data`, stopping early once the server answers or closes; returns the bytes sent."""
    sent = 0
    s.setblocking(True)
    try:
        while sent < len(data):
            s.settimeout(0)
            try:
                if s.recv(1, socket.MSG_PEEK) is not None:
                    break
            except BlockingIOError:
                pass
            s.settimeout(5)
            sent += s.send(data[sent:sent + chunk])
    except (BrokenPipeError, ConnectionResetError):
        pass
    return sent


def test_a_megabyte_of_headers_is_refused_without_being_buffered(tmp_path):
    """1 MiB of header lines on each of four connections: 431 from the HTTP layer (libmicrohttpd, before
    the router sees the request: its body is MHD's, not JSON), and while the four are still open the
    router's resident set has not grown by their size (the release build: ASan's allocator moves the
    resident set by megabytes on its own). A 100 KiB URL gets 414."""
    router = Router(str(tmp_path), binary=REL_BIN).start()
    try:
        headers_refused(router)
    finally:
        router.stop()


def headers_refused(router):
    before = rss_kib(router)
    lines = b"".join(b"X-Pad-%d: %s\r\n" % (i, b"a" * 1000) for i in range(1024))
    socks = [connect(router, source="127.0.0.1") for _ in range(4)]
    try:
        for s in socks:  # all but the blank line that ends the headers
            send_until_answered(s, b"GET /v1/agents HTTP/1.1\r\nHost: x\r\n" + lines)
        time.sleep(0.5)  # what the kernel still buffered has reached the router
        held = rss_kib(router)
        for s in socks:
            try:
                s.sendall(b"\r\n")
            except OSError:
                pass
        results = [http_answer(s)[0] for s in socks]
    finally:
        for s in socks:
            s.close()
    print(f"RSS before {before} KiB, with four 1 MiB headers sent {held} KiB")
    assert results == [431] * 4, results
    assert held - before < 1024, (before, held)
    s = connect(router, source="127.0.0.1")
    send_until_answered(s, b"GET /v1/agents?" + b"a" * 102400 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert http_answer(s)[0] == 414
    s.close()
    assert router.data("GET", "/v1/agents")[0] == 200


def test_a_body_announced_over_the_limit_is_refused_from_its_headers(tmp_path):
    """Content-Length over security.maxRequestBytes: 413 with the API's JSON error, answered from the
    headers alone while the client sends nothing more; and the limit is the one a reload set (hot)."""
    r = limits_router(tmp_path, extra="security:\n  maxMessageBytes: 4096\n  maxRequestBytes: 65536\n")
    try:
        def announce(n):
            s = connect(r, source="127.0.0.1")
            s.sendall(b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: %d\r\n\r\n" % n)
            try:
                return timed(lambda: http_answer(s, timeout=3))
            finally:
                s.close()

        (status, head, body), ms = announce(1 << 30)
        assert status == 413, head
        assert json.loads(body) == {"error": {"code": "PayloadTooLarge",
                                              "message": "request body exceeds security.maxRequestBytes"}}
        assert "application/json" in head.lower()
        print(f"Content-Length 1 GiB refused 413 in {ms:.1f} ms, no body sent")
        # a hot reload lowers the limit: the next request is measured against the new one
        with open(r.config) as f:
            text = f.read()
        with open(r.config, "w") as f:
            f.write(text.replace("maxRequestBytes: 65536", "maxRequestBytes: 8192"))
        s, _, data = r._req(r.admin_port, "POST", "/admin/reload", timeout=10)
        assert s == 200 and b"applied" in data, data
        assert announce(20000)[0][0] == 413
        assert r.send(msg(content="x" * 3000))[0] == 202
        assert metric(r, "switchboard_router_http_bodies_too_large_total") >= 2
    finally:
        r.stop()


def test_a_chunked_body_that_grows_past_the_limit_is_cut_off(tmp_path):
    """A chunked body has no length to refuse up front: once it passes security.maxRequestBytes the
    connection is closed, long before the client has sent what it meant to (64 MiB), and the router
    keeps serving with its memory bounded by the limit."""
    r = limits_router(tmp_path, extra="security:\n  maxMessageBytes: 4096\n  maxRequestBytes: 65536\n")
    try:
        before = rss_kib(r)
        s = connect(r, source="127.0.0.1")
        s.sendall(b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n")
        piece = b"10000\r\n" + b"a" * 0x10000 + b"\r\n"
        sent, t0 = 0, time.monotonic()
        try:
            s.settimeout(5)
            while sent < 64 << 20 and time.monotonic() - t0 < 20:
                s.sendall(piece)
                sent += len(piece)
        except (BrokenPipeError, ConnectionResetError):
            pass
        except socket.timeout:
            pytest.fail(f"the router stopped reading after {sent} bytes but did not close the connection")
        s.close()
        print(f"chunked body cut off after the client had sent {sent >> 10} KiB (limit 64 KiB)")
        assert sent < 16 << 20, f"the router read {sent} bytes of a body over a 64 KiB limit"
        assert rss_kib(r) - before < 8192
        assert r.send(msg())[0] == 202
        assert metric(r, "switchboard_router_http_bodies_too_large_total") >= 1
    finally:
        r.stop()


# --- long polls whose reply is never read ------------------------------------------------------


def raw_pull(r, agent, wait_ms, rcvbuf=None):
    s = socket.socket()
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.connect((r.host, r.data_port))
    s.sendall(f"GET /v1/agents/{agent}/messages?max=100&wait_ms={wait_ms} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    return s


def reset(s):
    """Close with a TCP reset (SO_LINGER 0), as a crashed client would."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    s.close()


def test_a_reply_never_read_holds_its_lease_only_until_it_expires(tmp_path):
    """A client long-polls, gets a message under a lease and never reads the reply (it stays
    connected): another pull gets the message once delivery.leaseTimeoutMs has passed, attempt 2."""
    r = limits_router(tmp_path, extra="delivery:\n  leaseTimeoutMs: 1000\n")
    try:
        s = raw_pull(r, "bob", 5000)
        time.sleep(0.3)
        assert r.send(msg(content="never read"))[0] == 202
        time.sleep(0.3)
        assert r.pull("bob")["messages"] == []  # leased to the silent client
        t0 = time.monotonic()
        got = []
        while not got and time.monotonic() - t0 < 5:
            got = r.pull("bob", wait_ms=500)["messages"]
        print(f"redelivered {time.monotonic() - t0 + 0.3:.1f} s after the silent pull took it (lease 1 s)")
        assert len(got) == 1 and got[0]["attempt"] == 2 and got[0]["message"]["content"] == "never read"
        s.close()
    finally:
        r.stop()


def test_a_long_poll_whose_client_has_gone_takes_no_lease(tmp_path):
    """A client long-polls and goes away (closes, or resets) before a message comes: the message is
    not leased to it, so the next pull gets it at once, first attempt, without waiting out the lease."""
    r = limits_router(tmp_path, extra="delivery:\n  leaseTimeoutMs: 30000\n")
    try:
        for close in (lambda s: s.close(), reset):
            s = raw_pull(r, "bob", 20000)
            time.sleep(0.3)
            close(s)
            time.sleep(1.0)  # the router looks every 0.5 s
            assert r.send(msg(content="for whoever is there"))[0] == 202
            got = r.pull("bob", wait_ms=1000)["messages"]
            assert len(got) == 1 and got[0]["attempt"] == 1, got
            r.ack("bob", [got[0]["message_id"]])
    finally:
        r.stop()


def test_a_reply_that_cannot_be_sent_puts_its_lease_back_at_once(tmp_path):
    """A reply too large for the socket buffers, to a client that does not read: when the client resets
    the connection (or once idleTimeoutSeconds of it not reading have passed) the router puts the lease
    back at once (switchboard_router_leases_released_total) instead of holding it for the 60 s lease."""
    r = limits_router(tmp_path, "  idleTimeoutSeconds: 2\n", "delivery:\n  leaseTimeoutMs: 60000\n")
    try:
        big = "x" * (2 << 20)
        for how in ("reset", "stall"):
            for i in range(4):
                assert r.send(msg(content=big, message_id=f"{how}-{i}"))[0] == 202
            s = raw_pull(r, "bob", 0, rcvbuf=4096)
            time.sleep(1.0)  # the router has leased the 4 messages and is stuck writing 8 MiB
            assert r.pull("bob")["messages"] == []
            t0 = time.monotonic()
            if how == "reset":
                reset(s)
            got = []
            while len(got) < 4 and time.monotonic() - t0 < 8:
                got += r.pull("bob", wait_ms=500)["messages"]
            took = time.monotonic() - t0
            print(f"{how}: the 4 messages were back {took:.1f} s later (lease 60 s)")
            assert sorted(m["message"]["message_id"] for m in got) == [f"{how}-{i}" for i in range(4)]
            assert all(m["attempt"] == 2 for m in got)
            assert took < (1.5 if how == "reset" else 4)
            r.ack("bob", [m["message_id"] for m in got])
            s.close()
        assert metric(r, "switchboard_router_leases_released_total") == 2
    finally:
        r.stop()
