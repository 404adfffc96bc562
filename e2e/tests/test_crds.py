"""The CRDs against the real kube-apiserver: install, explain, samples,
schema and CEL validation, printer columns."""
import glob
import json
import os

import pytest

from conftest import ROOT, apply_expect


def rc(name="r", **spec):
    return {"apiVersion": "switchboard.dev/v1alpha1", "kind": "RouterConfig", "metadata": {"name": name},
            "spec": spec}


def agent(name="a", **spec):
    spec.setdefault("routerRef", {"name": "r"})
    return {"apiVersion": "switchboard.dev/v1alpha1", "kind": "Agent", "metadata": {"name": name}, "spec": spec}


def test_explain_shows_the_router_schema(cluster):
    out = cluster.kubectl("explain", "routerconfig.spec.router.delivery").stdout
    for field in ("maxRetries", "baseRetryDelayMs", "retryMaxDelayMs", "circuitBreaker", "deadLetter",
                  "leaseTimeoutMs", "dedupWindowMs"):
        assert field in out, field
    out = cluster.kubectl("explain", "agent.spec.delivery").stdout
    assert "mode" in out and "endpoint" in out and "maxInFlight" in out


def test_samples_apply(cluster, ns):
    for path in sorted(glob.glob(os.path.join(ROOT, "config", "samples", "*.yaml"))):
        p = cluster.kubectl("apply", "-n", ns, "--validate=strict", "-f", path, check=False)
        assert p.returncode == 0, f"{path}: {p.stderr}"
    got = json.loads(cluster.kubectl("get", "switchboard", "-n", ns, "-o", "json").stdout)
    kinds = sorted((i["kind"], i["metadata"]["name"]) for i in got["items"])
    assert kinds == [("Agent", "planner"), ("Agent", "searcher"), ("Agent", "summarizer"), ("RouterConfig", "dev"),
                     ("RouterConfig", "prod")]
    # defaults from the schema are applied
    a = json.loads(cluster.kubectl("get", "agent", "planner", "-n", ns, "-o", "json").stdout)
    assert a["spec"]["state"] == "Running" and a["spec"]["delivery"]["timeoutMs"] == 5000
    assert a["spec"]["delivery"]["protocol"] == "fipa"
    a = json.loads(cluster.kubectl("get", "agent", "summarizer", "-n", ns, "-o", "json").stdout)
    assert a["spec"]["delivery"]["protocol"] == "a2a"


INVALID = [
    ("wrong type", rc(replicas="two"), (), ["spec.replicas", "integer"]),
    ("out of range", rc(replicas=1000), (), ["spec.replicas", "less than or equal to 100"]),
    ("bad enum", rc(router={"profile": "turbo"}), (), ["spec.router.profile", "Unsupported value"]),
    ("nested out of range", rc(router={"delivery": {"circuitBreaker": {"threshold": 0}}}), (),
     ["spec.router.delivery.circuitBreaker.threshold"]),
    ("queue smaller than 2x batch", rc(router={"performance": {"inboundQueueSize": 10, "batchSize": 10}}), (),
     ["spec.router.performance.inboundQueueSize", "at least 2x performance.batchSize"]),
    ("retry max below base", rc(router={"delivery": {"baseRetryDelayMs": 5000, "retryMaxDelayMs": 100}}), (),
     ["spec.router.delivery.retryMaxDelayMs", "at least delivery.baseRetryDelayMs"]),
    ("unknown field (strict)", rc(router={"bogus": 1}), ("--validate=strict",), ['unknown field "spec.router.bogus"']),
    ("bad byte quantity", rc(router={"performance": {"memoryLimitBytes": "lots"}}), (),
     ["spec.router.performance.memoryLimitBytes"]),
    ("selector In without values", rc(agentSelector={"matchExpressions": [{"key": "k", "operator": "In"}]}), (),
     ["spec.agentSelector.matchExpressions[0]", "values must be set for In and NotIn"]),
    ("push without endpoint", agent(delivery={"mode": "push"}), (),
     ["spec.delivery.endpoint", "push mode requires an http:// or https:// endpoint"]),
    ("push with a non-http endpoint", agent(delivery={"mode": "push", "endpoint": "ftp://x"}), (),
     ["spec.delivery.endpoint", "push mode requires"]),
    ("pull with endpoint", agent(delivery={"mode": "pull", "endpoint": "http://x"}), (),
     ["spec.delivery.endpoint", "pull mode agents must not set an endpoint"]),
    ("a2a on a pull agent", agent(delivery={"mode": "pull", "protocol": "a2a"}), (),
     ["spec.delivery.protocol", "protocol a2a requires push delivery (mode: push) with an endpoint"]),
    ("a2a with the default mode", agent(delivery={"protocol": "a2a"}), (),
     ["spec.delivery.protocol", "protocol a2a requires push delivery"]),
    ("bad protocol", agent(delivery={"mode": "push", "endpoint": "http://x", "protocol": "A2A"}), (),
     ["spec.delivery.protocol", "Unsupported value"]),
    ("bad state", agent(state="Sleeping"), (), ["spec.state", "Unsupported value"]),
    ("bad agent id", agent(agentId="-not ok"), (), ["spec.agentId"]),
    ("missing routerRef", {"apiVersion": "switchboard.dev/v1alpha1", "kind": "Agent", "metadata": {"name": "x"},
                           "spec": {}}, (), ["spec.routerRef", "Required value"]),
    ("rate without burst", agent(rateLimit={"messagesPerSecond": 10}), (),
     ["spec.rateLimit.burst", "burst must be at least 1"]),
    ("capability name too long", agent(capabilities=[{"name": "x" * 101}]), (),
     ["spec.capabilities[0].name", "Too long: may not be more than 100"]),
]


