"""The operator against the real control plane, with local routers as its pods.

Each test runs build/switchboard-operator-san (ASan/LSan) scoped to the test's
namespace and asserts what a user relies on: owned objects, routing through the
rendered config, hot reloads that land before the kubelet's late file copy,
rolling restarts for restart-class fields, validation, rollback, garbage
collection, watch recovery (apiserver restart, 410 after compaction), leader
election, and idempotent restarts.
"""
import base64
import json
import os
import signal
import subprocess
import time
import urllib.request

import pytest

from operator_env import LocalRouters, Operator, http, wait_for

CLUSTER_SCRIPT = os.path.join(os.path.dirname(__file__), "..", "cluster")


@pytest.fixture
def operator(cluster, ns, work):
    op = Operator(cluster, [ns], work).start()
    yield op
    op.stop()


def apply(cluster, ns, *objs):
    text = "\n---\n".join(json.dumps(o) for o in objs)
    cluster.kubectl("apply", "-n", ns, "-f", "-", input=text)


def routerconfig(name, router=None, **spec):
    s = {"replicas": 2, "router": router or {"profile": "development"}}
    s.update(spec)
    return {"apiVersion": "switchboard.dev/v1alpha1", "kind": "RouterConfig", "metadata": {"name": name}, "spec": s}


def agent(name, router, mode="pull", **spec):
    s = {"routerRef": {"name": router}, "delivery": {"mode": mode}}
    s.update(spec)
    return {"apiVersion": "switchboard.dev/v1alpha1", "kind": "Agent", "metadata": {"name": name}, "spec": s}


def get(cluster, ns, kind, name):
    p = cluster.kubectl("get", kind, name, "-n", ns, "-o", "json", "--show-managed-fields", check=False)
    return json.loads(p.stdout) if p.returncode == 0 else None


def cond(obj, type_):
    for c in (obj or {}).get("status", {}).get("conditions", []):
        if c["type"] == type_:
            return c
    return None


def cond_is(cluster, ns, kind, name, type_, status, reason=None):
    def check():
        o = get(cluster, ns, kind, name)
        c = cond(o, type_)
        if c and c["status"] == status and (reason is None or c["reason"] == reason) and \
                c.get("observedGeneration") == o["metadata"]["generation"]:
            return o
        return None
    return check


def events(cluster, ns, reason=None):
    out = json.loads(cluster.kubectl("get", "events", "-n", ns, "-o", "json").stdout)["items"]
    return [e for e in out if reason is None or e["reason"] == reason]


def restart_hash(cluster, ns, name):
    d = get(cluster, ns, "statefulset", name)
    return d["spec"]["template"]["metadata"]["annotations"]["switchboard.dev/restart-hash"]


def revisions(cluster, ns, name):
    """The StatefulSet's ControllerRevisions: one per distinct pod template it has run."""
    rs = json.loads(cluster.kubectl("get", "controllerrevisions", "-n", ns, "-l",
                                    f"app.kubernetes.io/instance={name}", "-o", "json").stdout)["items"]
    return sorted(r["metadata"]["name"] for r in rs)


def cm_hash(cluster, ns, name):
    cm = get(cluster, ns, "configmap", f"{name}-config")
    return cm["metadata"]["annotations"]["switchboard.dev/config-hash"] if cm else None


def running(cluster, ns, work, name="r1", agents=("alice", "bob"), router=None, **spec):
    """A RouterConfig with pull agents, its local routers, converged."""
    apply(cluster, ns, routerconfig(name, router, **spec), *[agent(a, name) for a in agents])
    wait_for(lambda: cm_hash(cluster, ns, name), 30, what="ConfigMap rendered")
    # the first render may predate the Agents' arrival in the cache: wait for all of them
    wait_for(lambda: (get(cluster, ns, "routerconfig", name) or {}).get("status", {}).get("agents") == len(agents),
             30, what="all agents rendered")
    routers = LocalRouters(cluster, ns, name, work).start()
    try:
        wait_for(cond_is(cluster, ns, "routerconfig", name, "ConfigApplied", "True"), 30, what="ConfigApplied=True")
    except BaseException:
        routers.stop()
        raise
    return routers


def send(routers, i, sender, receiver, content="hi"):
    return routers.data(i, "POST", "/v1/messages", {"performative": "inform", "sender": sender,
                                                   "receiver": receiver, "content": content})


