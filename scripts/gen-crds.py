#!/usr/bin/env python3
"""Generate the RouterConfig and Agent CRDs (crds/) from the router's config
schema table, so that spec.router is exactly what switchboard-router parses.
`--check` fails when a committed CRD differs from what this would write."""
import os
import sys

import yaml

import cfgschema

ROOT = cfgschema.ROOT
OUT = os.path.join(ROOT, "crds")
CHART_OUT = os.path.join(ROOT, "charts", "switchboard", "crds")  # the chart ships the same files
GROUP, VERSION = "switchboard.dev", "v1alpha1"
AGENT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
BYTES_PATTERN = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|K|M|G|T)?$"

DESCRIPTIONS = {
    "profile": "Defaults to start from; explicit fields override them.",
    "performance": "Queue sizes, threads, timeouts and the memory limit.",
    "delivery": "Retries, circuit breakers, dead letters, leases and push batching.",
    "conversation": "Conversation tracking and expiry.",
    "observability": "Logging, tracing and metrics.",
    "storage": "The SQLite database and its durability (sync full or normal).",
    "network": "Listen address and ports.",
    "shutdown": "Graceful shutdown.",
    "security": "Authentication, size limits and TLS.",
}


def leaf(lo, hi, enum, ftype):
    if ftype == "F_ENUM":
        return {"type": "string", "enum": enum}
    if ftype == "F_BOOL":
        return {"type": "boolean"}
    if ftype == "F_STR":
        s = {"type": "string", "maxLength": int(hi)}
        if lo >= 1:
            s["minLength"] = int(lo)
        return s
    if ftype == "F_DOUBLE":
        return {"type": "number", "minimum": lo, "maximum": hi}
    if ftype == "F_BYTES":
        # int-or-string allows exactly these two branches; the pattern applies to the string form
        return {"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}],
                "pattern": BYTES_PATTERN,
                "description": f"Bytes: an integer from {int(lo)} to {int(hi)}, or a quantity such as 512Mi."}
    return {"type": "integer", "format": "int64", "minimum": int(lo), "maximum": int(hi)}


def router_schema():
    root = {"type": "object", "properties": {},
            "description": "The router configuration: the same schema as switchboard-router's config file "
                           "(see docs/config.md), without the agents, which come from Agent resources."}
    for path, lo, hi, enum, ftype, _ in cfgschema.table():
        if path.startswith("agents[]") or path.startswith("cluster."):
            continue  # agents come from Agent resources; cluster.* is the operator's to render
        node = root
        parts = path.split(".")
        for p in parts[:-1]:
            node = node["properties"].setdefault(p, {"type": "object", "properties": {}})
            if p in DESCRIPTIONS and "description" not in node:
                node["description"] = DESCRIPTIONS[p]
        node["properties"][parts[-1]] = leaf(lo, hi, enum, ftype)
    root["properties"]["profile"]["default"] = "development"
    perf = root["properties"]["performance"]
    perf["x-kubernetes-validations"] = [{
        "rule": "!has(self.inboundQueueSize) || !has(self.batchSize) || self.inboundQueueSize >= 2 * self.batchSize",
        "message": "performance.inboundQueueSize must be at least 2x performance.batchSize",
        "fieldPath": ".inboundQueueSize"}]
    dl = root["properties"]["delivery"]
    dl["x-kubernetes-validations"] = [{
        "rule": "!has(self.retryMaxDelayMs) || !has(self.baseRetryDelayMs) || self.retryMaxDelayMs >= self.baseRetryDelayMs",
        "message": "delivery.retryMaxDelayMs must be at least delivery.baseRetryDelayMs",
        "fieldPath": ".retryMaxDelayMs"}]
    return root


