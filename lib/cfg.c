/*
 * The configuration schema and its builders.  The table below is the one
 * place a field is declared: its path, type, storage, range and reload
 * class.  Parsing walks a JSON tree against the table; printing, hashing and
 * diffing walk the table against a struct.
 */
#include "switchboard/cfg.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg_table.h"
#include "switchboard/log.h"
#include "switchboard/own.h"
#include "switchboard/util.h"
#include "switchboard/gz.h"
#include "switchboard/yjson.h"

#define OFF(m)	offsetof(struct cfg, m)
#define AOFF(m) offsetof(struct cfg_agent, m)
#define GiB	(1024.0 * 1024 * 1024)

static const char *const profile_names[] = {"development", "production", "highThroughput", NULL};
static const char *const sync_names[] = {"normal", "full", NULL};
static const char *const auth_names[] = {"none", "token", NULL};
static const char *const mode_names[] = {"pull", "push", NULL};
static const char *const protocol_names[] = {"fipa", "a2a", NULL};
static const char *const state_names[] = {"Unloaded", "Loaded", "Running", "Draining", "Stopped", NULL};
static const char *const level_names[] = {"debug", "info", "warn", "error", NULL};

#define H CFG_RELOAD_HOT
#define G CFG_RELOAD_HOT_IF_FITS
#define R CFG_RELOAD_RESTART

