/*
 * Semantic validation of a configuration: the range of every numeric
 * field, string lengths, and the relationship rules between fields (queue
 * against batch, threads against cores, timeouts against each other,
 * estimated memory against the limit, agent identity, delivery and
 * security rules).  Every problem is reported with its field path; errors
 * and warnings are kept apart.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cfg_table.h"
#include "switchboard/cfg.h"
#include "switchboard/util.h"

#define REPORT_MAX 1000

void cfg_report_init(struct cfg_report *r)
{
	memset(r, 0, sizeof(*r));
}

void cfg_report_free(struct cfg_report *r)
{
	free(r->items);
	memset(r, 0, sizeof(*r));
}

void cfg_report_add(struct cfg_report *r, int severity, const char *path, const char *fmt, ...)
{
	struct cfg_issue *it;
	va_list ap;

	if (severity == CFG_ERROR)
		r->errors++;
	else
		r->warnings++;
	if (r->n >= REPORT_MAX)
		return;
	if (r->n == r->cap) {
		size_t ncap = r->cap ? r->cap * 2 : 16;
		struct cfg_issue *p = realloc(r->items, ncap * sizeof(*p));

		if (!p)
			return;
		r->items = p;
		r->cap = ncap;
	}
	it = &r->items[r->n++];
	it->severity = severity;
	snprintf(it->path, sizeof(it->path), "%s", path);
	va_start(ap, fmt);
	vsnprintf(it->msg, sizeof(it->msg), fmt, ap);
	va_end(ap);
}

int cfg_report_text(const struct cfg_report *r, struct buf *out)
{
	int rc = 0;

	for (size_t i = 0; !rc && i < r->n; i++)
		rc = buf_printf(out, "%s: %s: %s\n", r->items[i].severity == CFG_ERROR ? "error" : "warning",
				r->items[i].path, r->items[i].msg);
	if (!rc && r->errors + r->warnings > r->n)
		rc = buf_printf(out, "(%zu more not listed)\n", r->errors + r->warnings - r->n);
	return rc;
}

json_t *cfg_report_json(const struct cfg_report *r)
{
	json_t *arr = json_array();

	for (size_t i = 0; arr && i < r->n; i++) {
		json_t *o =
			json_pack("{s:s,s:s,s:s}", "severity", r->items[i].severity == CFG_ERROR ? "error" : "warning",
				  "field", r->items[i].path, "message", r->items[i].msg);

		if (!o || json_array_append_new(arr, o)) {
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

void cfg_check_ranges(const struct cfg_field *tab, size_t n, const void *base, const char *prefix, struct cfg_report *r)
{
	for (size_t i = 0; i < n; i++) {
		const struct cfg_field *f = &tab[i];
		char path[200];

		snprintf(path, sizeof(path), "%s%s%s", prefix, *prefix ? "." : "", f->path);
		if (f->type == F_INT || f->type == F_BYTES) {
			int64_t v = CFG_I64(base, f);

			if ((double)v < f->min || (double)v > f->max)
				cfg_report_add(r, CFG_ERROR, path, "%lld is out of range [%.0f, %.0f]", (long long)v,
					       f->min, f->max);
		} else if (f->type == F_DOUBLE) {
			double v = CFG_DBL(base, f);

			if (!(v >= f->min && v <= f->max))
				cfg_report_add(r, CFG_ERROR, path, "%g is out of range [%g, %g]", v, f->min, f->max);
		} else if (f->type == F_STR && CFG_STR(base, f)) {
			size_t l = strlen(CFG_STR(base, f));

			if ((double)l > f->max || (l > 0 && (double)l < f->min))
				cfg_report_add(r, CFG_ERROR, path, "length %zu is out of range [%.0f, %.0f]", l, f->min,
					       f->max);
		}
	}
}

int64_t cfg_estimate_memory(const struct cfg *c)
{
	int64_t msg = c->perf.estimated_message_bytes + 256; /* bookkeeping per message */
	int64_t queued = c->perf.inbound_queue_size;

	for (size_t i = 0; i < c->nagents; i++)
		queued += c->agents[i].queue_size ? c->agents[i].queue_size : c->perf.agent_queue_size;
	return (int64_t)(32 << 20)			       /* code, SQLite page cache, buffers */
	       + queued * msg				       /* queued messages held in memory */
	       + c->net.max_connections * (256 << 10)	       /* per-connection thread stacks */
	       + c->delivery.connection_pool_size * (64 << 10) /* push connections */
	       + (int64_t)c->nagents * 2048		       /* registry entries */
	       + c->conv.max_active / 64 * 512;		       /* conversations actually active: 1/64 */
}

int cfg_agent_id_ok(const char *s)
{
	size_t n = 0;

	if (!s || !*s)
		return 0;
	for (const char *p = s; *p; p++, n++) {
		int ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
			 (p != s && (*p == '.' || *p == '_' || *p == '-'));

		if (!ok)
			return 0;
	}
	return n <= 253;
}

