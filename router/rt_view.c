/*
 * Read-only views of the routing core: the agent and conversation JSON of
 * the data API, summary counters, and the scrape-time metrics collector.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rt_int.h"
#include "switchboard/own.h"
#include "switchboard/util.h"

int rt_err_auth(const struct rt *rt, struct rt_err *err, const char *agent, const char *digest)
{
	if (!digest || !rt_token_known(rt, digest)) {
		err->status = 401;
		err->code = "Unauthorized";
		snprintf(err->message, sizeof(err->message), "the bearer token belongs to no agent");
		return -EINVAL;
	}
	err->status = 403;
	err->code = "Forbidden";
	snprintf(err->message, sizeof(err->message), "the bearer token does not belong to agent \"%.150s\"", agent);
	return -EINVAL;
}

int rt_err_no_agent(struct rt_err *err, const char *agent)
{
	err->status = 404;
	err->code = "AgentNotFound";
	snprintf(err->message, sizeof(err->message), "no agent \"%.150s\" is registered", agent);
	return -EINVAL;
}

/* One agent as JSON, with the ordinal that owns it under `replicas`.
 * rt->lock held. */
static int agent_obj(const struct rt_agent *a, int64_t replicas, struct buf *out)
{
	int rc = buf_puts(out, "{\"id\":");

	if (!rc)
		rc = buf_json_str(out, a->id);
	if (!rc)
		rc = buf_printf(out,
				",\"state\":\"%s\",\"mode\":\"%s\",\"queue_depth\":%zu,\"in_flight\":%zu,"
				"\"queue_capacity\":%zu,\"configured\":%s,\"owner\":%u,\"capabilities\":%s}",
				cfg_agent_state_name(a->state), cfg_mode_name(a->mode), a->depth - a->leased, a->leased,
				a->capacity, a->configured ? "true" : "false", own_owner(a->id, (uint32_t)replicas),
				a->caps_json ? a->caps_json : "[]");
	return rc;
}

int rt_agents_json(struct rt *rt, struct buf *out)
{
	struct rt_agent *a, *tmp;
	int rc, first = 1;

	pthread_mutex_lock(&rt->lock);
	rc = buf_puts(out, "{\"agents\":[");
	HASH_ITER (hh, rt->agents, a, tmp) {
		if (rc)
			break;
		if (!first)
			rc = buf_puts(out, ",");
		first = 0;
		if (!rc)
			rc = agent_obj(a, rt->cfg.cluster.replicas, out);
	}
	if (!rc)
		rc = buf_puts(out, "]}\n");
	pthread_mutex_unlock(&rt->lock);
	return rc;
}

int rt_agent_json(struct rt *rt, const char *id, struct buf *out, struct rt_err *err)
{
	struct rt_agent *a;
	int rc;

	pthread_mutex_lock(&rt->lock);
	a = rt_find_agent(rt, id);
	if (!a) {
		pthread_mutex_unlock(&rt->lock);
		return rt_err_no_agent(err, id);
	}
	rc = agent_obj(a, rt->cfg.cluster.replicas, out);
	if (!rc)
		rc = buf_puts(out, "\n");
	pthread_mutex_unlock(&rt->lock);
	return rc;
}

int rt_conversation_json(struct rt *rt, const char *id, struct buf *out, struct rt_err *err)
{
	struct rt_conv *c;
	char created[32], last[32], expires[32];
	int rc;

	pthread_mutex_lock(&rt->lock);
	HASH_FIND_STR(rt->convs, id, c);
	if (!c) {
		pthread_mutex_unlock(&rt->lock);
		err->status = 404;
		err->code = "ConversationNotFound";
		snprintf(err->message, sizeof(err->message), "%s", "no active conversation has this id");
		return -EINVAL;
	}
	util_fmt_rfc3339(c->created_ms, created);
	util_fmt_rfc3339(c->last_ms, last);
	util_fmt_rfc3339(c->last_ms + rt->cfg.conv.timeout_ms, expires);
	rc = buf_puts(out, "{\"id\":");
	if (!rc)
		rc = buf_json_str(out, c->id);
	if (!rc)
		rc = buf_puts(out, ",\"participants\":[");
	for (size_t i = 0; !rc && i < c->nparts; i++) {
		if (i)
			rc = buf_puts(out, ",");
		if (!rc)
			rc = buf_json_str(out, c->parts[i]);
	}
	if (!rc)
		rc = buf_puts(out, "],\"protocol\":");
	if (!rc)
		rc = c->protocol ? buf_json_str(out, c->protocol) : buf_puts(out, "null");
	if (!rc)
		rc = buf_printf(out,
				",\"message_count\":%llu,\"created_at\":\"%s\",\"last_activity\":\"%s\","
				"\"expires_at\":\"%s\"}\n",
				(unsigned long long)c->count, created, last, expires);
	pthread_mutex_unlock(&rt->lock);
	return rc;
}

void rt_get_stats(struct rt *rt, struct rt_stats *s)
{
	pthread_mutex_lock(&rt->lock);
	s->agents = HASH_COUNT(rt->agents);
	s->queued = rt->total_depth - rt->total_leased;
	s->leased = rt->total_leased;
	s->conversations = HASH_COUNT(rt->convs);
	s->dedup_entries = dedup_count(rt->dedup);
	pthread_mutex_unlock(&rt->lock);
}

static long resident_bytes(void)
{
	char line[128], *p, *end;
	long rss = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	if (!f)
		return 0;
	if (fgets(line, sizeof(line), f)) {
		strtol(line, &p, 10); /* total pages; the second field is resident */
		rss = strtol(p, &end, 10);
		if (end == p)
			rss = 0;
	}
	fclose(f);
	return rss * sysconf(_SC_PAGESIZE);
}

