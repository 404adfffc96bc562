"""Helpers for operator e2e tests: the operator binary as a process, and local
router processes standing in for the router pods.

- `Operator` runs build/switchboard-operator-san (ASan + LeakSanitizer) against
  the test cluster and exposes its /metrics; stopping it with SIGTERM must exit 0
  (a leak or a dirty shutdown fails the test).
- `LocalRouters` starts N routers on 127.0.0.1 with their own ports, each reading the rendered ConfigMap
  from a directory laid out as the kubelet lays out a ConfigMap volume
  (timestamped directory, `..data` symlink swapped atomically, file symlinks).
  The copy is refreshed only when the test says so (`kubelet_sync`), i.e.
  deliberately late, so a test can tell a pushed reload from a file reload.
  The operator finds routers through their Pod objects, so each local router
  gets a stand-in Pod: the router labels, bound to a Node object that no
  kubelet runs ("local-routers"), with the router's own ports as its container
  ports and a status (Ready, podIP 127.0.0.1) that the test writes. These tests
  run on the control plane without nodes, where the Deployment's own pods stay
  Pending; they test the operator's logic only. Tests of real router pods are
  in test_pods.py. Nothing dials outside 127.0.0.0/8.
"""
import base64
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OPERATOR = os.environ.get("SB_OPERATOR", os.path.join(ROOT, "build", "switchboard-operator-san"))
ROUTER = os.environ.get("SB_ROUTER", os.path.join(ROOT, "build", "switchboard-router"))


def wait_for(fn, timeout=30, interval=0.2, what="condition"):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def http(method, url, body=None, token=None, timeout=10):
    data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class Operator:
    def __init__(self, cluster, namespaces, workdir, extra=(), name="operator", kubeconfig=None, env=None):
        self.cluster, self.workdir, self.name = cluster, workdir, name
        self.logpath = os.path.join(workdir, f"{name}.log")
        self.args = [OPERATOR, "--kubeconfig", kubeconfig if kubeconfig is not None else cluster.kubeconfig,
                     "--metrics-addr", "127.0.0.1:0", "--debounce-ms", "200", "--log-level", "debug", *extra]
        if kubeconfig == "":
            self.args[1:3] = []
        if namespaces:
            self.args += ["--namespace", ",".join(namespaces)]
        self.env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:exitcode=23",
                        UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1", **(env or {}))
        if kubeconfig == "":
            self.env.pop("KUBECONFIG", None)
        self.proc = None
        self.port = None

    def start(self):
        self.logf = open(self.logpath, "ab")
        self.proc = subprocess.Popen(self.args, stdout=self.logf, stderr=subprocess.STDOUT, env=self.env,
                                     start_new_session=True)
        self.port = wait_for(self._port, 20, what="operator metrics port")
        wait_for(lambda: self.get("/readyz")[0] == 200, 30, what="operator caches synced")
        return self

    def _port(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"operator exited {self.proc.returncode}:\n{self.log()}")
        for line in self.log().splitlines():
            try:
                j = json.loads(line)
            except ValueError:
                continue
            if j.get("msg") == "listening" and j.get("server") == "metrics":
                return j["port"]
        return None

    def log(self):
        with open(self.logpath, errors="replace") as f:
            return f.read()

    def lines(self):
        out = []
        for line in self.log().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def get(self, path):
        try:
            return http("GET", f"http://127.0.0.1:{self.port}{path}", timeout=5)
        except OSError:
            return 0, b""

    def metric(self, name, **labels):
        status, body = self.get("/metrics")
        assert status == 200
        total = None
        for line in body.decode().splitlines():
            if line.startswith("#") or not line.startswith(name):
                continue
            series, value = line.rsplit(" ", 1)
            if series.split("{")[0] != name:
                continue
            if all(f'{k}="{v}"' in series for k, v in labels.items()):
                total = (total or 0) + float(value)
        return total

    def kill(self):
        self.proc.kill()
        self.proc.wait(10)
        self.logf.close()

    def stop(self, expect_clean=True):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("operator did not stop on SIGTERM:\n" + self.log()[-4000:])
            self.logf.close()
            if expect_clean:
                assert self.proc.returncode == 0, f"operator exit {self.proc.returncode}:\n{self.log()[-6000:]}"


def free_port_on(addrs):
    for _ in range(100):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        ok = True
        for a in addrs:
            t = socket.socket()
            try:
                t.bind((a, port))
            except OSError:
                ok = False
            finally:
                t.close()
        if ok:
            return port
    raise AssertionError("no free port")


