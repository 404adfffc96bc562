/*
 * rec_objects: the Kubernetes objects a RouterConfig owns, built for
 * server-side apply (see rec_objects.h): the ConfigMap of a rendered
 * document, the router StatefulSet and the pod it runs, the client and
 * peer Services, the PodDisruptionBudget and the admin-token Secret, each
 * from small named builders so its shape reads top to bottom.  No I/O.
 */
#include "rec_objects.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rec_render.h"
#include "switchboard/gz.h"

/* --- labels and metadata ------------------------------------------------ */

static json_t *labels(const json_t *rc)
{
	return json_pack("{s:s,s:s,s:s,s:s,s:s}", "app.kubernetes.io/name", "switchboard-router",
			 "app.kubernetes.io/instance", kc_meta_str(rc, "name"), "app.kubernetes.io/component", "router",
			 "app.kubernetes.io/part-of", "switchboard", "app.kubernetes.io/managed-by",
			 "switchboard-operator");
}

static json_t *selector_labels(const json_t *rc)
{
	return json_pack("{s:s,s:s}", "app.kubernetes.io/name", "switchboard-router", "app.kubernetes.io/instance",
			 kc_meta_str(rc, "name"));
}

static json_t *meta(const json_t *rc, const char *name)
{
	return json_pack("{s:s,s:s,s:o,s:[{s:s,s:s,s:s,s:s,s:b,s:b}]}", "name", name, "namespace",
			 kc_meta_str(rc, "namespace"), "labels", labels(rc), "ownerReferences", "apiVersion",
			 "switchboard.dev/v1alpha1", "kind", "RouterConfig", "name", kc_meta_str(rc, "name"), "uid",
			 kc_meta_str(rc, "uid") ? kc_meta_str(rc, "uid") : "", "controller", 1, "blockOwnerDeletion",
			 1);
}

int rob_configmap_doc(const json_t *cm, char **doc, size_t *len)
{
	const char *plain = json_string_value(json_object_get(json_object_get(cm, "data"), OP_CONFIG_KEY));
	const char *b64 = json_string_value(json_object_get(json_object_get(cm, "binaryData"), OP_CONFIG_KEY));
	unsigned char *gz = NULL;
	size_t n, gzlen = 0;
	int rc;

	*doc = NULL;
	*len = 0;
	if (plain) {
		*doc = strdup(plain);
		*len = strlen(plain);
		return *doc ? 0 : -ENOMEM;
	}
	if (!b64)
		return -ENOENT;
	n = strlen(b64);
	gz = malloc(n + 1);
	if (!gz)
		return -ENOMEM;
	if (sodium_base642bin(gz, n, b64, n, NULL, &gzlen, NULL, sodium_base64_VARIANT_ORIGINAL))
		rc = -EBADMSG;
	else
		rc = gz_inflate(gz, gzlen, CFG_DOC_LIMIT, doc, len);
	free(gz);
	return rc;
}

json_t *rob_configmap(const json_t *rc, const char *suffix, const char *doc, size_t len, const char *hash,
		      const char *restart_hash)
{
	char name[300], *gz = NULL, *b64 = NULL;
	size_t gzlen = 0;
	json_t *cm;

	snprintf(name, sizeof(name), "%s-%s", kc_meta_str(rc, "name"), suffix);
	cm = json_pack("{s:s,s:s,s:o}", "apiVersion", "v1", "kind", "ConfigMap", "metadata", meta(rc, name));
	if (!cm)
		return NULL;
	json_object_set_new(json_object_get(json_object_get(cm, "metadata"), "labels"), "switchboard.dev/config-hash",
			    json_stringn(hash, strnlen(hash, 63))); /* label values: at most 63 characters */
	json_object_set_new(json_object_get(cm, "metadata"), "annotations",
			    json_pack("{s:s,s:s}", "switchboard.dev/config-hash", hash, "switchboard.dev/restart-hash",
				      restart_hash ? restart_hash : ""));
	if (len <= OP_GZIP_OVER) {
		json_object_set_new(cm, "data", json_pack("{s:s%}", OP_CONFIG_KEY, doc, len));
		return cm;
	}
	if (gz_deflate(doc, len, &gz, &gzlen))
		goto fail;
	b64 = malloc(sodium_base64_ENCODED_LEN(gzlen, sodium_base64_VARIANT_ORIGINAL));
	if (!b64)
		goto fail;
	sodium_bin2base64(b64, sodium_base64_ENCODED_LEN(gzlen, sodium_base64_VARIANT_ORIGINAL),
			  (const unsigned char *)gz, gzlen, sodium_base64_VARIANT_ORIGINAL);
	json_object_set_new(cm, "binaryData", json_pack("{s:s}", OP_CONFIG_KEY, b64));
	free(gz);
	free(b64);
	return cm;
fail:
	free(gz);
	free(b64);
	json_decref(cm);
	return NULL;
}