static void validate_agent(const struct cfg *c, size_t idx, struct cfg_report *r)
{
	const struct cfg_agent *a = &c->agents[idx];
	char p[64], fp[128];

	snprintf(p, sizeof(p), "agents[%zu]", idx);
	cfg_check_ranges(cfg_agent_fields, cfg_agent_nfields, a, p, r);
	snprintf(fp, sizeof(fp), "%s.id", p);
	if (!cfg_agent_id_ok(a->id))
		cfg_report_add(r, CFG_ERROR, fp,
			       "agent id must start with a letter or digit and contain only letters, digits, '.', '_' "
			       "and '-'");
	for (size_t j = 0; j < idx; j++)
		if (a->id && c->agents[j].id && strcmp(a->id, c->agents[j].id) == 0)
			cfg_report_add(r, CFG_ERROR, fp, "duplicate agent id \"%s\" (also agents[%zu])", a->id, j);
	snprintf(fp, sizeof(fp), "%s.endpoint", p);
	if (a->mode == CFG_MODE_PUSH) {
		if (!a->endpoint ||
		    (strncmp(a->endpoint, "http://", 7) != 0 && strncmp(a->endpoint, "https://", 8) != 0))
			cfg_report_add(r, CFG_ERROR, fp, "push mode requires an http:// or https:// endpoint");
	} else if (a->endpoint && *a->endpoint) {
		cfg_report_add(r, CFG_ERROR, fp, "pull mode agents must not set an endpoint");
	}
	snprintf(fp, sizeof(fp), "%s.protocol", p);
	if (a->protocol == CFG_PROTO_A2A && a->mode != CFG_MODE_PUSH)
		cfg_report_add(r, CFG_ERROR, fp,
			       "a2a requires mode: push (the router calls the agent's endpoint; a pull agent reads "
			       "its mailbox and has none)");
	snprintf(fp, sizeof(fp), "%s.tokenSha256", p);
	if (a->token_sha256 && *a->token_sha256 && !util_is_lower_hex(a->token_sha256, 64))
		cfg_report_add(r, CFG_ERROR, fp, "must be 64 lowercase hex characters (a SHA-256 digest)");
	if (c->sec.auth == CFG_AUTH_TOKEN && (!a->token_sha256 || !*a->token_sha256))
		cfg_report_add(r, CFG_ERROR, fp, "security.auth is token, so every agent needs a token digest");
	snprintf(fp, sizeof(fp), "%s.rateLimit.burst", p);
	if (a->rate_per_sec > 0 && a->rate_burst < 1)
		cfg_report_add(r, CFG_ERROR, fp, "must be at least 1 when rateLimit.messagesPerSecond is set");
	for (size_t k = 0; k < a->ncaps; k++) {
		snprintf(fp, sizeof(fp), "%s.capabilities[%zu]", p, k);
		if (!a->caps[k].name || !*a->caps[k].name || strlen(a->caps[k].name) > 100)
			cfg_report_add(r, CFG_ERROR, fp, "name must be 1 to 100 characters");
		if (a->caps[k].description && strlen(a->caps[k].description) > 1000)
			cfg_report_add(r, CFG_ERROR, fp, "description must be at most 1000 characters");
	}
}