def conditions():
    return {
        "type": "array", "maxItems": 16,
        "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"],
        "items": {
            "type": "object", "required": ["type", "status", "lastTransitionTime", "reason", "message"],
            "properties": {
                "type": {"type": "string", "maxLength": 316,
                         "pattern": r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$"},
                "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
                "observedGeneration": {"type": "integer", "format": "int64", "minimum": 0},
                "lastTransitionTime": {"type": "string", "format": "date-time"},
                "reason": {"type": "string", "minLength": 1, "maxLength": 1024,
                           "pattern": r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"},
                "message": {"type": "string", "maxLength": 32768},
            }}}


def int_or_string(desc):
    return {"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}],
            "description": desc}


def quantity_map():
    return {"type": "object", "additionalProperties": {
        "x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}],
        "pattern": r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"}}


def crd(kind, plural, short, spec, status, columns, description):
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}",
                     "labels": {"app.kubernetes.io/name": "switchboard", "app.kubernetes.io/part-of": "switchboard"}},
        "spec": {
            "group": GROUP, "scope": "Namespaced",
            "names": {"kind": kind, "listKind": kind + "List", "plural": plural, "singular": kind.lower(),
                      "shortNames": [short], "categories": ["switchboard"]},
            "versions": [{
                "name": VERSION, "served": True, "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": columns,
                "schema": {"openAPIV3Schema": {
                    "type": "object", "description": description, "required": ["spec"],
                    "properties": {
                        "apiVersion": {"type": "string"}, "kind": {"type": "string"},
                        "metadata": {"type": "object"}, "spec": spec, "status": status}}}}]}}


