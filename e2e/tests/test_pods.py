"""Router pods on real nodes: the images from `make images` run as pods that kube-scheduler places and
kubelets with containerd start (node_cluster: three nodes on 127.0.X.1-3, hostNetwork).

What local processes cannot show is tested here: scheduling (one router per node), what the image
contains, probes, the kubelet's ConfigMap volume refresh, a rolling update that completes, a router
that cannot start, a pod that drains on SIGTERM, and the chart's operator running as a pod.
The operator under test is the ASan build run beside the cluster, as in test_operator.py.
"""
import base64
import calendar
import glob
from http.client import HTTPException, HTTPSConnection
import json
import os
import ssl
import subprocess
import time

import pytest

from conftest import image_ref
from operator_env import Operator, free_port_on, http, wait_for
from test_operator import agent, apply, cm_hash, cond, cond_is, events, get, routerconfig

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


@pytest.fixture
def pod_operator(node_cluster, node_ns, work):
    # the test cluster has no DNS: the routers reach each other at their pods' IPs
    op = Operator(node_cluster, [node_ns], work,
                  ["--router-image", image_ref("router"), "--peer-addresses", "pod-ip"]).start()
    yield op
    op.stop()


def ports(c):
    """A data and an admin port free on every node's address: each test's routers get their own, so
    routers of an earlier test that are still terminating cannot hold them."""
    return free_port_on(c.node_addrs()), free_port_on(c.node_addrs())


def pod_rc(c, name, replicas=2, router=None, **spec):
    dport, aport = ports(c)
    r = {"profile": "development", "network": {"dataPort": dport, "adminPort": aport}}
    r.update(router or {})
    return routerconfig(name, r, replicas=replicas, hostNetwork=True, imagePullPolicy="Never", **spec)


def pods(c, ns, name):
    out = json.loads(c.kubectl("get", "pods", "-n", ns, "-l", f"app.kubernetes.io/instance={name}",
                               "-o", "json").stdout)["items"]
    return sorted(out, key=lambda p: p["metadata"]["name"])


def ready(p):
    return any(x["type"] == "Ready" and x["status"] == "True" for x in p.get("status", {}).get("conditions", []))


def running_pods(c, ns, name, n):
    def check():
        ps = [p for p in pods(c, ns, name) if not p["metadata"].get("deletionTimestamp")]
        return ps if len(ps) == n and all(ready(p) for p in ps) else None
    return check


def admin_token(c, ns, name):
    import base64
    return base64.b64decode(c.kubectl("get", "secret", f"{name}-admin", "-n", ns, "-o",
                                      "jsonpath={.data.token}").stdout).decode()


def router_status(p, aport, token):
    try:
        s, body = http("GET", f"http://{p['status']['podIP']}:{aport}/v1/status", token=token, timeout=3)
    except OSError:
        return None
    return json.loads(body) if s == 200 else None


def converged(c, ns, name, replicas):
    """RouterConfig Available and ConfigApplied, every pod ready and reporting the config hash."""
    def check():
        rc = get(c, ns, "routerconfig", name)
        st = (rc or {}).get("status", {})
        routers = st.get("routers", [])
        if (cond(rc, "ConfigApplied") or {}).get("status") != "True" or \
                (cond(rc, "Available") or {}).get("status") != "True" or \
                st.get("readyReplicas") != replicas or st.get("updatedReplicas") != replicas or \
                len(routers) != replicas or \
                any(not r["ready"] or r.get("configHash") != st["configHash"] for r in routers):
            return None
        return rc
    return check