def pull(routers, i, agent_id):
    s, body = routers.data(i, "GET", f"/v1/agents/{agent_id}/messages?max=100&wait_ms=0")
    assert s == 200, body
    return json.loads(body)["messages"]


def test_create_routes_and_owns_objects(cluster, ns, operator, work):
    routers = running(cluster, ns, work)
    try:
        rc = get(cluster, ns, "routerconfig", "r1")
        for kind, name in (("configmap", "r1-config"), ("statefulset", "r1"), ("service", "r1"),
                           ("poddisruptionbudget", "r1"), ("secret", "r1-admin")):
            o = get(cluster, ns, kind, name)
            assert o, f"{kind}/{name} missing"
            ref = o["metadata"]["ownerReferences"][0]
            assert (ref["kind"], ref["name"], ref["uid"], ref["controller"]) == \
                ("RouterConfig", "r1", rc["metadata"]["uid"], True)
            assert o["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "switchboard-operator"
            managers = {m["manager"] for m in o["metadata"]["managedFields"]}
            assert "switchboard-operator" in managers
        pod = get(cluster, ns, "statefulset", "r1")["spec"]["template"]["spec"]
        c = pod["containers"][0]
        assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert c["securityContext"]["readOnlyRootFilesystem"] is True
        assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
        assert c["securityContext"]["allowPrivilegeEscalation"] is False
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        assert c["resources"]["limits"]["memory"]
        assert not events(cluster, ns, "DriftRepaired"), "creating the objects is not drift"
        vols = {v["name"]: v for v in pod["volumes"]}
        assert vols["config"]["configMap"]["name"] == "r1-config"
        assert vols["admin-token"]["secret"]["secretName"] == "r1-admin"
        # the routers run the rendered document, and the status says so
        st = rc["status"]
        assert routers.hashes() == [st["configHash"]] * 2
        assert st["agents"] == 2 and st["restartHash"] == restart_hash(cluster, ns, "r1")
        # the only secret material in the ConfigMap is a digest
        doc = json.loads(get(cluster, ns, "configmap", "r1-config")["data"]["router.json"])
        assert sorted(a["id"] for a in doc["agents"]) == ["alice", "bob"]
        # messages route between the declared agents
        s, body = send(routers, 0, "alice", "bob", "hello bob")
        assert s in (200, 201, 202), body
        got = pull(routers, 0, "bob")
        assert [m["message"]["content"] for m in got] == ["hello bob"]
        for a in ("alice", "bob"):
            wait_for(cond_is(cluster, ns, "agent", a, "Ready", "True"), 20, what=f"agent {a} Ready")
            o = get(cluster, ns, "agent", a)
            assert cond(o, "Accepted")["status"] == "True" and o["status"]["router"] == "r1"
            # the A2A URL through the router's Service, with the document's data port
            assert o["status"]["a2aUrl"] == f"http://r1.{ns}.svc:8080/a2a/{a}", o["status"]
    finally:
        routers.stop()


def test_agent_changes_hot_reload_before_the_file(cluster, ns, operator, work):
    routers = running(cluster, ns, work)
    try:
        # kube-controller-manager creates the first ControllerRevision asynchronously
        rsets = wait_for(lambda: revisions(cluster, ns, "r1"), 30, what="the first ControllerRevision")
        rhash = restart_hash(cluster, ns, "r1")
        dgen = get(cluster, ns, "statefulset", "r1")["metadata"]["generation"]
        file_hash = routers.synced_hash
        gens = routers.generations()
        # add: both routers route to carol before any file copy
        apply(cluster, ns, agent("carol", "r1"))
        wait_for(lambda: routers.hashes()[0] != file_hash and len(set(routers.hashes())) == 1, 15,
                 what="routers reloaded")
        s, body = send(routers, 1, "alice", "carol")
        assert s in (200, 201, 202), body
        assert routers.synced_hash == file_hash  # the kubelet copy is still the old one
        wait_for(cond_is(cluster, ns, "routerconfig", "r1", "ConfigApplied", "True"), 20)
        assert get(cluster, ns, "routerconfig", "r1")["status"]["configHash"] == routers.hashes()[0]
        # remove: bob is no longer routable
        cluster.kubectl("delete", "agent", "bob", "-n", ns)
        wait_for(lambda: send(routers, 0, "alice", "bob")[0] >= 400, 15, what="bob removed")
        # change: stopping alice is a hot change too
        apply(cluster, ns, agent("alice", "r1", state="Stopped"))
        wait_for(lambda: (routers.status(routers.addrs[0]) or {}).get("document_hash") ==
                 cm_hash(cluster, ns, "r1") and cm_hash(cluster, ns, "r1") != file_hash, 15)
        # a burst of 10 Agent edits: one reload (two if the burst paused longer than the quiet period)
        before = routers.generations()[0]
        apply(cluster, ns, *[agent(f"burst-{i}", "r1") for i in range(10)])
        wait_for(lambda: get(cluster, ns, "routerconfig", "r1")["status"].get("agents") == 12 and
                 len(set(routers.hashes())) == 1 and routers.hashes()[0] == cm_hash(cluster, ns, "r1"), 20)
        assert routers.generations()[0] - before <= 2, (before, routers.generations(), [
            (l.get("ts"), l.get("config_hash")[:8], l.get("agents")) for l in operator.lines()
            if l.get("msg") == "reconciled" and l.get("kind") == "RouterConfig"][-8:])
        # no restart: same annotation, same revision, same StatefulSet generation
        assert restart_hash(cluster, ns, "r1") == rhash
        assert revisions(cluster, ns, "r1") == rsets
        assert get(cluster, ns, "statefulset", "r1")["metadata"]["generation"] == dgen
        assert routers.generations()[0] > gens[0]
        # the late file copy changes nothing more
        g = routers.generations()
        routers.kubelet_sync()
        time.sleep(1.5)
        assert routers.generations() == g
        # the operator's own status writes (12 Agents, the RouterConfig) did not trigger reconciles
        final = [l for l in operator.lines() if l.get("msg") == "reconciled" and l.get("name") == "r1"
                 and l.get("namespace") == ns and l.get("config_hash") == cm_hash(cluster, ns, "r1")]
        assert len(final) == 1, final
        assert events(cluster, ns, "HotReload")
        assert operator.metric("switchboard_operator_hot_reloads_total") >= 3
    finally:
        routers.stop()


def test_restart_class_change_rolls_the_statefulset(cluster, ns, operator, work):
    routers = running(cluster, ns, work, router={"profile": "development", "storage": {"sync": "full"}})
    try:
        rsets = wait_for(lambda: revisions(cluster, ns, "r1"), 30, what="the first ControllerRevision")
        rhash = restart_hash(cluster, ns, "r1")
        pushed = operator.metric("switchboard_operator_router_pushes_total")
        apply(cluster, ns, routerconfig("r1", {"profile": "development", "storage": {"sync": "normal"}}))
        wait_for(lambda: restart_hash(cluster, ns, "r1") != rhash, 20, what="restart annotation changed")
        wait_for(lambda: len(revisions(cluster, ns, "r1")) == len(rsets) + 1, 30, what="a new ControllerRevision")
        o = wait_for(cond_is(cluster, ns, "routerconfig", "r1", "ConfigApplied", "False", "RolloutInProgress"), 20)
        assert o["status"]["restartHash"] == restart_hash(cluster, ns, "r1")
        assert o["status"]["lastReload"]["kind"] == "Restart"
        assert events(cluster, ns, "RollingRestart")
        # the routers still run the previous document, which has both agents as they are defined now
        for a in ("alice", "bob"):
            wait_for(cond_is(cluster, ns, "agent", a, "Ready", "True", "RolloutInProgress"), 20)
        # a hot change during the rollout: routers on the previous document wait for their restart
        # instead of being pushed (a running router cannot change storage.sync: it would refuse), and
        # the new Agent is not Ready until they run it
        apply(cluster, ns, agent("carol", "r1"))
        wait_for(cond_is(cluster, ns, "agent", "carol", "Ready", "False", "Pending"), 20)
        wait_for(lambda: (get(cluster, ns, "routerconfig", "r1") or {}).get("status", {}).get("agents") == 3, 20)
        assert operator.metric("switchboard_operator_router_pushes_total") == pushed
        assert not events(cluster, ns, "ConfigRejected") and not events(cluster, ns, "RolledBack")
        assert cond(get(cluster, ns, "agent", "alice"), "Ready")["status"] == "True"
        # the routers see the new file late and say they need a restart
        routers.kubelet_sync()
        wait_for(lambda: all((routers.status(a) or {}).get("restart_required") for a in routers.addrs), 15)
    finally:
        routers.stop()


def test_semantically_invalid_config_keeps_the_old_one(cluster, ns, operator, work):
    routers = running(cluster, ns, work)
    try:
        good = cm_hash(cluster, ns, "r1")
        bad = {"profile": "development", "performance": {"processingTimeoutMs": 60000, "messageTimeoutMs": 30000}}
        apply(cluster, ns, routerconfig("r1", bad))  # passes the CRD schema
        o = wait_for(cond_is(cluster, ns, "routerconfig", "r1", "Valid", "False", "InvalidConfig"), 20)
        assert "spec.router.performance.processingTimeoutMs" in cond(o, "Valid")["message"]
        assert cm_hash(cluster, ns, "r1") == good
        assert routers.hashes() == [good, good]
        assert o["status"]["configHash"] == good
        wait_for(lambda: events(cluster, ns, "InvalidConfig"), 10)
        assert operator.metric("switchboard_operator_routerconfig_condition", type="Valid", status="False") == 1
    finally:
        routers.stop()


def test_router_refusal_rolls_back(cluster, ns, operator, work):
    routers = running(cluster, ns, work, router={"profile": "development",
                                                 "performance": {"agentQueueSize": 1000}})
    try:
        good = cm_hash(cluster, ns, "r1")
        for i in range(30):  # bob's queue holds 30 on router 0
            s, body = send(routers, 0, "alice", "bob", f"m{i}")
            assert s in (200, 201, 202), body
        # shrinking below the depth cannot be applied in place: the router refuses
        apply(cluster, ns, routerconfig("r1", {"profile": "development", "performance": {"agentQueueSize": 10}}))
        o = wait_for(cond_is(cluster, ns, "routerconfig", "r1", "ConfigApplied", "False", "RolledBack"), 30)
        assert o["status"]["rejectedConfigHash"] != good
        assert o["status"]["configHash"] == good
        assert o["status"]["lastReload"]["result"] == "RolledBack"
        assert cm_hash(cluster, ns, "r1") == good
        assert routers.hashes() == [good, good]
        assert events(cluster, ns, "ConfigRejected") and events(cluster, ns, "RolledBack")
        assert operator.metric("switchboard_operator_rollbacks_total") >= 1
        # nothing lost: bob still has his 30 messages
        assert len(pull(routers, 0, "bob")) == 30
        # the refused config is not retried on its own
        pushes = operator.metric("switchboard_operator_router_pushes_total")
        time.sleep(3)
        assert operator.metric("switchboard_operator_router_pushes_total") == pushes
    finally:
        routers.stop()


def test_drift_in_owned_objects_is_repaired(cluster, ns, operator, work):
    """Hand edits of what the operator owns are undone within seconds, each with a Warning Event that
    names the object: the ConfigMap's document edited (its hash annotation untouched), the StatefulSet
    scaled, a Service deleted, the admin-token Secret's label removed and the Secret deleted. A change of
    spec.replicas through the RouterConfig is not drift."""
    routers = running(cluster, ns, work)
    try:
        cm = get(cluster, ns, "configmap", "r1-config")
        doc = cm["data"]["router.json"]
        edited = json.loads(doc)
        edited["agents"].append({"id": "mallory", "mode": "pull", "state": "Running"})
        t0 = time.time()
        cluster.kubectl("patch", "configmap", "r1-config", "-n", ns, "--type=merge", "-p",
                        json.dumps({"data": {"router.json": json.dumps(edited)}}))
        wait_for(lambda: get(cluster, ns, "configmap", "r1-config")["data"]["router.json"] == doc, 10,
                 interval=0.1, what="ConfigMap restored")
        print(f"ConfigMap edit undone in {time.time() - t0:.2f} s")
        assert any("ConfigMap r1-config was edited" in e["message"] for e in events(cluster, ns, "DriftRepaired"))
        # the hash annotation removed by hand (the operator once crashed on this with an edited document)
        cluster.kubectl("annotate", "configmap", "r1-config", "-n", ns, "switchboard.dev/config-hash-")
        cluster.kubectl("patch", "configmap", "r1-config", "-n", ns, "--type=merge", "-p",
                        json.dumps({"data": {"router.json": json.dumps(edited)}}))
        wait_for(lambda: (lambda m: m["data"]["router.json"] == doc and
                          m["metadata"].get("annotations", {}).get("switchboard.dev/config-hash"))(
                              get(cluster, ns, "configmap", "r1-config")), 10, interval=0.1,
                 what="ConfigMap and its annotation restored")

        cluster.kubectl("scale", "statefulset", "r1", "-n", ns, "--replicas=5")
        wait_for(lambda: get(cluster, ns, "statefulset", "r1")["spec"]["replicas"] == 2, 10, interval=0.1,
                 what="StatefulSet scale restored")
        wait_for(lambda: any("StatefulSet r1 was scaled to 5" in e["message"]
                             for e in events(cluster, ns, "DriftRepaired")), 10)

        uid = get(cluster, ns, "service", "r1")["metadata"]["uid"]
        cluster.kubectl("delete", "service", "r1", "-n", ns)
        wait_for(lambda: (get(cluster, ns, "service", "r1") or {}).get("metadata", {}).get("uid") not in (None, uid),
                 10, interval=0.1, what="Service recreated")
        wait_for(lambda: any("Service r1 was deleted" in e["message"] for e in events(cluster, ns, "DriftRepaired")),
                 10)

        # the RouterConfig's own scale is not drift
        before = len(events(cluster, ns, "DriftRepaired"))
        apply(cluster, ns, routerconfig("r1", replicas=3))
        wait_for(lambda: get(cluster, ns, "statefulset", "r1")["spec"]["replicas"] == 3, 10)
        time.sleep(1)
        assert len(events(cluster, ns, "DriftRepaired")) == before
        wait_for(cond_is(cluster, ns, "routerconfig", "r1", "ConfigApplied", "True"), 20)
        assert routers.hashes() == [cm_hash(cluster, ns, "r1")] * 2

        # the admin-token Secret: a label edited away is restored with the token kept; deleted, it is
        # recreated (with a new token, which these local routers never read again: so this comes last)
        token = get(cluster, ns, "secret", "r1-admin")["data"]["token"]
        cluster.kubectl("label", "secret", "r1-admin", "-n", ns, "switchboard.dev/secret-")
        wait_for(lambda: get(cluster, ns, "secret", "r1-admin")["metadata"]["labels"].get("switchboard.dev/secret")
                 == "admin-token", 10, interval=0.1, what="admin Secret label restored")
        assert get(cluster, ns, "secret", "r1-admin")["data"]["token"] == token
        wait_for(lambda: any("Secret r1-admin lost labels" in e["message"]
                             for e in events(cluster, ns, "DriftRepaired")), 10)
        uid = get(cluster, ns, "secret", "r1-admin")["metadata"]["uid"]
        cluster.kubectl("delete", "secret", "r1-admin", "-n", ns)
        wait_for(lambda: (get(cluster, ns, "secret", "r1-admin") or {}).get("metadata", {}).get("uid")
                 not in (None, uid), 10, interval=0.1, what="admin Secret recreated")
        assert get(cluster, ns, "secret", "r1-admin")["data"]["token"] != token
        wait_for(lambda: any("Secret r1-admin was deleted" in e["message"]
                             for e in events(cluster, ns, "DriftRepaired")), 10)
    finally:
        routers.stop()


def test_rotated_and_deleted_token_secrets_take_effect_within_2s(cluster, ns, operator, work):
    """With token auth, an Agent's token lives in a Secret. Rotating it makes the old token be refused and
    the new one accepted on every router within 2 s; deleting it revokes the Agent within 2 s. A Secret
    no Agent references is never read, and the referenced one is labelled so that it is watched."""
    apply(cluster, ns, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "carol-token"},
                        "stringData": {"token": "old-token"}},
          {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "sink-token"}, "stringData": {"token": "s"}},
          {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "unrelated"}, "stringData": {"token": "x"}})
    routers = running(cluster, ns, work, router={"profile": "development", "security": {"auth": "token"}},
                      agents=())
    try:
        apply(cluster, ns, agent("carol", "r1", tokenSecretRef={"name": "carol-token"}),
              agent("sink", "r1", tokenSecretRef={"name": "sink-token"}))

        def status(tok, i):
            return routers.data(i, "POST", "/v1/messages", {"performative": "inform", "sender": "carol",
                                                          "receiver": "sink", "content": "x"}, token=tok)[0]

        def accepted(tok, i):
            """The router took the token as carol's: 202, or 429 from the rate limit checked after it."""
            return status(tok, i) in (202, 429)

        def refused(tok, i):
            """A token that belongs to no agent does not authenticate: 401."""
            return status(tok, i) == 401
        wait_for(lambda: all(accepted("old-token", i) for i in range(2)), 20, what="carol's token works")
        assert get(cluster, ns, "secret", "carol-token")["metadata"]["labels"]["switchboard.dev/secret"] == "agent-token"
        assert "labels" not in get(cluster, ns, "secret", "unrelated")["metadata"]

        t0 = time.time()
        apply(cluster, ns, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "carol-token"},
                            "stringData": {"token": "new-token"}})
        wait_for(lambda: all(accepted("new-token", i) and refused("old-token", i) for i in range(2)), 2,
                 interval=0.1, what="the rotated token in effect on every router")
        rotated = time.time() - t0

        t0 = time.time()
        cluster.kubectl("delete", "secret", "carol-token", "-n", ns)
        wait_for(lambda: all(refused("new-token", i) for i in range(2)), 2, interval=0.1,
                 what="the deleted token revoked (401) on every router")
        print(f"token rotated in {rotated:.2f} s, revoked in {time.time() - t0:.2f} s")
        assert "new-token" not in operator.log() and "old-token" not in operator.log()
    finally:
        routers.stop()