/*
 * The StatefulSet is assembled from small builders, one per part of the
 * pod, so its shape reads top to bottom.  Every builder returns a new
 * reference or NULL when memory ran out; put() and push() take the value
 * even on failure, so a NULL anywhere makes the whole object NULL and an
 * incomplete object is never applied.
 */
static int put(json_t *obj, const char *key, json_t *v)
{
	if (!obj || !v) {
		json_decref(v);
		return -ENOMEM;
	}
	return json_object_set_new(obj, key, v) ? -ENOMEM : 0;
}

static int push(json_t *arr, json_t *v)
{
	if (!arr || !v) {
		json_decref(v);
		return -ENOMEM;
	}
	return json_array_append_new(arr, v) ? -ENOMEM : 0;
}

/* Return `obj`, or NULL (freeing it) when a put() or push() failed. */
static json_t *built(json_t *obj, int err)
{
	if (err) {
		json_decref(obj);
		return NULL;
	}
	return obj;
}

static int host_network(const json_t *rc)
{
	return json_is_true(json_object_get(json_object_get(rc, "spec"), "hostNetwork"));
}

static json_t *port(const char *name, json_int_t n)
{
	return json_pack("{s:s,s:I,s:s}", "name", name, "containerPort", n, "protocol", "TCP");
}

static json_t *probe(const char *path, int period, int failures)
{
	return json_pack("{s:{s:s,s:s},s:i,s:i,s:i}", "httpGet", "path", path, "port", "admin", "periodSeconds", period,
			 "failureThreshold", failures, "timeoutSeconds", 2);
}

/* An environment variable from the pod's own fields (downward API). */
static json_t *env_field(const char *name, const char *field)
{
	return json_pack("{s:s,s:{s:{s:s}}}", "name", name, "valueFrom", "fieldRef", "fieldPath", field);
}

/* The router binds its pod's IP (the rendered document says 0.0.0.0): with
 * host networking several routers share a machine's port numbers, each on
 * its node's address.  Its ordinal among the replicas is its StatefulSet
 * pod index (the label apps.kubernetes.io/pod-index).  POD_NAME is the
 * pod's name, which $HOSTNAME is not under host networking. */
static json_t *router_args(void)
{
	return json_pack("[s,s,s,s,s,s]", "--config", OP_CONFIG_DIR "/" OP_CONFIG_KEY, "--set",
			 "network.bindAddress=$(POD_IP)", "--set", "cluster.ordinal=$(POD_INDEX)");
}

static json_t *router_env(void)
{
	json_t *env = json_array();
	int err = push(env, env_field("POD_IP", "status.podIP"));

	err = err ?: push(env, env_field("POD_NAME", "metadata.name"));
	err = err ?: push(env, env_field("POD_NAMESPACE", "metadata.namespace"));
	err = err ?: push(env, env_field("POD_INDEX", "metadata.labels['apps.kubernetes.io/pod-index']"));
	return built(env, err);
}

static json_t *mount(const char *name, const char *path, int read_only)
{
	json_t *m = json_pack("{s:s,s:s}", "name", name, "mountPath", path);

	if (m && read_only && json_object_set_new(m, "readOnly", json_true()))
		return built(m, -ENOMEM);
	return m;
}

static json_t *router_mounts(const json_t *rc)
{
	json_t *m = json_array();
	int err = push(m, mount("config", OP_CONFIG_DIR, 1));

	err = err ?: push(m, mount("admin-token", OP_ADMIN_DIR, 1));
	err = err ?: push(m, mount("data", OP_DATA_DIR, 0));
	if (rr_tls_secret(rc))
		err = err ?: push(m, mount("tls", OP_TLS_DIR, 1));
	return built(m, err);
}

static json_t *container_security(void)
{
	return json_pack("{s:b,s:b,s:b,s:{s:[s]}}", "allowPrivilegeEscalation", 0, "readOnlyRootFilesystem", 1,
			 "runAsNonRoot", 1, "capabilities", "drop", "ALL");
}

