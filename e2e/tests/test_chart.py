"""The Helm chart, rendered and checked without a cluster (helm lint/template, promtool), and installed
into the real test cluster (install, upgrade, uninstall).

- chart CRDs are the generated top-level crds/, byte for byte;
- `helm lint --strict` and `helm template` pass for several value sets, and values.schema.json refuses
  bad values;
- RBAC is a ClusterRole without watchNamespaces and a Role per namespace with it, and its rules are the
  ones test_operator.py proves sufficient (in-cluster, least privilege);
- monitoring objects render only with the monitoring.coreos.com/v1 API (or when forced);
- the rendered PrometheusRule passes `promtool check rules` and the unit tests in
  charts/switchboard/tests/alerts_test.yaml (a firing and a non-firing case per alert);
- every object carries the standard app.kubernetes.io labels.
"""
import json
import os
import shutil
import subprocess
import tempfile

import pytest
import yaml

from test_operator import OPERATOR_RULES

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CHART = os.path.join(ROOT, "charts", "switchboard")
BIN = subprocess.run([os.path.join(ROOT, "e2e", "cluster"), "bin"], capture_output=True, text=True,
                     check=True).stdout.strip()
HELM = os.path.join(BIN, "helm")

VALUE_SETS = {
    "default": [],
    "namespaced": ["--set", "watchNamespaces={team-a,team-b}"],
    "monitoring": ["--set", "monitoring.enabled=true", "--set", "monitoring.labels.release=prom"],
    "router": ["--set", "router.create=true", "--set", "leaderElection.enabled=false", "--set", "replicaCount=2"],
}


def helm(*args, check=True):
    p = subprocess.run([HELM, *args], capture_output=True, text=True, timeout=120)
    if check:
        assert p.returncode == 0, f"helm {' '.join(args)}:\n{p.stdout}\n{p.stderr}"
    return p


def render(*args):
    out = helm("template", "sb", CHART, "--namespace", "switchboard-system", *args).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def kinds(objs):
    return sorted(f"{o['kind']}/{o['metadata']['name']}" for o in objs)


def test_chart_crds_are_the_generated_crds():
    for f in sorted(os.listdir(os.path.join(ROOT, "crds"))):
        with open(os.path.join(ROOT, "crds", f)) as a, open(os.path.join(CHART, "crds", f)) as b:
            assert a.read() == b.read(), f"charts/switchboard/crds/{f} differs from crds/{f}: run scripts/gen-crds.py"
    assert sorted(os.listdir(os.path.join(ROOT, "crds"))) == sorted(os.listdir(os.path.join(CHART, "crds")))


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_lint_and_template(name):
    helm("lint", "--strict", CHART, *VALUE_SETS[name])
    objs = render(*VALUE_SETS[name])
    for o in objs:
        labels = o["metadata"].get("labels", {})
        for key in ("app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/version",
                    "app.kubernetes.io/managed-by", "app.kubernetes.io/part-of"):
            assert key in labels, f"{o['kind']}/{o['metadata']['name']} lacks {key}"


def test_schema_refuses_bad_values():
    for bad in (["--set", "replicaCount=0"], ["--set", "logLevel=loud"], ["--set", "nosuchvalue=1"],
                ["--set", "watchNamespaces={Bad_NS}"], ["--set", "monitoring.alerts.errorRatio=2"]):
        p = helm("template", "sb", CHART, *bad, check=False)
        assert p.returncode != 0 and "values don't meet the specifications of the schema" in p.stderr, (bad, p.stderr)


def rules_of(objs, kind):
    return [r for o in objs if o["kind"] == kind for r in o["rules"]]