class LocalRouters:
    def __init__(self, cluster, ns, name, workdir, n=2):
        self.cluster, self.ns, self.name, self.workdir = cluster, ns, name, workdir
        self.n = n
        self.ports = [(free_port_on(["127.0.0.1"]), free_port_on(["127.0.0.1"])) for _ in range(n)]
        self.addrs = list(range(n))  # router indexes
        self.cfgdir = os.path.join(workdir, f"{name}-config")
        os.makedirs(self.cfgdir, exist_ok=True)
        self.procs = []
        self.token = None
        self.synced_hash = None

    # -- the kubelet's part ------------------------------------------------
    def configmap(self):
        p = self.cluster.kubectl("get", "configmap", f"{self.name}-config", "-n", self.ns, "-o", "json", check=False)
        return json.loads(p.stdout) if p.returncode == 0 else None

    def kubelet_sync(self):
        """Copy the ConfigMap into the volume directory with an atomic ..data swap."""
        cm = wait_for(self.configmap, 30, what=f"ConfigMap {self.name}-config")
        files = {k: v.encode() for k, v in (cm.get("data") or {}).items()}
        files.update({k: base64.b64decode(v) for k, v in (cm.get("binaryData") or {}).items()})
        ts = tempfile.mkdtemp(prefix="..", dir=self.cfgdir)
        for k, v in files.items():
            with open(os.path.join(ts, k), "wb") as f:
                f.write(v)
            link = os.path.join(self.cfgdir, k)
            if not os.path.islink(link):
                os.symlink(os.path.join("..data", k), link)
        tmp = os.path.join(self.cfgdir, "..data_tmp")
        os.symlink(os.path.basename(ts), tmp)
        os.rename(tmp, os.path.join(self.cfgdir, "..data"))
        self.synced_hash = cm["metadata"].get("annotations", {}).get("switchboard.dev/config-hash")
        return self.synced_hash

    def admin_token(self):
        p = wait_for(lambda: self.cluster.kubectl("get", "secret", f"{self.name}-admin", "-n", self.ns, "-o",
                                                  "jsonpath={.data.token}", check=False).stdout, 30,
                     what="admin-token Secret")
        return base64.b64decode(p).decode()

    # -- processes and their stand-in Pods ----------------------------------
    def start(self):
        try:
            return self._start()
        except BaseException:
            self.stop()  # never leave a router behind
            raise

    def _start(self):
        self.token = self.admin_token()
        tokfile = os.path.join(self.workdir, f"{self.name}-admin-token")
        with open(tokfile, "w") as f:
            f.write(self.token)
        self.kubelet_sync()
        for i, (dport, aport) in enumerate(self.ports):
            logf = open(os.path.join(self.workdir, f"{self.name}-router-{i}.log"), "ab")
            p = subprocess.Popen([ROUTER, "--config", os.path.join(self.cfgdir, "router.json"),
                                  "--set", "network.bindAddress=127.0.0.1",
                                  "--set", f"network.dataPort={dport}",
                                  "--set", f"network.adminPort={aport}",
                                  "--set", f"storage.path={self.workdir}/{self.name}-{i}.db",
                                  "--set", f"security.adminTokenFile={tokfile}",
                                  # stand-ins for the operator's tests, each a router of its own: the
                                  # replicas acting as one are tested on real pods and in tests/integration
                                  "--set", "cluster.replicas=1", "--set", "network.peerPort=0"],
                                 stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
            self.procs.append((p, logf))
        for i in range(self.n):
            wait_for(lambda: self.status(i) is not None, 20, what=f"router {i} up")
        self.apply_pods()
        return self

    STAND_IN_NODE = "local-routers"

    def stand_in_node(self):
        node = {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": self.STAND_IN_NODE, "labels": {"switchboard.dev/e2e": "stand-in"}},
                "spec": {"unschedulable": True}}
        self.cluster.kubectl("apply", "--server-side", "--field-manager=switchboard-e2e", "-f", "-",
                             input=json.dumps(node))

    def pod(self, i):
        dport, aport = self.ports[i]
        return {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"{self.name}-local-{i}", "namespace": self.ns,
                         "labels": {"app.kubernetes.io/name": "switchboard-router",
                                    "app.kubernetes.io/instance": self.name,
                                    "switchboard.dev/e2e": "stand-in"}},
            "spec": {"nodeName": self.STAND_IN_NODE, "automountServiceAccountToken": False,
                     "containers": [{"name": "router", "image": "stand-in.local/router:0",
                                     "ports": [{"name": "data", "containerPort": dport},
                                               {"name": "admin", "containerPort": aport}]}]}}

    def apply_pods(self, ready=True):
        """Stand-in Pods for the local routers, with a Ready (or not) status at 127.0.0.1."""
        self.stand_in_node()
        for i in range(self.n):
            # the ServiceAccount admission needs the namespace's default account, which the
            # controller manager creates a moment after the namespace
            wait_for(lambda: self.cluster.kubectl("apply", "-f", "-", input=json.dumps(self.pod(i)),
                                                  check=False).returncode == 0, 30, what="stand-in pod")
            self.set_ready(i, ready)

    def set_ready(self, i, ready):
        status = {"status": {"phase": "Running", "podIP": "127.0.0.1", "podIPs": [{"ip": "127.0.0.1"}],
                             "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}
        self.cluster.kubectl("patch", "pod", f"{self.name}-local-{i}", "-n", self.ns, "--subresource=status",
                             "--type=merge", "-p", json.dumps(status))

    def status(self, i):
        try:
            s, body = http("GET", f"http://127.0.0.1:{self.ports[i][1]}/v1/status", token=self.token, timeout=3)
        except OSError:
            return None
        return json.loads(body) if s == 200 else None

    def hashes(self):
        return [(self.status(a) or {}).get("document_hash") for a in self.addrs]

    def generations(self):
        return [(self.status(a) or {}).get("generation") for a in self.addrs]

    def data(self, i, method, path, body=None, token=None):
        return http(method, f"http://127.0.0.1:{self.ports[i][0]}{path}", body, token=token)

    def stop(self):
        for p, logf in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p, logf in self.procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            logf.close()
        self.procs = []

    def logs(self):
        out = []
        for i in range(self.n):
            path = os.path.join(self.workdir, f"{self.name}-router-{i}.log")
            if os.path.exists(path):
                with open(path, errors="replace") as f:
                    out.append(f"--- router {i}\n" + "".join(f.readlines()[-30:]))
        return "\n".join(out)
