#!/usr/bin/env python3
"""A2A SendMessage against POST /v1/messages, in one run (bench/README: ratios, not absolutes).

Starts the release router (build/switchboard-router) on free 127.0.0.1 ports with storage.sync full,
then sends the same one-message submissions both ways, from one Python client: N
sequential requests per round over a kept-alive connection, alternating the two faces for R rounds
so the machine's noise falls on both. Prints requests per second and the median and p99 latency of
each face, and the A2A/FIPA ratio. Usage: python3 bench/a2a.py [N per round, default 2000] [rounds, 4]
"""
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_router(tmp):
    data, admin = free_port(), free_port()
    cfg = os.path.join(tmp, "router.yaml")
    with open(cfg, "w") as f:
        f.write(f"network: {{dataPort: {data}, adminPort: {admin}}}\n"
                f"storage: {{path: {tmp}/db.sqlite, sync: full}}\n"
                "performance: {agentQueueSize: 100000, maxConcurrentMessages: 100000}\n"
                "agents:\n  - {id: alice, mode: pull}\n  - {id: bob, mode: pull}\n")
    p = subprocess.Popen([os.path.join(ROOT, "build/switchboard-router"), "--config", cfg, "--log-level", "warn"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", data), 0.1).close()
            return p, data
        except OSError:
            time.sleep(0.05)
    p.kill()
    raise SystemExit("the router did not start")


def fipa(i):
    return "/v1/messages", {}, {"performative": "request", "sender": "alice", "receiver": "bob",
                                "message_id": f"f-{i}", "conversation_id": "c-bench", "content": "x" * 256}


def a2a(i):
    return "/a2a/bob", {"A2A-Version": "1.0"}, {
        "jsonrpc": "2.0", "id": i, "method": "SendMessage",
        "params": {"message": {"messageId": f"a-{i}", "contextId": "c-bench", "role": "ROLE_USER",
                               "parts": [{"text": "x" * 256}], "metadata": {"sender": "alice"}}}}


def round_(port, make, start, n):
    conn = http.client.HTTPConnection("127.0.0.1", port)
    lat = []
    t0 = time.perf_counter()
    for i in range(start, start + n):
        path, hdrs, body = make(i)
        t = time.perf_counter()
        conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json", **hdrs})
        r = conn.getresponse()
        data = r.read()
        lat.append(time.perf_counter() - t)
        if r.status not in (200, 202):
            raise SystemExit(f"{path}: HTTP {r.status} {data[:300]!r}")
    conn.close()
    return time.perf_counter() - t0, lat


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    tmp = tempfile.mkdtemp(prefix="sb-bench-a2a-")
    try:
        p, port = start_router(tmp)
    except BaseException:
        shutil.rmtree(tmp)
        raise
    try:
        res = {"fipa": ([], 0.0), "a2a": ([], 0.0)}
        for r in range(rounds):
            for name, make in (("fipa", fipa), ("a2a", a2a)) if r % 2 == 0 else (("a2a", a2a), ("fipa", fipa)):
                secs, lat = round_(port, make, r * n, n)
                res[name] = (res[name][0] + lat, res[name][1] + secs)
        out = {}
        for name, (lat, secs) in res.items():
            lat.sort()
            out[name] = (len(lat) / secs, statistics.median(lat) * 1e3, lat[int(len(lat) * 0.99)] * 1e3)
            print(f"{name:5s} {len(lat)} requests: {out[name][0]:8.0f} req/s  median {out[name][1]:.3f} ms  "
                  f"p99 {out[name][2]:.3f} ms")
        print(f"a2a/fipa: throughput {out['a2a'][0] / out['fipa'][0]:.2f}, median latency "
              f"{out['a2a'][1] / out['fipa'][1]:.2f}")
    finally:
        p.terminate()
        p.wait(10)
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
