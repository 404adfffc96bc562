/*
 * In-process benchmarks of the routing core, without persistence:
 *   1. registry lookup by agent id with 10,000 agents (target <= 50 ns);
 *   2. route + enqueue per message (target >= 5 million/s per core), with
 *      and without the deduplication window.
 * Every message id is new (a duplicate stops the run: it would time the
 * duplicate answer, not routing), and between rounds, untimed, the window
 * is pruned to the production cap of 1,000,000 entries as the maintenance
 * thread does.  Prints one line per figure.  Run by `make bench`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt_int.h"
#include "switchboard/util.h"

#define NAGENTS 10000
#define ROUND	100000
static int ROUNDS = 20;
static unsigned long long last_id; /* ids go on across runs: never a duplicate */

static struct cfg make_cfg(int dedup)
{
	struct buf y;
	struct cfg c;
	struct cfg_report r;

	buf_init(&y, 1 << 22);
	if (buf_printf(&y,
		       "profile: production\n"
		       "performance: {agentQueueSize: 1000000, maxConcurrentMessages: 10000000, inboundQueueSize: "
		       "1000000, memoryLimitBytes: 1024Gi}\nobservability: {logLevel: warn}\n"
		       "delivery: {dedupWindowMs: %d}\nagents:\n",
		       dedup ? 300000 : 0))
		exit(1);
	for (int i = 0; i < NAGENTS; i++)
		if (buf_printf(&y, "  - {id: agent-%05d}\n", i))
			exit(1);
	cfg_report_init(&r);
	if (cfg_parse(&c, y.data, y.len, &r)) {
		fprintf(stderr, "bench: config failed\n");
		exit(1);
	}
	cfg_report_free(&r);
	buf_free(&y);
	return c;
}

static double lookup_bench(struct rt *rt)
{
	enum { N = 20000000 };
	char(*ids)[16] = malloc(sizeof(*ids) * 4096);
	uint64_t t0, t1;
	size_t found = 0;

	for (int i = 0; i < 4096; i++)
		snprintf(ids[i], sizeof(ids[i]), "agent-%05d", (int)((uint64_t)i * 7919 % NAGENTS));
	t0 = util_mono_ns();
	for (int i = 0; i < N; i++)
		found += rt_find_agent(rt, ids[i & 4095]) != NULL;
	t1 = util_mono_ns();
	free(ids);
	if (found != N)
		exit(1);
	return (double)(t1 - t0) / N;
}

static double route_bench(struct rt *rt, int batch)
{
	char pad[257];
	struct rt_item *items = calloc(ROUND, sizeof(*items));
	uint64_t total_ns = 0;
	struct buf out;
	json_t *ids = json_array();

	memset(pad, 'p', sizeof(pad) - 1); /* a 256-byte body */
	pad[sizeof(pad) - 1] = '\0';
	buf_init(&out, (size_t)1 << 30);
	for (int round = -1; round < ROUNDS; round++) { /* round -1 warms the heap, untimed */
		uint64_t t0;

		for (int i = 0; i < ROUND; i++) {
			struct msg *m = &items[i].m;

			memset(&items[i], 0, sizeof(items[i]));
			snprintf(m->message_id, sizeof(m->message_id), "m-%llu", ++last_id);
			snprintf(m->sender, sizeof(m->sender), "agent-%05d", i % NAGENTS);
			snprintf(m->receiver, sizeof(m->receiver), "agent-%05d", (i * 31) % NAGENTS);
			if (i % 4 == 0) /* a quarter of the traffic is in two-party conversations */
				snprintf(m->conversation_id, sizeof(m->conversation_id), "conv-%d-%d",
					 (i * 31) % NAGENTS, i % NAGENTS);
			m->priority = MSG_PRIO_NORMAL;
			m->body = strdup(pad); /* 256-byte body, owned by the core once routed */
			m->body_len = sizeof(pad) - 1;
		}
		t0 = util_mono_ns();
		for (int i = 0; i < ROUND; i += batch) {
			uint64_t arrived = util_mono_ns(); /* as the HTTP layer stamps a request */

			for (int j = i; j < i + batch; j++)
				items[j].started_ns = arrived;
			if (rt_submit(rt, items + i, (size_t)batch))
				exit(1);
		}
		if (round >= 0)
			total_ns += util_mono_ns() - t0;
		for (int i = 0; i < ROUND; i++) {
			if (items[i].status != 202 || items[i].duplicate) {
				fprintf(stderr, "bench: item %d status %d%s\n", i, items[i].status,
					items[i].duplicate ? " (a duplicate)" : "");
				exit(1);
			}
			msg_free(&items[i].m);
		}
		/* drain (untimed) so memory stays flat */
		for (int a = 0; a < NAGENTS; a++) {
			struct rt_err e;
			char id[16], lease[33];
			struct rt_agent *ag;

			snprintf(id, sizeof(id), "agent-%05d", a);
			ag = rt_find_agent(rt, id);
			while (ag->depth) {
				struct rt_msg *m, *tmp;

				buf_reset(&out);
				if (rt_pull(rt, id, NULL, 100000, 0, NULL, lease, &out, &e))
					exit(1);
				json_array_clear(ids);
				HASH_ITER (hh, ag->by_id, m, tmp)
					if (m->state == RTM_LEASED)
						json_array_append_new(ids, json_string(m->message_id));
				buf_reset(&out);
				if (rt_settle(rt, id, NULL, ids, 1, &out, &e))
					exit(1);
			}
		}
		/* what the maintenance thread does every 50 ms */
		dedup_prune(rt->dedup, util_now_ms() - rt->cfg.delivery.dedup_window_ms, rt->ndedup_max);
	}
	json_decref(ids);
	buf_free(&out);
	free(items);
	return (double)total_ns / ((double)ROUND * ROUNDS);
}

int main(int argc, char **argv)
{
	struct rmet met;

	if (argc > 1)
		ROUNDS = atoi(argv[1]);

	if (util_init() || rmet_init(&met))
		return 1;
	log_set_level(LOG_WARN);
	for (int dedup = 1; dedup >= 0; dedup--) {
		if (argc > 2 && atoi(argv[2]) != dedup)
			continue;
		struct cfg c = make_cfg(dedup);
		struct rt *rt;

		if (rt_new(&c, NULL, &met, &rt))
			return 1;
		if (!dedup)
			printf("registry lookup, %d agents: %.1f ns/lookup (target <= 50 ns)\n", NAGENTS,
			       lookup_bench(rt));
		for (int batch = argc > 3 ? atoi(argv[3]) : 1; batch <= 1000; batch *= 1000) {
			double ns = route_bench(rt, batch);

			printf("route+enqueue, no persistence, dedup %s, batch %4d: %.0f ns/msg = %.2f M msg/s on one "
			       "core "
			       "(target >= 5 M/s)\n",
			       dedup ? "on " : "off", batch, ns, 1e3 / ns);
		}
		rt_free(rt);
		cfg_free(&c);
	}
	rmet_free(&met);
	return 0;
}
