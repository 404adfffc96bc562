/*
 * The admin port: liveness, readiness, Prometheus metrics and status.
 * Served by one polling thread; every handler is quick and non-blocking.
 */
#include <stdio.h>

#include "app.h"
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
	int rc;

	(void)req;
	rt_get_stats(app->rt, &s);
	rc = buf_printf(&resp->body,
			"{\"version\":\"%s\",\"config_hash\":\"%s\",\"generation\":%llu,\"profile\":\"%s\","
			"\"uptime_seconds\":%.3f,\"ready\":%s,\"draining\":%s,\"restart_required\":false,"
			"\"agents\":%zu,\"queued\":%zu,\"in_flight\":%zu,\"conversations\":%zu}\n",
			SB_VERSION, app->config_hash, (unsigned long long)app->generation,
			cfg_profile_name(app->cfg.profile), (double)(now - app->started_ms) / 1000.0,
			atomic_load(&app->ready) ? "true" : "false", rt_is_draining(app->rt) ? "true" : "false",
			s.agents, s.queued, s.leased, s.conversations);
	return rc;
}

const struct http_route admin_routes[] = {
	{"GET", "/healthz", h_healthz},	 {"GET", "/readyz", h_readyz}, {"GET", "/metrics", h_metrics},
	{"GET", "/v1/status", h_status}, {NULL, NULL, NULL},
};
