/*
 * The admin port: liveness, readiness, Prometheus metrics and status.
 * Served by one polling thread; every handler is quick and non-blocking.
 */
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <urcu-bp.h>

#include "app.h"
#include "handoff.h"
#include "peer.h"
#include "reload.h"
#include "switchboard/log.h"
#include "switchboard/util.h"

static int h_healthz(struct http_req *req, struct http_resp *resp, void *ctx)
{
	(void)req;
	(void)ctx;
	return buf_puts(&resp->body, "{\"status\":\"ok\"}\n");
}

static int h_readyz(struct http_req *req, struct http_resp *resp, void *ctx)
{
	struct app *app = ctx;

	(void)req;
	if (!atomic_load(&app->ready) || rt_is_draining(app->rt)) {
		resp->status = 503;
		return buf_puts(&resp->body, "{\"status\":\"not ready\"}\n");
	}
	return buf_puts(&resp->body, "{\"status\":\"ready\"}\n");
}

static int h_metrics(struct http_req *req, struct http_resp *resp, void *ctx)
{
	struct app *app = ctx;

	(void)req;
	resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
	return met_render(app->met.reg, &resp->body);
}

static int h_status(struct http_req *req, struct http_resp *resp, void *ctx)
{
	struct app *app = ctx;
	struct rt_stats s;
	int64_t now = util_now_ms();
	const struct snap *snap;
	size_t handoffs;
	int rc;

	(void)req;
	rt_get_stats(app->rt, &s);
	/* app->ho is set and cleared under rl.lock; not taken inside the RCU
	 * read section below (a reload holds rl.lock in synchronize_rcu) */
	pthread_mutex_lock(&app->rl.lock);
	handoffs = app->ho ? ho_in_progress(app->ho) : 0;
	pthread_mutex_unlock(&app->rl.lock);
	rcu_read_lock();
	snap = rcu_dereference(app->snap);
	rc = buf_printf(&resp->body,
			"{\"version\":\"%s\",\"config_hash\":\"%s\",\"generation\":%llu,\"profile\":\"%s\","
			"\"uptime_seconds\":%.3f,\"ready\":%s,\"draining\":%s,"
			"\"agents\":%zu,\"queued\":%zu,\"in_flight\":%zu,\"conversations\":%zu",
			SB_VERSION, snap->hash, (unsigned long long)snap->generation,
			cfg_profile_name(snap->cfg.profile), (double)(now - app->started_ms) / 1000.0,
			atomic_load(&app->ready) ? "true" : "false", rt_is_draining(app->rt) ? "true" : "false",
			s.agents, s.queued, s.leased, s.conversations);
	if (!rc) {
		char epoch[17];

		peer_epoch(&snap->cfg, epoch);
		char peers_hash[65];

		pthread_mutex_lock(&app->peers_lock);
		memcpy(peers_hash, app->peers_hash, sizeof(peers_hash));
		pthread_mutex_unlock(&app->peers_lock);
		rc = buf_printf(&resp->body,
				",\"cluster\":{\"ordinal\":%lld,\"replicas\":%lld,\"epoch\":\"%s\",\"handoffs\":%zu,"
				"\"handoff_timeouts\":%llu,\"peers_hash\":\"%s\"}",
				(long long)app->cfg.cluster.ordinal, (long long)snap->cfg.cluster.replicas, epoch,
				handoffs, (unsigned long long)met_counter_get(app->met.handoff_timeouts), peers_hash);
	}
	rcu_read_unlock();
	if (!rc)
		rc = rl_status_json(app, &resp->body);
	if (!rc)
		rc = buf_puts(&resp->body, "}\n");
	return rc;
}

/* 1 when the request carries the admin token from security.adminTokenFile
 * (compared as SHA-256 digests, in constant time), or when security.auth is
 * none.  The token is never logged. */
int admin_authorized(struct app *app, struct http_req *req)
{
	const char *h = http_header(req, "Authorization");
	char *want = NULL;
	size_t wlen = 0;
	unsigned char dw[crypto_hash_sha256_BYTES], dg[crypto_hash_sha256_BYTES];
	int ok = 0;

	if (app->cfg.sec.auth == CFG_AUTH_NONE)
		return 1;
	if (!h || strncmp(h, "Bearer ", 7) != 0 || !app->cfg.sec.admin_token_file[0])
		return 0;
	if (util_read_file(app->cfg.sec.admin_token_file, 4096, &want, &wlen))
		return 0;
	while (wlen && (want[wlen - 1] == '\n' || want[wlen - 1] == '\r' || want[wlen - 1] == ' '))
		wlen--;
	if (wlen) {
		crypto_hash_sha256(dw, (const unsigned char *)want, wlen);
		crypto_hash_sha256(dg, (const unsigned char *)h + 7, strlen(h + 7));
		ok = sodium_memcmp(dw, dg, sizeof(dw)) == 0;
	}
	sodium_memzero(want, wlen);
	free(want);
	return ok;
}

static int h_reload(struct http_req *req, struct http_resp *resp, void *ctx)
{
	struct app *app = ctx;
	int status = 500, rc;

	if (!admin_authorized(app, req)) {
		log_warn("admin request refused", "path", req->path);
		return http_error(resp, 401, "Unauthorized", "send the admin token as 'Authorization: Bearer <token>'",
				  NULL);
	}
	rc = rl_reload(app, req->body.len ? req->body.data : NULL, req->body.len, "admin", &resp->body, &status);
	resp->status = status;
	return rc;
}

/* POST /admin/peers {"resolve":"host:port:address,..."}: where the other
 * replicas are, from the operator (--peer-addresses pod-ip).  Pinned names
 * only: [A-Za-z0-9.:,_-], at most 64 KiB. */
static int h_peers(struct http_req *req, struct http_resp *resp, void *ctx)
{
	struct app *app = ctx;
	json_t *root;
	const char *r;
	char *copy;

	if (!admin_authorized(app, req))
		return http_error(resp, 401, "Unauthorized", "send the admin token as 'Authorization: Bearer <token>'",
				  NULL);
	root = json_loadb(req->body.data ? req->body.data : "", req->body.len, 0, NULL);
	r = json_string_value(json_object_get(root, "resolve"));
	if (!r || strlen(r) > 65536 ||
	    strspn(r, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.:,_-") != strlen(r)) {
		json_decref(root);
		return http_error(resp, 400, "InvalidRequest",
				  "the body must be {\"resolve\":\"host:port:address,...\"} (at most 64 KiB)",
				  "resolve");
	}
	copy = strdup(r);
	json_decref(root);
	if (!copy)
		return -ENOMEM;
	pthread_mutex_lock(&app->peers_lock);
	free(app->peers_resolve);
	app->peers_resolve = copy;
	util_sha256_hex(copy, strlen(copy), app->peers_hash);
	pthread_mutex_unlock(&app->peers_lock);
	resp->status = 200;
	return buf_printf(&resp->body, "{\"peers_hash\":\"%s\"}\n", app->peers_hash);
}

const struct http_route admin_routes[] = {
	{"GET", "/healthz", h_healthz},
	{"GET", "/readyz", h_readyz},
	{"GET", "/metrics", h_metrics},
	{"GET", "/v1/status", h_status},
	{"POST", "/admin/reload", h_reload},
	{"POST", "/admin/peers", h_peers},
	{NULL, NULL, NULL},
};
