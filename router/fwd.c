/*
 * fwd: splitting requests by owner and sending them to the owning replica.
 * The cluster settings are copied out of the current snapshot (peer_conf)
 * before any network call, so a reload never waits for a forward.  The
 * forwarded body of a submission is each item's canonical message (its
 * message_id included), one per line, so an owner that committed an item
 * whose answer was lost finds the client's retry a duplicate.  See fwd.h
 * for the contracts.
 */
#include "fwd.h"

#include <errno.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <urcu-bp.h>

#include "peer.h"
#include "reload.h"
#include "rmet.h"
#include "switchboard/log.h"
#include "switchboard/own.h"
#include "switchboard/util.h"

#define FWD_TOKEN_MAX 4096

/* What one forwarding call needs, copied from the snapshot. */
struct fwd_ctx {
	struct peer_conf pc;
	char token_file[4097];
};

static int ctx_get(struct app *app, struct fwd_ctx *x)
{
	const struct snap *s;
	int rc;

	rcu_read_lock();
	s = rcu_dereference(app->snap);
	rc = peer_conf_from(&x->pc, &s->cfg, app->cfg.cluster.ordinal);
	snprintf(x->token_file, sizeof(x->token_file), "%s", s->cfg.sec.admin_token_file);
	rcu_read_unlock();
	pthread_mutex_lock(&app->peers_lock);
	if (!rc && app->peers_resolve) { /* the operator's addresses win over cluster.resolve */
		char *r = strdup(app->peers_resolve);

		if (r) {
			free(x->pc.resolve);
			x->pc.resolve = r;
		} else {
			rc = -ENOMEM;
		}
	}
	pthread_mutex_unlock(&app->peers_lock);
	return rc;
}

/* The admin token (the peers' shared secret) as a heap string, trimmed;
 * NULL when there is none (security.auth none). */
static char *peer_token(const struct fwd_ctx *x)
{
	char *t = NULL;
	size_t len = 0;

	if (!x->token_file[0] || util_read_file(x->token_file, FWD_TOKEN_MAX, &t, &len))
		return NULL;
	while (len && (t[len - 1] == '\n' || t[len - 1] == '\r' || t[len - 1] == ' '))
		t[--len] = '\0';
	return t;
}

static void token_free(char *t)
{
	if (t)
		sodium_memzero(t, strlen(t));
	free(t);
}

int fwd_elsewhere(struct app *app, const char *agent, uint32_t *owner)
{
	const struct snap *s;
	uint32_t replicas;

	rcu_read_lock();
	s = rcu_dereference(app->snap);
	replicas = (uint32_t)s->cfg.cluster.replicas;
	rcu_read_unlock();
	if (replicas <= 1 || !app->peer)
		return 0;
	*owner = own_owner(agent, replicas);
	return *owner != (uint32_t)app->cfg.cluster.ordinal;
}

int fwd_owned_here(struct app *app, const char *agent)
{
	uint32_t owner;

	return !fwd_elsewhere(app, agent, &owner);
}

/* How a forward ended, for the metrics: not answered, refused whole (401,
 * 503: another epoch, not the owner, draining), or answered. */
static enum rmet_fwd fwd_result(long status)
{
	return status == 0 ? RMET_FWD_UNAVAILABLE : status == 401 || status == 503 ? RMET_FWD_REFUSED : RMET_FWD_OK;
}

/* Fail every item of a group with the same answer. */
static void fail_group(struct rt_item *items, const size_t *idx, size_t k, int status, const char *code,
		       const char *message, int retry_after_s)
{
	for (size_t i = 0; i < k; i++) {
		struct rt_item *it = &items[idx[i]];

		it->status = status;
		it->code = code;
		it->reason = status == 503 ? RM_NETWORK_ERROR : RM_INVALID_MESSAGE;
		it->retry_after_s = retry_after_s;
		it->field[0] = '\0';
		snprintf(it->message, sizeof(it->message), "%.199s", message);
	}
}

/* Codes this router may repeat: the owner's, mapped onto static strings
 * (rt_item.code is not owned). */
static const char *known_code(const char *c)
{
	static const char *const codes[] = {
		"InvalidMessage",    "MessageTooLarge",	 "AgentNotFound", "AgentNotAccepting",
		"ResourceExhausted", "StorageError",	 "ShuttingDown",  "RateLimited",
		"Forbidden",	     "Unauthorized",	 "NotOwner",	  "EpochMismatch",
		"QueueFull",	     "ConversationFull", "InFlight",	  "HandoffInProgress"};

	for (size_t i = 0; c && i < sizeof(codes) / sizeof(codes[0]); i++)
		if (strcmp(c, codes[i]) == 0)
			return codes[i];
	return "Internal";
}

