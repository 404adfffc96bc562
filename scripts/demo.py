#!/usr/bin/python3
"""`make demo`: Switchboard end to end on a local cluster whose pods really run.

1. starts etcd, kube-apiserver, kube-controller-manager, kube-scheduler and two real nodes (a kubelet and
   a containerd each, registered as 127.0.0.1 and 127.0.0.2; e2e/cluster up demo --nodes 2), and imports
   the images `make images` built into both nodes
2. installs the Helm chart: the operator runs as a pod (host networking, the API server on loopback)
3. applies config/samples/ (the development RouterConfig, scaled to two router pods, one per node, and
   both sample Agents; the push agent's endpoint points at a small local HTTP agent)
4. sends messages between the two sample agents through a router pod
5. makes a hot change (pushed into the running pods) and a restart-class change (a rolling update of the
   StatefulSet that completes; each pod comes back on its own volume) and shows what happened: pods on
   their nodes, claims, conditions, Events, metrics
Everything keeps running; `make demo-down` stops it.
"""
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "e2e", "tests"))

from conftest import IMAGES, Cluster, image_ref  # noqa: E402
from operator_env import free_port_on, http, wait_for  # noqa: E402

DEMO = os.path.join(ROOT, "build", "demo")
NS = "demo"
CLUSTER = os.path.join(ROOT, "e2e", "cluster")
NODES = 2


def say(text):
    print(f"\n== {text}", flush=True)


def show(c, *args):
    print(f"$ kubectl {' '.join(args)}", flush=True)
    p = c.kubectl(*args, check=False)
    print((p.stdout + p.stderr).rstrip(), flush=True)


def yaml_docs(path):
    import yaml
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def kget(c, *args):
    return json.loads(c.kubectl("get", *args, "-o", "json").stdout)


def router_pods(c):
    return sorted(kget(c, "pods", "-n", NS, "-l", "app.kubernetes.io/instance=dev")["items"],
                  key=lambda p: p["metadata"]["name"])


def converged(c, previous_hash=None):
    rc = kget(c, "rcfg", "dev", "-n", NS)
    st = rc.get("status", {})
    conds = {x["type"]: x["status"] for x in st.get("conditions", [])}
    routers = st.get("routers", [])
    ok = conds.get("ConfigApplied") == "True" and conds.get("Available") == "True" and \
        st.get("readyReplicas") == NODES and st.get("updatedReplicas") == NODES and len(routers) == NODES and \
        all(r["ready"] and r.get("configHash") == st.get("configHash") for r in routers) and \
        st.get("configHash") != previous_hash
    return rc if ok else None


def start_cluster():
    say(f"starting a local cluster: etcd, kube-apiserver, kube-controller-manager, kube-scheduler and {NODES} "
        "nodes (kubelet + containerd) on 127.0.0.x")
    subprocess.run([CLUSTER, "up", "demo", "--nodes", str(NODES)], check=True, stdout=subprocess.DEVNULL)
    subprocess.run([CLUSTER, "import", "demo", *IMAGES], check=True)
    c = Cluster("demo")
    show(c, "get", "nodes", "-o", "wide")
    return c


def install_chart(c):
    say("helm install switchboard charts/switchboard (the operator runs as a pod)")
    port = open(os.path.join(c.state, "apiserver.port")).read().strip()
    c.kubectl("create", "namespace", NS, check=False)
    c.helm("install", "switchboard", os.path.join(ROOT, "charts", "switchboard"), "-n", "switchboard-system",
           "--create-namespace", "--set", f"watchNamespaces={{{NS}}}", "--set", "hostNetwork=true", "--set", "peerAddresses=pod-ip",
           "--set", "image.pullPolicy=Never", "--set", "apiServer.host=127.0.0.1", "--set", f"apiServer.port={port}",
           "--wait", "--timeout", "120s", timeout=180)
    show(c, "get", "deploy,pods,sa,role,rolebinding,lease", "-n", "switchboard-system", "-o", "wide")


def apply_samples(c, agent_port):
    say("kubectl apply -f config/samples/ (RouterConfig dev scaled to 2 router pods, Agents planner and searcher)")
    rc = yaml_docs(os.path.join(ROOT, "config", "samples", "routerconfig-development.yaml"))[0]
    # no pod network and no registry here: routers use their node's address, images are already imported
    rc["spec"].update({"replicas": NODES, "hostNetwork": True, "imagePullPolicy": "Never"})
    docs = [rc] + yaml_docs(os.path.join(ROOT, "config", "samples", "agent-pull.yaml"))
    push = yaml_docs(os.path.join(ROOT, "config", "samples", "agent-push.yaml"))[0]
    push["spec"]["delivery"]["endpoint"] = f"http://127.0.0.1:{agent_port}/inbox"
    docs.append(push)
    c.kubectl("apply", "-n", NS, "-f", "-", input="\n---\n".join(json.dumps(d) for d in docs))
    t0 = time.monotonic()
    wait_for(lambda: converged(c), 180, what="the router pods Ready and running the rendered config")
    print(f"(router pods scheduled, started and running the config {time.monotonic() - t0:.1f} s after apply)")
    show(c, "get", "switchboard", "-n", NS)
    show(c, "get", "statefulset,pods,pvc", "-n", NS, "-o", "wide")
    return rc


