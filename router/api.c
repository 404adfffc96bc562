/*
 * The data port's HTTP API: submit messages (single, batch, NDJSON), long
 * poll a mailbox, ack and nack leases, and read agent and conversation
 * state.  Every malformed input is answered with a JSON error naming the
 * field; nothing here can lose an accepted message.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <urcu-bp.h>

#include "a2a.h"
#include "app.h"
#include "fwd.h"
#include "reload.h"
#include "switchboard/log.h"
#include "switchboard/yjson.h"
#include "switchboard/util.h"

/*
 * With security.auth token, the caller proves who it is with
 * "Authorization: Bearer <token>"; only the token's SHA-256 is compared with
 * the agents' configured digests, and the token itself goes nowhere.
 */
int api_bearer_digest(struct app *app, struct http_req *req, char buf[65], const char **digest)
{
	const char *h;

	*digest = NULL;
	if (app->cfg.sec.auth != CFG_AUTH_TOKEN) /* restart-class: the start-up value holds */
		return 0;
	h = http_header(req, "Authorization");
	if (!h || strncmp(h, "Bearer ", 7) != 0 || !h[7])
		return -EACCES;
	util_sha256_hex(h + 7, strlen(h + 7), buf);
	*digest = buf;
	return 0;
}

/* api_bearer_digest(), answering 401 when the token is missing: returns 0,
 * or 1 after writing 401, or -ENOMEM. */
static int caller_digest(struct app *app, struct http_req *req, struct http_resp *resp, char buf[65],
			 const char **digest)
{
	if (!api_bearer_digest(app, req, buf, digest))
		return 0;
	if (http_error(resp, 401, "Unauthorized", "send the agent's token as 'Authorization: Bearer <token>'", NULL))
		return -ENOMEM;
	return 1;
}

static int err_from_rt(struct http_resp *resp, const struct rt_err *e)
{
	if (e->retry_after_s > 0)
		snprintf(resp->retry_after, sizeof(resp->retry_after), "%d", e->retry_after_s);
	return http_error(resp, e->status, e->code, e->message, NULL);
}

struct span {
	const char *p;
	size_t len;
};

static int skip_ws(const struct buf *b, size_t *i)
{
	while (*i < b->len && (b->data[*i] == ' ' || b->data[*i] == '\t' || b->data[*i] == '\n' || b->data[*i] == '\r'))
		(*i)++;
	return *i < b->len;
}

/*
 * Split a JSON request body into the byte spans of its messages: a
 * {"messages":[...]} batch gives one span per element, anything else is one
 * message.  Only structure is checked here; each span is parsed for real
 * by the caller.  Returns 0 with *batch set, 1 after writing a 400/413, or
 * -ENOMEM.
 */
static int split_json(const struct buf *b, struct http_resp *resp, struct span *spans, size_t *n, int *batch)
{
	static const char key[] = "\"messages\"";
	size_t i = 0, s, e;

	*n = 0;
	*batch = 0;
	skip_ws(b, &i);
	if (b->data[i] == '{') {
		i++;
		skip_ws(b, &i);
		if (b->len - i >= sizeof(key) - 1 && memcmp(b->data + i, key, sizeof(key) - 1) == 0) {
			*batch = 1;
			i += sizeof(key) - 1;
		}
	}
	if (!*batch) {
		spans[0].p = b->data;
		spans[0].len = b->len;
		*n = 1;
		return 0;
	}
	if (!skip_ws(b, &i) || b->data[i++] != ':' || !skip_ws(b, &i) || b->data[i++] != '[')
		goto notbatch;
	skip_ws(b, &i);
	if (i < b->len && b->data[i] == ']') {
		i++;
	} else {
		for (;;) {
			if (*n == API_MAX_BATCH)
				return http_error(resp, 413, "PayloadTooLarge",
						  "more than 10000 messages in one request", "messages")
					       ? -ENOMEM
					       : 1;
			if (yj_json_span(b->data + i, b->len - i, &s, &e))
				goto notjson;
			spans[*n].p = b->data + i + s;
			spans[*n].len = e - s;
			(*n)++;
			i += e;
			if (!skip_ws(b, &i))
				goto notjson;
			if (b->data[i] == ']') {
				i++;
				break;
			}
			if (b->data[i++] != ',')
				goto notjson;
		}
	}
	if (!skip_ws(b, &i) || b->data[i++] != '}')
		goto notbatch;
	if (skip_ws(b, &i))
		goto notjson;
	return 0;
notbatch:
	return http_error(resp, 400, "InvalidMessage", "a batch is {\"messages\":[...]} with nothing else", "messages")
		       ? -ENOMEM
		       : 1;
notjson:
	return http_error(resp, 400, "InvalidMessage", "the body is not valid JSON", "(body)") ? -ENOMEM : 1;
}