def test_stalled_rollout_rolls_back(cluster, ns, operator, work):
    """No kubelet runs here, so the StatefulSet's updated pod can never become Ready: after
    progressDeadlineSeconds the operator restores the previous config and restart hash, and deletes the
    pod of the bad revision (a StatefulSet would wait for it forever)."""
    rollout = {"progressDeadlineSeconds": 30, "canarySeconds": 5, "autoRollback": True}
    routers = running(cluster, ns, work, router={"profile": "development", "storage": {"sync": "full"}},
                      rollout=rollout)
    try:
        good, good_restart = cm_hash(cluster, ns, "r1"), restart_hash(cluster, ns, "r1")
        apply(cluster, ns, routerconfig("r1", {"profile": "development", "storage": {"sync": "normal"}},
                                        rollout=rollout))
        wait_for(lambda: restart_hash(cluster, ns, "r1") != good_restart, 20, what="rollout started")
        refused = cm_hash(cluster, ns, "r1")
        assert refused != good
        o = wait_for(cond_is(cluster, ns, "routerconfig", "r1", "ConfigApplied", "False", "RolledBack"), 90,
                     interval=1)
        assert restart_hash(cluster, ns, "r1") == good_restart
        assert cm_hash(cluster, ns, "r1") == good
        assert o["status"]["rejectedConfigHash"] == refused
        assert o["status"]["lastReload"] == {**o["status"]["lastReload"], "kind": "Restart", "result": "RolledBack"}
        assert any("did not become available" in e["message"] for e in events(cluster, ns, "RolledBack"))
        assert routers.hashes() == [good, good]
    finally:
        routers.stop()