const struct cfg_field cfg_fields[] = {
	{"profile", OFF(profile), 0, 0, profile_names, F_ENUM, H},
	{"performance.inboundQueueSize", OFF(perf.inbound_queue_size), 1, 10000000, NULL, F_INT, G},
	{"performance.agentQueueSize", OFF(perf.agent_queue_size), 1, 1000000, NULL, F_INT, G},
	{"performance.workerThreads", OFF(perf.worker_threads), 1, 256, NULL, F_INT, R},
	{"performance.batchSize", OFF(perf.batch_size), 1, 10000, NULL, F_INT, H},
	{"performance.messageTimeoutMs", OFF(perf.message_timeout_ms), 1000, 300000, NULL, F_INT, H},
	{"performance.processingTimeoutMs", OFF(perf.processing_timeout_ms), 100, 300000, NULL, F_INT, H},
	{"performance.maxConcurrentMessages", OFF(perf.max_concurrent_messages), 1, 100000000, NULL, F_INT, H},
	{"performance.memoryLimitBytes", OFF(perf.memory_limit_bytes), 16 * 1048576.0, 1024 * GiB, NULL, F_BYTES, H},
	{"performance.estimatedMessageBytes", OFF(perf.estimated_message_bytes), 64, 16777216, NULL, F_INT, H},
	{"delivery.maxRetries", OFF(delivery.max_retries), 0, 100, NULL, F_INT, H},
	{"delivery.baseRetryDelayMs", OFF(delivery.base_retry_delay_ms), 10, 300000, NULL, F_INT, H},
	{"delivery.retryBackoffFactor", OFF(delivery.retry_backoff_factor), 1.0, 10.0, NULL, F_DOUBLE, H},
	{"delivery.retryJitterMs", OFF(delivery.retry_jitter_ms), 0, 60000, NULL, F_INT, H},
	{"delivery.retryMaxDelayMs", OFF(delivery.retry_max_delay_ms), 10, 3600000, NULL, F_INT, H},
	{"delivery.connectionPoolSize", OFF(delivery.connection_pool_size), 1, 10000, NULL, F_INT, H},
	{"delivery.connectionTimeoutMs", OFF(delivery.connection_timeout_ms), 100, 120000, NULL, F_INT, H},
	{"delivery.requestTimeoutMs", OFF(delivery.request_timeout_ms), 100, 300000, NULL, F_INT, H},
	{"delivery.leaseTimeoutMs", OFF(delivery.lease_timeout_ms), 100, 3600000, NULL, F_INT, H},
	{"delivery.maxPullBatch", OFF(delivery.max_pull_batch), 1, 100000, NULL, F_INT, H},
	{"delivery.maxWaitMs", OFF(delivery.max_wait_ms), 0, 300000, NULL, F_INT, H},
	{"delivery.dedupWindowMs", OFF(delivery.dedup_window_ms), 0, 604800000, NULL, F_INT, H},
	{"delivery.circuitBreaker.threshold", OFF(delivery.cb_threshold), 1, 1000, NULL, F_INT, H},
	{"delivery.circuitBreaker.timeoutMs", OFF(delivery.cb_timeout_ms), 100, 3600000, NULL, F_INT, H},
	{"delivery.circuitBreaker.halfOpenMaxCalls", OFF(delivery.cb_half_open_max_calls), 1, 1000, NULL, F_INT, H},
	{"delivery.deadLetter.maxSize", OFF(delivery.dl_max_size), 1, 100000000, NULL, F_INT, H},
	{"delivery.deadLetter.retentionMs", OFF(delivery.dl_retention_ms), 60000, 31536000000.0, NULL, F_INT, H},
	{"delivery.batch.enabled", OFF(delivery.batch_enabled), 0, 1, NULL, F_BOOL, H},
	{"delivery.batch.maxSize", OFF(delivery.batch_max_size), 1, 10000, NULL, F_INT, H},
	{"delivery.batch.timeoutMs", OFF(delivery.batch_timeout_ms), 0, 60000, NULL, F_INT, H},
	{"conversation.timeoutMs", OFF(conv.timeout_ms), 1000, 604800000, NULL, F_INT, H},
	{"conversation.maxParticipants", OFF(conv.max_participants), 2, 1000, NULL, F_INT, H},
	{"conversation.maxActive", OFF(conv.max_active), 1, 100000000, NULL, F_INT, H},
	{"observability.logLevel", OFF(obs.log_level), 0, 0, level_names, F_ENUM, H},
	{"observability.logSampleRate", OFF(obs.log_sample_rate), 0.0, 1.0, NULL, F_DOUBLE, H},
	{"observability.tracingEnabled", OFF(obs.tracing_enabled), 0, 1, NULL, F_BOOL, H},
	{"observability.traceSamplingRatio", OFF(obs.trace_sampling_ratio), 0.0, 1.0, NULL, F_DOUBLE, H},
	{"observability.metricsEnabled", OFF(obs.metrics_enabled), 0, 1, NULL, F_BOOL, H},
	{"storage.path", OFF(storage.path), 1, 4096, NULL, F_STR, R},
	{"storage.sync", OFF(storage.sync), 0, 0, sync_names, F_ENUM, R},
	{"storage.commitBatchMax", OFF(storage.commit_batch_max), 1, 100000, NULL, F_INT, R},
	{"storage.commitDelayUs", OFF(storage.commit_delay_us), 0, 100000, NULL, F_INT, R},
	{"storage.busyTimeoutMs", OFF(storage.busy_timeout_ms), 0, 600000, NULL, F_INT, R},
	{"network.bindAddress", OFF(net.bind_address), 1, 255, NULL, F_STR, R},
	{"network.dataPort", OFF(net.data_port), 0, 65535, NULL, F_INT, R},
	{"network.adminPort", OFF(net.admin_port), 0, 65535, NULL, F_INT, R},
	{"network.maxConnections", OFF(net.max_connections), 4, 100000, NULL, F_INT, R},
	{"network.maxConnectionsPerAddress", OFF(net.max_per_address), 0, 100000, NULL, F_INT, R},
	{"network.idleTimeoutSeconds", OFF(net.idle_timeout_s), 1, 3600, NULL, F_INT, R},
	{"network.peerPort", OFF(net.peer_port), 0, 65535, NULL, F_INT, R},
	{"shutdown.timeoutMs", OFF(shutdown.timeout_ms), 100, 3600000, NULL, F_INT, H},
	{"cluster.replicas", OFF(cluster.replicas), 1, OWN_MAX_REPLICAS, NULL, F_INT, H},
	{"cluster.ordinal", OFF(cluster.ordinal), 0, OWN_MAX_REPLICAS - 1, NULL, F_INT, R},
	{"cluster.peerHost", OFF(cluster.peer_host), 0, 253, NULL, F_STR, R},
	{"cluster.resolve", OFF(cluster.resolve), 0, 65536, NULL, F_STR, H},
	{"cluster.forwardTimeoutMs", OFF(cluster.forward_timeout_ms), 100, 120000, NULL, F_INT, H},
	{"cluster.peerConnections", OFF(cluster.peer_connections), 1, 1024, NULL, F_INT, H},
	{"cluster.handoffTimeoutMs", OFF(cluster.handoff_timeout_ms), 1000, 3600000, NULL, F_INT, H},
	{"security.auth", OFF(sec.auth), 0, 0, auth_names, F_ENUM, R},
	{"security.maxMessageBytes", OFF(sec.max_message_bytes), 1024, 1073741824, NULL, F_BYTES, H},
	{"security.maxRequestBytes", OFF(sec.max_request_bytes), 4096, 4294967296.0, NULL, F_BYTES, H},
	{"security.adminTokenFile", OFF(sec.admin_token_file), 0, 4096, NULL, F_STR, H},
	{"security.tls.enabled", OFF(sec.tls_enabled), 0, 1, NULL, F_BOOL, R},
	{"security.tls.admin", OFF(sec.tls_admin), 0, 1, NULL, F_BOOL, R},
	{"security.tls.certFile", OFF(sec.tls_cert_file), 0, 4096, NULL, F_STR, H},
	{"security.tls.keyFile", OFF(sec.tls_key_file), 0, 4096, NULL, F_STR, H},
};
const size_t cfg_nfields = SB_ARRAY_SIZE(cfg_fields);

