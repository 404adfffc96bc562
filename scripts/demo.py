#!/usr/bin/python3
"""`make demo`: Switchboard end to end on a local control plane.

1. starts a real kube-apiserver, etcd and kube-controller-manager on 127.0.0.1 (e2e/cluster up demo)
2. installs the Helm chart (CRDs, RBAC, the operator's ServiceAccount, Deployment and Service)
3. runs the operator (in-cluster mode, with the chart's ServiceAccount token, so it has exactly the chart's
   RBAC) and two local routers wired in through EndpointSlices, as the e2e tests do: this control plane has
   no kubelet, so pods never start and nothing dials a pod address
4. applies config/samples/ (the development RouterConfig and both sample Agents; the push agent's endpoint
   points at a small local HTTP agent instead of a cluster DNS name)
5. sends messages between the two sample agents
6. makes a hot change and a restart-class change and shows what happened
Everything keeps running; `make demo-down` stops it.
"""
import base64
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "e2e", "tests"))
os.environ.setdefault("SB_OPERATOR", os.path.join(ROOT, "build", "switchboard-operator"))

from conftest import Cluster  # noqa: E402
from operator_env import LocalRouters, Operator, free_port_on, http, wait_for  # noqa: E402

DEMO = os.path.join(ROOT, "build", "demo")
NS = "demo"
CLUSTER = os.path.join(ROOT, "e2e", "cluster")


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