def test_delete_garbage_collects(cluster, ns, operator, work):
    apply(cluster, ns, routerconfig("gc"), agent("a1", "gc"))
    wait_for(lambda: get(cluster, ns, "statefulset", "gc") and get(cluster, ns, "secret", "gc-admin"), 30)
    cluster.kubectl("delete", "routerconfig", "gc", "-n", ns)
    for kind, name in (("configmap", "gc-config"), ("statefulset", "gc"), ("service", "gc"),
                       ("poddisruptionbudget", "gc"), ("secret", "gc-admin")):
        wait_for(lambda: get(cluster, ns, kind, name) is None, 60, what=f"{kind}/{name} collected")
    wait_for(cond_is(cluster, ns, "agent", "a1", "Accepted", "False", "RouterNotFound"), 20)


def test_apiserver_restart_converges(cluster, ns, operator, work):
    routers = running(cluster, ns, work)
    try:
        restarts = operator.metric("switchboard_operator_watch_restarts_total")
        subprocess.run([CLUSTER_SCRIPT, "restart", cluster.name, "apiserver"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        apply(cluster, ns, agent("after-restart", "r1"))
        wait_for(lambda: get(cluster, ns, "routerconfig", "r1")["status"].get("agents") == 3 and
                 routers.hashes()[0] == cm_hash(cluster, ns, "r1"), 60, what="converged after the restart")
        assert operator.metric("switchboard_operator_watch_restarts_total") > restarts
        assert send(routers, 0, "alice", "after-restart")[0] in (200, 201, 202)
    finally:
        routers.stop()


def etcd_compact(cluster):
    port = open(os.path.join(cluster.state, "etcd.port")).read().strip()
    rng = json.dumps({"key": base64.b64encode(b"/").decode()}).encode()
    rev = json.loads(urllib.request.urlopen(urllib.request.Request(
        f"http://127.0.0.1:{port}/v3/kv/range", data=rng, method="POST"), timeout=10).read())["header"]["revision"]
    body = json.dumps({"revision": rev, "physical": True}).encode()
    urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/v3/kv/compaction", data=body,
                                                  method="POST"), timeout=30).read()
    return int(rev)