int rt_collect_metrics(struct buf *out, void *arg)
{
	struct rt *rt = arg;
	struct rt_agent *a, *tmp;
	struct store_stats ss;
	size_t by_state[CFG_AGENT_STOPPED + 1] = {0};
	int rc;

	pthread_mutex_lock(&rt->lock);
	rc = met_write_header(out, "switchboard_router_queue_depth",
			      "Messages waiting in an agent's queue (not leased).", "gauge");
	HASH_ITER (hh, rt->agents, a, tmp) {
		struct buf l;

		if (a->state >= 0 && a->state <= CFG_AGENT_STOPPED)
			by_state[a->state]++;
		if (rc)
			continue;
		buf_init(&l, 1024);
		rc = met_label(&l, "agent", a->id);
		if (!rc)
			rc = met_write_sample(out, "switchboard_router_queue_depth", buf_str(&l),
					      (double)(a->depth - a->leased));
		buf_free(&l);
	}
	if (!rc)
		rc = met_write_header(out, "switchboard_router_messages_in_flight",
				      "Messages leased to consumers and not yet settled.", "gauge");
	if (!rc)
		rc = met_write_sample(out, "switchboard_router_messages_in_flight", NULL, (double)rt->total_leased);
	if (!rc)
		rc = met_write_header(out, "switchboard_router_queued_messages",
				      "Messages held by the router across all agents (waiting or in flight).", "gauge");
	if (!rc)
		rc = met_write_sample(out, "switchboard_router_queued_messages", NULL, (double)rt->total_depth);
	if (!rc)
		rc = met_write_header(
			out, "switchboard_router_queue_capacity_messages",
			"Largest number of messages the router holds (performance.maxConcurrentMessages).", "gauge");
	if (!rc)
		rc = met_write_sample(out, "switchboard_router_queue_capacity_messages", NULL,
				      (double)rt->cfg.perf.max_concurrent_messages);
	if (!rc)
		rc = met_write_header(out, "switchboard_router_active_conversations",
				      "Conversations with activity within conversation.timeoutMs.", "gauge");
	if (!rc)
		rc = met_write_sample(out, "switchboard_router_active_conversations", NULL,
				      (double)HASH_COUNT(rt->convs));
	if (!rc)
		rc = met_write_header(out, "switchboard_router_agents", "Registered agents by lifecycle state.",
				      "gauge");
	for (int s = 0; !rc && s <= CFG_AGENT_STOPPED; s++) {
		char l[48];

		snprintf(l, sizeof(l), "state=\"%s\"", cfg_agent_state_name(s));
		rc = met_write_sample(out, "switchboard_router_agents", l, (double)by_state[s]);
	}
	if (!rc)
		rc = met_write_header(out, "switchboard_router_dedup_entries",
				      "Message ids remembered for deduplication.", "gauge");
	if (!rc)
		rc = met_write_sample(out, "switchboard_router_dedup_entries", NULL, (double)dedup_count(rt->dedup));
	if (!rc)
		rc = met_write_header(out, "switchboard_router_memory_limit_bytes",
				      "The configured memory limit (performance.memoryLimitBytes).", "gauge");
	if (!rc)
		rc = met_write_sample(out, "switchboard_router_memory_limit_bytes", NULL,
				      (double)rt->cfg.perf.memory_limit_bytes);
	pthread_mutex_unlock(&rt->lock);

	memset(&ss, 0, sizeof(ss));
	if (rt->st)
		store_get_stats(rt->st, &ss);
	if (!rc)
		rc = met_write_header(out, "switchboard_router_storage_commits_total",
				      "Storage transactions committed (each is one fsync with storage.sync full).",
				      "counter");
	if (!rc)
		rc = met_write_sample(out, "switchboard_router_storage_commits_total", NULL, (double)ss.commits);
	if (!rc)
		rc = met_write_header(out, "switchboard_router_storage_busy_seconds_total",
				      "Time the storage writer spent executing and committing transactions.",
				      "counter");
	if (!rc)
		rc = met_write_sample(out, "switchboard_router_storage_busy_seconds_total", NULL,
				      (double)ss.busy_ns / 1e9);
	if (!rc)
		rc = met_write_header(out, "switchboard_router_storage_commit_failures_total",
				      "Storage transactions that failed and were rolled back.", "counter");
	if (!rc)
		rc = met_write_sample(out, "switchboard_router_storage_commit_failures_total", NULL,
				      (double)ss.failed_commits);
	if (!rc)
		rc = met_write_header(out, "switchboard_router_database_size_bytes",
				      "Size of the SQLite database and its write-ahead log.", "gauge");
	if (!rc)
		rc = met_write_sample(out, "switchboard_router_database_size_bytes", NULL,
				      rt->st ? (double)store_size_bytes(rt->st) : 0.0);
	if (!rc)
		rc = met_write_header(out, "switchboard_router_resident_memory_bytes",
				      "Resident set size of the router process.", "gauge");
	if (!rc)
		rc = met_write_sample(out, "switchboard_router_resident_memory_bytes", NULL, (double)resident_bytes());
	if (!rc)
		rc = met_write_header(out, "switchboard_router_start_time_seconds",
				      "Start time of the process since the Unix epoch.", "gauge");
	if (!rc)
		rc = met_write_sample(out, "switchboard_router_start_time_seconds", NULL,
				      (double)rt->started_ms / 1000.0);
	if (!rc)
		rc = met_write_header(out, "switchboard_router_build_info", "Build information; the value is always 1.",
				      "gauge");
	if (!rc)
		rc = buf_printf(out, "switchboard_router_build_info{version=\"%s\"} 1\n", SB_VERSION);
	return rc;
}