def test_router_pods_run_on_their_nodes_and_take_hot_changes(node_cluster, node_ns, pod_operator):
    """Two router pods from the image, one per node, each bound to its node's address; messages route
    through a pod; a hot change reaches both pods by push within seconds without restarting them, and
    the kubelet's ConfigMap refresh later writes the same document into each pod's volume."""
    c, ns = node_cluster, node_ns
    rc = pod_rc(c, "r1")
    dport, aport = rc["spec"]["router"]["network"]["dataPort"], rc["spec"]["router"]["network"]["adminPort"]
    apply(c, ns, rc, agent("alice", "r1"), agent("bob", "r1"))
    ps = wait_for(running_pods(c, ns, "r1", 2), 90, what="two router pods Ready")
    nodes = [p["spec"]["nodeName"] for p in ps]
    assert len(set(nodes)) == 2 and set(nodes) <= set(c.node_addrs()), nodes
    assert [p["status"]["podIP"] for p in ps] == nodes  # hostNetwork: the node's loopback address
    assert all(p["spec"]["containers"][0]["image"] == image_ref("router") for p in ps)
    st = wait_for(converged(c, ns, "r1", 2), 60, what="RouterConfig converged")["status"]
    assert sorted(r["pod"] for r in st["routers"]) == [p["metadata"]["name"] for p in ps]

    # each router listens on its own node's address only
    p0 = ps[0]
    s, body = http("POST", f"http://{p0['status']['podIP']}:{dport}/v1/messages",
                   {"performative": "inform", "sender": "alice", "receiver": "bob", "content": "hello"})
    assert s == 202, body
    s, body = http("GET", f"http://{p0['status']['podIP']}:{dport}/v1/agents/bob/messages?max=5&wait_ms=2000")
    assert s == 200 and json.loads(body)["messages"][0]["message"]["content"] == "hello", body
    unused = [a for a in c.node_addrs() if a not in nodes][0]
    with pytest.raises(OSError):
        http("GET", f"http://{unused}:{dport}/v1/agents", timeout=2)

    # a hot change: pushed, so both pods run it long before the kubelet copies the file
    token = admin_token(c, ns, "r1")
    gens = [router_status(p, aport, token)["generation"] for p in ps]
    t0 = time.time()
    apply(c, ns, agent("carol", "r1"))
    new_hash = wait_for(lambda: (lambda h: h if h and h != st["configHash"] else None)(cm_hash(c, ns, "r1")), 30,
                        what="new ConfigMap")
    wait_for(lambda: all((router_status(p, aport, token) or {}).get("document_hash") == new_hash for p in ps), 10,
             interval=0.05, what="both pods run the new config")
    pushed_in = time.time() - t0
    assert pushed_in < 5, f"hot change took {pushed_in:.1f} s"
    after = pods(c, ns, "r1")
    assert [p["metadata"]["uid"] for p in after] == [p["metadata"]["uid"] for p in ps]
    assert all(p["status"]["containerStatuses"][0]["restartCount"] == 0 for p in after)

    # the kubelet's refresh writes the same document into each pod's ConfigMap volume; the routers
    # see a file they already run and do not reload again
    def volume_doc(p):
        k = c.node_addrs().index(p["spec"]["nodeName"]) + 1
        files = glob.glob(os.path.join(c.state, f"node-{k}", "kubelet", "pods", p["metadata"]["uid"], "volumes",
                                       "kubernetes.io~configmap", "config", "router.json"))
        return open(files[0]).read() if files else None
    cm_doc = get(c, ns, "configmap", "r1-config")["data"]["router.json"]
    wait_for(lambda: all(volume_doc(p) == cm_doc for p in ps), 60, what="kubelet refreshed the ConfigMap volume")
    time.sleep(3)
    assert [router_status(p, aport, token)["generation"] for p in ps] == [g + 1 for g in gens]
    s, body = http("GET", f"http://{ps[1]['status']['podIP']}:{dport}/v1/agents/carol")
    assert s == 200, body


