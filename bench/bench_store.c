/*
 * The store writer alone (router/store.c): what one message costs SQLite,
 * without HTTP, routing or other threads.  One submitter keeps a queue of
 * `depth` messages: each round commits a ticket of `batch` inserts (256-byte
 * bodies, as the load generator sends) and a ticket deleting the oldest
 * `batch` (the acks), the pattern of a router whose consumers keep up.
 * Prints messages per second (inserted and deleted), the process's CPU
 * seconds per million messages and the commits, for storage.sync full and
 * normal.  Not part of `make test`; `make bench` builds it.
 *   build/rel/bench/bench_store [SECONDS [BATCH [DEPTH]]]
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "store.h"
#include "switchboard/log.h"
#include "switchboard/util.h"

struct run {
	double seconds;
	int batch, depth;
};

static double cpu_seconds(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
	       (double)ru.ru_stime.tv_usec / 1e6;
}

/* The ops of one insert ticket for messages first..first+n-1. */
static void fill_inserts(struct store_op *ops, char (*ids)[40], int n, uint64_t first, const char *body)
{
	for (int i = 0; i < n; i++) {
		uint64_t seq = first + (uint64_t)i;

		snprintf(ids[i], sizeof(ids[i]), "bench-%020llu", (unsigned long long)seq);
		memset(&ops[i], 0, sizeof(ops[i]));
		ops[i].type = STORE_MSG_INSERT;
		ops[i].seq = seq;
		ops[i].id = ids[i];
		ops[i].receiver = "a0";
		ops[i].sender = "producer-0";
		ops[i].text = body;
		ops[i].text_len = 256;
		ops[i].i1 = 2;
		ops[i].i2 = ops[i].i3 = util_now_ms();
		ops[i].deadline_ms = ops[i].i3 + 3600000;
		ops[i].max_retries = -1;
	}
}

static int commit(struct store *s, struct store_op *ops, size_t n)
{
	struct store_ticket t = {.ops = ops, .nops = n};
	int rc = store_submit(s, &t);

	return rc ? rc : store_wait(s, &t);
}

static int one_level(int sync_full, const struct run *r)
{
	char dir[] = "/tmp/sb-bench-store.XXXXXX", path[64], body[257];
	char(*ids)[40] = calloc((size_t)r->batch, sizeof(*ids));
	struct store_op *ops = calloc((size_t)r->batch, sizeof(*ops));
	struct store *s = NULL;
	struct store_stats st;
	uint64_t next = 1, oldest = 1, done = 0, t0, t1;
	double c0, c1;
	int rc = -ENOMEM, made = 0;

	if (!ids || !ops || !mkdtemp(dir))
		goto out;
	made = 1;
	snprintf(path, sizeof(path), "%s/bench.db", dir);
	memset(body, 'b', sizeof(body));
	rc = store_open(path, sync_full, 5000, &s);
	if (!rc)
		rc = store_start(s, 1024, 0, NULL, NULL);
	t0 = util_mono_ns();
	c0 = cpu_seconds();
	while (!rc && util_mono_ns() - t0 < (uint64_t)(r->seconds * 1e9)) {
		fill_inserts(ops, ids, r->batch, next, body);
		rc = commit(s, ops, (size_t)r->batch);
		next += (uint64_t)r->batch;
		if (rc || next - oldest <= (uint64_t)r->depth)
			continue;
		for (int i = 0; i < r->batch; i++) {
			memset(&ops[i], 0, sizeof(ops[i]));
			ops[i].type = STORE_MSG_DELETE;
			ops[i].seq = oldest++;
		}
		rc = commit(s, ops, (size_t)r->batch);
		done += (uint64_t)r->batch;
	}
	t1 = util_mono_ns();
	c1 = cpu_seconds();
	if (!rc) {
		store_get_stats(s, &st);
		printf("store, storage.sync %-6s batch %d, depth %d: %8.0f msg/s (inserted and deleted), %5.2f cpu-s "
		       "per "
		       "million, %llu commits, writer busy %.0f%%\n",
		       sync_full ? "full" : "normal", r->batch, r->depth, (double)done / ((double)(t1 - t0) / 1e9),
		       (c1 - c0) / ((double)done / 1e6), (unsigned long long)st.commits,
		       100.0 * (double)st.busy_ns / (double)(t1 - t0));
	}
out:
	store_close(s);
	if (made) {
		unlink(path);
		snprintf(path, sizeof(path), "%s/bench.db-wal", dir);
		unlink(path);
		snprintf(path, sizeof(path), "%s/bench.db-shm", dir);
		unlink(path);
		rmdir(dir);
	}
	free(ids);
	free(ops);
	return rc;
}

int main(int argc, char **argv)
{
	struct run r = {.seconds = 5, .batch = 200, .depth = 2000};

	if (argc > 1)
		r.seconds = atof(argv[1]);
	if (argc > 2)
		r.batch = atoi(argv[2]);
	if (argc > 3)
		r.depth = atoi(argv[3]);
	if (r.seconds <= 0 || r.batch <= 0 || r.depth < 0) {
		fprintf(stderr, "usage: bench_store [SECONDS [BATCH [DEPTH]]]\n");
		return 2;
	}
	if (util_init())
		return 1;
	log_set_level(LOG_WARN);
	if (one_level(1, &r) || one_level(0, &r))
		return 1;
	return 0;
}
