#!/usr/bin/env python3
"""The API contract test: schemathesis against real routers (make api-test).

docs/api/openapi.yaml is the contract of the router's data and admin ports. This starts the ASan/UBSan
router (build/switchboard-router-san, LeakSanitizer on) on free 127.0.0.1 ports with its own
temporary directory and database, in two configurations:

  none   security.auth none (the development default)
  token  security.auth token: agent tokens (schemathesis is alice) and an admin token file

and runs `schemathesis run docs/api/openapi.yaml` against each port (data first, then admin, whose
/admin/reload may replace the config) with the checks below and a bounded number of test cases per
operation. It fails when schemathesis finds a response the contract does not describe, or when the
router does not exit 0 on SIGTERM at the end (a sanitizer report, a leak, a crash).

Run with the venv of scripts/pytools.sh (make api-test does). Environment:
  SB_API_EXAMPLES   test cases per operation and phase (default 25)
  SB_API_SEED       the random seed (default fixed, so a run can be repeated)
  SB_ROUTER         the router binary (default build/switchboard-router-san)
"""
import collections
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from conftest import Router  # noqa: E402  (the integration tests' router: ports, config, clean stop)

SPEC = os.path.join(ROOT, "docs", "api", "openapi.yaml")
CHECKS = ",".join([
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
])
EXAMPLES = int(os.environ.get("SB_API_EXAMPLES", "25"))
SEED = os.environ.get("SB_API_SEED", "17")
# the data port's links (submit -> pull -> ack/nack, dead letters -> replay) make stateful scenarios;
# the admin port has none
PHASES = {"data": "examples,coverage,fuzzing,stateful", "admin": "examples,coverage,fuzzing"}
TOKENS = {"alice": "alice-api-token", "bob": "bob-api-token"}
ADMIN_TOKEN = "admin-api-token"
# a long poll of the router under test waits at most 200 ms whatever it asks (hooks.py scales the
# valid wait_ms schemathesis generates down to 50 ms); the development profile's 1000 messages would
# (and agent queues of 100) turn most submissions into 429 within seconds
EXTRA = "delivery:\n  maxWaitMs: 200\nperformance:\n  maxConcurrentMessages: 1000000\n  agentQueueSize: 100000\n"


def sha(t):
    return hashlib.sha256(t.encode()).hexdigest()


def schemathesis_bin():
    exe = os.path.join(os.path.dirname(sys.executable), "schemathesis")
    if not os.path.exists(exe):
        sys.exit(f"api-test: {exe} is missing; run through scripts/pytools.sh (make api-test)")
    return exe


def start(kind, tmp):
    if kind == "none":
        r = Router(tmp, EXTRA)
    else:
        admin = os.path.join(tmp, "admin-token")
        with open(admin, "w") as f:
            f.write(ADMIN_TOKEN + "\n")
        r = Router(tmp, EXTRA + f"security:\n  auth: token\n  adminTokenFile: {admin}\n", agents=[])
        with open(r.config, "a") as f:
            f.write("agents:\n")
            for a, t in TOKENS.items():
                f.write(f"  - id: {a}\n    tokenSha256: {sha(t)}\n")
    return r.start()


def run_schemathesis(kind, port_name, port, tmp, log):
    """One schemathesis run against one port. Returns (exit code, requests made by status)."""
    cfg = os.path.join(tmp, "schemathesis.toml")
    with open(cfg, "w") as f:
        if kind == "token":
            f.write(f'[auth.openapi.agentToken]\nbearer = "{TOKENS["alice"]}"\n'
                    f'[auth.openapi.adminToken]\nbearer = "{ADMIN_TOKEN}"\n')
    calls = os.path.join(tmp, f"calls-{port_name}.log")
    env = dict(os.environ, SCHEMATHESIS_HOOKS="hooks", SB_API_CALLS=calls, SB_API_SENDER="alice",
               PYTHONPATH=HERE + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [schemathesis_bin(), "--config-file", cfg, "run", SPEC,
           "--url", f"http://127.0.0.1:{port}", "--include-tag", port_name,
           "--checks", CHECKS, "--max-examples", str(EXAMPLES), "--seed", SEED,
           "--phases", PHASES[port_name], "--workers", "1",  # hypothesis describes strategies with ast.parse, which races across threads on Python 3.11
           "--generation-database", "none", "--request-timeout", "10",
           "--report-dir", os.path.join(tmp, "report"), "--no-color"]
    print(f"== api-test [{kind}] {port_name} port {port}: schemathesis, {EXAMPLES} examples per operation",
          flush=True)
    t0 = time.time()
    rc = subprocess.call(cmd, cwd=tmp, env=env, stdout=log, stderr=subprocess.STDOUT)
    by_status = collections.Counter()
    if os.path.exists(calls):
        with open(calls) as f:
            for line in f:
                by_status[line.split()[-1]] += 1
    print(f"   {sum(by_status.values())} requests in {time.time() - t0:.1f} s "
          f"(by status: {dict(sorted(by_status.items()))}); schemathesis exit {rc}", flush=True)
    return rc, by_status


def main():
    failed = []
    total = 0
    t0 = time.time()
    for kind in ("none", "token"):
        tmp = tempfile.mkdtemp(prefix=f"sb-api-{kind}-")
        out = os.path.join(tmp, "schemathesis.out")
        r = start(kind, tmp)
        try:
            with open(out, "w") as log:
                for port_name, port in (("data", r.data_port), ("admin", r.admin_port)):
                    rc, by_status = run_schemathesis(kind, port_name, port, tmp, log)
                    total += sum(by_status.values())
                    if rc != 0:
                        failed.append(f"{kind}/{port_name}")
        finally:
            try:
                r.stop()
            except AssertionError as e:
                failed.append(f"{kind}: router exit")
                print(f"api-test [{kind}]: the router did not exit cleanly: {e}", file=sys.stderr)
        if any(f.startswith(kind) for f in failed):
            with open(out) as f:
                sys.stdout.write(f.read())
            print(f"api-test [{kind}]: kept {tmp} (router.log, schemathesis.out)")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"api-test: {total} requests, {time.time() - t0:.0f} s; "
          + ("FAILED: " + ", ".join(failed) if failed else "the router matches docs/api/openapi.yaml"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
