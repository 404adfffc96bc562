"""pytest framework for tests against the real control plane from e2e/cluster.

- `cluster` (session): one etcd + kube-apiserver + kube-controller-manager on
  127.0.0.1 with free ports, brought up once and torn down at the end; the
  CRDs from crds/ are installed with server-side apply.
- `ns` (per test): a fresh namespace, deleted afterwards.
- `kubectl(...)` / `helm(...)`: run the cached binaries against the cluster.
- When a test fails, the tail of every component's log, the namespace's
  events and its switchboard objects are attached to the report.
"""
import json
import os
import subprocess
import time
import uuid

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CLUSTER = os.path.join(ROOT, "e2e", "cluster")


class Cluster:
    def __init__(self, name):
        self.name = name
        self.bin = subprocess.run([CLUSTER, "bin"], capture_output=True, text=True, check=True).stdout.strip()
        self.state = os.path.join(os.environ.get("SB_E2E_STATE", "/tmp/switchboard-e2e"), name)
        self.kubeconfig = os.path.join(self.state, "kubeconfig")

    def env(self):
        e = dict(os.environ)
        e["KUBECONFIG"] = self.kubeconfig
        e["PATH"] = self.bin + ":" + e.get("PATH", "")
        return e

    def run(self, tool, *args, input=None, check=True, timeout=120):
        p = subprocess.run([os.path.join(self.bin, tool), *args], input=input, capture_output=True, text=True,
                           env=self.env(), timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError(f"{tool} {' '.join(args)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
        return p

    def kubectl(self, *args, **kw):
        return self.run("kubectl", *args, **kw)

    def helm(self, *args, **kw):
        return self.run("helm", *args, **kw)

    def logs(self, lines=60):
        out = []
        for comp in ("etcd", "apiserver", "kcm"):
            p = os.path.join(self.state, comp + ".log")
            if os.path.exists(p):
                with open(p, errors="replace") as f:
                    tail = f.readlines()[-lines:]
                out.append(f"--- {comp}.log (last {len(tail)} lines)\n" + "".join(tail))
        return "\n".join(out)


@pytest.fixture(scope="session")
def cluster():
    name = f"pytest-{os.getpid()}"
    subprocess.run([CLUSTER, "up", name], check=True, stdout=subprocess.DEVNULL)
    c = Cluster(name)
    try:
        c.kubectl("apply", "--server-side", "--field-manager=switchboard-e2e", "-f", os.path.join(ROOT, "crds"))
        # `kubectl wait` fails outright (not waits) while a new CRD has no status yet: retry
        deadline = time.time() + 60
        while c.kubectl("wait", "--for=condition=Established", "--timeout=30s", "crd/routerconfigs.switchboard.dev",
                        "crd/agents.switchboard.dev", check=False).returncode != 0:
            if time.time() > deadline:
                raise AssertionError("CRDs not Established within 60 s")
            time.sleep(0.5)
        # the OpenAPI document (explain, strict validation) is published asynchronously
        deadline = time.time() + 60
        while c.kubectl("explain", "routerconfig.spec.router", check=False).returncode != 0 or \
                c.kubectl("explain", "agent.spec", check=False).returncode != 0:
            if time.time() > deadline:
                raise AssertionError("CRD schemas were not published in OpenAPI within 60 s")
            time.sleep(0.5)
        yield c
    finally:
        subprocess.run([CLUSTER, "down", name], check=False)


_current = {}


@pytest.fixture
def ns(cluster):
    name = "t-" + uuid.uuid4().hex[:10]
    cluster.kubectl("create", "namespace", name)
    _current["cluster"], _current["ns"] = cluster, name
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)
    _current.clear()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call" and rep.failed and _current.get("cluster"):
        c, n = _current["cluster"], _current.get("ns")
        extra = [c.logs()]
        if n:
            for args in (("get", "events", "-n", n, "--sort-by=.lastTimestamp"),
                         ("get", "switchboard,deploy,cm,svc,endpointslices", "-n", n, "-o", "wide")):
                p = c.kubectl(*args, check=False)
                extra.append(f"--- kubectl {' '.join(args)}\n{p.stdout}{p.stderr}")
        rep.sections.append(("control plane", "\n".join(extra)))


def apply_expect(cluster, ns, manifest, *extra_args):
    """kubectl apply a manifest (dict or YAML text); returns the CompletedProcess."""
    text = manifest if isinstance(manifest, str) else json.dumps(manifest)
    return cluster.kubectl("apply", "-n", ns, *extra_args, "-f", "-", input=text, check=False)