def test_restart_class_change_rolls_pods_to_completion(node_cluster, node_ns, pod_operator):
    """storage.sync is restart-class: the StatefulSet rolls with a canary. The highest ordinal is replaced
    first (partition), and the other pod only once the canary has been healthy for canarySeconds; then
    every pod runs the new config and the RouterConfig ends Available and ConfigApplied=True."""
    c, ns = node_cluster, node_ns
    canary_s = 6
    rc = pod_rc(c, "r1", rollout={"canarySeconds": canary_s})
    apply(c, ns, rc, agent("alice", "r1"))
    old = wait_for(converged(c, ns, "r1", 2), 90, what="RouterConfig converged")
    old_pods = {p["metadata"]["uid"] for p in pods(c, ns, "r1")}
    first = {p["metadata"]["name"]: p["metadata"]["uid"] for p in pods(c, ns, "r1")}
    rc["spec"]["router"]["storage"] = {"sync": "normal"}
    t0 = time.time()
    apply(c, ns, rc)
    # the canary stage: only r1-1 is replaced; r1-0 waits, and the status says why
    wait_for(lambda: get(c, ns, "statefulset", "r1")["spec"]["updateStrategy"]["rollingUpdate"]["partition"] == 1,
             20, interval=0.1, what="partition 1: the canary only")
    stage = wait_for(cond_is(c, ns, "routerconfig", "r1", "Progressing", "True", "CanaryInProgress"), 30,
                     interval=0.2)
    assert "r1-1" in cond(stage, "Progressing")["message"]
    canary = wait_for(lambda: [p for p in pods(c, ns, "r1") if p["metadata"]["name"] == "r1-1" and
                               p["metadata"]["uid"] != first["r1-1"] and ready(p)], 90, interval=0.2,
                      what="the canary Ready")[0]
    canary_ready = time.time()
    assert {p["metadata"]["name"]: p["metadata"]["uid"] for p in pods(c, ns, "r1")}["r1-0"] == first["r1-0"]
    new = wait_for(lambda: (lambda o: o if o and o["status"]["configHash"] != old["status"]["configHash"] else None)(
        converged(c, ns, "r1", 2)()), 120, what="rollout complete")
    took = time.time() - t0
    now = [p for p in pods(c, ns, "r1") if not p["metadata"].get("deletionTimestamp")]
    assert not old_pods & {p["metadata"]["uid"] for p in now}, "every pod was replaced"
    assert new["status"]["restartHash"] != old["status"]["restartHash"]
    assert cond(new, "ConfigApplied")["reason"] == "AllRoutersCurrent"
    assert [e for e in events(c, ns, "RollingRestart")]
    promoted = events(c, ns, "CanaryPromoted")
    assert promoted and "r1-1" in promoted[0]["message"], promoted
    r0 = [p for p in now if p["metadata"]["name"] == "r1-0"][0]
    r0_created = calendar.timegm(time.strptime(r0["metadata"]["creationTimestamp"], "%Y-%m-%dT%H:%M:%SZ"))
    assert r0_created >= canary_ready + canary_s - 3, (r0_created - canary_ready, canary["metadata"]["name"])
    assert get(c, ns, "statefulset", "r1")["spec"]["updateStrategy"]["rollingUpdate"]["partition"] == 0
    print(f"restart-class rollout of 2 pods with a {canary_s} s canary completed in {took:.1f} s")


def test_router_that_cannot_start_is_rolled_back(node_cluster, node_ns, pod_operator):
    """TLS turned on with files the pod does not have: the StatefulSet updates its highest ordinal first,
    that pod cannot start, the rollout misses its deadline, and the operator restores the previous
    template and config and replaces the broken pod. The pod not yet updated keeps running untouched;
    the condition and a Warning Event say why."""
    c, ns = node_cluster, node_ns
    rc = pod_rc(c, "r1", rollout={"progressDeadlineSeconds": 30, "canarySeconds": 5})
    apply(c, ns, rc, agent("alice", "r1"))
    old = wait_for(converged(c, ns, "r1", 2), 90, what="RouterConfig converged")
    before = {p["metadata"]["name"]: (p["metadata"]["uid"], p["status"]["containerStatuses"][0]["restartCount"])
              for p in pods(c, ns, "r1")}
    rc["spec"]["router"]["security"] = {"tls": {"enabled": True, "certFile": "/etc/switchboard/tls/tls.crt",
                                                "keyFile": "/etc/switchboard/tls/tls.key"}}
    apply(c, ns, rc)
    t0 = time.time()
    wait_for(lambda: events(c, ns, "RolledBack"), 120, what="RolledBack after the progress deadline")
    print(f"rolled back {time.time() - t0:.1f} s after the change (progressDeadlineSeconds 30)")

    def rolled_back():
        rc = get(c, ns, "routerconfig", "r1")
        st = rc["status"]
        ok = (cond(rc, "ConfigApplied") or {}).get("reason") == "RolledBack" and \
            (cond(rc, "Available") or {}).get("status") == "True" and st.get("readyReplicas") == 2 and \
            len(st.get("routers", [])) == 2 and \
            all(r["ready"] and r.get("configHash") == old["status"]["configHash"] for r in st["routers"])
        return rc if ok else None
    back = wait_for(rolled_back, 60, what="the routers on the previous config")
    assert back["status"]["configHash"] == old["status"]["configHash"]
    assert back["status"]["restartHash"] == old["status"]["restartHash"]
    assert back["status"]["rejectedConfigHash"] not in ("", old["status"]["configHash"])
    assert back["status"]["lastReload"]["result"] == "RolledBack"
    dep = get(c, ns, "statefulset", "r1")
    assert dep["spec"]["template"]["metadata"]["annotations"]["switchboard.dev/restart-hash"] == \
        old["status"]["restartHash"]
    after = {p["metadata"]["name"]: (p["metadata"]["uid"], p["status"]["containerStatuses"][0]["restartCount"])
             for p in pods(c, ns, "r1") if not p["metadata"].get("deletionTimestamp")}
    assert after["r1-0"] == before["r1-0"], "the pod not yet updated was never restarted"
    assert after["r1-1"][0] != before["r1-1"][0], "the broken pod was replaced by one of the good revision"
    msg = events(c, ns, "RolledBack")[0]["message"]
    assert "deadline" in msg, msg