/* The rules across fields; they assume every field is within its range. */
static void check_across(const struct cfg *c, long cores, struct cfg_report *r)
{
	int64_t est;

	if (c->perf.inbound_queue_size < 2 * c->perf.batch_size)
		cfg_report_add(r, CFG_ERROR, "performance.inboundQueueSize",
			       "must be at least 2x performance.batchSize (%lld < 2 x %lld)",
			       (long long)c->perf.inbound_queue_size, (long long)c->perf.batch_size);
	if (c->perf.worker_threads > 2 * cores)
		cfg_report_add(r, CFG_WARNING, "performance.workerThreads",
			       "%lld threads exceed 2x the %ld available cores; expect contention",
			       (long long)c->perf.worker_threads, cores);
	if (c->perf.processing_timeout_ms >= c->perf.message_timeout_ms)
		cfg_report_add(r, CFG_ERROR, "performance.processingTimeoutMs",
			       "must be less than performance.messageTimeoutMs (%lld >= %lld)",
			       (long long)c->perf.processing_timeout_ms, (long long)c->perf.message_timeout_ms);
	if (c->delivery.connection_timeout_ms > c->delivery.request_timeout_ms)
		cfg_report_add(r, CFG_ERROR, "delivery.connectionTimeoutMs",
			       "must not exceed delivery.requestTimeoutMs (%lld > %lld)",
			       (long long)c->delivery.connection_timeout_ms, (long long)c->delivery.request_timeout_ms);
	if (c->delivery.request_timeout_ms > c->perf.message_timeout_ms)
		cfg_report_add(r, CFG_WARNING, "delivery.requestTimeoutMs",
			       "exceeds performance.messageTimeoutMs; a single attempt can outlive the message");
	if (c->delivery.retry_max_delay_ms < c->delivery.base_retry_delay_ms)
		cfg_report_add(r, CFG_ERROR, "delivery.retryMaxDelayMs",
			       "must be at least delivery.baseRetryDelayMs (%lld < %lld)",
			       (long long)c->delivery.retry_max_delay_ms, (long long)c->delivery.base_retry_delay_ms);
	if (c->conv.timeout_ms < c->perf.message_timeout_ms)
		cfg_report_add(r, CFG_WARNING, "conversation.timeoutMs",
			       "is shorter than performance.messageTimeoutMs; conversations may expire mid-exchange");
	if (c->delivery.max_wait_ms >= c->delivery.lease_timeout_ms * 10)
		cfg_report_add(r, CFG_WARNING, "delivery.maxWaitMs",
			       "long polls far longer than the lease timeout hold connections idle");
	if (c->shutdown.timeout_ms < c->storage.busy_timeout_ms)
		cfg_report_add(r, CFG_WARNING, "shutdown.timeoutMs",
			       "is shorter than storage.busyTimeoutMs; a busy database may not close cleanly");
	if (c->sec.max_request_bytes < c->sec.max_message_bytes)
		cfg_report_add(r, CFG_ERROR, "security.maxRequestBytes",
			       "must be at least security.maxMessageBytes (%lld < %lld)",
			       (long long)c->sec.max_request_bytes, (long long)c->sec.max_message_bytes);
	if (c->cluster.replicas > 1 && !strstr(c->cluster.peer_host, "{ordinal}"))
		cfg_report_add(r, CFG_ERROR, "cluster.peerHost",
			       "must name the peers with {ordinal} when cluster.replicas is above 1");
	if (c->net.max_per_address >= c->net.max_connections)
		cfg_report_add(r, CFG_WARNING, "network.maxConnectionsPerAddress",
			       "is not below network.maxConnections (%lld >= %lld): one client address can take every "
			       "data connection",
			       (long long)c->net.max_per_address, (long long)c->net.max_connections);
	if (c->net.peer_port != 0 && (c->net.peer_port == c->net.data_port || c->net.peer_port == c->net.admin_port))
		cfg_report_add(r, CFG_ERROR, "network.peerPort", "must differ from network.dataPort and adminPort");
	if (c->net.data_port == c->net.admin_port && c->net.data_port != 0)
		cfg_report_add(r, CFG_ERROR, "network.adminPort", "must differ from network.dataPort (%lld)",
			       (long long)c->net.data_port);
	if (c->sec.auth == CFG_AUTH_TOKEN && (!c->sec.admin_token_file || !*c->sec.admin_token_file))
		cfg_report_add(r, CFG_ERROR, "security.adminTokenFile",
			       "security.auth is token, so an admin token file is required");
	if (c->sec.auth == CFG_AUTH_NONE && c->profile != CFG_PROFILE_DEVELOPMENT)
		cfg_report_add(r, CFG_WARNING, "security.auth",
			       "none disables authentication outside the development profile");
	if (c->sec.tls_enabled && (!c->sec.tls_cert_file || !*c->sec.tls_cert_file))
		cfg_report_add(r, CFG_ERROR, "security.tls.certFile", "required when security.tls.enabled is true");
	if (c->sec.tls_enabled && (!c->sec.tls_key_file || !*c->sec.tls_key_file))
		cfg_report_add(r, CFG_ERROR, "security.tls.keyFile", "required when security.tls.enabled is true");
	if (c->storage.sync == CFG_SYNC_NORMAL && c->profile == CFG_PROFILE_PRODUCTION)
		cfg_report_add(r, CFG_WARNING, "storage.sync",
			       "normal may lose the last commits on power loss; production usually wants full");
	est = cfg_estimate_memory(c);
	if (est > c->perf.memory_limit_bytes)
		cfg_report_add(r, CFG_ERROR, "performance.memoryLimitBytes",
			       "estimated memory use %lld MiB exceeds the limit of %lld MiB (reduce queue sizes or "
			       "connections, or raise the limit)",
			       (long long)(est >> 20), (long long)(c->perf.memory_limit_bytes >> 20));
	else if (est > c->perf.memory_limit_bytes / 10 * 9)
		cfg_report_add(r, CFG_WARNING, "performance.memoryLimitBytes",
			       "estimated memory use %lld MiB is above 90%% of the limit", (long long)(est >> 20));
}

size_t cfg_validate(const struct cfg *c, long cores, struct cfg_report *r)
{
	size_t before = r->errors;

	if (cores <= 0)
		cores = sysconf(_SC_NPROCESSORS_ONLN);
	if (cores <= 0)
		cores = 1;
	if (cores > 1 << 20)
		cores = 1 << 20;
	cfg_check_ranges(cfg_fields, cfg_nfields, c, "", r);

	if (r->errors == before) /* the rules across fields assume each is within its range */
		check_across(c, cores, r);
	for (size_t i = 0; i < c->nagents; i++)
		validate_agent(c, i, r);
	return r->errors - before;
}