const struct cfg_field cfg_agent_fields[] = {
	{"id", AOFF(id), 1, 253, NULL, F_STR, H},
	{"mode", AOFF(mode), 0, 0, mode_names, F_ENUM, H},
	{"state", AOFF(state), 0, 0, state_names, F_ENUM, H},
	{"endpoint", AOFF(endpoint), 0, 2048, NULL, F_STR, H},
	{"protocol", AOFF(protocol), 0, 0, protocol_names, F_ENUM, H},
	{"timeoutMs", AOFF(timeout_ms), 100, 300000, NULL, F_INT, H},
	{"maxInFlight", AOFF(max_in_flight), 1, 100000, NULL, F_INT, H},
	{"queueSize", AOFF(queue_size), 0, 1000000, NULL, F_INT, G},
	{"tokenSha256", AOFF(token_sha256), 0, 64, NULL, F_STR, H},
	{"rateLimit.messagesPerSecond", AOFF(rate_per_sec), 0, 10000000, NULL, F_DOUBLE, H},
	{"rateLimit.burst", AOFF(rate_burst), 0, 10000000, NULL, F_INT, H},
	{"notifyOnFailure", AOFF(notify_on_failure), 0, 1, NULL, F_BOOL, H},
};
const size_t cfg_agent_nfields = SB_ARRAY_SIZE(cfg_agent_fields);

#undef H
#undef G
#undef R

const char *cfg_profile_name(int p)
{
	return p >= 0 && p <= CFG_PROFILE_HIGH_THROUGHPUT ? profile_names[p] : "?";
}

const char *cfg_agent_state_name(int s)
{
	return s >= 0 && s <= CFG_AGENT_STOPPED ? state_names[s] : "?";
}

const char *cfg_mode_name(int m)
{
	return m == CFG_MODE_PUSH ? "push" : "pull";
}

const char *cfg_protocol_name(int p)
{
	return p == CFG_PROTO_A2A ? "a2a" : "fipa";
}

int cfg_agent_state_parse(const char *s, int *out)
{
	for (int i = 0; state_names[i]; i++) {
		if (strcmp(s, state_names[i]) == 0) {
			*out = i;
			return 0;
		}
	}
	return -EINVAL;
}

/* --- free / copy -------------------------------------------------------- */

static void agent_free(struct cfg_agent *a)
{
	for (size_t i = 0; i < cfg_agent_nfields; i++)
		if (cfg_agent_fields[i].type == F_STR)
			free(CFG_STR(a, &cfg_agent_fields[i]));
	for (size_t i = 0; i < a->ncaps; i++) {
		free(a->caps[i].name);
		free(a->caps[i].description);
	}
	free(a->caps);
	memset(a, 0, sizeof(*a));
}

void cfg_free(struct cfg *c)
{
	for (size_t i = 0; i < cfg_nfields; i++)
		if (cfg_fields[i].type == F_STR)
			free(CFG_STR(c, &cfg_fields[i]));
	for (size_t i = 0; i < c->nagents; i++)
		agent_free(&c->agents[i]);
	free(c->agents);
	memset(c, 0, sizeof(*c));
}

static int dup_strings(void *base, const struct cfg_field *tab, size_t n)
{
	int rc = 0;

	for (size_t i = 0; i < n; i++) {
		char **s = &CFG_STR(base, &tab[i]);

		if (tab[i].type != F_STR || !*s)
			continue;
		*s = strdup(*s);
		if (!*s)
			rc = -ENOMEM;
	}
	return rc;
}

static int agent_copy(struct cfg_agent *dst, const struct cfg_agent *src)
{
	int rc;

	*dst = *src;
	dst->caps = NULL;
	dst->ncaps = 0;
	rc = dup_strings(dst, cfg_agent_fields, cfg_agent_nfields);
	if (rc)
		goto out;
	if (src->ncaps) {
		dst->caps = calloc(src->ncaps, sizeof(*dst->caps));
		if (!dst->caps) {
			rc = -ENOMEM;
			goto out;
		}
		dst->ncaps = src->ncaps;
		for (size_t i = 0; i < src->ncaps; i++) {
			dst->caps[i].name = strdup(src->caps[i].name);
			dst->caps[i].description = src->caps[i].description ? strdup(src->caps[i].description) : NULL;
			if (!dst->caps[i].name || (src->caps[i].description && !dst->caps[i].description))
				rc = -ENOMEM;
		}
	}
out:
	if (rc)
		agent_free(dst);
	return rc;
}