def test_rbac_scope_and_rules():
    cluster_wide = render()
    assert "ClusterRole/sb-switchboard" in kinds(cluster_wide)
    assert not [o for o in cluster_wide if o["kind"] == "Role" and o["metadata"]["name"] == "sb-switchboard"]
    assert rules_of(cluster_wide, "ClusterRole") == OPERATOR_RULES[:-1]  # leases: Role in the release namespace
    lease = [o for o in cluster_wide if o["kind"] == "Role" and o["metadata"]["name"].endswith("leader-election")]
    assert lease and lease[0]["rules"] == [OPERATOR_RULES[-1]]
    scoped = render(*VALUE_SETS["namespaced"])
    assert "ClusterRole/sb-switchboard" not in kinds(scoped)
    roles = [o for o in scoped if o["kind"] == "Role" and o["metadata"]["name"] == "sb-switchboard"]
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    dep = [o for o in scoped if o["kind"] == "Deployment"][0]
    assert "--namespace=team-a,team-b" in dep["spec"]["template"]["spec"]["containers"][0]["args"]


def test_operator_deployment_is_hardened():
    dep = [o for o in render() if o["kind"] == "Deployment"][0]
    pod = dep["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert c["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                    "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}}
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz" and c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["resources"]["limits"]["memory"] and c["resources"]["requests"]["cpu"]
    assert c["image"].endswith(":0.1.0") and "--leader-elect" in c["args"]


def test_monitoring_objects_follow_the_api():
    assert not [o for o in render() if o["kind"] in ("PrometheusRule", "ServiceMonitor")]
    with_api = render("--api-versions", "monitoring.coreos.com/v1")
    assert sorted(o["kind"] for o in with_api if o["kind"] in ("PrometheusRule", "ServiceMonitor")) == \
        ["PrometheusRule", "ServiceMonitor", "ServiceMonitor"]
    assert not [o for o in render("--api-versions", "monitoring.coreos.com/v1", "--set", "monitoring.enabled=false")
                if o["kind"] == "PrometheusRule"]
    dash = [o for o in render() if o["kind"] == "ConfigMap" and o["metadata"]["name"].endswith("dashboard")][0]
    assert dash["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dash["data"]["switchboard.json"])["panels"]


REQUIRED_ALERTS = {
    "SwitchboardRouterDown", "SwitchboardRoutingLatencyHigh", "SwitchboardRoutingErrorsHigh",
    "SwitchboardQueueDepthHigh", "SwitchboardRouterMemoryNearLimit", "SwitchboardConfigReloadFailed",
    "SwitchboardRestartRequiredNotProgressing", "SwitchboardDeadLetterQueueGrowing",
    "SwitchboardCircuitBreakerOpen", "SwitchboardRouterCertificateExpiring", "SwitchboardOperatorDown",
    "SwitchboardOperatorReconcileErrors",
    "SwitchboardRouterConfigNotApplied", "SwitchboardRouterConfigInvalid",
}


def test_alerts_promtool_check_and_unit_tests():
    rule = [o for o in render("--set", "monitoring.enabled=true") if o["kind"] == "PrometheusRule"][0]
    alerts = [r for g in rule["spec"]["groups"] for r in g["rules"]]
    assert {a["alert"] for a in alerts} == REQUIRED_ALERTS
    for a in alerts:
        assert a["labels"]["severity"] in ("warning", "critical")
        assert a["annotations"]["summary"] and a["annotations"]["description"]
        url = a["annotations"]["runbook_url"]
        page = url.rsplit("/docs/runbooks/", 1)[1]
        assert os.path.exists(os.path.join(ROOT, "docs", "runbooks", page)), f"{a['alert']}: no docs/runbooks/{page}"
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "rules.yaml"), "w") as f:
            yaml.safe_dump({"groups": rule["spec"]["groups"]}, f)
        shutil.copy(os.path.join(CHART, "tests", "alerts_test.yaml"), d)
        p = subprocess.run(["promtool", "check", "rules", "rules.yaml"], cwd=d, capture_output=True, text=True)
        assert p.returncode == 0, p.stdout + p.stderr
        p = subprocess.run(["promtool", "test", "rules", "alerts_test.yaml"], cwd=d, capture_output=True, text=True)
        assert p.returncode == 0, p.stdout + p.stderr
        tested = set(yaml.safe_load(open(os.path.join(d, "alerts_test.yaml"))).get("tests") and
                     [t["alertname"] for g in yaml.safe_load(open(os.path.join(d, "alerts_test.yaml")))["tests"]
                      for t in g["alert_rule_test"] if t["exp_alerts"]])
        assert tested == REQUIRED_ALERTS, REQUIRED_ALERTS - tested