def test_410_after_compaction_relists_without_missing_a_change(cluster, ns, operator, work):
    routers = running(cluster, ns, work)
    try:
        relists = operator.metric("switchboard_operator_watch_relists_total") or 0
        operator.proc.send_signal(signal.SIGSTOP)
        try:
            cluster.kubectl("delete", "agent", "bob", "-n", ns)
            apply(cluster, ns, agent("dave", "r1"))
            etcd_compact(cluster)
            # a fresh apiserver's watch cache starts after the compaction: the
            # operator's old resourceVersion is gone (410 Gone)
            subprocess.run([CLUSTER_SCRIPT, "restart", cluster.name, "apiserver"], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        finally:
            operator.proc.send_signal(signal.SIGCONT)
        wait_for(lambda: (operator.metric("switchboard_operator_watch_relists_total") or 0) > relists, 60,
                 what="a relist")
        wait_for(lambda: routers.hashes()[0] == cm_hash(cluster, ns, "r1") and
                 get(cluster, ns, "routerconfig", "r1")["status"].get("agents") == 2, 30)
        doc = json.loads(get(cluster, ns, "configmap", "r1-config")["data"]["router.json"])
        assert sorted(a["id"] for a in doc["agents"]) == ["alice", "dave"]
        assert any("410" in (l.get("msg", "") + l.get("detail", "")) or "expired" in l.get("msg", "")
                   for l in operator.lines())
    finally:
        routers.stop()


def lease_holder(cluster, ns):
    p = cluster.kubectl("get", "lease", "switchboard-operator", "-n", ns, "-o", "jsonpath={.spec.holderIdentity}",
                        check=False)
    return p.stdout if p.returncode == 0 else None


def test_leader_election_one_leader_and_failover(cluster, ns, work):
    extra = ["--leader-elect", "--leader-election-namespace", ns]
    a = Operator(cluster, [ns], work, extra, name="op-a").start()
    b = Operator(cluster, [ns], work, extra, name="op-b").start()
    try:
        wait_for(lambda: lease_holder(cluster, ns), 30, what="a lease holder")
        wait_for(lambda: (a.metric("switchboard_operator_leader") or 0) + (b.metric("switchboard_operator_leader") or 0) == 1,
                 10, what="exactly one leader")
        time.sleep(3)
        assert a.metric("switchboard_operator_leader") + b.metric("switchboard_operator_leader") == 1
        leader, standby = (a, b) if a.metric("switchboard_operator_leader") == 1 else (b, a)
        assert lease_holder(cluster, ns).endswith("_" + str(leader.proc.pid))
        apply(cluster, ns, routerconfig("le"), agent("x", "le"))
        wait_for(lambda: cm_hash(cluster, ns, "le"), 30)
        assert standby.metric("switchboard_operator_reconciles_total") == 0
        # the leader dies without releasing: the standby takes over after the lease expires
        t0 = time.time()
        leader.kill()
        assert standby.proc.poll() is None, standby.log()[-3000:]
        wait_for(lambda: standby.metric("switchboard_operator_leader") == 1, 40, what="failover")
        took = time.time() - t0
        assert took < 30, took
        apply(cluster, ns, agent("y", "le"))
        wait_for(lambda: get(cluster, ns, "routerconfig", "le")["status"].get("agents") == 2, 30)
        # a graceful stop releases the lease at once
        standby.stop()
        assert lease_holder(cluster, ns) == ""
    finally:
        for o in (a, b):
            if o.proc.poll() is None:
                o.stop()


def test_operator_restart_with_nothing_changed_does_nothing(cluster, ns, operator, work):
    routers = running(cluster, ns, work)
    try:
        time.sleep(1)
        gens = routers.generations()
        cm_rv = get(cluster, ns, "configmap", "r1-config")["metadata"]["resourceVersion"]
        dep = get(cluster, ns, "statefulset", "r1")["metadata"]
        operator.stop()
        fresh = Operator(cluster, [ns], work, name="operator-2").start()
        try:
            wait_for(lambda: any(l.get("msg") == "reconciled" and l.get("name") == "r1" for l in fresh.lines()), 20)
            time.sleep(2)
            assert routers.generations() == gens
            assert get(cluster, ns, "configmap", "r1-config")["metadata"]["resourceVersion"] == cm_rv
            d = get(cluster, ns, "statefulset", "r1")["metadata"]
            assert (d["generation"], d["resourceVersion"]) == (dep["generation"], dep["resourceVersion"]) or \
                d["generation"] == dep["generation"]
            assert fresh.metric("switchboard_operator_router_pushes_total") == 0
        finally:
            fresh.stop()
    finally:
        routers.stop()
        operator.proc = None


# The permissions docs/operator.md documents, and no more: the in-cluster test
# below fails if the operator needs anything else.
OPERATOR_RULES = [
    {"apiGroups": ["switchboard.dev"], "resources": ["routerconfigs", "agents"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["switchboard.dev"], "resources": ["routerconfigs/status", "agents/status"], "verbs": ["patch"]},
    {"apiGroups": [""], "resources": ["configmaps", "services"], "verbs": ["get", "list", "watch", "create", "patch"]},
    {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list", "watch", "create", "patch"]},
    {"apiGroups": ["apps"], "resources": ["statefulsets"], "verbs": ["get", "list", "watch", "create", "patch"]},
    {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["delete"]},
    {"apiGroups": ["policy"], "resources": ["poddisruptionbudgets"],
     "verbs": ["get", "list", "watch", "create", "patch"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch", "delete"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "update"]},
]


def test_in_cluster_mode_with_the_charts_rbac(cluster, ns, work):
    """The chart's own ServiceAccount and RBAC (helm install with watchNamespaces), its token from
    `kubectl create token`, the operator in in-cluster mode with overridden paths and leader election:
    the whole create + hot-change flow works, so the chart grants every permission the operator uses."""
    chart = os.path.join(os.path.dirname(__file__), "..", "..", "charts", "switchboard")
    cluster.helm("install", "rb", chart, "-n", ns, "--set", f"watchNamespaces={{{ns}}}")
    token = cluster.kubectl("create", "token", "rb-switchboard", "-n", ns, "--duration=1h").stdout.strip()
    sa = os.path.join(work, "sa")
    os.makedirs(sa)
    with open(os.path.join(sa, "token"), "w") as f:
        f.write(token)
    with open(os.path.join(sa, "namespace"), "w") as f:
        f.write(ns)
    port = open(os.path.join(cluster.state, "apiserver.port")).read().strip()
    with open(os.path.join(cluster.state, "pki", "ca.crt")) as src, open(os.path.join(sa, "ca.crt"), "w") as dst:
        dst.write(src.read())
    op = Operator(cluster, [ns], work, ["--sa-dir", sa, "--leader-elect"], name="incluster", kubeconfig="",
                  env={"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": port}).start()
    try:
        wait_for(lambda: op.metric("switchboard_operator_leader") == 1, 20, what="leadership in-cluster")
        try:
            routers = running(cluster, ns, work)
        except AssertionError as e:
            raise AssertionError(f"{e}\noperator log:\n{op.log()[-5000:]}")
        try:
            apply(cluster, ns, agent("carol", "r1", tokenSecretRef={"name": "carol-token"}))
            cluster.kubectl("create", "secret", "generic", "carol-token", "-n", ns, "--from-literal=token=s3cret")
            wait_for(lambda: get(cluster, ns, "routerconfig", "r1")["status"].get("agents") == 3 and
                     routers.hashes()[0] == cm_hash(cluster, ns, "r1"), 30, what="carol rendered")
            doc = json.loads(get(cluster, ns, "configmap", "r1-config")["data"]["router.json"])
            carol = [a for a in doc["agents"] if a["id"] == "carol"][0]
            import hashlib
            assert carol["tokenSha256"] == hashlib.sha256(b"s3cret").hexdigest()
            assert "s3cret" not in op.log()
            assert not [l for l in op.lines() if l.get("level") == "warn" and "Forbidden" in json.dumps(l)]
        finally:
            routers.stop()
    finally:
        op.stop()