def make_cert(directory, name, addrs):
    """A self-signed certificate valid for the nodes' addresses (hostNetwork pods bind them), and its key."""
    key, crt = os.path.join(directory, f"{name}.key"), os.path.join(directory, f"{name}.crt")
    san = ",".join(f"IP:{a}" for a in addrs)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-days", "1", "-subj", f"/CN=router-{name}", "-addext", f"subjectAltName={san}",
                    "-keyout", key, "-out", crt], check=True, capture_output=True)
    return crt, key


def tls_secret(name, crt, key):
    def b64(path):
        with open(path, "rb") as f:
            return base64.b64encode(f.read()).decode()
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "type": "kubernetes.io/tls",
            "data": {"tls.crt": b64(crt), "tls.key": b64(key)}}


def https_status(host, port, cafile):
    """GET /v1/agents over TLS from a client that trusts only `cafile`; None when the handshake or the
    certificate check fails."""
    ctx = ssl.create_default_context(cafile=cafile)
    conn = HTTPSConnection(host, port, context=ctx, timeout=3)
    try:
        conn.request("GET", "/v1/agents")
        return conn.getresponse().status
    except (OSError, ssl.SSLError, HTTPException):
        return None
    finally:
        conn.close()


def test_renewed_tls_secret_is_served_without_a_restart(node_cluster, node_ns, pod_operator, work):
    """spec.tls.secretName: the operator mounts the TLS Secret and the routers serve their data port with
    it. When the Secret is renewed (as cert-manager does), a client that trusts only the new certificate
    connects to every pod within 10 s, the old certificate is no longer presented, and no pod restarts."""
    c, ns = node_cluster, node_ns
    old_crt, old_key = make_cert(work, "old", c.node_addrs())
    new_crt, new_key = make_cert(work, "new", c.node_addrs())
    apply(c, ns, tls_secret("r1-tls", old_crt, old_key))
    rc = pod_rc(c, "r1", tls={"secretName": "r1-tls"})
    dport = rc["spec"]["router"]["network"]["dataPort"]
    apply(c, ns, rc, agent("alice", "r1"))
    wait_for(converged(c, ns, "r1", 2), 90, what="RouterConfig converged with TLS")
    ps = pods(c, ns, "r1")
    hosts = [p["status"]["podIP"] for p in ps]
    assert all(https_status(h, dport, old_crt) == 200 for h in hosts)
    assert all(https_status(h, dport, new_crt) is None for h in hosts)
    with pytest.raises((OSError, HTTPException)):
        http("GET", f"http://{hosts[0]}:{dport}/v1/agents", timeout=3)  # no plain HTTP on the data port
    before = [(p["metadata"]["uid"], p["status"]["containerStatuses"][0]["restartCount"]) for p in ps]

    t0 = time.time()
    apply(c, ns, tls_secret("r1-tls", new_crt, new_key))
    wait_for(lambda: all(https_status(h, dport, new_crt) == 200 for h in hosts), 10, interval=0.1,
             what="every pod presents the renewed certificate")
    took = time.time() - t0
    print(f"renewed TLS Secret served by {len(hosts)} pods {took:.1f} s after the update")
    assert all(https_status(h, dport, old_crt) is None for h in hosts)
    after = [(p["metadata"]["uid"], p["status"]["containerStatuses"][0]["restartCount"]) for p in pods(c, ns, "r1")]
    assert after == before, "no pod restarted"
    assert cond(get(c, ns, "routerconfig", "r1"), "ConfigApplied")["status"] == "True"