def exchange_messages(d0, agent_log):
    say(f"sending messages between the sample agents (router pod on {d0})")
    msg = {"performative": "request", "sender": "planner", "receiver": "searcher", "conversation_id": "demo-1",
           "content": "Find three sources on solar storage."}
    s, body = http("POST", d0 + "/v1/messages", msg)
    print(f"$ curl -X POST {d0}/v1/messages -d '{json.dumps(msg)}'\n{s} {body.decode().strip()}")
    wait_for(lambda: "solar" in open(agent_log).read(), 15, what="push delivery to searcher")
    print(f"searcher's local agent received (by push):\n  {open(agent_log).read().strip()}")
    reply = {"performative": "inform", "sender": "searcher", "receiver": "planner", "conversation_id": "demo-1",
             "content": "Here are three sources."}
    s, body = http("POST", d0 + "/v1/messages", reply)
    print(f"$ curl -X POST {d0}/v1/messages -d '{json.dumps(reply)}'\n{s} {body.decode().strip()}")
    s, body = http("GET", d0 + "/v1/agents/planner/messages?max=10&wait_ms=1000")
    print(f"$ curl '{d0}/v1/agents/planner/messages?max=10&wait_ms=1000'   # planner pulls\n{s} {body.decode().strip()}")
    ids = [m["message_id"] for m in json.loads(body)["messages"]]
    s, body = http("POST", d0 + "/v1/agents/planner/ack", {"message_ids": ids})
    print(f"$ curl -X POST {d0}/v1/agents/planner/ack\n{s} {body.decode().strip()}")


def hot_change(c):
    say("hot change: add an Agent 'reviewer' (pushed into both running pods, no restart)")
    before = kget(c, "rcfg", "dev", "-n", NS)["status"]["configHash"]
    uids = [p["metadata"]["uid"] for p in router_pods(c)]
    t0 = time.monotonic()
    c.kubectl("apply", "-n", NS, "-f", "-", input=json.dumps({
        "apiVersion": "switchboard.dev/v1alpha1", "kind": "Agent", "metadata": {"name": "reviewer"},
        "spec": {"routerRef": {"name": "dev"}, "delivery": {"mode": "pull"}}}))
    rc = wait_for(lambda: converged(c, before), 30, interval=0.05, what="both pods on the new config")
    print(f"both router pods run the new config {rc['status']['configHash'][:12]} {time.monotonic() - t0:.2f} s "
          "after kubectl apply (the kubelet refreshes the mounted file later)")
    print(f"same pods, not restarted: {[p['metadata']['uid'] for p in router_pods(c)] == uids}")


def restart_change(c, rc):
    say("restart-class change: storage.sync full -> normal (a rolling update of the router pods, one at a time)")
    before = kget(c, "rcfg", "dev", "-n", NS)["status"]["configHash"]
    rc["spec"]["router"]["storage"] = {"sync": "normal"}
    t0 = time.monotonic()
    c.kubectl("apply", "-n", NS, "-f", "-", input=json.dumps(rc))
    wait_for(lambda: converged(c, before), 180, what="the rolling update to complete")
    print(f"rollout complete {time.monotonic() - t0:.1f} s after kubectl apply")
    show(c, "get", "switchboard", "-n", NS)
    show(c, "get", "pods", "-n", NS, "-o", "wide")
    show(c, "get", "controllerrevisions,pvc", "-n", NS, "-l", "app.kubernetes.io/instance=dev")
    st = kget(c, "rcfg", "dev", "-n", NS)["status"]
    print("$ kubectl get rcfg dev -n demo -o jsonpath='{.status.conditions}'")
    for cond in st["conditions"]:
        print(f"  {cond['type']:14} {cond['status']:6} {cond['reason']:22} {cond['message']}")
    print("$ kubectl get rcfg dev -n demo -o jsonpath='{.status.routers}'   # which pod runs which config")
    for r in st["routers"]:
        print(f"  {r['pod']:28} ready={str(r['ready']).lower():5} config={r.get('configHash', '')[:12]}")
    show(c, "get", "events", "-n", NS, "--field-selector", "involvedObject.kind=RouterConfig",
         "--sort-by=.lastTimestamp")


def show_metrics(c):
    p = router_pods(c)[0]
    aport = p["spec"]["containers"][0]["ports"][1]["containerPort"]
    url = f"http://{p['status']['podIP']}:{aport}/metrics"
    print(f"\n$ curl -s {url} | grep -E 'config_reloads_total|restart_required'")
    s, body = http("GET", url)
    for line in body.decode().splitlines():
        if any(k in line for k in ("config_reloads_total", "restart_required")) and not line.startswith("#"):
            print("  " + line)


def main():
    os.makedirs(DEMO, exist_ok=True)
    c = start_cluster()
    install_chart(c)
    say("a local push agent for the 'searcher' sample (prints what it receives)")
    agent_port = free_port_on(["127.0.0.1"])
    agent_log = os.path.join(DEMO, "searcher-agent.log")
    agent = subprocess.Popen([sys.executable, os.path.join(HERE, "demo_agent.py"), str(agent_port), agent_log],
                             start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(os.path.join(DEMO, "pids"), "w") as pids:
        pids.write(f"{agent.pid}\n")
    wait_for(lambda: os.path.exists(agent_log), 10)
    rc = apply_samples(c, agent_port)
    p0 = router_pods(c)[0]
    dport = p0["spec"]["containers"][0]["ports"][0]["containerPort"]
    exchange_messages(f"http://{p0['status']['podIP']}:{dport}", agent_log)
    hot_change(c)
    restart_change(c, rc)
    show_metrics(c)
    say("the demo keeps running")
    print(f"export KUBECONFIG={c.kubeconfig} PATH={c.bin}:$PATH")
    print("kubectl get switchboard,pods -n demo -o wide    # then edit Agents and watch the routers follow")
    print("kubectl logs -n switchboard-system deploy/switchboard    # the operator's log")
    print("stop everything with: make demo-down")


if __name__ == "__main__":
    main()