@pytest.mark.parametrize("case,manifest,args,expect", INVALID, ids=[c[0] for c in INVALID])
def test_invalid_resources_are_rejected_naming_the_field(cluster, ns, case, manifest, args, expect):
    p = apply_expect(cluster, ns, manifest, *args)
    assert p.returncode != 0, f"{case}: accepted but should be rejected"
    for needle in expect:
        assert needle in p.stderr, f"{case}: {needle!r} not in:\n{p.stderr}"


def test_agent_id_is_immutable(cluster, ns):
    assert apply_expect(cluster, ns, agent("imm", agentId="first")).returncode == 0
    p = apply_expect(cluster, ns, agent("imm", agentId="second"))
    assert p.returncode != 0 and "spec.agentId" in p.stderr and "immutable" in p.stderr, p.stderr
    p = apply_expect(cluster, ns, agent("imm"))  # removing it is a change too
    assert p.returncode != 0 and "immutable" in p.stderr, p.stderr
    assert apply_expect(cluster, ns, agent("imm", agentId="first", state="Draining")).returncode == 0


def test_get_switchboard_shows_printer_columns(cluster, ns):
    cluster.kubectl("apply", "-n", ns, "-f", os.path.join(ROOT, "config", "samples"))
    out = cluster.kubectl("get", "switchboard", "-A").stdout
    lines = out.splitlines()
    rc_header = next(l for l in lines if "AGENTS" in l)
    for col in ("NAMESPACE", "NAME", "READY", "AGENTS", "REPLICAS", "CONFIG", "AGE"):
        assert col in rc_header, rc_header
    agent_header = next(l for l in lines if "MODE" in l)
    for col in ("ROUTER", "MODE", "STATE", "READY", "A2A URL", "AGE"):
        assert col in agent_header, agent_header
    row = next(l for l in lines if "searcher" in l)
    assert "dev" in row and "push" in row and "Running" in row
    short = cluster.kubectl("get", "rcfg,agt", "-n", ns, "-o", "name").stdout
    assert "routerconfig.switchboard.dev/dev" in short and "agent.switchboard.dev/planner" in short


def test_helm_talks_to_the_cluster(cluster, ns):
    """helm (built from the pinned module) reaches this cluster through the same kubeconfig."""
    v = cluster.helm("version", "--short").stdout
    assert v.startswith("v3."), v
    p = cluster.helm("list", "-n", ns, "-o", "json")
    assert p.stdout.strip() == "[]"


def test_router_profile_defaults_and_the_rest_come_from_the_profile(cluster, ns):
    assert apply_expect(cluster, ns, rc("p", router={"performance": {"batchSize": 5}})).returncode == 0
    got = json.loads(cluster.kubectl("get", "rcfg", "p", "-n", ns, "-o", "json").stdout)["spec"]
    assert got["router"]["profile"] == "development"
    assert got["replicas"] == 1
    assert "inboundQueueSize" not in got["router"]["performance"]  # left to the profile