def test_three_router_pods_act_as_one_router(node_cluster, node_ns, pod_operator):
    """Three router pods, one assignment: each agent is owned by one pod (rendezvous hashing, the same
    owners test_lib pins), every pod accepts messages for every agent and forwards them to the owner,
    and an agent pulls and acks through any pod; every message is delivered exactly once. The operator
    pins the peers' names to the pods' IPs (--peer-addresses pod-ip: the test cluster has no DNS)."""
    c, ns = node_cluster, node_ns
    owners = {"carol": 0, "agent-0002": 1, "alice": 2}  # with 3 replicas
    # ephemeral volumes: this is about forwarding, and the nodes' local volumes are retained by the
    # tests before (Retain: a released volume is not bound again)
    rc = pod_rc(c, "r1", replicas=3, volume={"ephemeral": True})
    dport = rc["spec"]["router"]["network"]["dataPort"]
    apply(c, ns, rc, *[agent(a.replace("agent-0002", "a2"), "r1", agentId=a) for a in owners])
    wait_for(converged(c, ns, "r1", 3), 120, what="three router pods converged")
    ps = pods(c, ns, "r1")
    urls = [f"http://{p['status']['podIP']}:{dport}" for p in ps]
    token = admin_token(c, ns, "r1")
    aport = rc["spec"]["router"]["network"]["adminPort"]
    assert [router_status(p, aport, token)["cluster"]["ordinal"] for p in ps] == [0, 1, 2]
    st = get(c, ns, "routerconfig", "r1")["status"]
    assert len(st["epoch"]) == 16 and all(r["epoch"] == st["epoch"] for r in st["routers"]), st
    for a, owner in owners.items():
        name = a.replace("agent-0002", "a2")
        wait_for(lambda: (get(c, ns, "agent", name).get("status") or {}).get("ownerPod") == f"r1-{owner}", 20,
                 what=f"Agent {name} names its owner pod")
    sent = {a: [] for a in owners}
    for i, u in enumerate(urls):
        for a in owners:
            mid = f"m-{a}-{i}"
            s, body = http("POST", f"{u}/v1/messages", {"performative": "inform", "sender": "carol",
                                                         "receiver": a, "content": "x", "message_id": mid})
            assert s == 202, body
            sent[a].append(mid)
    for a, owner in owners.items():
        via, ack_via = urls[(owner + 1) % 3], urls[(owner + 2) % 3]
        s, body = http("GET", f"{via}/v1/agents/{a}/messages?max=100&wait_ms=1000")
        got = [m["message_id"] for m in json.loads(body)["messages"]]
        assert s == 200 and sorted(got) == sorted(sent[a]), (a, body)
        s, body = http("POST", f"{ack_via}/v1/agents/{a}/ack", {"message_ids": got})
        assert s == 200 and json.loads(body)["acked"] == len(got), body
        s, body = http("GET", f"{urls[owner]}/v1/agents/{a}/messages?max=100&wait_ms=0")
        assert s == 200 and json.loads(body)["messages"] == [], body


def test_a_draining_router_drops_readiness(node_cluster, node_ns, pod_operator):
    """A deleted router pod gets SIGTERM: it answers /readyz 503 while it drains, then exits cleanly,
    and its replacement comes up Ready with the current config."""
    c, ns = node_cluster, node_ns
    rc = pod_rc(c, "r1", replicas=1, router={"shutdown": {"timeoutMs": 8000}}, volume={"ephemeral": True})
    aport = rc["spec"]["router"]["network"]["adminPort"]
    apply(c, ns, rc, agent("alice", "r1"))
    st = wait_for(converged(c, ns, "r1", 1), 90, what="RouterConfig converged")["status"]
    p = pods(c, ns, "r1")[0]
    url = f"http://{p['status']['podIP']}:{aport}/readyz"
    assert http("GET", url)[0] == 200
    c.kubectl("delete", "pod", p["metadata"]["name"], "-n", ns, "--wait=false")
    seen = []
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            code = http("GET", url, timeout=1)[0]
        except OSError:
            code = None
        if not seen or seen[-1] != code:
            seen.append(code)
        if code is None:
            break
        time.sleep(0.02)
    assert seen[:1] == [200] and 503 in seen and seen[-1] is None, seen
    def replaced():
        ps = pods(c, ns, "r1")
        return ps[0] if len(ps) == 1 and ps[0]["metadata"]["uid"] != p["metadata"]["uid"] and \
            converged(c, ns, "r1", 1)() else None
    new = wait_for(replaced, 90, what="a replacement pod converged")
    token = admin_token(c, ns, "r1")
    assert router_status(new, aport, token)["document_hash"] == st["configHash"]


