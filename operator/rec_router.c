/*
 * rec_router: router pod lookup and the router admin calls (see
 * rec_router.h).  Uses a plain curl easy handle per call: these calls are
 * few (one per router per reconcile) and short.
 */
#include "rec_router.h"

#include <curl/curl.h>
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "switchboard/buf.h"
#include "switchboard/cfg.h"
#include "switchboard/log.h"
#include "switchboard/util.h"

#define ROUTER_REPLY_LIMIT (1u << 20)

static int ep_cmp(const void *a, const void *b)
{
	return strcmp(((const struct rrt_endpoint *)a)->pod, ((const struct rrt_endpoint *)b)->pod);
}

/* 1 if the pod's Ready condition is True; *since gets its last transition
 * (0 when unknown). */
static int pod_ready(const json_t *pod, int64_t *since)
{
	size_t i;
	json_t *c;

	*since = 0;
	json_array_foreach (json_object_get(json_object_get(pod, "status"), "conditions"), i, c) {
		const char *t = json_string_value(json_object_get(c, "type"));

		if (t && strcmp(t, "Ready") == 0) {
			if (util_parse_rfc3339(json_string_value(json_object_get(c, "lastTransitionTime")) ?: "",
					       since))
				*since = 0;
			return strcmp(json_string_value(json_object_get(c, "status")) ?: "", "True") == 0;
		}
	}
	return 0;
}

/* The containerPort named "admin" of the router container, 0 if none. */
static json_int_t pod_admin_port(const json_t *pod)
{
	size_t i, j;
	json_t *c, *p;

	json_array_foreach (json_object_get(json_object_get(pod, "spec"), "containers"), i, c) {
		json_array_foreach (json_object_get(c, "ports"), j, p) {
			const char *pn = json_string_value(json_object_get(p, "name"));

			if (pn && strcmp(pn, "admin") == 0)
				return json_integer_value(json_object_get(p, "containerPort"));
		}
	}
	return 0;
}

/* Fill `ep` from one pod; 0 when the pod is not a usable endpoint. */
static int pod_endpoint(const json_t *pod, struct rrt_endpoint *ep)
{
	const json_t *md = json_object_get(pod, "metadata");
	const char *name = json_string_value(json_object_get(md, "name"));
	const char *ip = json_string_value(json_object_get(json_object_get(pod, "status"), "podIP"));
	json_int_t port = pod_admin_port(pod);

	if (!name || json_object_get(md, "deletionTimestamp"))
		return 0;
	memset(ep, 0, sizeof(*ep));
	snprintf(ep->pod, sizeof(ep->pod), "%s", name);
	snprintf(ep->restart_hash, sizeof(ep->restart_hash), "%s",
		 json_string_value(json_object_get(json_object_get(md, "annotations"), "switchboard.dev/restart-hash"))
			 ?: "");
	snprintf(ep->ip, sizeof(ep->ip), "%s", ip ? ip : "");
	ep->ready = pod_ready(pod, &ep->ready_since_ms) && ip && *ip && port > 0 && port < 65536;
	if (ep->ready)
		snprintf(ep->url, sizeof(ep->url), strchr(ip, ':') ? "http://[%s]:%lld" : "http://%s:%lld", ip,
			 (long long)port);
	return 1;
}

int rrt_endpoints(struct op *op, const char *ns, const char *name, struct rrt_endpoint *eps, size_t *n)
{
	char path[512], sel[400], rv[64];
	struct kc_status st;
	json_t *pods = NULL, *pod;
	size_t i;
	int rc;

	*n = 0;
	snprintf(path, sizeof(path), "/api/v1/namespaces/%s/pods", ns);
	snprintf(sel, sizeof(sel), "app.kubernetes.io/name=switchboard-router,app.kubernetes.io/instance=%s", name);
	rc = kc_list(op->k, path, sel, &pods, rv, &st);
	if (rc) {
		log_warn("cannot list router pods", "namespace", ns, "router", name, "detail", st.message);
		return rc;
	}
	json_array_foreach (pods, i, pod) {
		if (*n < RRT_MAX_ENDPOINTS && pod_endpoint(pod, &eps[*n]))
			(*n)++;
	}
	json_decref(pods);
	qsort(eps, *n, sizeof(*eps), ep_cmp);
	return 0;
}

static size_t on_body(char *p, size_t sz, size_t nm, void *ud)
{
	return buf_append(ud, p, sz * nm) ? 0 : sz * nm;
}

/* One call; returns the HTTP code (0 when unreachable) and the reply. */
static long call(const char *url, const char *token, const char *body, size_t len, struct buf *reply)
{
	CURL *c = curl_easy_init();
	struct curl_slist *h = NULL;
	char auth[512];
	long code = 0;

	if (!c)
		return 0;
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
	h = curl_slist_append(h, auth);
	sodium_memzero(auth, sizeof(auth));
	h = curl_slist_append(h, "Content-Type: application/json");
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, reply);
	/* only http/https, and never follow a redirect elsewhere */
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	if (body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	}
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	return code;
}

/* The peer port RouterConfig `rc` renders (spec.router.network.peerPort or
 * the router's default). */
static json_int_t peer_port(const json_t *rc)
{
	const json_t *p = json_object_get(
		json_object_get(json_object_get(json_object_get(rc, "spec"), "router"), "network"), "peerPort");

	return json_is_integer(p) ? json_integer_value(p) : CFG_DEFAULT_PEER_PORT;
}