int cfg_copy(struct cfg *dst, const struct cfg *src)
{
	int rc;

	*dst = *src;
	dst->agents = NULL;
	dst->nagents = 0;
	rc = dup_strings(dst, cfg_fields, cfg_nfields);
	if (rc)
		goto out;
	if (src->nagents) {
		dst->agents = calloc(src->nagents, sizeof(*dst->agents));
		if (!dst->agents) {
			rc = -ENOMEM;
			goto out;
		}
		for (size_t i = 0; i < src->nagents; i++) {
			rc = agent_copy(&dst->agents[i], &src->agents[i]);
			if (rc)
				goto out;
			dst->nagents = i + 1;
		}
	}
out:
	if (rc)
		cfg_free(dst);
	return rc;
}

/* --- defaults ----------------------------------------------------------- */

static int set_str(char **dst, const char *v)
{
	char *s = v ? strdup(v) : NULL;

	if (v && !s)
		return -ENOMEM;
	free(*dst);
	*dst = s;
	return 0;
}

int cfg_defaults(struct cfg *c, int profile)
{
	int prod = profile != CFG_PROFILE_DEVELOPMENT, ht = profile == CFG_PROFILE_HIGH_THROUGHPUT;
	int rc = 0;

	memset(c, 0, sizeof(*c));
	c->profile = profile;
	c->perf.inbound_queue_size = ht ? 1000000 : prod ? 100000 : 1000;
	c->perf.agent_queue_size = ht ? 100000 : prod ? 10000 : 100;
	c->perf.worker_threads = ht ? 16 : prod ? 8 : 2;
	c->perf.batch_size = ht ? 10000 : prod ? 1000 : 10;
	c->perf.message_timeout_ms = prod ? 10000 : 30000;
	c->perf.processing_timeout_ms = prod ? 2000 : 5000;
	c->perf.max_concurrent_messages = prod ? 1000000 : 1000;
	c->perf.memory_limit_bytes = (int64_t)(ht ? 32 * GiB : prod ? 8 * GiB : 512 * 1048576.0);
	c->perf.estimated_message_bytes = 512;
	c->delivery.max_retries = prod ? 5 : 2;
	c->delivery.base_retry_delay_ms = prod ? 500 : 1000;
	c->delivery.retry_backoff_factor = 2.0;
	c->delivery.retry_jitter_ms = 100;
	c->delivery.retry_max_delay_ms = 30000;
	c->delivery.connection_pool_size = prod ? 100 : 10;
	c->delivery.connection_timeout_ms = 2000;
	c->delivery.request_timeout_ms = 5000;
	c->delivery.lease_timeout_ms = 30000;
	c->delivery.max_pull_batch = ht ? 10000 : 1000;
	c->delivery.max_wait_ms = 30000;
	c->delivery.dedup_window_ms = 300000;
	c->delivery.cb_threshold = prod ? 20 : 3;
	c->delivery.cb_timeout_ms = prod ? 60000 : 10000;
	c->delivery.cb_half_open_max_calls = 3;
	c->delivery.dl_max_size = prod ? 1000000 : 1000;
	c->delivery.dl_retention_ms = 7 * 86400000LL;
	c->delivery.batch_enabled = prod;
	c->delivery.batch_max_size = ht ? 1000 : 100;
	c->delivery.batch_timeout_ms = 10;
	c->conv.timeout_ms = prod ? 3600000 : 1800000;
	c->conv.max_participants = 10;
	c->conv.max_active = prod ? 1000000 : 100000;
	c->obs.log_level = prod ? LOG_INFO : LOG_DEBUG;
	c->obs.log_sample_rate = ht ? 0.001 : prod ? 0.01 : 1.0;
	c->obs.tracing_enabled = 1;
	c->obs.trace_sampling_ratio = ht ? 0.001 : prod ? 0.01 : 1.0;
	c->obs.metrics_enabled = 1;
	c->storage.sync = ht ? CFG_SYNC_NORMAL : CFG_SYNC_FULL;
	c->storage.commit_batch_max = ht ? 4096 : 1024;
	c->storage.commit_delay_us = ht ? 200 : 0;
	c->storage.busy_timeout_ms = 5000;
	c->net.data_port = 8080;
	c->net.admin_port = 8081;
	c->net.max_connections = prod ? 1024 : 256;
	c->net.max_per_address = prod ? 256 : 64; /* a quarter: one address cannot take them all */
	c->net.idle_timeout_s = 60;
	c->shutdown.timeout_ms = prod ? 30000 : 10000;
	c->cluster.replicas = 1;
	c->cluster.forward_timeout_ms = 5000;
	c->cluster.peer_connections = 32;
	c->cluster.handoff_timeout_ms = 30000;
	c->net.peer_port = CFG_DEFAULT_PEER_PORT;
	c->sec.auth = prod ? CFG_AUTH_TOKEN : CFG_AUTH_NONE;
	c->sec.tls_admin = 1;
	c->sec.max_message_bytes = (int64_t)10 << 20;
	c->sec.max_request_bytes = (int64_t)64 << 20;
	rc = set_str(&c->storage.path, prod ? "/var/lib/switchboard/router.db" : "./switchboard.db");
	if (!rc)
		rc = set_str(&c->net.bind_address, prod ? "0.0.0.0" : "127.0.0.1");
	if (!rc)
		rc = set_str(&c->sec.admin_token_file, prod ? "/etc/switchboard/admin/token" : "");
	if (!rc)
		rc = set_str(&c->cluster.peer_host, "");
	if (!rc)
		rc = set_str(&c->cluster.resolve, "");
	if (!rc)
		rc = set_str(&c->sec.tls_cert_file, "");
	if (!rc)
		rc = set_str(&c->sec.tls_key_file, "");
	if (rc)
		cfg_free(c);
	return rc;
}

