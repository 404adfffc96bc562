"""pytest framework for tests against the real control plane from e2e/cluster.

- `cluster` (session): one etcd + kube-apiserver + kube-controller-manager on
  127.0.0.1 with free ports and no nodes, brought up once and torn down at the
  end; the CRDs from crds/ are installed with server-side apply. Pods stay
  Pending there: tests of the operator's logic stand in for router pods.
- `node_cluster` (session): the same plus kube-scheduler and three real nodes
  (kubelet + containerd, e2e/nodes.sh) on 127.0.X.1-3, with the images from
  `make images` imported; router pods really run there (hostNetwork).
- `ns` / `node_ns` (per test): a fresh namespace in either, deleted afterwards.
- `kubectl(...)` / `helm(...)`: run the cached binaries against the cluster.
- When a test fails, the tail of every component's log, the namespace's
  events and its switchboard objects are attached to the report.
"""
import json
import os
import subprocess
import tempfile
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
        self.nodes, self.subnet = 0, None
        if os.path.exists(os.path.join(self.state, "nodes")):
            self.nodes = int(open(os.path.join(self.state, "nodes")).read())
            self.subnet = open(os.path.join(self.state, "subnet")).read().strip()

    def node_addrs(self):
        return [f"{self.subnet}.{k}" for k in range(1, self.nodes + 1)]

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
        comps = ["etcd", "apiserver", "kcm", "scheduler"]
        for k in range(1, self.nodes + 1):
            comps += [f"node-{k}/kubelet", f"node-{k}/containerd"]
        for comp in comps:
            p = os.path.join(self.state, comp + ".log")
            if os.path.exists(p):
                with open(p, errors="replace") as f:
                    tail = f.readlines()[-lines:]
                out.append(f"--- {comp}.log (last {len(tail)} lines)\n" + "".join(tail))
        return "\n".join(out)


def install_crds(c):
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


@pytest.fixture(scope="session")
def cluster():
    name = f"pytest-{os.getpid()}"
    subprocess.run([CLUSTER, "up", name], check=True, stdout=subprocess.DEVNULL)
    c = Cluster(name)
    try:
        install_crds(c)
        yield c
    finally:
        subprocess.run([CLUSTER, "down", name], check=False)


IMAGES = [os.path.join(ROOT, "build", "images", f"switchboard-{n}.oci.tar") for n in ("router", "operator")]


def image_ref(kind):
    """The reference `make images` tags an image with (the chart's default)."""
    with open(os.path.join(ROOT, "charts", "switchboard", "Chart.yaml")) as f:
        version = [l.split(":", 1)[1].strip().strip('"') for l in f if l.startswith("appVersion:")][0]
    return f"ghcr.io/switchboard-dev/switchboard-{kind}:{version}"


@pytest.fixture(scope="session")
def node_cluster():
    """Four real nodes (a scale from three router pods to four needs a fourth: under host networking
    the routers share port numbers, so one runs per node). Their addresses 127.0.X.1-4 use a third octet of this run's own, so a demo or a
    second run on the same machine (routers bind the same ports on their node's address) cannot clash."""
    name = f"pytest-nodes-{os.getpid()}"
    subnet = f"127.0.{100 + os.getpid() % 150}"
    for img in IMAGES:
        assert os.path.exists(img), f"{img} is missing: make images builds it (make e2e does)"
    subprocess.run([CLUSTER, "up", name, "--nodes", "4", "--subnet", subnet], check=True,
                   stdout=subprocess.DEVNULL)
    c = Cluster(name)
    try:
        subprocess.run([CLUSTER, "import", name, *IMAGES], check=True)
        install_crds(c)
        yield c
    finally:
        subprocess.run([CLUSTER, "down", name], check=False)


_current = {}


def _namespace(c):
    name = "t-" + uuid.uuid4().hex[:10]
    c.kubectl("create", "namespace", name)
    _current["cluster"], _current["ns"] = c, name
    yield name
    c.kubectl("delete", "namespace", name, "--wait=false", check=False)
    _current.clear()


@pytest.fixture
def ns(cluster):
    yield from _namespace(cluster)


@pytest.fixture
def node_ns(node_cluster):
    yield from _namespace(node_cluster)


@pytest.fixture
def work():
    """A scratch directory for a test's operator and router processes. Its prefix is what `make e2e`
    looks for in the command lines of processes left behind, so every test that starts one uses it."""
    with tempfile.TemporaryDirectory(prefix="sb-e2e-op-") as d:
        yield d


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call" and rep.failed and _current.get("cluster"):
        c, n = _current["cluster"], _current.get("ns")
        extra = [c.logs()]
        if n:
            for args in (("get", "events", "-n", n, "--sort-by=.lastTimestamp"),
                         ("get", "switchboard,deploy,rs,cm,svc,pods", "-n", n, "-o", "wide")):
                p = c.kubectl(*args, check=False)
                extra.append(f"--- kubectl {' '.join(args)}\n{p.stdout}{p.stderr}")
        rep.sections.append(("control plane", "\n".join(extra)))


def apply_expect(cluster, ns, manifest, *extra_args):
    """kubectl apply a manifest (dict or YAML text); returns the CompletedProcess."""
    text = manifest if isinstance(manifest, str) else json.dumps(manifest)
    return cluster.kubectl("apply", "-n", ns, *extra_args, "-f", "-", input=text, check=False)