static json_t *router_resources(const json_t *spec)
{
	const json_t *res = json_object_get(spec, "resources");

	if (json_is_object(res))
		return json_deep_copy(res);
	return json_pack("{s:{s:s,s:s},s:{s:s}}", "requests", "cpu", "100m", "memory", "128Mi", "limits", "memory",
			 "512Mi");
}

static json_t *router_container(const json_t *rc, const struct cfg *c, const char *image)
{
	const json_t *spec = json_object_get(rc, "spec");
	const char *img = json_string_value(json_object_get(spec, "image"));
	const char *pull = json_string_value(json_object_get(spec, "imagePullPolicy"));
	json_t *k = json_object(), *ports = json_array();
	int err = push(ports, port("data", c->net.data_port));

	err = err ?: push(ports, port("admin", c->net.admin_port));
	err = err ?: push(ports, port("peer", c->net.peer_port));
	err = err ?: put(k, "name", json_string("router"));
	err = err ?: put(k, "image", json_string(img ? img : image));
	if (pull)
		err = err ?: put(k, "imagePullPolicy", json_string(pull));
	err = err ?: put(k, "args", router_args());
	err = err ?: put(k, "env", router_env());
	err = err ?: put(k, "ports", json_incref(ports));
	err = err ?: put(k, "readinessProbe", probe("/readyz", 5, 2));
	err = err ?: put(k, "livenessProbe", probe("/healthz", 10, 3));
	err = err ?: put(k, "startupProbe", probe("/healthz", 2, 60));
	err = err ?: put(k, "resources", router_resources(spec));
	err = err ?: put(k, "securityContext", container_security());
	err = err ?: put(k, "volumeMounts", router_mounts(rc));
	json_decref(ports);
	return built(k, err);
}

/* The config, the admin token, the TLS Secret when spec.tls names one and,
 * only when the RouterConfig asks for ephemeral storage, the data directory
 * (otherwise a volumeClaimTemplate provides it). */
static json_t *router_volumes(const json_t *rc)
{
	char cm_name[300], secret_name[300];
	json_t *v;

	snprintf(cm_name, sizeof(cm_name), "%s-config", kc_meta_str(rc, "name"));
	snprintf(secret_name, sizeof(secret_name), "%s-admin", kc_meta_str(rc, "name"));
	v = json_pack("[{s:s,s:{s:s}},{s:s,s:{s:s,s:i}}]", "name", "config", "configMap", "name", cm_name, "name",
		      "admin-token", "secret", "secretName", secret_name, "defaultMode", 0440);
	if (rob_ephemeral(rc) && push(v, json_pack("{s:s,s:{}}", "name", "data", "emptyDir")))
		return built(v, -ENOMEM);
	/* the kubelet refreshes the files when the Secret is renewed; the
	 * router picks them up without a restart */
	if (rr_tls_secret(rc) && push(v, json_pack("{s:s,s:{s:s,s:i}}", "name", "tls", "secret", "secretName",
						   rr_tls_secret(rc), "defaultMode", 0440)))
		return built(v, -ENOMEM);
	return v;
}

/* One router per node: required under host networking (the routers share
 * port numbers), preferred otherwise (a node failure takes one replica). */
static json_t *anti_affinity(const json_t *rc)
{
	json_t *term = json_pack("{s:{s:o},s:s}", "labelSelector", "matchLabels", selector_labels(rc), "topologyKey",
				 "kubernetes.io/hostname");

	if (!term)
		return NULL;
	if (host_network(rc))
		return json_pack("{s:{s:[o]}}", "podAntiAffinity", "requiredDuringSchedulingIgnoredDuringExecution",
				 term);
	return json_pack("{s:{s:[{s:i,s:o}]}}", "podAntiAffinity", "preferredDuringSchedulingIgnoredDuringExecution",
			 "weight", 100, "podAffinityTerm", term);
}

static json_t *pod_security(void)
{
	return json_pack("{s:b,s:i,s:i,s:i,s:{s:s}}", "runAsNonRoot", 1, "runAsUser", 65532, "runAsGroup", 65532,
			 "fsGroup", 65532, "seccompProfile", "type", "RuntimeDefault");
}