def routerconfig():
    spec = {
        "type": "object", "description": "Desired state of a group of switchboard-router replicas.",
        "properties": {
            "replicas": {"type": "integer", "format": "int32", "minimum": 0, "maximum": 100, "default": 1,
                         "description": "Router pods to run."},
            "image": {"type": "string", "minLength": 1, "maxLength": 512,
                      "description": "Router image; the operator's default when absent."},
            "imagePullPolicy": {"type": "string", "enum": ["Always", "IfNotPresent", "Never"],
                                "description": "Pull policy of the router image; the cluster's default when absent."},
            "hostNetwork": {
                "type": "boolean", "default": False,
                "description": "Run the router pods in their node's network namespace, for clusters without a pod "
                               "network. Each router binds its pod's (the node's) address, and the pods of one "
                               "RouterConfig are spread one per node (required anti-affinity), so they share port "
                               "numbers without clashing: replicas beyond the number of nodes stay Pending. The "
                               "ports must be 1024 or above (the router runs without privileges)."},
            "volume": {
                "type": "object",
                "description": "Where each router pod keeps its database: a PersistentVolumeClaim of its own (a "
                               "volumeClaimTemplate of the StatefulSet), so a pod that is deleted, evicted or "
                               "restarted by a rollout comes back with every message it had acknowledged. Claims "
                               "are retained when the RouterConfig is deleted or scaled down (they hold messages): "
                               "delete them by hand when the messages are no longer wanted.",
                "properties": {
                    "size": {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|K|M|G|T|P)?$",
                             "default": "1Gi", "description": "Requested capacity of each claim."},
                    "storageClassName": {"type": "string", "minLength": 1, "maxLength": 253,
                                         "description": "StorageClass of the claims; the cluster's default when absent."},
                    "accessMode": {"type": "string", "enum": ["ReadWriteOnce", "ReadWriteOncePod"],
                                   "default": "ReadWriteOnce"},
                    "ephemeral": {"type": "boolean", "default": False,
                                  "description": "Development only: an emptyDir instead of a claim. Every message a "
                                                 "pod has acknowledged but not delivered is LOST when that pod is "
                                                 "deleted, evicted, rescheduled or restarted by a rollout. "
                                                 "status.volume and the VOLUME column show it."}}},
            "tls": {
                "type": "object",
                "description": "TLS on the data port from a Secret of type kubernetes.io/tls (tls.crt, tls.key), "
                               "for example one cert-manager renews. The operator mounts it in every router pod "
                               "and sets router.security.tls; when the Secret is renewed the routers present the "
                               "new certificate to new connections within seconds of the kubelet updating the "
                               "files, without a restart. The admin port stays plain HTTP on the pod network. "
                               "Turning TLS on or off, or naming another Secret, restarts the pods.",
                "properties": {
                    "secretName": {"type": "string", "minLength": 1, "maxLength": 253,
                                   "pattern": r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
                                   "description": "The TLS Secret, in the RouterConfig's namespace. The operator "
                                                  "never reads it; the kubelet mounts it."}},
                "required": ["secretName"]},
            "resources": {"type": "object", "description": "Compute resources of the router container.",
                          "properties": {"requests": quantity_map(), "limits": quantity_map()}},
            "agentSelector": {
                "type": "object", "x-kubernetes-map-type": "atomic",
                "description": "Selects Agents in this namespace; when absent, Agents whose spec.routerRef.name names this RouterConfig.",
                "properties": {
                    "matchLabels": {"type": "object", "additionalProperties": {"type": "string", "maxLength": 63}},
                    "matchExpressions": {"type": "array", "maxItems": 32, "items": {
                        "type": "object", "required": ["key", "operator"],
                        "properties": {
                            "key": {"type": "string", "minLength": 1, "maxLength": 317},
                            "operator": {"type": "string", "enum": ["In", "NotIn", "Exists", "DoesNotExist"]},
                            "values": {"type": "array", "maxItems": 64, "items": {"type": "string", "maxLength": 63}}},
                        "x-kubernetes-validations": [{
                            "rule": "(self.operator in ['In', 'NotIn']) == (has(self.values) && size(self.values) > 0)",
                            "message": "values must be set for In and NotIn, and only for them"}]}}}},
            "rollout": {
                "type": "object", "description": "How restart-class changes roll out.",
                "properties": {
                    "maxUnavailable": int_or_string("Router pods that may be disrupted at once by voluntary disruptions such as node drains "
                                                    "(the PodDisruptionBudget; number or percentage, default 1). Restarts replace one pod at a time."),
                    "autoRollback": {"type": "boolean", "default": True,
                                     "description": "Restore the last good config when routers reject a pushed config or a rollout misses its deadline."},
                    "progressDeadlineSeconds": {"type": "integer", "format": "int32", "minimum": 30,
                                                "maximum": 3600, "default": 600,
                                                "description": "A restart-class rollout that has not completed this long after it started is rolled back (autoRollback)."},
                    "canarySeconds": {"type": "integer", "format": "int32", "minimum": 0, "maximum": 3600,
                                      "default": 30,
                                      "description": "A restart-class rollout updates the highest ordinal first and updates the other pods only once that canary has been Ready, on the new template and the new config, for this long. A canary that fails is rolled back at the progress deadline; the other pods are never restarted."}},
                "x-kubernetes-validations": [{
                    "rule": "!has(self.canarySeconds) || !has(self.progressDeadlineSeconds) || self.canarySeconds < self.progressDeadlineSeconds",
                    "message": "rollout.canarySeconds must be shorter than rollout.progressDeadlineSeconds",
                    "fieldPath": ".canarySeconds"}]},
            "router": router_schema(),
        },
        "x-kubernetes-validations": [{
            "rule": "has(self.volume) == has(oldSelf.volume) && (!has(self.volume) || self.volume == oldSelf.volume)",
            "message": "spec.volume is immutable (a StatefulSet's claims cannot change): delete and re-create the "
                       "RouterConfig; its claims are retained",
            "fieldPath": ".volume"}, {
            "rule": "!has(self.hostNetwork) || !self.hostNetwork || !has(self.router) || !has(self.router.network) || "
                    "((!has(self.router.network.dataPort) || self.router.network.dataPort >= 1024) && "
                    "(!has(self.router.network.adminPort) || self.router.network.adminPort >= 1024))",
            "message": "hostNetwork needs router.network.dataPort and adminPort of 1024 or above: the router "
                       "runs without the privilege to bind lower ports on the node",
            "fieldPath": ".hostNetwork"}]}
    status = {
        "type": "object",
        "properties": {
            "observedGeneration": {"type": "integer", "format": "int64"},
            "conditions": conditions(),
            "configHash": {"type": "string", "maxLength": 64},
            "configHashShort": {"type": "string", "maxLength": 12},
            "restartHash": {"type": "string", "maxLength": 64},
            "rejectedConfigHash": {"type": "string", "maxLength": 64, "description": "A config the routers refused (or whose rollout stalled) and that was rolled back; not retried until the spec or the Agents change."},
            "agents": {"type": "integer", "format": "int32", "minimum": 0},
            "replicas": {"type": "integer", "format": "int32", "minimum": 0},
            "readyReplicas": {"type": "integer", "format": "int32", "minimum": 0},
            "assignedReplicas": {"type": "integer", "format": "int32", "minimum": 0,
                                 "description": "How many router pods own agents (cluster.replicas of the config in force): it follows spec.replicas once new pods are Ready, and leads it on a scale-down while the leaving pods hand off (docs/cluster.md)."},
            "updatedReplicas": {"type": "integer", "format": "int32", "minimum": 0},
            "epoch": {"type": "string", "maxLength": 16,
                      "description": "The assignment of agents to router pods in force (docs/cluster.md)."},
            "volume": {"type": "string", "enum": ["Persistent", "Ephemeral"],
                       "description": "Ephemeral: the routers' messages do not survive their pods."},
            "routers": {
                "type": "array", "maxItems": 256, "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["pod"],
                "description": "Each router pod, whether it is ready, and the hash of the config it runs.",
                "items": {"type": "object", "required": ["pod", "ready"], "properties": {
                    "pod": {"type": "string", "maxLength": 253},
                    "ready": {"type": "boolean"},
                    "configHash": {"type": "string", "maxLength": 64},
                    "epoch": {"type": "string", "maxLength": 16}}}},
            "lastReload": {"type": "object", "properties": {
                "kind": {"type": "string", "enum": ["Hot", "Restart"]},
                "time": {"type": "string", "format": "date-time"},
                "result": {"type": "string", "maxLength": 1024}}}}}
    cols = [
        {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Available")].status'},
        {"name": "Agents", "type": "integer", "jsonPath": ".status.agents"},
        {"name": "Replicas", "type": "integer", "jsonPath": ".status.readyReplicas",
         "description": "Ready router replicas"},
        {"name": "Volume", "type": "string", "jsonPath": ".status.volume",
         "description": "Persistent, or Ephemeral (messages are lost with their pod)"},
        {"name": "Config", "type": "string", "jsonPath": ".status.configHashShort",
         "description": "Short hash of the applied config"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]
    return crd("RouterConfig", "routerconfigs", "rcfg", spec, status, cols,
               "RouterConfig declares a group of switchboard-router replicas and their configuration.")


def agent():
    spec = {
        "type": "object", "required": ["routerRef"],
        "description": "An agent that sends and receives messages through a router.",
        "x-kubernetes-validations": [{
            "rule": "has(oldSelf.agentId) == has(self.agentId) && (!has(self.agentId) || self.agentId == oldSelf.agentId)",
            "message": "spec.agentId is immutable: delete and re-create the Agent to change it",
            "fieldPath": ".agentId"}],
        "properties": {
            "routerRef": {"type": "object", "required": ["name"], "x-kubernetes-map-type": "atomic",
                          "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 253,
                                                  "description": "The RouterConfig in this namespace."}}},
            "agentId": {"type": "string", "minLength": 1, "maxLength": 253, "pattern": AGENT_ID_PATTERN,
                        "description": "The id messages use; defaults to metadata.name. Immutable."},
            "capabilities": {"type": "array", "maxItems": 100, "x-kubernetes-list-type": "map",
                             "x-kubernetes-list-map-keys": ["name"],
                             "items": {"type": "object", "required": ["name"], "properties": {
                                 "name": {"type": "string", "minLength": 1, "maxLength": 100},
                                 "description": {"type": "string", "maxLength": 1000}}}},
            "delivery": {
                "type": "object", "default": {"mode": "pull"},
                "properties": {
                    "mode": {"type": "string", "enum": ["push", "pull"], "default": "pull",
                             "description": "pull: the agent long-polls its mailbox; push: the router POSTs to endpoint."},
                    "endpoint": {"type": "string", "maxLength": 2048, "description": "http(s) URL; push mode only."},
                    "protocol": {"type": "string", "enum": ["fipa", "a2a"], "default": "fipa",
                                 "description": "How the router hands each message to a push agent's endpoint: fipa "
                                                "(the FIPA-ACL message POSTed as JSON) or a2a (an A2A JSON-RPC "
                                                "SendMessage call; docs/a2a.md). a2a requires push mode."},
                    "timeoutMs": {"type": "integer", "format": "int64", "minimum": 100, "maximum": 300000, "default": 5000},
                    "maxInFlight": {"type": "integer", "format": "int32", "minimum": 1, "maximum": 100000, "default": 16}},
                "x-kubernetes-validations": [
                    {"rule": "!has(self.mode) || self.mode != 'push' || (has(self.endpoint) && self.endpoint.matches('^https?://[^\\\\s]+$'))",
                     "message": "push mode requires an http:// or https:// endpoint", "fieldPath": ".endpoint"},
                    {"rule": "(has(self.mode) && self.mode != 'pull') || !has(self.endpoint)",
                     "message": "pull mode agents must not set an endpoint", "fieldPath": ".endpoint"},
                    {"rule": "!has(self.protocol) || self.protocol != 'a2a' || "
                             "(has(self.mode) && self.mode == 'push' && has(self.endpoint))",
                     "message": "protocol a2a requires push delivery (mode: push) with an endpoint: the router calls "
                                "the agent, and a pull agent reads its mailbox instead",
                     "fieldPath": ".protocol"}]},
            "state": {"type": "string", "enum": ["Running", "Draining", "Stopped"], "default": "Running"},
            "rateLimit": {
                "type": "object",
                "properties": {"messagesPerSecond": {"type": "number", "minimum": 0, "maximum": 10000000},
                               "burst": {"type": "integer", "format": "int64", "minimum": 0, "maximum": 10000000}},
                "x-kubernetes-validations": [{
                    "rule": "!has(self.messagesPerSecond) || self.messagesPerSecond == 0.0 || (has(self.burst) && self.burst >= 1)",
                    "message": "rateLimit.burst must be at least 1 when messagesPerSecond is set", "fieldPath": ".burst"}]},
            "tokenSecretRef": {"type": "object", "required": ["name"], "properties": {
                "name": {"type": "string", "minLength": 1, "maxLength": 253},
                "key": {"type": "string", "minLength": 1, "maxLength": 253, "default": "token"}}},
        }}
    status = {"type": "object", "properties": {
        "observedGeneration": {"type": "integer", "format": "int64"},
        "conditions": conditions(),
        "router": {"type": "string", "maxLength": 253},
        "ownerPod": {"type": "string", "maxLength": 253,
                     "description": "The router pod that owns this agent: its messages are stored and delivered "
                                    "there, and every other pod forwards to it (docs/cluster.md)."},
        "a2aUrl": {"type": "string", "maxLength": 640,
                   "description": "Where A2A clients reach this agent: the router's Service, its data port and "
                                  "/a2a/<agent id> (https when the router serves TLS; docs/a2a.md). Give it to an "
                                  "A2A SDK as the agent's base URL."}}}
    cols = [
        {"name": "Router", "type": "string", "jsonPath": ".spec.routerRef.name"},
        {"name": "Mode", "type": "string", "jsonPath": ".spec.delivery.mode"},
        {"name": "State", "type": "string", "jsonPath": ".spec.state"},
        {"name": "Owner", "type": "string", "jsonPath": ".status.ownerPod", "description": "The router pod that owns it"},
        {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
        {"name": "A2A URL", "type": "string", "jsonPath": ".status.a2aUrl",
         "description": "Where A2A clients reach this agent through the router's Service"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]
    return crd("Agent", "agents", "agt", spec, status, cols,
               "Agent declares an agent and how the router delivers to it.")


def render():
    header = "# Generated by scripts/gen-crds.py from the schema table in lib/cfg.c. Do not edit.\n"
    return {f"{GROUP}_routerconfigs.yaml": header + yaml.safe_dump(routerconfig(), sort_keys=False, width=120),
            f"{GROUP}_agents.yaml": header + yaml.safe_dump(agent(), sort_keys=False, width=120)}


def main():
    files = render()
    if "--check" in sys.argv:
        bad = [os.path.relpath(os.path.join(d, n), ROOT) for d in (OUT, CHART_OUT) for n, t in files.items()
               if not os.path.exists(os.path.join(d, n)) or open(os.path.join(d, n)).read() != t]
        if bad:
            print("out of date: " + ", ".join(bad) + "; run scripts/gen-crds.py", file=sys.stderr)
            return 1
        return 0
    os.makedirs(OUT, exist_ok=True)
    for d in (OUT, CHART_OUT):
        os.makedirs(d, exist_ok=True)
        for n, t in files.items():
            with open(os.path.join(d, n), "w") as f:
                f.write(t)
    return 0


if __name__ == "__main__":
    sys.exit(main())