def test_chart_operator_runs_as_a_pod_and_helm_test_passes(node_cluster, node_ns):
    """The chart installed for real: its operator pod (image from `make images`, hostNetwork, the API
    server reached on loopback, its ServiceAccount token mounted by the kubelet) becomes Ready, wins
    its Lease, renders a RouterConfig whose router pod runs, and `helm test` runs its hook pod."""
    c, ns = node_cluster, node_ns
    chart = os.path.join(ROOT, "charts", "switchboard")
    port = open(os.path.join(c.state, "apiserver.port")).read().strip()
    mport = free_port_on(c.node_addrs())
    c.helm("install", "sb", chart, "-n", ns, "--skip-crds", "--set", f"watchNamespaces={{{ns}}}",
           "--set", "hostNetwork=true", "--set", "peerAddresses=pod-ip", "--set", "image.pullPolicy=Never",
           "--set", "apiServer.host=127.0.0.1",
           "--set", f"apiServer.port={port}", "--set", f"metrics.port={mport}", "--wait", "--timeout", "90s",
           timeout=120)
    op = wait_for(lambda: [p for p in pods_by(c, ns, "app.kubernetes.io/name=switchboard-operator") if ready(p)], 30,
                  what="operator pod Ready")[0]
    assert op["spec"]["hostNetwork"] and op["status"]["podIP"] in c.node_addrs()
    wait_for(lambda: c.kubectl("get", "lease", "-n", ns, "-o", "json").stdout.count("holderIdentity") >= 1, 30,
             what="the operator's Lease")
    apply(c, ns, pod_rc(c, "r1", replicas=1, volume={"ephemeral": True}), agent("alice", "r1"))
    rc = wait_for(converged(c, ns, "r1", 1), 90, what="RouterConfig converged by the operator pod")
    assert rc["status"]["volume"] == "Ephemeral"
    assert "emptyDir" in [list(v) for v in get(c, ns, "statefulset", "r1")["spec"]["template"]["spec"]["volumes"]
                          if v["name"] == "data"][0]
    p = c.helm("test", "sb", "-n", ns, "--timeout", "60s", check=False, timeout=90)
    assert p.returncode == 0, p.stdout + p.stderr
    # the hook pod really ran (hook-succeeded deletes it afterwards): its kubelet Events are there
    ran = [e["reason"] for e in events(c, ns) if e["involvedObject"]["name"] == "sb-switchboard-test-readyz"]
    assert "Started" in ran, ran
    c.helm("uninstall", "sb", "-n", ns, "--wait", "--timeout", "60s", timeout=90)


def pods_by(c, ns, selector):
    return json.loads(c.kubectl("get", "pods", "-n", ns, "-l", selector, "-o", "json").stdout)["items"]