static void agent_defaults(struct cfg_agent *a)
{
	memset(a, 0, sizeof(*a));
	a->mode = CFG_MODE_PULL;
	a->protocol = CFG_PROTO_FIPA;
	a->state = CFG_AGENT_RUNNING;
	a->timeout_ms = 5000;
	a->max_in_flight = 16;
	a->notify_on_failure = 1;
}

static const char embedded_yaml[] = "profile: development\n"
				    "agents:\n"
				    "  - id: alice\n"
				    "    mode: pull\n"
				    "    capabilities: [{name: planning, description: Plans multi-step tasks}]\n"
				    "  - id: bob\n"
				    "    mode: pull\n"
				    "    capabilities: [{name: search, description: Looks things up}]\n";

int cfg_embedded_default(struct cfg *c, const json_t *overlay, char doc_hash[65], struct cfg_report *r)
{
	struct cfg_report own;
	int rc;

	cfg_report_init(&own);
	rc = cfg_parse_doc(c, embedded_yaml, sizeof(embedded_yaml) - 1, overlay, doc_hash, r ? r : &own);
	cfg_report_free(&own);
	return rc;
}

/* --- parsing ------------------------------------------------------------ */

static const struct cfg_field *find_field(const struct cfg_field *tab, size_t n, const char *path)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(tab[i].path, path) == 0)
			return &tab[i];
	return NULL;
}

static int is_section(const struct cfg_field *tab, size_t n, const char *path)
{
	size_t l = strlen(path);

	for (size_t i = 0; i < n; i++)
		if (strncmp(tab[i].path, path, l) == 0 && tab[i].path[l] == '.')
			return 1;
	return 0;
}

static const char *json_type_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return "object";
	case JSON_ARRAY:
		return "array";
	case JSON_STRING:
		return "string";
	case JSON_INTEGER:
		return "integer";
	case JSON_REAL:
		return "number";
	case JSON_TRUE:
	case JSON_FALSE:
		return "boolean";
	default:
		return "null";
	}
}

static int parse_bytes(const char *s, int64_t *out)
{
	static const struct {
		const char *suf;
		double mul;
	} units[] = {{"Ki", 1024.0}, {"Mi", 1048576.0}, {"Gi", GiB}, {"Ti", 1024 * GiB}, {"K", 1e3},
		     {"M", 1e6},     {"G", 1e9},	{"T", 1e12}, {"", 1.0}};
	char *end;
	double v;

	v = strtod(s, &end);
	if (end == s || v < 0 || !isfinite(v))
		return -EINVAL;
	for (size_t i = 0; i < SB_ARRAY_SIZE(units); i++) {
		if (strcmp(end, units[i].suf) == 0) {
			v *= units[i].mul;
			if (v > 9.0e18)
				return -ERANGE;
			*out = (int64_t)v;
			return 0;
		}
	}
	return -EINVAL;
}