int rrt_peers_of(const json_t *rc, const struct rrt_endpoint *eps, size_t n, char **out)
{
	const char *name = kc_meta_str(rc, "name"), *ns = kc_meta_str(rc, "namespace");
	size_t plen = strlen(name);
	struct buf b;
	int rc_ = 0;

	*out = NULL;
	buf_init(&b, 1u << 20);
	for (size_t i = 0; !rc_ && i < n; i++) {
		const char *pod = eps[i].pod;

		/* <name>-<ordinal>, with an address */
		if (!eps[i].ip[0] || strncmp(pod, name, plen) != 0 || pod[plen] != '-' ||
		    strspn(pod + plen + 1, "0123456789") != strlen(pod + plen + 1))
			continue;
		rc_ = buf_printf(&b, "%s%s.%s-peers.%s.svc:%lld:%s", b.len ? "," : "", pod, name, ns,
				 (long long)peer_port(rc), eps[i].ip);
	}
	if (!rc_)
		*out = buf_steal(&b);
	if (!rc_ && !*out)
		rc_ = -ENOMEM;
	buf_free(&b);
	return rc_;
}

/* A count in a router's reply; a missing or negative one is 0. */
static size_t count_at(const json_t *obj, const char *key)
{
	json_int_t v = json_integer_value(json_object_get(obj, key));

	return v > 0 ? (size_t)v : 0;
}

int rrt_status(struct rrt_endpoint *ep, const char *token)
{
	char url[192];
	struct buf reply;
	json_t *j = NULL;
	long code;
	int rc = -EIO;

	snprintf(url, sizeof(url), "%s/v1/status", ep->url);
	buf_init(&reply, ROUTER_REPLY_LIMIT);
	code = call(url, token, NULL, 0, &reply);
	ep->reachable = 0;
	if (code == 200 && (j = json_loadb(reply.data, reply.len, 0, NULL))) {
		const char *h = json_string_value(json_object_get(j, "document_hash"));

		snprintf(ep->doc_hash, sizeof(ep->doc_hash), "%s", h ? h : "");
		snprintf(ep->epoch, sizeof(ep->epoch), "%.16s",
			 json_string_value(json_object_get(json_object_get(j, "cluster"), "epoch")) ?: "");
		snprintf(ep->peers_hash, sizeof(ep->peers_hash), "%.64s",
			 json_string_value(json_object_get(json_object_get(j, "cluster"), "peers_hash")) ?: "");
		ep->restart_required = json_is_true(json_object_get(j, "restart_required"));
		ep->queued = count_at(j, "queued");
		ep->leased = count_at(j, "in_flight");
		ep->handoffs = count_at(json_object_get(j, "cluster"), "handoffs");
		ep->handoff_timeouts = count_at(json_object_get(j, "cluster"), "handoff_timeouts");
		ep->reachable = 1;
		rc = 0;
	} else {
		snprintf(ep->detail, sizeof(ep->detail), "GET /v1/status: %s", code ? "bad reply" : "unreachable");
	}
	json_decref(j);
	buf_free(&reply);
	return rc;
}

int rrt_push(struct rrt_endpoint *ep, const char *token, const char *doc, size_t len)
{
	char url[192];
	struct buf reply;
	json_t *j = NULL;
	const char *result, *h;
	long code;
	int rc;

	snprintf(url, sizeof(url), "%s/admin/reload", ep->url);
	buf_init(&reply, ROUTER_REPLY_LIMIT);
	code = call(url, token, doc, len, &reply);
	j = reply.len ? json_loadb(reply.data, reply.len, 0, NULL) : NULL;
	result = json_string_value(json_object_get(j, "result"));
	h = json_string_value(json_object_get(j, "document_hash"));
	snprintf(ep->result, sizeof(ep->result), "%s", result ? result : code ? "error" : "unreachable");
	if (h)
		snprintf(ep->doc_hash, sizeof(ep->doc_hash), "%s", h);
	if (code == 200) {
		rc = 0;
		ep->detail[0] = '\0';
	} else if (code == 409) {
		const char *why = json_string_value(json_object_get(j, "reason"));

		snprintf(ep->detail, sizeof(ep->detail), "needs a restart: %s", why ? why : "");
		rc = -EAGAIN;
	} else if (code == 422) {
		json_t *e0 = json_array_get(json_object_get(j, "errors"), 0);

		snprintf(ep->detail, sizeof(ep->detail), "rejected: %s: %s",
			 json_string_value(json_object_get(e0, "field")) ?: "",
			 json_string_value(json_object_get(e0, "message")) ?: "");
		rc = -EINVAL;
	} else {
		snprintf(ep->detail, sizeof(ep->detail), "POST /admin/reload: %s",
			 code ? "unexpected status" : "unreachable");
		if (code)
			snprintf(ep->detail + strlen(ep->detail), sizeof(ep->detail) - strlen(ep->detail), " %ld",
				 code);
		rc = -EIO;
	}
	json_decref(j);
	buf_free(&reply);
	return rc;
}

int rrt_push_peers(struct rrt_endpoint *ep, const char *token, const char *peers)
{
	char url[192];
	struct buf reply;
	json_t *body = json_pack("{s:s}", "resolve", peers);
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	long code = 0;

	json_decref(body);
	if (!text)
		return -ENOMEM;
	snprintf(url, sizeof(url), "%s/admin/peers", ep->url);
	buf_init(&reply, ROUTER_REPLY_LIMIT);
	code = call(url, token, text, strlen(text), &reply);
	if (code != 200)
		snprintf(ep->detail, sizeof(ep->detail), "POST /admin/peers: %ld", code);
	buf_free(&reply);
	free(text);
	return code == 200 ? 0 : -EIO;
}