def main():
    os.makedirs(DEMO, exist_ok=True)
    pids = open(os.path.join(DEMO, "pids"), "w")
    say("starting a local control plane (etcd, kube-apiserver, kube-controller-manager on 127.0.0.1)")
    subprocess.run([CLUSTER, "up", "demo"], check=True, stdout=subprocess.DEVNULL)
    c = Cluster("demo")

    say("helm install switchboard charts/switchboard")
    c.kubectl("create", "namespace", NS, check=False)
    c.helm("install", "switchboard", os.path.join(ROOT, "charts", "switchboard"), "-n", "switchboard-system",
           "--create-namespace", "--set", f"watchNamespaces={{{NS}}}")
    wait_for(lambda: c.kubectl("get", "crd", "routerconfigs.switchboard.dev", check=False).returncode == 0, 30)
    wait_for(lambda: c.kubectl("wait", "--for=condition=Established", "crd/routerconfigs.switchboard.dev",
                               "crd/agents.switchboard.dev", check=False).returncode == 0, 60)
    show(c, "get", "deploy,sa,svc,role,rolebinding", "-n", "switchboard-system")

    say("running the operator with the chart's ServiceAccount token (in-cluster mode, the chart's RBAC)")
    sa = os.path.join(DEMO, "sa")
    os.makedirs(sa, exist_ok=True)
    token = c.kubectl("create", "token", "switchboard", "-n", "switchboard-system",
                      "--duration=24h").stdout.strip()
    with open(os.path.join(sa, "token"), "w") as f:
        f.write(token)
    with open(os.path.join(sa, "namespace"), "w") as f:
        f.write("switchboard-system")
    with open(os.path.join(c.state, "pki", "ca.crt")) as s, open(os.path.join(sa, "ca.crt"), "w") as d:
        d.write(s.read())
    port = open(os.path.join(c.state, "apiserver.port")).read().strip()
    op = Operator(c, [NS], DEMO, ["--sa-dir", sa, "--leader-elect", "--leader-election-namespace",
                                  "switchboard-system", "--log-level", "info"], name="operator", kubeconfig="",
                  env={"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": port})
    op.env["ASAN_OPTIONS"] = ""
    op.start()
    print(f"operator: pid {op.proc.pid}, metrics http://127.0.0.1:{op.port}/metrics, log {op.logpath}")
    pids.write(f"{op.proc.pid}\n")

    say("a local push agent for the 'searcher' sample (prints what it receives)")
    agent_port = free_port_on(["127.0.0.1"])
    agent_log = os.path.join(DEMO, "searcher-agent.log")
    agent = subprocess.Popen([sys.executable, os.path.join(HERE, "demo_agent.py"), str(agent_port), agent_log],
                             start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pids.write(f"{agent.pid}\n")
    wait_for(lambda: os.path.exists(agent_log), 10)

    say("kubectl apply -f config/samples/ (RouterConfig dev, Agents planner and searcher)")
    docs = yaml_docs(os.path.join(ROOT, "config", "samples", "routerconfig-development.yaml"))
    docs += yaml_docs(os.path.join(ROOT, "config", "samples", "agent-pull.yaml"))
    push = yaml_docs(os.path.join(ROOT, "config", "samples", "agent-push.yaml"))[0]
    push["spec"]["delivery"]["endpoint"] = f"http://127.0.0.1:{agent_port}/inbox"
    docs.append(push)
    c.kubectl("apply", "-n", NS, "-f", "-", input="\n---\n".join(json.dumps(d) for d in docs))
    wait_for(lambda: c.kubectl("get", "cm", "dev-config", "-n", NS, check=False).returncode == 0, 30)
    wait_for(lambda: json.loads(c.kubectl("get", "rcfg", "dev", "-n", NS, "-o", "json").stdout)
             .get("status", {}).get("agents") == 2, 30)
    routers = LocalRouters(c, NS, "dev", DEMO).start()
    for p, _ in routers.procs:
        pids.write(f"{p.pid}\n")
    pids.flush()
    wait_for(lambda: len(set(routers.hashes())) == 1 and routers.hashes()[0], 30)
    time.sleep(1)
    show(c, "get", "switchboard", "-n", NS)
    show(c, "get", "deploy,rs,cm,svc,pdb,secret,endpointslices", "-n", NS)

    say("sending messages between the sample agents (router 0 on 127.0.0.1)")
    d0 = f"http://127.0.0.1:{routers.ports[0][0]}"
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

    say("hot change: add an Agent 'reviewer' (pushed to both routers at once, no restart)")
    before = routers.hashes()[0]
    restart_before = json.loads(c.kubectl("get", "deploy", "dev", "-n", NS, "-o", "json").stdout)[
        "spec"]["template"]["metadata"]["annotations"]["switchboard.dev/restart-hash"]
    t0 = time.monotonic()
    c.kubectl("apply", "-n", NS, "-f", "-", input=json.dumps({
        "apiVersion": "switchboard.dev/v1alpha1", "kind": "Agent", "metadata": {"name": "reviewer"},
        "spec": {"routerRef": {"name": "dev"}, "delivery": {"mode": "pull"}}}))
    wait_for(lambda: all(h and h != before for h in routers.hashes()) and len(set(routers.hashes())) == 1, 20,
             interval=0.02)
    print(f"both routers run the new config {routers.hashes()[0][:12]} {time.monotonic() - t0:.2f} s after "
          f"kubectl apply (the kubelet would take 60-120 s to refresh the mounted file)")
    restart_now = json.loads(c.kubectl("get", "deploy", "dev", "-n", NS, "-o", "json").stdout)[
        "spec"]["template"]["metadata"]["annotations"]["switchboard.dev/restart-hash"]
    print(f"restart-hash annotation unchanged: {restart_now == restart_before}")

    say("restart-class change: storage.sync full -> normal (rolls the Deployment)")
    rc = docs[0]
    rc["spec"]["router"]["storage"] = {"sync": "normal"}
    c.kubectl("apply", "-n", NS, "-f", "-", input=json.dumps(rc))
    wait_for(lambda: json.loads(c.kubectl("get", "deploy", "dev", "-n", NS, "-o", "json").stdout)[
        "spec"]["template"]["metadata"]["annotations"]["switchboard.dev/restart-hash"] != restart_before, 20)
    time.sleep(3)
    routers.kubelet_sync()  # the file arrives late; the running routers report that they need a restart
    time.sleep(2)
    show(c, "get", "switchboard", "-n", NS)
    show(c, "get", "rs", "-n", NS, "-l", "app.kubernetes.io/instance=dev")
    print("$ kubectl get rcfg dev -n demo -o jsonpath='{.status.conditions}'")
    for cond in json.loads(c.kubectl("get", "rcfg", "dev", "-n", NS, "-o", "json").stdout)["status"]["conditions"]:
        print(f"  {cond['type']:14} {cond['status']:6} {cond['reason']:22} {cond['message']}")
    show(c, "get", "events", "-n", NS, "--field-selector", "involvedObject.kind=RouterConfig",
         "--sort-by=.lastTimestamp")
    print(f"\n$ curl -s http://127.0.0.1:{routers.ports[0][1]}/metrics | grep -E 'messages_(received|delivered)_total|"
          "config_reloads_total|restart_required'")
    s, body = http("GET", f"http://127.0.0.1:{routers.ports[0][1]}/metrics")
    for line in body.decode().splitlines():
        if any(k in line for k in ("messages_received_total", "messages_delivered_total", "config_reloads_total",
                                   "restart_required")) and not line.startswith("#"):
            print("  " + line)
    print(f"\n$ curl -s http://127.0.0.1:{op.port}/metrics | grep -E 'hot_reloads|rolling_restarts|leader '")
    s, body = http("GET", f"http://127.0.0.1:{op.port}/metrics")
    for line in body.decode().splitlines():
        if not line.startswith("#") and any(k in line for k in ("hot_reloads_total ", "rolling_restarts_total ",
                                                                    "operator_leader ")):
            print("  " + line)

    pids.close()
    say("the demo keeps running")
    print(f"export KUBECONFIG={c.kubeconfig} PATH={c.bin}:$PATH")
    print("kubectl get switchboard -n demo          # then edit Agents and watch the routers follow")
    print(f"logs: {DEMO}/operator.log, {DEMO}/dev-router-*.log;  stop everything with: make demo-down")


if __name__ == "__main__":
    main()