static int set_field(void *base, const struct cfg_field *f, const json_t *v, const char *path, struct cfg_report *r)
{
	switch (f->type) {
	case F_INT:
	case F_BYTES:
		if (json_is_integer(v)) {
			CFG_I64(base, f) = json_integer_value(v);
			return 0;
		}
		if (json_is_real(v) && json_real_value(v) == floor(json_real_value(v)) &&
		    fabs(json_real_value(v)) < 9e15) {
			CFG_I64(base, f) = (int64_t)json_real_value(v);
			return 0;
		}
		if (f->type == F_BYTES && json_is_string(v)) {
			if (parse_bytes(json_string_value(v), &CFG_I64(base, f)) == 0)
				return 0;
			cfg_report_add(r, CFG_ERROR, path,
				       "expected a byte quantity such as 512Mi or 1073741824, got \"%.40s\"",
				       json_string_value(v));
			return -EINVAL;
		}
		cfg_report_add(r, CFG_ERROR, path, "expected an integer, got %s", json_type_name(v));
		return -EINVAL;
	case F_DOUBLE:
		if (!json_is_number(v)) {
			cfg_report_add(r, CFG_ERROR, path, "expected a number, got %s", json_type_name(v));
			return -EINVAL;
		}
		CFG_DBL(base, f) = json_number_value(v);
		return 0;
	case F_BOOL:
		if (!json_is_boolean(v)) {
			cfg_report_add(r, CFG_ERROR, path, "expected true or false, got %s", json_type_name(v));
			return -EINVAL;
		}
		CFG_INT(base, f) = json_is_true(v);
		return 0;
	case F_STR:
		if (!json_is_string(v)) {
			cfg_report_add(r, CFG_ERROR, path, "expected a string, got %s", json_type_name(v));
			return -EINVAL;
		}
		if (strlen(json_string_value(v)) != json_string_length(v)) {
			cfg_report_add(r, CFG_ERROR, path, "string contains a NUL character");
			return -EINVAL;
		}
		return set_str(&CFG_STR(base, f), json_string_value(v));
	case F_ENUM:
		if (json_is_string(v)) {
			for (int i = 0; f->enums[i]; i++) {
				if (strcmp(f->enums[i], json_string_value(v)) == 0) {
					CFG_INT(base, f) = i;
					return 0;
				}
			}
		}
		{
			char allowed[256] = "";

			for (int i = 0; f->enums[i]; i++) {
				strncat(allowed, i ? ", " : "", sizeof(allowed) - strlen(allowed) - 1);
				strncat(allowed, f->enums[i], sizeof(allowed) - strlen(allowed) - 1);
			}
			cfg_report_add(r, CFG_ERROR, path, "must be one of: %s", allowed);
		}
		return -EINVAL;
	default:
		return -EINVAL;
	}
}

/* Overlay the keys of `obj` at schema path `rel` onto `base`.  `shown` is
 * the path prefix used in messages (it differs for agents). */
static int apply_object(void *base, const struct cfg_field *tab, size_t n, const json_t *obj, const char *rel,
			const char *shown, struct cfg_report *r, const char *skip)
{
	const char *key;
	json_t *v;
	int rc = 0;

	json_object_foreach ((json_t *)obj, key, v) {
		char full[160], disp[200];
		const struct cfg_field *f;

		snprintf(full, sizeof(full), "%s%s%s", rel, *rel ? "." : "", key);
		snprintf(disp, sizeof(disp), "%s%s%s", shown, *shown ? "." : "", key);
		if (!*rel && skip && strcmp(key, skip) == 0)
			continue;
		f = find_field(tab, n, full);
		if (f) {
			if (set_field(base, f, v, disp, r))
				rc = -EINVAL;
		} else if (is_section(tab, n, full)) {
			if (!json_is_object(v)) {
				cfg_report_add(r, CFG_ERROR, disp, "expected an object, got %s", json_type_name(v));
				rc = -EINVAL;
			} else if (apply_object(base, tab, n, v, full, disp, r, skip)) {
				rc = -EINVAL;
			}
		} else if (!(*rel == '\0' && strcmp(key, "agents") == 0 && !skip)) {
			cfg_report_add(r, CFG_ERROR, disp, "unknown field");
			rc = -EINVAL;
		}
	}
	return rc;
}

