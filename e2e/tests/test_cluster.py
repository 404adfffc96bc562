"""e2e/cluster itself: a cluster with a real node runs a pod, and `down` leaves the machine as it found it:
no kubelet, containerd, shim or container process, no mount, no cgroup, and the host settings the kubelet
changed restored."""
import json
import os
import subprocess
import time

from conftest import CLUSTER, Cluster
from operator_env import wait_for

HOST_SYSCTLS = ("vm.overcommit_memory", "kernel.panic", "kernel.panic_on_oops")
KUBELET_SETS = {"vm.overcommit_memory": "1", "kernel.panic": "10", "kernel.panic_on_oops": "1"}
HOST_USERS = "/tmp/switchboard-e2e-host/users"
PAUSE = "switchboard.local/e2e/pause:1"


def sysctls():
    return {k: subprocess.run(["sysctl", "-n", k], capture_output=True, text=True, check=True).stdout.strip()
            for k in HOST_SYSCTLS}


def processes_mentioning(path):
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if path.encode() in f.read():
                    out.append(int(pid))
        except OSError:
            pass
    return out


def cgroup_dirs(name):
    return [os.path.join(d, name) for d in ("/sys/fs/cgroup", *[os.path.join("/sys/fs/cgroup", h)
                                                               for h in os.listdir("/sys/fs/cgroup")])
            if os.path.isdir(os.path.join(d, name))]


def test_a_node_runs_a_pod_and_down_leaves_nothing_behind():
    name = f"pytest-teardown-{os.getpid()}"
    subnet = f"127.0.{20 + os.getpid() % 60}"
    others = os.listdir(HOST_USERS) if os.path.isdir(HOST_USERS) else []
    before = sysctls()
    subprocess.run([CLUSTER, "up", name, "--nodes", "1", "--subnet", subnet], check=True, stdout=subprocess.DEVNULL)
    c = Cluster(name)
    state = c.state
    try:
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
               "spec": {"hostNetwork": True, "automountServiceAccountToken": False, "terminationGracePeriodSeconds": 1,
                        "containers": [{"name": "p", "image": PAUSE, "imagePullPolicy": "Never"}]}}
        wait_for(lambda: c.kubectl("apply", "-f", "-", input=json.dumps(pod), check=False).returncode == 0, 30,
                 what="pod created (the default ServiceAccount exists)")
        p = wait_for(lambda: (lambda o: o if o.get("status", {}).get("phase") == "Running" else None)(
            json.loads(c.kubectl("get", "pod", "p", "-o", "json").stdout)), 60, what="pod Running")
        assert p["spec"]["nodeName"] == f"{subnet}.1" and p["status"]["podIP"] == f"{subnet}.1"
        node = json.loads(c.kubectl("get", "node", f"{subnet}.1", "-o", "json").stdout)
        assert not [t for t in node["spec"].get("taints", []) if t["key"] == "node.kubernetes.io/not-ready"]
        during = sysctls()
        if not others:  # nobody else holds them: the kubelet really changed them, so restoring matters
            assert during == KUBELET_SETS, during
        cg = f"sb-e2e-{name}-node-1"
        assert cgroup_dirs(cg), "the node's cgroup root exists in the hierarchies"
        in_pods = set()
        for d in cgroup_dirs(cg):
            for root, _, files in os.walk(d):
                if "cgroup.procs" in files:
                    in_pods |= {int(x) for x in open(os.path.join(root, "cgroup.procs")).read().split()}
        assert in_pods, "the pod's processes run in the node's cgroup tree"
        assert processes_mentioning(state)
    finally:
        subprocess.run([CLUSTER, "down", name], check=True)
    time.sleep(0.5)
    assert processes_mentioning(state) == []
    assert [pid for pid in in_pods if os.path.exists(f"/proc/{pid}")] == []
    with open("/proc/self/mounts") as f:
        assert [m for m in f.read().splitlines() if state in m] == []
    assert cgroup_dirs(cg) == []
    assert not os.path.exists(state)
    assert sysctls() == before