/* NDJSON: one span per non-empty line. */
static int split_ndjson(const struct buf *b, struct http_resp *resp, struct span *spans, size_t *n)
{
	const char *p = b->data, *end = b->data + b->len;

	*n = 0;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);

		if (len && p[len - 1] == '\r')
			len--;
		if (len) {
			if (*n == API_MAX_BATCH)
				return http_error(resp, 413, "PayloadTooLarge",
						  "more than 10000 messages in one request", "(body)")
					       ? -ENOMEM
					       : 1;
			spans[*n].p = p;
			spans[*n].len = len;
			(*n)++;
		}
		p = nl ? nl + 1 : end;
	}
	return 0;
}

static void item_reject(struct rt_item *it, int status, const char *code, const char *field, const char *message)
{
	it->status = status;
	it->code = code;
	it->reason = status == 413 ? RM_MESSAGE_TOO_LARGE : RM_INVALID_MESSAGE;
	snprintf(it->field, sizeof(it->field), "%s", field);
	snprintf(it->message, sizeof(it->message), "%.199s", message);
}

static int parse_items(struct app *app, struct http_req *req, struct http_resp *resp, struct rt_item **out,
		       size_t *nout, int *batch)
{
	const char *ct = http_header(req, "Content-Type");
	int ndjson = ct && strncmp(ct, "application/x-ndjson", 20) == 0;
	size_t max_content, n = 0;
	struct span *spans = NULL;
	struct rt_item *items = NULL;
	int rc;

	*out = NULL;
	*nout = 0;
	*batch = ndjson;
	rcu_read_lock();
	max_content = (size_t)rcu_dereference(app->snap)->cfg.sec.max_message_bytes;
	rcu_read_unlock();
	if (req->body.len == 0)
		return http_error(resp, 400, "InvalidMessage", "the request body is empty", "(body)") ? -ENOMEM : 1;
	spans = malloc((API_MAX_BATCH + 1) * sizeof(*spans));
	if (!spans)
		return -ENOMEM;
	rc = ndjson ? split_ndjson(&req->body, resp, spans, &n) : split_json(&req->body, resp, spans, &n, batch);
	if (rc)
		goto out;
	if (n == 0) {
		rc = http_error(resp, 400, "InvalidMessage", "the request holds no messages", "messages") ? -ENOMEM : 1;
		goto out;
	}
	items = calloc(n, sizeof(*items));
	if (!items) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		struct msg_err e = {0};
		int mrc = msg_parse(spans[i].p, spans[i].len, max_content, &items[i].m, &e);

		items[i].started_ns = req->started_ns;
		if (mrc == -ENOMEM) {
			rc = -ENOMEM;
			goto out;
		}
		if (mrc == -EBADMSG && ndjson) { /* a broken line fails the whole request, as a stream would */
			char text[260];

			snprintf(text, sizeof(text), "line %zu: %s", i + 1, e.message);
			rc = http_error(resp, 400, "InvalidMessage", text, "(body)") ? -ENOMEM : 1;
			goto out;
		}
		if (mrc)
			item_reject(&items[i], e.status, e.code, e.field, e.message);
	}
	*out = items;
	*nout = n;
	items = NULL;
