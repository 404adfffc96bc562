/*
 * a2a: the A2A face on the HTTP server (docs/a2a.md).  The JSON is a2aj's;
 * this file decides who is asking (the bearer token, as for /v1/messages),
 * which agent is asked (the path), and where the answer comes from: a
 * SendMessage becomes one FIPA-ACL submission through fwd_submit(), so it
 * is validated, rate limited, forwarded to its owner and committed exactly
 * as POST /v1/messages is; GetTask and CancelTask ask the routing core of
 * the agent's owner (here, or over the peer port).  Every answer is a
 * JSON-RPC response, also when it carries an HTTP error status.
 */
#include "a2a.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <urcu-bp.h>

#include "a2aj.h"
#include "app.h"
#include "fwd.h"
#include "peer.h"
#include "reload.h"
#include "switchboard/log.h"
#include "switchboard/util.h"

#define A2A_ANONYMOUS "anonymous"

/* 1 when `agent` is in the running config. */
static int agent_known(struct app *app, const char *agent)
{
	int known;

	rcu_read_lock();
	known = cfg_find_agent(&rcu_dereference(app->snap)->cfg, agent) != NULL;
	rcu_read_unlock();
	return known;
}

static int rmet_method(const struct a2aj_req *rq)
{
	switch (rq ? rq->method : A2AJ_UNKNOWN) {
	case A2AJ_SEND:
		return RMET_A2A_SEND;
	case A2AJ_GET:
		return RMET_A2A_GET;
	case A2AJ_CANCEL:
		return RMET_A2A_CANCEL;
	default:
		return RMET_A2A_OTHER;
	}
}

/* Answer `e` as a JSON-RPC error with its HTTP status. */
static int answer_error(struct app *app, struct http_resp *resp, const struct a2aj_req *rq, const struct a2aj_err *e)
{
	met_inc(app->met.a2a[rmet_method(rq)][1]);
	resp->status = e->http_status;
	buf_reset(&resp->body);
	return a2aj_write_error(&resp->body, rq, e);
}

static int answer_task(struct app *app, struct http_resp *resp, const struct a2aj_req *rq, const char *id,
		       const struct rt_task *t, int for_send)
{
	met_inc(app->met.a2a[rmet_method(rq)][0]);
	resp->status = 200;
	return a2aj_write_task(&resp->body, rq, id, t, for_send, util_now_ms());
}

/* A refusal of the routing core or of msg_parse() (HTTP status, the
 * router's code, its field) as A2A's error. */
static void err_from_status(struct a2aj_err *e, int status, const char *code, const char *field, const char *message)
{
	static const struct {
		int status, code, named; /* named: the field is kept */
	} map[] = {
		{400, A2AJ_INVALID_PARAMS, 1},	{401, A2AJ_UNAUTHORIZED, 0}, {403, A2AJ_FORBIDDEN, 1},
		{404, A2AJ_AGENT_NOT_FOUND, 0}, {413, A2AJ_TOO_LARGE, 1},    {429, A2AJ_UNAVAILABLE, 0},
		{503, A2AJ_UNAVAILABLE, 0},
	};
	const char *f = field && *field ? a2aj_field_of(field) : NULL;

	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		if (map[i].status != status)
			continue;
		/* a 400 is InvalidMessage and the like: the params are wrong */
		a2aj_fail(e, map[i].code, status == 400 ? 200 : status, status == 400 ? "InvalidParams" : code,
			  map[i].named ? f : NULL, "%s", message);
		return;
	}
	a2aj_fail(e, A2AJ_INTERNAL, 500, code ? code : "Internal", NULL, "%s", message);
}

/* --- the agent card --------------------------------------------------------- */

/* 1 when `h` is a plain host (a name, an IPv4 address or a bracketed IPv6
 * address) with an optional numeric port: what a card may name. */