static int parse_caps(struct cfg_agent *a, const json_t *arr, const char *shown, struct cfg_report *r)
{
	struct cfg_capability *caps;
	size_t i;
	json_t *it;
	int rc = 0;

	if (!json_is_array(arr)) {
		cfg_report_add(r, CFG_ERROR, shown, "expected an array, got %s", json_type_name(arr));
		return -EINVAL;
	}
	caps = calloc(json_array_size(arr) + 1, sizeof(*caps));
	if (!caps)
		return -ENOMEM;
	a->caps = caps;
	json_array_foreach (arr, i, it) {
		char p[200];
		const char *k;
		json_t *v;
		size_t ci;

		snprintf(p, sizeof(p), "%s[%zu]", shown, i);
		if (!json_is_object(it)) {
			cfg_report_add(r, CFG_ERROR, p, "expected an object, got %s", json_type_name(it));
			rc = -EINVAL;
			continue;
		}
		ci = a->ncaps++;
		json_object_foreach (it, k, v) {
			char fp[240];
			char **dst = NULL;

			if (strcmp(k, "name") == 0)
				dst = &caps[ci].name;
			else if (strcmp(k, "description") == 0)
				dst = &caps[ci].description;

			snprintf(fp, sizeof(fp), "%s.%s", p, k);
			if (!dst) {
				cfg_report_add(r, CFG_ERROR, fp, "unknown field");
				rc = -EINVAL;
			} else if (!json_is_string(v)) {
				cfg_report_add(r, CFG_ERROR, fp, "expected a string, got %s", json_type_name(v));
				rc = -EINVAL;
			} else if (set_str(dst, json_string_value(v))) {
				return -ENOMEM;
			}
		}
		if (!caps[ci].name) {
			cfg_report_add(r, CFG_ERROR, p, "capability needs a name");
			rc = -EINVAL;
		}
	}
	return rc;
}

static int parse_agents(struct cfg *c, const json_t *arr, struct cfg_report *r)
{
	size_t i;
	json_t *it;
	int rc = 0;

	if (!json_is_array(arr)) {
		cfg_report_add(r, CFG_ERROR, "agents", "expected an array, got %s", json_type_name(arr));
		return -EINVAL;
	}
	c->agents = calloc(json_array_size(arr) + 1, sizeof(*c->agents));
	if (!c->agents)
		return -ENOMEM;
	json_array_foreach (arr, i, it) {
		char shown[64];
		struct cfg_agent *a = &c->agents[c->nagents];
		json_t *caps;

		snprintf(shown, sizeof(shown), "agents[%zu]", i);
		if (!json_is_object(it)) {
			cfg_report_add(r, CFG_ERROR, shown, "expected an object, got %s", json_type_name(it));
			rc = -EINVAL;
			continue;
		}
		agent_defaults(a);
		c->nagents++;
		if (apply_object(a, cfg_agent_fields, cfg_agent_nfields, it, "", shown, r, "capabilities"))
			rc = -EINVAL;
		caps = json_object_get(it, "capabilities");
		if (caps) {
			char cp[80];
			int crc;

			snprintf(cp, sizeof(cp), "%s.capabilities", shown);
			crc = parse_caps(a, caps, cp, r);
			if (crc == -ENOMEM)
				return crc;
			if (crc)
				rc = crc;
		}
		if (!a->id) {
			cfg_report_add(r, CFG_ERROR, shown, "agent needs an id");
			rc = -EINVAL;
		}
	}
	/* sorted by id, every id present: lookups may bisect (an agent without
	 * an id, already refused above, makes the whole list unsorted) */
	c->agents_sorted = 1;
	for (i = 0; i < c->nagents && c->agents_sorted; i++)
		if (!c->agents[i].id || (i > 0 && strcmp(c->agents[i - 1].id, c->agents[i].id) >= 0))
			c->agents_sorted = 0;
	return rc;
}

int cfg_from_json(struct cfg *c, const json_t *root, struct cfg_report *r)
{
	const json_t *prof, *agents;
	int profile = CFG_PROFILE_DEVELOPMENT, rc;

	memset(c, 0, sizeof(*c));
	if (!json_is_object(root)) {
		cfg_report_add(r, CFG_ERROR, "(document)", "expected a mapping at the top level, got %s",
			       json_type_name(root));
		return -EINVAL;
	}
	prof = json_object_get(root, "profile");
	if (prof) {
		struct cfg tmp = {0};

		if (set_field(&tmp, &cfg_fields[0], prof, "profile", r))
			return -EINVAL;
		profile = tmp.profile;
	}
	rc = cfg_defaults(c, profile);
	if (rc)
		return rc;
	rc = apply_object(c, cfg_fields, cfg_nfields, root, "", "", r, NULL);
	agents = json_object_get(root, "agents");
	if (agents && !json_is_null(agents)) {
		int arc = parse_agents(c, agents, r);

		if (arc)
			rc = arc;
	}
	if (rc == -EINVAL)
		cfg_validate(c, 0, r); /* report range and relationship problems too, all at once */
	if (rc)
		cfg_free(c);
	return rc;
}

/* Merge `over` (borrowed) into `dst` recursively: objects merge key by key,
 * anything else replaces. */
static int overlay_merge(json_t *dst, const json_t *over)
{
	const char *k;
	json_t *v;

	json_object_foreach ((json_t *)over, k, v) {
		json_t *d = json_object_get(dst, k);

		if (json_is_object(v) && json_is_object(d)) {
			if (overlay_merge(d, v))
				return -ENOMEM;
		} else if (json_object_set_new(dst, k, json_deep_copy(v))) {
			return -ENOMEM;
		}
	}
	return 0;
}