/* Copy the owner's per-item results (the batch answer of the peer port)
 * into the group's items.  Returns 0, or -EBADMSG when the answer is not
 * one. */
static int take_results(struct rt_item *items, const size_t *idx, size_t k, const struct peer_resp *r)
{
	json_t *root = json_loadb(r->body.data ? r->body.data : "", r->body.len, 0, NULL), *res, *v;
	int retry = r->retry_after[0] ? (int)strtol(r->retry_after, NULL, 10) : 0, rc = 0;
	size_t i;

	res = json_object_get(root, "results");
	if (!json_is_array(res) || json_array_size(res) != k) {
		json_decref(root);
		return -EBADMSG;
	}
	json_array_foreach (res, i, v) {
		struct rt_item *it = &items[idx[i]];
		const json_t *err = json_object_get(v, "error");

		it->status = (int)json_integer_value(json_object_get(v, "status"));
		it->duplicate = json_is_true(json_object_get(v, "duplicate"));
		if (it->status == 202)
			continue;
		it->code = known_code(json_string_value(json_object_get(err, "code")));
		it->reason = it->status == 503 ? RM_NETWORK_ERROR : RM_INVALID_MESSAGE;
		it->retry_after_s = retry > 0 ? retry : 1;
		snprintf(it->message, sizeof(it->message), "%.199s",
			 json_string_value(json_object_get(err, "message")) ?: "");
		snprintf(it->field, sizeof(it->field), "%.63s", json_string_value(json_object_get(err, "field")) ?: "");
		if (it->status < 200 || it->status > 599)
			rc = -EBADMSG;
	}
	json_decref(root);
	return rc;
}

/* Forward the items `idx` (k of them) to ordinal `owner` and take its
 * answers.  Returns 0 or -ENOMEM. */
static int forward_group(struct app *app, const struct fwd_ctx *x, const char *token, uint32_t owner,
			 struct rt_item *items, const size_t *idx, size_t k)
{
	struct peer_resp r;
	struct buf body;
	char why[300];
	uint64_t t0 = util_mono_ns();
	int rc = 0;

	buf_init(&body, PEER_BODY_LIMIT);
	peer_resp_init(&r);
	for (size_t i = 0; !rc && i < k; i++) {
		rc = buf_append(&body, items[idx[i]].m.body, items[idx[i]].m.body_len);
		if (!rc)
			rc = buf_puts(&body, "\n");
	}
	if (!rc) {
		struct peer_req rq = {.method = "POST",
				      .path = "/peer/v1/messages",
				      .ctype = "application/x-ndjson",
				      .body = body.data,
				      .len = body.len,
				      .token = token,
				      .timeout_ms = x->pc.timeout_ms};

		rc = peer_call(app->peer, &x->pc, owner, &rq, &r);
	}
	if (rc)
		goto out;
	met_observe(app->met.forward_latency, (double)(util_mono_ns() - t0) / 1e9);
	met_inc(app->met.forwards[fwd_result(r.status)]);
	if (r.status == 0) {
		snprintf(why, sizeof(why), "the owner of the receiver cannot be reached: %.200s", r.error);
		fail_group(items, idx, k, 503, "OwnerUnavailable", why, 1);
	} else if (take_results(items, idx, k, &r)) {
		/* a whole-request refusal (401, 503 EpochMismatch): the owner's code */
		json_t *root = json_loadb(r.body.data ? r.body.data : "", r.body.len, 0, NULL);
		const json_t *err = json_object_get(root, "error");

		snprintf(why, sizeof(why), "router %u (the owner): %.200s", owner,
			 json_string_value(json_object_get(err, "message")) ?: "an answer that is not a batch result");
		fail_group(items, idx, k, r.status >= 400 && r.status != 401 ? (int)r.status : 503,
			   err ? known_code(json_string_value(json_object_get(err, "code"))) : "OwnerUnavailable", why,
			   1);
		json_decref(root);
	}
out:
	peer_resp_free(&r);
	buf_free(&body);
	return rc;
}

/* Forward every item marked `forwarded`, one request per owner. */
static int forward_all(struct app *app, const struct fwd_ctx *x, struct rt_item *items, size_t n, const uint32_t *owner)
{
	size_t *idx = calloc(n + 1, sizeof(*idx));
	char *done = calloc(n + 1, 1), *token = peer_token(x);
	int rc = idx && done ? 0 : -ENOMEM;

	for (size_t i = 0; !rc && i < n; i++) {
		size_t k = 0;

		if (done[i] || !items[i].forwarded || items[i].status)
			continue;
		for (size_t j = i; j < n; j++) {
			if (!done[j] && items[j].forwarded && !items[j].status && owner[j] == owner[i]) {
				idx[k++] = j;
				done[j] = 1;
			}
		}
		rc = forward_group(app, x, token, owner[i], items, idx, k);
	}
	token_free(token);
	free(idx);
	free(done);
	return rc;
}