static json_t *router_pod_spec(const json_t *rc, const struct cfg *c, const char *image)
{
	json_t *ps = json_object(), *containers = json_array();
	int err = push(containers, router_container(rc, c, image));

	err = err ?: put(ps, "terminationGracePeriodSeconds", json_integer(c->shutdown.timeout_ms / 1000 + 5));
	if (host_network(rc)) {
		err = err ?: put(ps, "hostNetwork", json_true());
		err = err ?: put(ps, "dnsPolicy", json_string("ClusterFirstWithHostNet"));
	}
	err = err ?: put(ps, "enableServiceLinks", json_false());
	err = err ?: put(ps, "affinity", anti_affinity(rc));
	err = err ?: put(ps, "securityContext", pod_security());
	err = err ?: put(ps, "containers", json_incref(containers));
	err = err ?: put(ps, "volumes", router_volumes(rc));
	json_decref(containers);
	return built(ps, err);
}

static json_t *pod_template(const json_t *rc, const struct cfg *c, const char *restart_hash, const char *image)
{
	json_t *md = json_object(), *t = json_object();
	int err = put(md, "labels", labels(rc));

	err = err ?: put(md, "annotations", json_pack("{s:s}", "switchboard.dev/restart-hash", restart_hash));
	err = err ?: put(t, "metadata", json_incref(md));
	err = err ?: put(t, "spec", router_pod_spec(rc, c, image));
	json_decref(md);
	return built(t, err);
}

int rob_ephemeral(const json_t *rc)
{
	return json_is_true(json_object_get(json_object_get(json_object_get(rc, "spec"), "volume"), "ephemeral"));
}

/* The claim each pod's database directory lives on: spec.volume's size,
 * class and access mode (defaults 1Gi, the cluster's default class,
 * ReadWriteOnce). */
static json_t *data_claim(const json_t *rc)
{
	const json_t *vol = json_object_get(json_object_get(rc, "spec"), "volume");
	const char *size = json_string_value(json_object_get(vol, "size"));
	const char *cls = json_string_value(json_object_get(vol, "storageClassName"));
	const char *mode = json_string_value(json_object_get(vol, "accessMode"));
	json_t *spec = json_pack("{s:[s],s:{s:{s:s}}}", "accessModes", mode ? mode : "ReadWriteOnce", "resources",
				 "requests", "storage", size ? size : ROB_DEFAULT_VOLUME_SIZE);
	json_t *claim = json_object();
	int err = 0;

	if (cls)
		err = put(spec, "storageClassName", json_string(cls));
	err = err ?: put(claim, "metadata", json_pack("{s:s,s:o}", "name", "data", "labels", labels(rc)));
	err = err ?: put(claim, "spec", json_incref(spec));
	json_decref(spec);
	return built(claim, err);
}

/* Claims outlive their pods, a scale-down and the RouterConfig itself: they
 * hold acknowledged messages (decision 35). */
static json_t *claim_retention(void)
{
	return json_pack("{s:s,s:s}", "whenDeleted", "Retain", "whenScaled", "Retain");
}

static json_t *update_strategy(json_int_t partition)
{
	return json_pack("{s:s,s:{s:I}}", "type", "RollingUpdate", "rollingUpdate", "partition", partition);
}

json_int_t rob_plan_partition(const struct rob_canary_in *in, enum rob_stage *stage)
{
	*stage = ROB_STAGE_NONE;
	if (in->replicas <= 1)
		return 0; /* one pod is its own canary; the progress deadline guards it */
	if (in->new_rollout) {
		*stage = ROB_STAGE_CANARY;
		return in->replicas - 1;
	}
	if (in->partition <= 0)
		return 0;
	if (in->canary_healthy_ms >= 0 && in->canary_healthy_ms >= in->canary_seconds * 1000) {
		*stage = ROB_STAGE_PROMOTED;
		return 0;
	}
	*stage = ROB_STAGE_CANARY;
	return in->partition;
}

json_t *rob_statefulset(const json_t *rc, const struct cfg *c, const char *restart_hash, const char *image,
			json_int_t replicas, json_int_t partition)
{
	json_t *d = json_object(), *ss = json_object();
	char peers[300];
	int err = put(ss, "replicas", json_integer(replicas));

	snprintf(peers, sizeof(peers), "%s-peers", kc_meta_str(rc, "name"));
	err = err ?: put(ss, "serviceName", json_string(peers));
	err = err ?: put(ss, "podManagementPolicy", json_string("Parallel"));
	err = err ?: put(ss, "revisionHistoryLimit", json_integer(5));
	err = err ?: put(ss, "selector", json_pack("{s:o}", "matchLabels", selector_labels(rc)));
	err = err ?: put(ss, "updateStrategy", update_strategy(partition));
	err = err ?: put(ss, "persistentVolumeClaimRetentionPolicy", claim_retention());
	err = err ?: put(ss, "template", pod_template(rc, c, restart_hash, image));
	if (!rob_ephemeral(rc))
		err = err ?: put(ss, "volumeClaimTemplates", json_pack("[o]", data_claim(rc)));
	err = err ?: put(d, "apiVersion", json_string("apps/v1"));
	err = err ?: put(d, "kind", json_string("StatefulSet"));
	err = err ?: put(d, "metadata", meta(rc, kc_meta_str(rc, "name")));
	err = err ?: put(d, "spec", json_incref(ss));
	json_decref(ss);
	return built(d, err);
}