class Load:
    """Four producers and one consumer through one router pod, each message with its own id. A producer
    retries a send that got no answer (or a 5xx) with the same id, so the router's dedup makes the retry
    safe; a 202 is an acknowledgement. The consumer long-polls, acks, and records every delivery."""

    def __init__(self, url, producers=4):
        import threading
        self.url, self.stop_sending, self.stop_all = url, threading.Event(), threading.Event()
        self.lock = threading.Lock()
        self.acked, self.delivered, self.confirmed = set(), [], set()
        self.ok_times = []
        self.redelivered_after_confirm = []
        self.threads = [threading.Thread(target=self.produce, args=(i,)) for i in range(producers)]
        self.threads.append(threading.Thread(target=self.consume))

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def produce(self, i):
        seq = 0
        while not self.stop_sending.is_set():
            mid = f"p{i}-{seq}"
            while not self.stop_all.is_set():
                try:
                    s, _ = http("POST", f"{self.url}/v1/messages",
                                {"performative": "inform", "sender": f"producer-{i}", "receiver": "sink",
                                 "content": mid, "message_id": mid}, timeout=3)
                except OSError:
                    s = None
                if s == 202 or s == 200:
                    with self.lock:
                        self.acked.add(mid)
                        self.ok_times.append(time.time())
                    break
                time.sleep(0.05)
            seq += 1
            time.sleep(0.002)

    def consume(self):
        while not self.stop_all.is_set():
            try:
                s, body = http("GET", f"{self.url}/v1/agents/sink/messages?max=100&wait_ms=500", timeout=3)
            except OSError:
                s = None
            if s != 200:
                time.sleep(0.05)
                continue
            got = [m["message_id"] for m in json.loads(body)["messages"]]
            with self.lock:
                self.redelivered_after_confirm += [m for m in got if m in self.confirmed]
                self.delivered += got
            if not got:
                continue
            try:
                s, body = http("POST", f"{self.url}/v1/agents/sink/ack", {"message_ids": got}, timeout=3)
            except OSError:
                s = None
            if s == 200 and not json.loads(body).get("not_leased"):
                with self.lock:
                    self.confirmed.update(got)

    def longest_gap(self):
        t = sorted(self.ok_times)
        return max((b - a for a, b in zip(t, t[1:])), default=0.0)

    def finish(self):
        # the producers finish the message in hand first: one acknowledged after the consumer stopped
        # would look lost (it is in the router's queue)
        self.stop_sending.set()
        for t in self.threads[:-1]:
            t.join(30)
        deadline = time.time() + 60
        while time.time() < deadline:
            with self.lock:
                if self.acked <= set(self.delivered):
                    break
            time.sleep(0.2)
        self.stop_all.set()
        for t in self.threads:
            t.join(10)


def test_a_replaced_router_pod_keeps_every_acknowledged_message(node_cluster, node_ns, pod_operator):
    """The router pod is deleted while four producers and a consumer run through it. The StatefulSet
    brings it back with the same claim on the same node; every message it acknowledged (202) is
    delivered, nothing whose ack was confirmed is delivered again, and the unavailability window is
    reported."""
    c, ns = node_cluster, node_ns
    rc = pod_rc(c, "r1", replicas=1, router={"storage": {"sync": "full"}, "shutdown": {"timeoutMs": 5000}})
    dport = rc["spec"]["router"]["network"]["dataPort"]
    apply(c, ns, rc, agent("sink", "r1"), *[agent(f"producer-{i}", "r1") for i in range(4)])
    st = wait_for(converged(c, ns, "r1", 1), 120, what="RouterConfig converged")["status"]
    assert st["volume"] == "Persistent"
    pvc = get(c, ns, "pvc", "data-r1-0")
    assert pvc["status"]["phase"] == "Bound"
    first = pods(c, ns, "r1")[0]
    load = Load(f"http://{first['status']['podIP']}:{dport}").start()
    try:
        time.sleep(3)
        c.kubectl("delete", "pod", "r1-0", "-n", ns, "--wait=false")

        def back():
            ps = pods(c, ns, "r1")
            return ps[0] if len(ps) == 1 and ps[0]["metadata"]["uid"] != first["metadata"]["uid"] and \
                ready(ps[0]) else None
        new = wait_for(back, 120, what="the pod back and Ready")
        time.sleep(3)
    finally:
        load.finish()
    assert new["spec"]["nodeName"] == first["spec"]["nodeName"]
    assert get(c, ns, "pvc", "data-r1-0")["metadata"]["uid"] == pvc["metadata"]["uid"]
    lost = load.acked - set(load.delivered)
    duplicates = len(load.delivered) - len(set(load.delivered))
    window = load.longest_gap()
    print(f"pod replacement: {len(load.acked)} messages acknowledged, {len(lost)} lost, {duplicates} delivered "
          f"more than once (none after a confirmed ack: {len(load.redelivered_after_confirm)}), "
          f"unavailable for {window:.2f} s")
    assert len(load.acked) > 100
    assert not lost, sorted(lost)[:20]
    assert load.redelivered_after_confirm == []
    assert window < 60