def test_install_upgrade_uninstall(cluster, ns):
    """Into the real cluster: the CRDs are already there (server-side applied by the session), so helm
    skips them; RBAC, ServiceAccount, Deployment and Service appear; upgrade changes them in place;
    uninstall removes them."""
    cluster.helm("install", "sb", CHART, "-n", ns, "--set", f"watchNamespaces={{{ns}}}", "--wait=false")
    for kind, name in (("serviceaccount", "sb-switchboard"), ("role", "sb-switchboard"),
                       ("rolebinding", "sb-switchboard"), ("deployment", "sb-switchboard"),
                       ("service", "sb-switchboard-metrics"), ("role", "sb-switchboard-leader-election")):
        cluster.kubectl("get", kind, name, "-n", ns)
    cluster.helm("upgrade", "sb", CHART, "-n", ns, "--set", f"watchNamespaces={{{ns}}}", "--set", "logLevel=debug")
    args = json.loads(cluster.kubectl("get", "deployment", "sb-switchboard", "-n", ns, "-o", "json").stdout)[
        "spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--log-level=debug" in args
    assert json.loads(cluster.helm("list", "-n", ns, "-o", "json").stdout)[0]["revision"] == "2"
    cluster.helm("uninstall", "sb", "-n", ns)
    assert cluster.kubectl("get", "deployment", "sb-switchboard", "-n", ns, check=False).returncode != 0
    assert cluster.kubectl("get", "role", "sb-switchboard", "-n", ns, check=False).returncode != 0


def test_monitoring_objects_with_and_without_the_crds(cluster, ns):
    """Without monitoring.coreos.com/v1 served, `helm install` skips the PrometheusRule and ServiceMonitors;
    with our minimal CRDs installed it creates them."""
    crds = os.path.join(ROOT, "e2e", "testdata", "monitoring-crds.yaml")
    cluster.kubectl("delete", "-f", crds, "--ignore-not-found", "--wait")
    cluster.helm("install", "mon", CHART, "-n", ns, "--set", f"watchNamespaces={{{ns}}}")
    manifest = cluster.helm("get", "manifest", "mon", "-n", ns).stdout
    assert "kind: PrometheusRule" not in manifest and "kind: ServiceMonitor" not in manifest
    cluster.helm("uninstall", "mon", "-n", ns)
    cluster.kubectl("apply", "-f", crds)
    try:
        cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                        "crd/prometheusrules.monitoring.coreos.com", "crd/servicemonitors.monitoring.coreos.com")
        # discovery caches in helm: retry until the new API is visible
        import time
        deadline = time.time() + 60
        while True:
            cluster.helm("install", "mon", CHART, "-n", ns, "--set", f"watchNamespaces={{{ns}}}")
            if "kind: PrometheusRule" in cluster.helm("get", "manifest", "mon", "-n", ns).stdout:
                break
            cluster.helm("uninstall", "mon", "-n", ns)
            assert time.time() < deadline, "helm never saw monitoring.coreos.com/v1"
            time.sleep(1)
        rule = json.loads(cluster.kubectl("get", "prometheusrule", "mon-switchboard", "-n", ns, "-o", "json").stdout)
        assert {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]} == REQUIRED_ALERTS
        sms = json.loads(cluster.kubectl("get", "servicemonitors", "-n", ns, "-o", "json").stdout)["items"]
        assert sorted(s["metadata"]["name"] for s in sms) == ["mon-switchboard-operator", "mon-switchboard-routers"]
        cluster.helm("uninstall", "mon", "-n", ns)
    finally:
        cluster.kubectl("delete", "-f", crds, "--ignore-not-found")