out:
	if (items) {
		for (size_t i = 0; i < n; i++)
			msg_free(&items[i].m);
		free(items);
	}
	free(spans);
	return rc;
}

static int write_item_error(struct buf *b, const struct rt_item *it)
{
	int rc = buf_puts(b, "{\"code\":");

	if (!rc)
		rc = buf_json_str(b, it->code ? it->code : "Internal");
	if (!rc)
		rc = buf_puts(b, ",\"message\":");
	if (!rc)
		rc = buf_json_str(b, it->message);
	if (!rc && it->field[0]) {
		rc = buf_puts(b, ",\"field\":");
		if (!rc)
			rc = buf_json_str(b, it->field);
	}
	if (!rc)
		rc = buf_puts(b, "}");
	return rc;
}

/* "message_id":...,"duplicate":...; `with_status` adds "status":"accepted"
 * (single submissions; batch items carry a numeric status instead). */
static int write_accepted(struct buf *b, const struct rt_item *it, int with_status)
{
	int rc = buf_puts(b, "\"message_id\":");

	if (!rc)
		rc = buf_json_str(b, it->m.message_id);
	if (!rc && with_status)
		rc = buf_puts(b, ",\"status\":\"accepted\"");
	if (!rc)
		rc = buf_puts(b, it->duplicate ? ",\"duplicate\":true" : ",\"duplicate\":false");
	return rc;
}

/* The batch answer: 202 when every item was accepted, 207 otherwise, with
 * a result per item in order. */
static int write_batch(struct http_resp *resp, const struct rt_item *items, size_t n)
{
	size_t accepted = 0;
	int rc;

	for (size_t i = 0; i < n; i++)
		accepted += items[i].status == 202;
	resp->status = accepted == n ? 202 : 207;
	rc = buf_printf(&resp->body, "{\"accepted\":%zu,\"rejected\":%zu,\"results\":[", accepted, n - accepted);
	for (size_t i = 0; !rc && i < n; i++) {
		rc = buf_puts(&resp->body, i ? ",{\"index\":" : "{\"index\":");
		if (!rc)
			rc = buf_put_u64(&resp->body, i);
		if (!rc)
			rc = buf_puts(&resp->body, ",\"status\":");
		if (!rc)
			rc = buf_put_u64(&resp->body, (uint64_t)items[i].status);
		if (!rc)
			rc = buf_puts(&resp->body, ",");
		if (!rc && items[i].status == 202)
			rc = write_accepted(&resp->body, &items[i], 0);
		else if (!rc)
			rc = buf_puts(&resp->body, "\"error\":");
		if (!rc && items[i].status != 202)
			rc = write_item_error(&resp->body, &items[i]);
		if (!rc)
			rc = buf_puts(&resp->body, "}");
	}
	return rc ? rc : buf_puts(&resp->body, "]}\n");
}

static int h_post_messages(struct http_req *req, struct http_resp *resp, void *ctx)
{
	struct app *app = ctx;
	struct rt_item *items = NULL;
	size_t n = 0, busy = 0;
	int batch = 0, rc, retry = 1;
	char dbuf[65];
	const char *digest;

	rc = caller_digest(app, req, resp, dbuf, &digest);
	if (rc)
		return rc < 0 ? rc : 0;
	if (!rt_caller_known(app->rt, digest)) {
		/* refused before any byte of the body is parsed: counted as one */
		met_inc(app->met.received);
		met_inc(app->met.failed[RM_UNAUTHORIZED]);
		return http_error(resp, 401, "Unauthorized", "the bearer token belongs to no agent", NULL);
	}
	rc = parse_items(app, req, resp, &items, &n, &batch);
	if (rc)
		return rc < 0 ? rc : 0;
	for (size_t i = 0; i < n; i++)
		items[i].auth_digest = digest;
	rc = fwd_submit(app, items, n);
	if (rc)
		goto out;
	for (size_t i = 0; i < n; i++) {
		busy += items[i].status == 429 || items[i].status == 503;
		if (items[i].retry_after_s > retry)
			retry = items[i].retry_after_s;
	}
	if (busy)
		snprintf(resp->retry_after, sizeof(resp->retry_after), "%d", retry);
	if (!batch) {
		if (items[0].status != 202) {
			rc = http_error(resp, items[0].status, items[0].code, items[0].message,
					items[0].field[0] ? items[0].field : NULL);
			goto out;
		}
		resp->status = 202;
		rc = buf_puts(&resp->body, "{");
		if (!rc)
			rc = write_accepted(&resp->body, &items[0], 1);
		if (!rc)
			rc = buf_puts(&resp->body, "}\n");
		goto out;
	}
	rc = write_batch(resp, items, n);
out:
	for (size_t i = 0; i < n; i++)
		msg_free(&items[i].m);
	free(items);
	return rc;
}