int fwd_submit(struct app *app, struct rt_item *items, size_t n)
{
	struct fwd_ctx x;
	uint32_t *owner = NULL;
	size_t nremote = 0;
	int rc = ctx_get(app, &x);

	if (rc || x.pc.replicas <= 1 || !app->peer) {
		rc = rc ? rc : rt_submit(app->rt, items, n);
		goto out;
	}
	owner = malloc((n + 1) * sizeof(*owner));
	if (!owner) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		owner[i] = own_owner(items[i].m.receiver, x.pc.replicas);
		items[i].forwarded = !items[i].status && owner[i] != x.pc.ordinal;
		nremote += items[i].forwarded;
	}
	if (nremote)
		rt_check_senders(app->rt, items, n);
	rc = rt_submit(app->rt, items, n);
	if (!rc && nremote)
		rc = forward_all(app, &x, items, n, owner);
out:
	free(owner);
	peer_conf_free(&x.pc);
	return rc;
}

int fwd_proxy(struct app *app, uint32_t owner, const char *method, const char *path, const struct buf *body,
	      int64_t extra_ms, struct http_resp *resp)
{
	struct fwd_ctx x;
	struct peer_resp r;
	char *token = NULL, why[300];
	int rc = ctx_get(app, &x);

	peer_resp_init(&r);
	if (!rc) {
		struct peer_req rq = {.method = method,
				      .path = path,
				      .ctype = body ? "application/json" : NULL,
				      .body = body ? body->data : NULL,
				      .len = body ? body->len : 0,
				      .timeout_ms = x.pc.timeout_ms + extra_ms};

		token = peer_token(&x);
		rq.token = token;
		rc = peer_call(app->peer, &x.pc, owner, &rq, &r);
	}
	if (rc)
		goto out;
	met_inc(app->met.forwards[fwd_result(r.status)]);
	if (r.status == 0) {
		snprintf(why, sizeof(why), "the agent's owner (router %u) cannot be reached: %.200s", owner, r.error);
		snprintf(resp->retry_after, sizeof(resp->retry_after), "1");
		rc = http_error(resp, 503, "OwnerUnavailable", why, NULL);
		goto out;
	}
	resp->status = (int)r.status;
	if (r.retry_after[0])
		snprintf(resp->retry_after, sizeof(resp->retry_after), "%s", r.retry_after);
	rc = buf_append(&resp->body, r.body.data ? r.body.data : "", r.body.len);
out:
	token_free(token);
	peer_resp_free(&r);
	peer_conf_free(&x.pc);
	return rc;
}

int fwd_call(struct app *app, uint32_t owner, struct peer_req *rq, struct peer_resp *out)
{
	struct fwd_ctx x;
	char *token = NULL;
	int rc = ctx_get(app, &x);

	if (!rc && !app->peer)
		rc = -EINVAL;
	if (!rc) {
		token = peer_token(&x);
		rq->token = token;
		if (rq->timeout_ms <= 0)
			rq->timeout_ms = x.pc.timeout_ms;
		rc = peer_call(app->peer, &x.pc, owner, rq, out);
		rq->token = NULL;
	}
	token_free(token);
	peer_conf_free(&x.pc);
	return rc;
}

int fwd_peer_admit(struct app *app, struct http_req *req, struct http_resp *resp)
{
	const char *theirs = http_header(req, PEER_EPOCH_HEADER);
	char ours[17], why[160];

	if (!admin_authorized(app, req))
		return http_error(resp, 401, "Unauthorized", "peer requests need the peers' secret (the admin token)",
				  NULL)
			       ? -ENOMEM
			       : 1;
	rcu_read_lock();
	peer_epoch(&rcu_dereference(app->snap)->cfg, ours);
	rcu_read_unlock();
	if (theirs && strcmp(theirs, ours) == 0)
		return 0;
	met_inc(app->met.epoch_mismatches);
	snprintf(why, sizeof(why), "this router's epoch is %s, the request's %.20s: the assignment is changing", ours,
		 theirs ? theirs : "(none)");
	snprintf(resp->retry_after, sizeof(resp->retry_after), "1");
	return http_error(resp, 503, "EpochMismatch", why, NULL) ? -ENOMEM : 1;
}
