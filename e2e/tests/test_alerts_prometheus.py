"""A real Prometheus (Debian's) scrapes a real router and evaluates the chart's rendered alert rules:
an invalid config reload makes SwitchboardConfigReloadFailed fire, seen through Prometheus' HTTP API, and
a good reload clears it. The rules' `for:` durations are set to 0s here (promtool's unit tests cover
them); the expressions, labels and metric names are the ones the chart ships."""
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request

import yaml

from operator_env import ROUTER, http, wait_for
from test_chart import render


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def prom_alerts(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/alerts", timeout=5) as r:
        return json.loads(r.read())["data"]["alerts"]


def test_reload_failure_fires_through_prometheus():
    rule = [o for o in render("--set", "monitoring.enabled=true") if o["kind"] == "PrometheusRule"][0]
    groups = rule["spec"]["groups"]
    for g in groups:
        for r in g["rules"]:
            r["for"] = "0s"
    with tempfile.TemporaryDirectory(prefix="sb-prom-") as d:
        dport, aport, pport = free_port(), free_port(), free_port()
        cfg = os.path.join(d, "router.yaml")
        with open(cfg, "w") as f:
            f.write(f"profile: development\nstorage: {{path: {d}/r.db}}\n"
                    f"network: {{bindAddress: 127.0.0.1, dataPort: {dport}, adminPort: {aport}}}\n"
                    "agents: [{id: alice}, {id: bob}]\n")
        with open(os.path.join(d, "rules.yaml"), "w") as f:
            yaml.safe_dump({"groups": groups}, f)
        with open(os.path.join(d, "prometheus.yml"), "w") as f:
            yaml.safe_dump({"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                            "rule_files": ["rules.yaml"],
                            "scrape_configs": [{"job_name": "router", "static_configs": [
                                {"targets": [f"127.0.0.1:{aport}"], "labels": {"namespace": "e2e", "pod": "r0"}}]}]}, f)
        rlog = open(os.path.join(d, "router.log"), "wb")
        router = subprocess.Popen([ROUTER, "--config", cfg], stdout=rlog, stderr=subprocess.STDOUT)
        plog = open(os.path.join(d, "prom.log"), "wb")
        prom = subprocess.Popen(["prometheus", f"--config.file={d}/prometheus.yml", f"--storage.tsdb.path={d}/tsdb",
                                 f"--web.listen-address=127.0.0.1:{pport}"], stdout=plog, stderr=subprocess.STDOUT,
                                cwd=d)
        try:
            wait_for(lambda: _ready(aport), 15, what="router ready")
            wait_for(lambda: _targets_up(pport), 30, what="Prometheus scraping the router")
            time.sleep(2)
            assert not [a for a in prom_alerts(pport) if a["labels"]["alertname"] != "SwitchboardOperatorDown"]
            s, body = http("POST", f"http://127.0.0.1:{aport}/admin/reload",
                           b"profile: development\nperformance: {processingTimeoutMs: 60000, messageTimeoutMs: 30000}\n")
            assert s == 422, body
            firing = wait_for(lambda: [a for a in prom_alerts(pport)
                                       if a["labels"]["alertname"] == "SwitchboardConfigReloadFailed"
                                       and a["state"] == "firing"], 30, what="the alert firing")
            a = firing[0]
            assert a["labels"]["severity"] == "warning" and a["labels"]["pod"] == "r0"
            assert a["annotations"]["runbook_url"].endswith("/docs/runbooks/reload-failed.md")
            assert "e2e/r0" in a["annotations"]["description"]
            # no other router alert fires; OperatorDown does, truthfully: no operator is scraped here
            assert {x["labels"]["alertname"] for x in prom_alerts(pport)} == \
                {"SwitchboardConfigReloadFailed", "SwitchboardOperatorDown"}
            # a good reload clears it
            with open(cfg) as f:
                s, body = http("POST", f"http://127.0.0.1:{aport}/admin/reload", f.read().encode())
            assert s == 200, body
            wait_for(lambda: not [x for x in prom_alerts(pport)
                                  if x["labels"]["alertname"] == "SwitchboardConfigReloadFailed"], 30,
                     what="the alert resolved")
        finally:
            for p in (prom, router):
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            rlog.close()
            plog.close()


def _targets_up(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/targets", timeout=5) as r:
            t = json.loads(r.read())["data"]["activeTargets"]
    except OSError:
        return False  # not listening yet
    return t and all(x["health"] == "up" for x in t)


def _ready(port):
    try:
        return http("GET", f"http://127.0.0.1:{port}/readyz")[0] == 200
    except OSError:
        return False