static int parse_uint_param(struct http_req *req, const char *key, long long def, long long min, long long max,
			    long long *out)
{
	const char *s = http_query(req, key);
	char *end;
	long long v;

	if (!s) {
		*out = def;
		return 0;
	}
	v = strtoll(s, &end, 10);
	if (end == s || *end || v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

/* ?max and ?wait_ms of a pull, checked against the current limits.
 * Returns 0, 1 after answering 400, or -ENOMEM. */
static int pull_params(struct app *app, struct http_req *req, struct http_resp *resp, long long *max, long long *wait)
{
	long long max_pull, max_wait;
	char msg[160];

	rcu_read_lock();
	max_pull = rcu_dereference(app->snap)->cfg.delivery.max_pull_batch;
	max_wait = rcu_dereference(app->snap)->cfg.delivery.max_wait_ms;
	rcu_read_unlock();
	if (parse_uint_param(req, "max", 10, 1, max_pull, max)) {
		snprintf(msg, sizeof(msg), "max must be an integer from 1 to %lld (delivery.maxPullBatch)", max_pull);
		return http_error(resp, 400, "InvalidRequest", msg, "max") ? -ENOMEM : 1;
	}
	if (parse_uint_param(req, "wait_ms", 0, 0, max_wait, wait)) {
		snprintf(msg, sizeof(msg), "wait_ms must be an integer from 0 to %lld (delivery.maxWaitMs)", max_wait);
		return http_error(resp, 400, "InvalidRequest", msg, "wait_ms") ? -ENOMEM : 1;
	}
	return 0;
}

/* The caller may act as `agent`, which another replica (`owner`) owns:
 * send the request there.  `tail` is what follows /agents/<id>. */
static int to_owner(struct app *app, struct http_req *req, struct http_resp *resp, const char *digest, uint32_t owner,
		    const char *tail, int64_t extra_ms)
{
	struct rt_err e = {0};
	char path[512];

	if (rt_check_caller(app->rt, req->params[0], digest, &e))
		return err_from_rt(resp, &e);
	snprintf(path, sizeof(path), "/peer/v1/agents/%s%s", req->params[0], tail);
	return fwd_proxy(app, owner, req->method, path, strcmp(req->method, "GET") ? &req->body : NULL, extra_ms, resp);
}

static int client_gone(void *arg)
{
	return http_client_gone(arg);
}

/* The reply to a pull is finished: one that did not reach its client puts
 * its lease back now rather than when it expires (decision 59). */
static void pull_done(void *ctx, const char *lease_id, int sent)
{
	struct app *app = ctx;
	size_t n;
	char num[24];

	if (sent)
		return;
	n = rt_lease_release(app->rt, lease_id);
	if (!n)
		return;
	snprintf(num, sizeof(num), "%zu", n);
	log_info("a pull's reply did not reach its client; its messages are back in the queue", "lease_id", lease_id,
		 "n:messages", num);
}

static int pull_here(struct app *app, struct http_req *req, struct http_resp *resp, const char *digest, long long max,
		     long long wait)
{
	struct rt_err e = {0};
	struct rt_watch w = {client_gone, req};
	char lease_id[33];
	int rc = rt_pull(app->rt, req->params[0], digest, (size_t)max, wait, &w, lease_id, &resp->body, &e);

	if (!rc && lease_id[0]) {
		resp->on_done = pull_done;
		snprintf(resp->done_key, sizeof(resp->done_key), "%s", lease_id);
	}
	return rc == -EINVAL ? err_from_rt(resp, &e) : rc;
}

static int h_pull(struct http_req *req, struct http_resp *resp, void *ctx)
{
	struct app *app = ctx;
	long long max, wait;
	char dbuf[65], tail[80];
	const char *digest;
	uint32_t owner;
	int rc;

	rc = caller_digest(app, req, resp, dbuf, &digest);
	if (!rc)
		rc = pull_params(app, req, resp, &max, &wait);
	if (rc)
		return rc < 0 ? rc : 0;
	if (fwd_elsewhere(app, req->params[0], &owner)) {
		if (rt_is_draining(app->rt)) {
			/* this router is going away: a lease taken for a reply it may
			 * never pass on would hold the messages until it expires */
			snprintf(resp->retry_after, sizeof(resp->retry_after), "1");
			return http_error(resp, 503, "ShuttingDown",
					  "this router is shutting down; pull through another replica", NULL);
		}
		snprintf(tail, sizeof(tail), "/messages?max=%lld&wait_ms=%lld", max, wait);
		return to_owner(app, req, resp, digest, owner, tail, wait);
	}
	return pull_here(app, req, resp, digest, max, wait);
}

/* The body of an ack or nack: {"message_ids":[...]}, 1 to API_MAX_BATCH
 * strings.  Returns 0 with *root (new reference), 1 after answering 400,
 * or -ENOMEM. */
static int settle_body(struct http_req *req, struct http_resp *resp, json_t **root)
{
	json_t *ids, *v;
	size_t i;

	*root = json_loadb(req->body.data ? req->body.data : "", req->body.len, 0, NULL);
	ids = json_object_get(*root, "message_ids");
	if (!json_is_object(*root) || !json_is_array(ids) || json_array_size(ids) == 0 ||
	    json_array_size(ids) > API_MAX_BATCH) {
		json_decref(*root);
		*root = NULL;
		return http_error(resp, 400, "InvalidRequest",
				  "the body must be {\"message_ids\":[...]} with 1 to "
				  "10000 message ids",
				  "message_ids")
			       ? -ENOMEM
			       : 1;
	}
	json_array_foreach (ids, i, v) {
		if (!json_is_string(v)) {
			json_decref(*root);
			*root = NULL;
			return http_error(resp, 400, "InvalidRequest", "every message id must be a string",
					  "message_ids")
				       ? -ENOMEM
				       : 1;
		}
	}
	return 0;
}

static int settle_here(struct app *app, struct http_req *req, struct http_resp *resp, const char *digest,
		       const json_t *root, int ack)
{
	struct rt_err e = {0};
	int rc = rt_settle(app->rt, req->params[0], digest, json_object_get(root, "message_ids"), ack, &resp->body, &e);

	return rc == -EINVAL ? err_from_rt(resp, &e) : rc;
}

static int settle(struct http_req *req, struct http_resp *resp, void *ctx, int ack)
{
	struct app *app = ctx;
	json_t *root = NULL;
	char dbuf[65];
	const char *digest;
	uint32_t owner;
	int rc;

	rc = caller_digest(app, req, resp, dbuf, &digest);
	if (!rc)
		rc = settle_body(req, resp, &root);
	if (rc)
		return rc < 0 ? rc : 0;
	if (fwd_elsewhere(app, req->params[0], &owner))
		rc = to_owner(app, req, resp, digest, owner, ack ? "/ack" : "/nack", 0);
	else
		rc = settle_here(app, req, resp, digest, root, ack);
	json_decref(root);
	return rc;
}

static int h_ack(struct http_req *req, struct http_resp *resp, void *ctx)
{
	return settle(req, resp, ctx, 1);
}

static int h_nack(struct http_req *req, struct http_resp *resp, void *ctx)
{
	return settle(req, resp, ctx, 0);
}

/* With token auth the views (agents, conversations) are for callers the
 * router knows: any agent's token or the admin token; 401 otherwise.
 * Returns 0 to go on, 1 after answering, or -ENOMEM. */
static int view_allowed(struct app *app, struct http_req *req, struct http_resp *resp)
{
	char dbuf[65];
	const char *digest;
	int rc;

	if (app->cfg.sec.auth != CFG_AUTH_TOKEN || admin_authorized(app, req))
		return 0;
	rc = caller_digest(app, req, resp, dbuf, &digest);
	if (rc)
		return rc;
	if (rt_caller_known(app->rt, digest))
		return 0;
	return http_error(resp, 401, "Unauthorized", "the bearer token belongs to no agent", NULL) ? -ENOMEM : 1;
}

static int h_agents(struct http_req *req, struct http_resp *resp, void *ctx)
{
	int rc = view_allowed(ctx, req, resp);

	if (rc)
		return rc < 0 ? rc : 0;
	return rt_agents_json(((struct app *)ctx)->rt, &resp->body);
}

static int h_agent(struct http_req *req, struct http_resp *resp, void *ctx)
{
	struct rt_err e = {0};
	int rc = view_allowed(ctx, req, resp);

	if (rc)
		return rc < 0 ? rc : 0;
	rc = rt_agent_json(((struct app *)ctx)->rt, req->params[0], &resp->body, &e);
	return rc == -EINVAL ? err_from_rt(resp, &e) : rc;
}

static int h_conversation(struct http_req *req, struct http_resp *resp, void *ctx)
{
	struct rt_err e = {0};
	int rc = view_allowed(ctx, req, resp);

	if (rc)
		return rc < 0 ? rc : 0;
	rc = rt_conversation_json(((struct app *)ctx)->rt, req->params[0], &resp->body, &e);
	return rc == -EINVAL ? err_from_rt(resp, &e) : rc;
}

static int h_deadletters(struct http_req *req, struct http_resp *resp, void *ctx)
{
	struct app *app = ctx;
	long long limit, after;

	if (!admin_authorized(app, req))
		return http_error(resp, 401, "Unauthorized", "dead letters need the admin token", NULL);
	if (parse_uint_param(req, "limit", 100, 1, 1000, &limit))
		return http_error(resp, 400, "InvalidRequest", "limit must be an integer from 1 to 1000", "limit");
	if (parse_uint_param(req, "after", 0, 0, INT64_MAX, &after))
		return http_error(resp, 400, "InvalidRequest", "after must be a sequence number", "after");
	return rt_deadletters_json(app->rt, http_query(req, "agent"), http_query(req, "reason"), (uint64_t)after,
				   (int)limit, &resp->body);
}

static int h_replay(struct http_req *req, struct http_resp *resp, void *ctx)
{
	struct app *app = ctx;
	json_error_t jerr;
	json_t *root, *seqs, *v;
	uint64_t *list = NULL;
	size_t n = 0, i;
	long long limit = 100;
	int rc;

	if (!admin_authorized(app, req))
		return http_error(resp, 401, "Unauthorized", "replay needs the admin token", NULL);
	root = json_loadb(req->body.data ? req->body.data : "{}", req->body.len ? req->body.len : 2, 0, &jerr);
	if (!json_is_object(root)) {
		json_decref(root);
		return http_error(resp, 400, "InvalidRequest",
				  "the body is {\"seqs\":[...]} or {\"agent\":...,\"reason\":...,\"limit\":N}",
				  "(body)");
	}
	seqs = json_object_get(root, "seqs");
	v = json_object_get(root, "limit");
	if (v && (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 10000)) {
		json_decref(root);
		return http_error(resp, 400, "InvalidRequest", "limit must be an integer from 1 to 10000", "limit");
	}
	if (v)
		limit = json_integer_value(v);
	if (seqs) {
		if (!json_is_array(seqs) || json_array_size(seqs) == 0 || json_array_size(seqs) > 10000) {
			json_decref(root);
			return http_error(resp, 400, "InvalidRequest",
					  "seqs must be an array of 1 to 10000 sequence numbers", "seqs");
		}
		list = calloc(json_array_size(seqs), sizeof(*list));
		if (!list) {
			json_decref(root);
			return -ENOMEM;
		}
		json_array_foreach (seqs, i, v) {
			if (!json_is_integer(v) || json_integer_value(v) < 1) {
				free(list);
				json_decref(root);
				return http_error(resp, 400, "InvalidRequest", "every seq must be a positive integer",
						  "seqs");
			}
			list[n++] = (uint64_t)json_integer_value(v);
		}
	}
	rc = rt_replay(app->rt, json_string_value(json_object_get(root, "agent")),
		       json_string_value(json_object_get(root, "reason")), list, n, (int)limit, &resp->body);
	free(list);
	json_decref(root);
	return rc;
}

/* --- the peer port: requests other replicas forwarded --------------------- */

/* 503 NotOwner: this router does not own `agent` in its epoch (the fence). */
static int not_owner(struct http_resp *resp, const char *agent)
{
	char why[300];

	snprintf(why, sizeof(why), "this router does not own agent \"%.200s\" in its epoch", agent);
	snprintf(resp->retry_after, sizeof(resp->retry_after), "1");
	return http_error(resp, 503, "NotOwner", why, NULL);
}

/* Items another replica checked (sender and token) and forwarded: commit
 * the ones this router owns, refuse the rest, answer per item. */
static int p_post_messages(struct http_req *req, struct http_resp *resp, void *ctx)
{
	struct app *app = ctx;
	struct rt_item *items = NULL;
	size_t n = 0;
	int batch, rc = fwd_peer_admit(app, req, resp);

	if (!rc)
		rc = parse_items(app, req, resp, &items, &n, &batch);
	if (rc)
		return rc < 0 ? rc : 0;
	for (size_t i = 0; i < n; i++) {
		if (!items[i].status && !fwd_owned_here(app, items[i].m.receiver)) {
			item_reject(&items[i], 503, "NotOwner", "receiver",
				    "this router does not own the receiver in its epoch");
			items[i].retry_after_s = 1;
		}
	}
	rc = rt_submit(app->rt, items, n);
	if (!rc)
		rc = write_batch(resp, items, n);
	for (size_t i = 0; i < n; i++)
		msg_free(&items[i].m);
	free(items);
	return rc;
}

/* X-Switchboard-Attempts: the attempts of each handed-off message, in
 * order.  Returns 0, or -EINVAL when it does not list `n` numbers. */
static int handoff_attempts(struct http_req *req, struct rt_item *items, size_t n)
{
	const char *s = http_header(req, "X-Switchboard-Attempts");

	for (size_t i = 0; i < n; i++) {
		char *end;
		unsigned long v;

		if (!s || !*s)
			return -EINVAL;
		v = strtoul(s, &end, 10);
		if (end == s || v > 1000000 || (*end && *end != ','))
			return -EINVAL;
		items[i].attempts = (uint32_t)v;
		s = *end ? end + 1 : end;
	}
	return s && !*s ? 0 : -EINVAL;
}

/* Messages an agent's previous owner hands off (handoff.h): committed here
 * ahead of the agent's hold, with the attempts they had; an item this
 * router does not own in its epoch is refused (the fence). */
static int p_handoff(struct http_req *req, struct http_resp *resp, void *ctx)
{
	struct app *app = ctx;
	struct rt_item *items = NULL;
	size_t n = 0;
	int batch, rc = fwd_peer_admit(app, req, resp);

	if (!rc)
		rc = parse_items(app, req, resp, &items, &n, &batch);
	if (rc)
		return rc < 0 ? rc : 0;
	if (handoff_attempts(req, items, n)) {
		rc = http_error(resp, 400, "InvalidRequest", "X-Switchboard-Attempts must list one count per message",
				NULL);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		items[i].handoff = 1;
		if (!items[i].status && !fwd_owned_here(app, items[i].m.receiver)) {
			item_reject(&items[i], 503, "NotOwner", "receiver",
				    "this router does not own the receiver in its epoch");
			items[i].retry_after_s = 1;
		}
	}
	rc = rt_submit(app->rt, items, n);
	if (!rc)
		rc = write_batch(resp, items, n);
out:
	for (size_t i = 0; i < n; i++)
		msg_free(&items[i].m);
	free(items);
	return rc;
}

/* The previous owner has handed everything of ?agent off: lift its hold. */
static int p_handoff_done(struct http_req *req, struct http_resp *resp, void *ctx)
{
	struct app *app = ctx;
	const char *agent = http_query(req, "agent");
	int rc = fwd_peer_admit(app, req, resp);

	if (rc)
		return rc < 0 ? rc : 0;
	if (!agent || !fwd_owned_here(app, agent))
		return not_owner(resp, agent ? agent : "");
	rt_hold(app->rt, agent, 0);
	resp->status = 200;
	return buf_puts(&resp->body, "{\"released\":true}\n");
}

static int p_pull(struct http_req *req, struct http_resp *resp, void *ctx)
{
	struct app *app = ctx;
	long long max, wait;
	int rc = fwd_peer_admit(app, req, resp);

	if (!rc)
		rc = pull_params(app, req, resp, &max, &wait);
	if (rc)
		return rc < 0 ? rc : 0;
	if (!fwd_owned_here(app, req->params[0]))
		return not_owner(resp, req->params[0]);
	return pull_here(app, req, resp, NULL, max, wait);
}

static int p_settle(struct http_req *req, struct http_resp *resp, void *ctx, int ack)
{
	struct app *app = ctx;
	json_t *root = NULL;
	int rc = fwd_peer_admit(app, req, resp);

	if (!rc)
		rc = settle_body(req, resp, &root);
	if (rc)
		return rc < 0 ? rc : 0;
	rc = fwd_owned_here(app, req->params[0]) ? settle_here(app, req, resp, NULL, root, ack)
						 : not_owner(resp, req->params[0]);
	json_decref(root);
	return rc;
}

static int p_ack(struct http_req *req, struct http_resp *resp, void *ctx)
{
	return p_settle(req, resp, ctx, 1);
}

static int p_nack(struct http_req *req, struct http_resp *resp, void *ctx)
{
	return p_settle(req, resp, ctx, 0);
}

const struct http_route api_peer_routes[] = {
	{"POST", "/peer/v1/messages", p_post_messages}, {"GET", "/peer/v1/agents/{}/messages", p_pull},
	{"POST", "/peer/v1/agents/{}/ack", p_ack},	{"POST", "/peer/v1/agents/{}/nack", p_nack},
	{"POST", "/peer/v1/handoff", p_handoff},	{"POST", "/peer/v1/handoff/done", p_handoff_done},
	{"POST", "/peer/a2a/{}", a2a_peer_rpc},		{NULL, NULL, NULL},
};

const struct http_route api_routes[] = {
	{"POST", "/v1/messages", h_post_messages},
	{"GET", "/v1/agents", h_agents},
	{"GET", "/v1/agents/{}", h_agent},
	{"GET", "/v1/agents/{}/messages", h_pull},
	{"POST", "/v1/agents/{}/ack", h_ack},
	{"POST", "/v1/agents/{}/nack", h_nack},
	{"GET", "/v1/conversations/{}", h_conversation},
	{"GET", "/v1/deadletters", h_deadletters},
	{"POST", "/v1/deadletters/replay", h_replay},
	{"GET", "/a2a/{}/.well-known/agent-card.json", a2a_card},
	{"POST", "/a2a/{}", a2a_rpc},
	{NULL, NULL, NULL},
};