static int host_ok(const char *h)
{
	static const char name[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-";
	size_t n, port;

	if (!h || strlen(h) > 260)
		return 0;
	if (h[0] == '[') {
		n = 1 + strspn(h + 1, "0123456789abcdefABCDEF:.");
		if (n < 3 || h[n] != ']')
			return 0;
		n++;
	} else {
		n = strspn(h, name);
		if (n == 0)
			return 0;
	}
	if (h[n] == '\0')
		return 1;
	port = strspn(h + n + 1, "0123456789");
	return h[n] == ':' && port >= 1 && port <= 5 && h[n + 1 + port] == '\0';
}

static json_t *card_skills(const struct cfg_agent *a)
{
	json_t *skills = json_array();

	for (size_t i = 0; skills && i < a->ncaps; i++) {
		const struct cfg_capability *c = &a->caps[i];
		json_t *s = json_pack("{s:s,s:s,s:s,s:[s]}", "id", c->name, "name", c->name, "description",
				      c->description ? c->description : c->name, "tags", "switchboard");

		if (!s || json_array_append_new(skills, s)) {
			json_decref(skills);
			return NULL;
		}
	}
	return skills;
}

/* The card's security: a bearer scheme with token auth (1.0's shape). */
static int card_security(json_t *card)
{
	json_t *schemes = json_pack("{s:{s:{s:s}}}", "bearer", "httpAuthSecurityScheme", "scheme", "Bearer");
	json_t *reqs = json_pack("[{s:{s:{}}}]", "schemes", "bearer");

	if (json_object_set_new(card, "securitySchemes", schemes) ||
	    json_object_set_new(card, "securityRequirements", reqs))
		return -ENOMEM;
	return 0;
}

/* The card of `a` whose JSON-RPC endpoint is `url`.  1.0's fields, with
 * 0.3's connection fields beside them for 0.3 clients (1.0 readers drop
 * them when supportedInterfaces is there). */
static json_t *card_json(const struct cfg_agent *a, const char *url, int token_auth)
{
	char desc[300];
	json_t *card;

	snprintf(desc, sizeof(desc), "Switchboard agent %s", a->id);
	card = json_pack("{s:s,s:s,s:s,s:[{s:s,s:s,s:s},{s:s,s:s,s:s}],s:{s:b,s:b},s:[s,s],s:[s,s],s:o*,"
			 "s:s,s:s,s:s}",
			 "name", a->id, "description", desc, "version", SB_VERSION, "supportedInterfaces", "url", url,
			 "protocolBinding", "JSONRPC", "protocolVersion", "1.0", "url", url, "protocolBinding",
			 "JSONRPC", "protocolVersion", "0.3", "capabilities", "streaming", 0, "pushNotifications", 0,
			 "defaultInputModes", "text/plain", "application/json", "defaultOutputModes", "text/plain",
			 "application/json", "skills", card_skills(a), "url", url, "preferredTransport", "JSONRPC",
			 "protocolVersion", "0.3.0");
	if (card && (!json_object_get(card, "skills") || (token_auth && card_security(card)))) {
		json_decref(card);
		return NULL;
	}
	return card;
}

int a2a_card(struct http_req *req, struct http_resp *resp, void *ctx)
{
	struct app *app = ctx;
	const char *host = http_header(req, "Host");
	const struct cfg_agent *a;
	char url[600], *text = NULL;
	json_t *card = NULL;
	int rc;

	snprintf(url, sizeof(url), "%s://%s/a2a/%s", app->cfg.sec.tls_enabled ? "https" : "http",
		 host_ok(host) ? host : "127.0.0.1", req->params[0]);
	if (!host_ok(host)) /* the port this request reached */
		snprintf(url, sizeof(url), "%s://127.0.0.1:%lld/a2a/%s", app->cfg.sec.tls_enabled ? "https" : "http",
			 (long long)app->cfg.net.data_port, req->params[0]);
	rcu_read_lock();
	a = cfg_find_agent(&rcu_dereference(app->snap)->cfg, req->params[0]);
	if (a)
		card = card_json(a, url, app->cfg.sec.auth == CFG_AUTH_TOKEN);
	rcu_read_unlock();
	if (!a) {
		met_inc(app->met.a2a[RMET_A2A_CARD][1]);
		return http_error(resp, 404, "AgentNotFound", "no agent has this id", NULL);
	}
	text = card ? json_dumps(card, JSON_COMPACT) : NULL;
	rc = text ? buf_puts(&resp->body, text) : -ENOMEM;
	if (!rc) {
		met_inc(app->met.a2a[RMET_A2A_CARD][0]);
		resp->status = 200;
	}
	free(text);
	json_decref(card);
	return rc;
}

/* --- SendMessage -------------------------------------------------------------- */

/* The FIPA-ACL sender: metadata.sender, else the token's agent, else
 * "anonymous" (auth off).  A metadata.sender that is not the token's agent
 * is refused by the routing core (403), as on /v1/messages. */
static const char *send_sender(struct app *app, const struct a2aj_send *s, const char *digest,
			       char buf[MSG_AGENT_ID_MAX + 1])
{
	if (s->sender)
		return s->sender;
	if (digest && !rt_agent_for_token(app->rt, digest, buf))
		return buf;
	return A2A_ANONYMOUS;
}

/* The routing core's item for `s`, validated by msg_parse() as any
 * submission is.  Returns 0, -EINVAL with `e` filled, or -ENOMEM. */
static int send_item(struct app *app, struct http_req *req, const struct a2aj_send *s, const char *digest,
		     struct rt_item *it, struct a2aj_err *e)
{
	const char *key = http_header(req, "Idempotency-Key"), *sender;
	char conv[MSG_ID_MAX + 1], who[MSG_AGENT_ID_MAX + 1], rnd[33];
	struct msg_err me = {0};
	struct buf fipa;
	size_t max_content;
	int rc;

	if (key && (!*key || strlen(key) > MSG_ID_MAX))
		return a2aj_fail(e, A2AJ_INVALID_PARAMS, 200, "InvalidParams", "Idempotency-Key",
				 "the Idempotency-Key header must hold 1 to 128 characters");
	if (s->context_id) {
		snprintf(conv, sizeof(conv), "%s", s->context_id);
	} else {
		util_random_id(rnd);
		snprintf(conv, sizeof(conv), "ctx-%s", rnd);
	}
	if (s->context_id && strlen(s->context_id) > MSG_ID_MAX)
		return a2aj_fail(e, A2AJ_INVALID_PARAMS, 200, "InvalidParams", "params.message.contextId",
				 "params.message.contextId must hold at most 128 characters");
	sender = send_sender(app, s, digest, who);
	rcu_read_lock();
	max_content = (size_t)rcu_dereference(app->snap)->cfg.sec.max_message_bytes;
	rcu_read_unlock();
	buf_init(&fipa, app->cfg.sec.max_request_bytes + 65536);
	rc = a2aj_to_fipa(s, req->params[0], sender, key ? key : s->message_id, conv, http_header(req, "traceparent"),
			  &fipa);
	if (rc == -E2BIG) {
		rc = a2aj_fail(e, A2AJ_TOO_LARGE, 413, "MessageTooLarge", "params.message.parts",
			       "the message is larger than security.maxRequestBytes");
		goto out;
	}
	if (rc)
		goto out;
	rc = msg_parse(fipa.data, fipa.len, max_content, &it->m, &me);
	if (rc == -EINVAL || rc == -EBADMSG) {
		err_from_status(e, me.status, me.code, me.field, me.message);
		rc = -EINVAL;
	}
	it->started_ns = req->started_ns;
	it->auth_digest = digest;
out:
	buf_free(&fipa);
	return rc;
}

/* The Task a SendMessage answers: submitted, or a duplicate's current
 * state when its owner is this router. */
static int send_answer(struct app *app, struct http_resp *resp, const struct a2aj_req *rq, const struct rt_item *it)
{
	struct rt_task t = {.state = RT_TASK_SUBMITTED, .updated_ms = it->m.created_ms};
	uint32_t owner;

	snprintf(t.conversation_id, sizeof(t.conversation_id), "%s", it->m.conversation_id);
	if (it->duplicate && !fwd_elsewhere(app, it->m.receiver, &owner)) {
		struct rt_task cur;

		if (!rt_task_get(app->rt, it->m.receiver, it->m.message_id, &cur) && cur.state != RT_TASK_UNKNOWN) {
			if (!cur.conversation_id[0])
				snprintf(cur.conversation_id, sizeof(cur.conversation_id), "%s", t.conversation_id);
			t = cur;
		}
	}
	return answer_task(app, resp, rq, it->m.message_id, &t, 1);
}

static int do_send(struct app *app, struct http_req *req, struct http_resp *resp, const struct a2aj_req *rq,
		   const char *digest)
{
	struct a2aj_send s;
	struct a2aj_err e;
	struct rt_item it;
	int rc;

	memset(&it, 0, sizeof(it));
	rc = a2aj_send_read(rq, &s, &e);
	if (!rc)
		rc = send_item(app, req, &s, digest, &it, &e);
	if (rc == -EINVAL) {
		rc = answer_error(app, resp, rq, &e);
		goto out;
	}
	if (rc)
		goto out;
	rc = fwd_submit(app, &it, 1);
	if (rc)
		goto out;
	if (it.status != 202) {
		if (it.retry_after_s > 0)
			snprintf(resp->retry_after, sizeof(resp->retry_after), "%d", it.retry_after_s);
		err_from_status(&e, it.status, it.code, it.field, it.message);
		rc = answer_error(app, resp, rq, &e);
		goto out;
	}
	rc = send_answer(app, resp, rq, &it);
out:
	msg_free(&it.m);
	a2aj_send_free(&s);
	return rc;
}

/* --- GetTask and CancelTask ----------------------------------------------------- */

static int task_here(struct app *app, struct http_resp *resp, const struct a2aj_req *rq, const char *agent,
		     const char *digest)
{
	const char *id;
	struct rt_task t;
	struct a2aj_err e;
	int rc;

	id = a2aj_task_id(rq, &e);
	if (!id)
		return answer_error(app, resp, rq, &e);
	memset(&t, 0, sizeof(t));
	rc = rq->method == A2AJ_GET ? rt_task_get(app->rt, agent, id, &t)
				    : rt_task_cancel(app->rt, agent, id, digest, &t);
	if (rc == 0 && t.state != RT_TASK_UNKNOWN)
		return answer_task(app, resp, rq, id, &t, 0);
	if (rc == 0 || rc == -ENOENT)
		a2aj_fail(&e, A2AJ_TASK_NOT_FOUND, 200, "TASK_NOT_FOUND", "params.id",
			  "no task \"%.128s\" for agent \"%s\" (or it settled before delivery.dedupWindowMs)", id,
			  agent);
	else if (rc == -EBUSY || rc == -EALREADY)
		a2aj_fail(&e, A2AJ_TASK_NOT_CANCELABLE, 200, "TASK_NOT_CANCELABLE", "params.id",
			  "the task is %s; only a queued message can be cancelled",
			  rc == -EBUSY ? "being delivered" : "finished");
	else if (rc == -EPERM)
		a2aj_fail(&e, A2AJ_FORBIDDEN, 403, "Forbidden", NULL, "only the message's sender may cancel it");
	else if (rc == -ENOMEM)
		return rc;
	else
		a2aj_fail(&e, A2AJ_INTERNAL, 500, "StorageError", NULL, "the task could not be read or changed");
	return answer_error(app, resp, rq, &e);
}

/* Ask the agent's owner (ordinal `owner`) over the peer port, with the
 * caller's token digest ("-": auth off) and the request's A2A version. */
static int task_at_owner(struct app *app, struct http_req *req, struct http_resp *resp, const struct a2aj_req *rq,
			 uint32_t owner, const char *digest)
{
	char path[400], hdr[64];
	struct peer_req prq = {.method = "POST",
			       .ctype = "application/json",
			       .body = req->body.data,
			       .len = req->body.len,
			       .path = path};
	struct peer_resp r;
	struct a2aj_err e;
	int rc;

	snprintf(path, sizeof(path), "/peer/a2a/%s?caller=%s", req->params[0], digest ? digest : "-");
	snprintf(hdr, sizeof(hdr), "A2A-Version: %s", rq->version == A2AJ_V03 ? "0.3" : "1.0");
	prq.header = hdr;
	peer_resp_init(&r);
	rc = fwd_call(app, owner, &prq, &r);
	if (!rc && r.status == 0) {
		snprintf(resp->retry_after, sizeof(resp->retry_after), "1");
		a2aj_fail(&e, A2AJ_UNAVAILABLE, 503, "OwnerUnavailable", NULL,
			  "the agent's owner (router %u) cannot be reached", owner);
		rc = answer_error(app, resp, rq, &e);
	} else if (!rc) {
		met_inc(app->met.a2a[rmet_method(rq)][r.status != 200]);
		resp->status = (int)r.status;
		if (r.retry_after[0])
			snprintf(resp->retry_after, sizeof(resp->retry_after), "%s", r.retry_after);
		rc = buf_append(&resp->body, r.body.data ? r.body.data : "", r.body.len);
	}
	peer_resp_free(&r);
	return rc;
}

/* --- the endpoints ------------------------------------------------------------------ */

/* Parse the request and check the agent.  Returns 0 to go on, 1 after
 * answering, or -ENOMEM. */
static int rpc_begin(struct app *app, struct http_req *req, struct http_resp *resp, struct a2aj_req *rq)
{
	struct a2aj_err e;
	int rc = a2aj_parse(req->body.data, req->body.len, http_header(req, "A2A-Version"), rq, &e);

	if (rc == -EINVAL)
		return answer_error(app, resp, rq, &e) ? -ENOMEM : 1;
	if (rc)
		return rc;
	if (!agent_known(app, req->params[0])) {
		a2aj_fail(&e, A2AJ_AGENT_NOT_FOUND, 404, "AgentNotFound", NULL, "no agent \"%s\" is configured",
			  req->params[0]);
		return answer_error(app, resp, rq, &e) ? -ENOMEM : 1;
	}
	return 0;
}

/* With token auth the caller must hold some agent's token: 401 before the
 * body is read, as on /v1/messages.  Returns 0, 1 after answering, -ENOMEM. */
static int rpc_caller(struct app *app, struct http_req *req, struct http_resp *resp, char buf[65], const char **digest)
{
	struct a2aj_err e;

	if (api_bearer_digest(app, req, buf, digest))
		a2aj_fail(&e, A2AJ_UNAUTHORIZED, 401, "Unauthorized", NULL,
			  "send an agent's token as 'Authorization: Bearer <token>'");
	else if (!rt_caller_known(app->rt, *digest))
		a2aj_fail(&e, A2AJ_UNAUTHORIZED, 401, "Unauthorized", NULL, "the bearer token belongs to no agent");
	else
		return 0;
	return answer_error(app, resp, NULL, &e) ? -ENOMEM : 1;
}

int a2a_rpc(struct http_req *req, struct http_resp *resp, void *ctx)
{
	struct app *app = ctx;
	struct a2aj_req rq;
	char dbuf[65];
	const char *digest = NULL;
	uint32_t owner;
	int rc;

	memset(&rq, 0, sizeof(rq));
	rc = rpc_caller(app, req, resp, dbuf, &digest);
	if (!rc)
		rc = rpc_begin(app, req, resp, &rq);
	if (rc)
		goto out;
	if (rq.method == A2AJ_SEND)
		rc = do_send(app, req, resp, &rq, digest);
	else if (fwd_elsewhere(app, req->params[0], &owner))
		rc = task_at_owner(app, req, resp, &rq, owner, digest);
	else
		rc = task_here(app, resp, &rq, req->params[0], digest);
out:
	a2aj_req_free(&rq);
	return rc < 0 ? rc : 0;
}

/* ?caller: the 64 hex digits of the caller's token digest, or "-". */
static int peer_caller(struct http_req *req, const char **digest)
{
	const char *c = http_query(req, "caller");

	*digest = NULL;
	if (!c)
		return -EINVAL;
	if (strcmp(c, "-") == 0)
		return 0;
	if (strlen(c) != 64 || strspn(c, "0123456789abcdef") != 64)
		return -EINVAL;
	*digest = c;
	return 0;
}

int a2a_peer_rpc(struct http_req *req, struct http_resp *resp, void *ctx)
{
	struct app *app = ctx;
	struct a2aj_req rq;
	struct a2aj_err e;
	const char *digest;
	int rc = fwd_peer_admit(app, req, resp);

	memset(&rq, 0, sizeof(rq));
	if (!rc && peer_caller(req, &digest))
		rc = http_error(resp, 400, "InvalidRequest", "caller must be a token digest or -", "caller") ? -ENOMEM
													     : 1;
	if (!rc)
		rc = rpc_begin(app, req, resp, &rq);
	if (rc)
		goto out;
	if (rq.method == A2AJ_SEND) {
		a2aj_fail(&e, A2AJ_METHOD_NOT_FOUND, 200, "MethodNotFound", "method",
			  "messages reach their owner as submissions, not here");
		rc = answer_error(app, resp, &rq, &e);
	} else if (!fwd_owned_here(app, req->params[0])) {
		snprintf(resp->retry_after, sizeof(resp->retry_after), "1");
		a2aj_fail(&e, A2AJ_UNAVAILABLE, 503, "NotOwner", NULL,
			  "this router does not own agent \"%s\" in its epoch", req->params[0]);
		rc = answer_error(app, resp, &rq, &e);
	} else {
		rc = task_here(app, resp, &rq, req->params[0], digest);
	}
out:
	a2aj_req_free(&rq);
	return rc < 0 ? rc : 0;
}

/* --- replies of A2A agents (the push engine's hook) ----------------------------- */

int a2a_route_reply(void *ctx, const struct push_reply *r)
{
	struct app *app = ctx;
	struct a2aj_send s = *r->reply; /* the parts are borrowed, never freed here */
	struct msg_err me = {0};
	struct rt_item it;
	struct buf fipa;
	char conv[MSG_ID_MAX + 1], rnd[33];
	int rc;

	memset(&it, 0, sizeof(it));
	s.in_reply_to = r->in_reply_to;
	if (!s.performative)
		s.performative = "inform";
	if (r->conversation)
		snprintf(conv, sizeof(conv), "%s", r->conversation);
	else if (s.context_id)
		snprintf(conv, sizeof(conv), "%s", s.context_id);
	else {
		util_random_id(rnd);
		snprintf(conv, sizeof(conv), "ctx-%s", rnd);
	}
	buf_init(&fipa, app->cfg.sec.max_request_bytes + 65536);
	rc = a2aj_to_fipa(&s, r->to, r->agent, s.message_id, conv, NULL, &fipa);
	if (!rc)
		rc = msg_parse(fipa.data, fipa.len, app->cfg.sec.max_message_bytes, &it.m, &me);
	if (!rc) {
		it.started_ns = util_mono_ns();
		rc = fwd_submit(app, &it, 1);
	}
	if (rc == -ENOMEM)
		goto out;
	if (rc || it.status != 202) {
		log_warn("an A2A agent's reply was not routed", "agent_id", r->agent, "to", r->to, "in_reply_to",
			 r->in_reply_to, "detail", rc ? me.message : it.message);
		rc = !rc && (it.status == 429 || it.status == 503) ? -EAGAIN : 0;
	}
out:
	msg_free(&it.m);
	buf_free(&fipa);
	return rc;
}