int cfg_parse_doc(struct cfg *c, const char *text, size_t len, const json_t *overlay, char doc_hash[65],
		  struct cfg_report *r)
{
	char err[256], *plain = NULL;
	json_t *root = NULL;
	int rc;

	memset(c, 0, sizeof(*c));
	if (gz_is_gzip(text, len)) {
		rc = gz_inflate(text, len, CFG_DOC_LIMIT, &plain, &len);
		if (rc) {
			cfg_report_add(r, CFG_ERROR, "(document)", "cannot inflate the gzip document: %s",
				       rc == -E2BIG ? "larger than 64 MiB" : strerror(-rc));
			return rc;
		}
		text = plain;
	}
	if (doc_hash)
		util_sha256_hex(text, len, doc_hash);
	rc = yj_parse(text, len, &root, err, sizeof(err));
	if (rc) {
		cfg_report_add(r, CFG_ERROR, "(document)", "%s", err);
		goto out;
	}
	if (overlay && json_is_object(root) && overlay_merge(root, overlay)) {
		rc = -ENOMEM;
		goto out;
	}
	rc = cfg_from_json(c, root, r);
out:
	json_decref(root);
	free(plain);
	return rc;
}

int cfg_parse(struct cfg *c, const char *text, size_t len, struct cfg_report *r)
{
	return cfg_parse_doc(c, text, len, NULL, NULL, r);
}

int cfg_load_file(struct cfg *c, const char *path, const json_t *overlay, char doc_hash[65], struct cfg_report *r)
{
	char *text = NULL;
	size_t len = 0;
	int rc;

	memset(c, 0, sizeof(*c));
	rc = util_read_file(path, CFG_DOC_LIMIT, &text, &len);
	if (rc) {
		cfg_report_add(r, CFG_ERROR, "(file)", "cannot read %s: %s", path,
			       rc == -E2BIG ? "larger than 64 MiB" : strerror(-rc));
		return rc;
	}
	rc = cfg_parse_doc(c, text, len, overlay, doc_hash, r);
	free(text);
	return rc;
}

int cfg_overlay_set(json_t *overlay, const char *assignment)
{
	const char *eq = strchr(assignment, '=');
	char path[256], err[128], *seg;
	json_t *node = overlay, *val = NULL;
	int rc = 0;

	if (!eq || eq == assignment || (size_t)(eq - assignment) >= sizeof(path))
		return -EINVAL;
	memcpy(path, assignment, (size_t)(eq - assignment));
	path[eq - assignment] = '\0';
	if (path[0] == '.' || strstr(path, "..") || path[strlen(path) - 1] == '.')
		return -EINVAL; /* checked before anything is added */
	if (eq[1] == '\0')
		val = json_string("");
	else if (yj_parse(eq + 1, strlen(eq + 1), &val, err, sizeof(err)))
		return -EINVAL;
	if (!val)
		return -ENOMEM;
	seg = path;
	for (;;) {
		char *dot = strchr(seg, '.');
		json_t *child;

		if (!dot) {
			rc = json_object_set_new(node, seg, val) ? -ENOMEM : 0;
			val = NULL;
			goto out;
		}
		*dot = '\0';
		child = json_object_get(node, seg);
		if (!json_is_object(child)) {
			child = json_object();
			if (!child || json_object_set_new(node, seg, child)) {
				rc = -ENOMEM;
				goto out;
			}
		}
		node = child;
		seg = dot + 1;
	}
out:
	json_decref(val);
	return rc;
}

const struct cfg_agent *cfg_find_agent(const struct cfg *c, const char *id)
{
	if (c->agents_sorted) {
		size_t lo = 0, hi = c->nagents;

		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;
			int d = strcmp(c->agents[mid].id, id);

			if (d == 0)
				return &c->agents[mid];
			if (d < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		return NULL;
	}
	for (size_t i = 0; i < c->nagents; i++)
		if (c->agents[i].id && strcmp(c->agents[i].id, id) == 0)
			return &c->agents[i];
	return NULL;
}

const char *cfg_schema_path(size_t i, int *reload)
{
	if (i >= cfg_nfields)
		return NULL;
	if (reload)
		*reload = cfg_fields[i].reload;
	return cfg_fields[i].path;
}

int cfg_reload_class(const char *path)
{
	const struct cfg_field *f;

	if (strncmp(path, "agents", 6) == 0)
		return CFG_RELOAD_HOT;
	f = find_field(cfg_fields, cfg_nfields, path);
	return f ? f->reload : -1;
}
