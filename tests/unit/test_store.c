/*
 * Unit tests for the store's writer, sync and checkpoint threads
 * (router/store.c, store_sync.c, ckpt.c) against real SQLite files: the
 * checkpointer copies the WAL back while the writer commits and the WAL
 * stays bounded, every committed row is there after a reopen, and tickets
 * complete in order on the right thread (the sync thread with full).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt.h"
#include "store.h"
#include "switchboard/log.h"
#include "switchboard/util.h"

#define BATCH 200
#define ROWS  60000 /* 256-byte bodies: ~20 MB of pages, past CKPT_FRAMES and the inline threshold */

struct fx {
	char dir[64];
	char db[96];
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/sb-test-store.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->db, sizeof(f->db), "%s/s.db", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char p[128];

	unlink(f->db);
	snprintf(p, sizeof(p), "%s-wal", f->db);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", f->db);
	unlink(p);
	rmdir(f->dir);
	free(f);
	return 0;
}

static int64_t wal_bytes(const struct fx *f)
{
	char p[128];
	struct stat st;

	snprintf(p, sizeof(p), "%s-wal", f->db);
	return stat(p, &st) == 0 ? (int64_t)st.st_size : 0;
}

/* Commit ROWS message inserts in tickets of BATCH. */
static void insert_rows(struct store *s)
{
	static struct store_op ops[BATCH];
	static char ids[BATCH][32];
	char body[256];

	memset(body, 'x', sizeof(body));
	for (uint64_t seq = 1; seq <= ROWS; seq += BATCH) {
		struct store_ticket t = {.ops = ops, .nops = BATCH};

		for (int i = 0; i < BATCH; i++) {
			snprintf(ids[i], sizeof(ids[i]), "m-%llu", (unsigned long long)(seq + (uint64_t)i));
			memset(&ops[i], 0, sizeof(ops[i]));
			ops[i].type = STORE_MSG_INSERT;
			ops[i].seq = seq + (uint64_t)i;
			ops[i].id = ids[i];
			ops[i].receiver = "a";
			ops[i].sender = "b";
			ops[i].text = body;
			ops[i].text_len = sizeof(body);
			ops[i].i3 = util_now_ms();
			ops[i].max_retries = -1;
		}
		assert_int_equal(store_submit(s, &t), 0);
		assert_int_equal(store_wait(s, &t), 0);
	}
}

static int count_row(void *ctx, const struct store_msg_row *row)
{
	(void)row;
	++*(size_t *)ctx;
	return 0;
}

static void reopen_and_count(const struct fx *f, int sync_full)
{
	struct store *s = NULL;
	size_t n = 0;

	assert_int_equal(store_open(f->db, sync_full, 1000, &s), 0);
	assert_int_equal(store_load_messages(s, count_row, &n), 0);
	assert_int_equal(n, ROWS);
	store_close(s);
}

/* Either level: the checkpointer copies the WAL back beside the writer,
 * the WAL stays bounded, and every row is there after a reopen. */
static void checkpoints_beside_the_writer(struct fx *f, int sync_full)
{
	struct store *s = NULL;
	struct store_stats st;
	int waited = 0;

	assert_int_equal(store_open(f->db, sync_full, 1000, &s), 0);
	assert_int_equal(store_start(s, 1024, 0, NULL, NULL), 0);
	insert_rows(s);
	do { /* the checkpointer runs beside the writer: give it a moment */
		store_get_stats(s, &st);
		if (st.checkpoints == 0)
			usleep(10 * 1000);
	} while (st.checkpoints == 0 && ++waited < 500);
	assert_true(st.checkpoints > 0);
	assert_true(wal_bytes(f) <= (int64_t)CKPT_HARD_FRAMES * 4200);
	store_close(s);
	assert_int_equal(wal_bytes(f), 0); /* the last checkpoint truncates it */
	reopen_and_count(f, sync_full);
}

static void test_normal_checkpoints_on_their_own_thread(void **state)
{
	checkpoints_beside_the_writer(*state, 0);
}

static void test_full_checkpoints_on_their_own_thread(void **state)
{
	checkpoints_beside_the_writer(*state, 1);
}

/* What the commit callback saw: ticket order and the thread it ran on. */
struct seen {
	int order[64];
	int n;
	int wrong_thread;
	const char *thread; /* expected name */
};

static void record(struct store_ticket *t, void *ctx)
{
	struct seen *seen = ctx;
	char name[16] = "";

	assert_int_equal(t->rc, 0);
	pthread_getname_np(pthread_self(), name, sizeof(name));
	seen->wrong_thread += strcmp(name, seen->thread) != 0;
	if (seen->n < 64)
		seen->order[seen->n++] = (int)(intptr_t)t->user;
}

/* Tickets submitted back to back complete in submission order, on the
 * writer with normal and on the sync thread (after its fdatasync) with
 * full, whatever transactions they were grouped into. */
static void completes_in_order(struct fx *f, int sync_full)
{
	static struct store_op ops[64];
	static char ids[64][16];
	struct store_ticket t[64];
	struct seen seen = {.thread = sync_full ? "sb-sync" : "sb-writer"};
	struct store *s = NULL;
	char body[8] = "payload";

	assert_int_equal(store_open(f->db, sync_full, 1000, &s), 0);
	assert_int_equal(store_start(s, 4, 0, record, &seen), 0); /* 4 ops a transaction: many commits */
	for (int i = 0; i < 64; i++) {
		snprintf(ids[i], sizeof(ids[i]), "o-%d", i);
		memset(&ops[i], 0, sizeof(ops[i]));
		ops[i] = (struct store_op){.type = STORE_MSG_INSERT,
					   .seq = (uint64_t)i + 1,
					   .id = ids[i],
					   .receiver = "a",
					   .sender = "b",
					   .text = body,
					   .text_len = sizeof(body),
					   .max_retries = -1};
		t[i] = (struct store_ticket){.ops = &ops[i], .nops = 1, .user = (void *)(intptr_t)i};
		assert_int_equal(store_submit(s, &t[i]), 0);
	}
	for (int i = 0; i < 64; i++)
		assert_int_equal(store_wait(s, &t[i]), 0);
	store_close(s);
	assert_int_equal(seen.n, 64);
	assert_int_equal(seen.wrong_thread, 0);
	for (int i = 0; i < 64; i++)
		assert_int_equal(seen.order[i], i);
}

static void test_normal_completes_in_order_on_the_writer(void **state)
{
	completes_in_order(*state, 0);
}

static void test_full_completes_in_order_after_the_sync(void **state)
{
	completes_in_order(*state, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_normal_checkpoints_on_their_own_thread, setup, teardown),
		cmocka_unit_test_setup_teardown(test_full_checkpoints_on_their_own_thread, setup, teardown),
		cmocka_unit_test_setup_teardown(test_normal_completes_in_order_on_the_writer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_full_completes_in_order_after_the_sync, setup, teardown),
	};

	if (util_init())
		return 1;
	log_set_level(LOG_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