static json_t *service_port(const char *name, int64_t port)
{
	return json_pack("{s:s,s:I,s:s,s:s}", "name", name, "port", (json_int_t)port, "targetPort", name, "protocol",
			 "TCP");
}

/* data and admin; the headless peer Service names the peer port too. */
static json_t *service_ports(const struct cfg *c, int with_peer)
{
	json_t *ports = json_array();
	int err = push(ports, service_port("data", c->net.data_port));

	err = err ?: push(ports, service_port("admin", c->net.admin_port));
	if (with_peer)
		err = err ?: push(ports, service_port("peer", c->net.peer_port));
	return built(ports, err);
}

static json_t *service(const json_t *rc, const struct cfg *c, const char *name, int headless)
{
	json_t *svc = json_object(), *spec = json_object();
	int err = put(spec, "selector", selector_labels(rc));

	err = err ?: put(spec, "ports", service_ports(c, headless));
	if (headless) {
		err = err ?: put(spec, "clusterIP", json_string("None"));
		err = err ?: put(spec, "publishNotReadyAddresses", json_true());
	}
	err = err ?: put(svc, "apiVersion", json_string("v1"));
	err = err ?: put(svc, "kind", json_string("Service"));
	err = err ?: put(svc, "metadata", meta(rc, name));
	err = err ?: put(svc, "spec", json_incref(spec));
	json_decref(spec);
	return built(svc, err);
}

json_t *rob_service(const json_t *rc, const struct cfg *c)
{
	return service(rc, c, kc_meta_str(rc, "name"), 0);
}

int rob_a2a_url(const json_t *rc, const struct cfg *c, const char *id, char *out, size_t outlen)
{
	const char *name = kc_meta_str(rc, "name"), *ns = kc_meta_str(rc, "namespace");
	int n;

	if (!name || !ns || !id)
		return -EINVAL;
	n = snprintf(out, outlen, "%s://%s.%s.svc:%lld/a2a/%s", c->sec.tls_enabled ? "https" : "http", name, ns,
		     (long long)c->net.data_port, id);
	return n < 0 || (size_t)n >= outlen ? -ENAMETOOLONG : 0;
}

json_t *rob_peer_service(const json_t *rc, const struct cfg *c)
{
	char name[300];

	snprintf(name, sizeof(name), "%s-peers", kc_meta_str(rc, "name"));
	return service(rc, c, name, 1);
}

json_t *rob_pdb(const json_t *rc)
{
	const json_t *ro = json_object_get(json_object_get(rc, "spec"), "rollout");
	const json_t *mu = json_object_get(ro, "maxUnavailable");

	return json_pack("{s:s,s:s,s:o,s:{s:{s:o},s:o}}", "apiVersion", "policy/v1", "kind", "PodDisruptionBudget",
			 "metadata", meta(rc, kc_meta_str(rc, "name")), "spec", "selector", "matchLabels",
			 selector_labels(rc), "maxUnavailable", mu ? json_incref((json_t *)mu) : json_integer(1));
}

json_t *rob_admin_secret(const json_t *rc, const char *token)
{
	char name[300];
	json_t *md, *labels_;

	snprintf(name, sizeof(name), "%s-admin", kc_meta_str(rc, "name"));
	md = meta(rc, name);
	labels_ = json_object_get(md, "labels");
	if (!labels_ || json_object_set_new(labels_, OP_SECRET_LABEL, json_string(OP_SECRET_ADMIN_TOKEN))) {
		json_decref(md);
		return NULL;
	}
	return json_pack("{s:s,s:s,s:o,s:s,s:{s:s}}", "apiVersion", "v1", "kind", "Secret", "metadata", md, "type",
			 "Opaque", "stringData", "token", token);
}
