/*
 * rec_router: EndpointSlice lookup and the router admin calls (see
 * rec_router.h).  Uses a plain curl easy handle per call: these calls are
 * few (one per router per reconcile) and short.
 */
#include "rec_router.h"

#include <curl/curl.h>
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "switchboard/buf.h"
#include "switchboard/log.h"

#define ROUTER_REPLY_LIMIT (1u << 20)

int rr_endpoints(struct op *op, const char *ns, const char *name, struct rr_endpoint *eps, size_t *n)
{
	char path[512], sel[400];
	struct kc_status st;
	json_t *slices = NULL, *slice;
	size_t i;
	int rc;

	*n = 0;
	snprintf(path, sizeof(path), "/apis/discovery.k8s.io/v1/namespaces/%s/endpointslices", ns);
	snprintf(sel, sizeof(sel), "kubernetes.io/service-name=%s", name);
	{
		char rv[64];

		rc = kc_list(op->k, path, sel, &slices, rv, &st);
	}
	if (rc) {
		log_warn("cannot list EndpointSlices", "namespace", ns, "service", name, "detail", st.message);
		return rc;
	}
	json_array_foreach (slices, i, slice) {
		json_int_t port = 0;
		size_t j;
		json_t *p, *ep;

		json_array_foreach (json_object_get(slice, "ports"), j, p) {
			const char *pn = json_string_value(json_object_get(p, "name"));

			if (pn && strcmp(pn, "admin") == 0)
				port = json_integer_value(json_object_get(p, "port"));
		}
		if (port <= 0)
			continue;
		json_array_foreach (json_object_get(slice, "endpoints"), j, ep) {
			const json_t *ready = json_object_get(json_object_get(ep, "conditions"), "ready");
			size_t k;
			json_t *addr;

			if (json_is_false(ready))
				continue;
			json_array_foreach (json_object_get(ep, "addresses"), k, addr) {
				const char *a = json_string_value(addr);

				if (!a || *n >= RR_MAX_ENDPOINTS)
					continue;
				memset(&eps[*n], 0, sizeof(eps[*n]));
				snprintf(eps[*n].url, sizeof(eps[*n].url),
					 strchr(a, ':') ? "http://[%s]:%lld" : "http://%s:%lld", a, (long long)port);
				(*n)++;
			}
		}
	}
	json_decref(slices);
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

int rr_status(struct rr_endpoint *ep, const char *token)
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
		ep->restart_required = json_is_true(json_object_get(j, "restart_required"));
		ep->reachable = 1;
		rc = 0;
	} else {
		snprintf(ep->detail, sizeof(ep->detail), "GET /v1/status: %s", code ? "bad reply" : "unreachable");
	}
	json_decref(j);
	buf_free(&reply);
	return rc;
}

int rr_push(struct rr_endpoint *ep, const char *token, const char *doc, size_t len)
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
