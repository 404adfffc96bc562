/*
 * Unit tests for tasks (rt_task_get, rt_task_cancel, rt_agent_for_token)
 * against a real SQLite file: each state a message can be in (queued,
 * leased, acked, nacked, dead-lettered by retries or by deadline, replayed,
 * cancelled, unknown), cancellation and its return codes, a cancellation
 * that cannot be committed, recovery of cancellations after a restart, the
 * window of 0, the schema an older database gains at open, and a dead
 * letter's detail (rt_engine_fail_why) in its row, the listing, the
 * failure notice and the task, across a replay and in an older database.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rt.h"
#include "rt_int.h"
#include "rtfx.h"
#include "switchboard/log.h"
#include "switchboard/util.h"

#define TOK_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define TOK_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define TOK_S "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc" /* shared by y and z */
#define TOK_X "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd" /* nobody's */

/* a sends to b; c has no token; y and z share one; p is pushed to (no
 * push engine runs here: the tests take its leases with rt_engine_take) */
static const char base_yaml[] =
	"delivery: {leaseTimeoutMs: 5000, dedupWindowMs: %d}\n"
	"performance: {messageTimeoutMs: 30000}\n"
	"agents:\n  - {id: a, tokenSha256: " TOK_A "}\n  - {id: b, tokenSha256: " TOK_B "}\n"
	"  - {id: c}\n  - {id: z, tokenSha256: " TOK_S "}\n  - {id: y, tokenSha256: " TOK_S "}\n"
	"  - {id: p, mode: push, endpoint: 'http://127.0.0.1:9/'}\n";

/* A fixture with the dedup window `window_ms`; started unless `memory`
 * (then the core has no store and no maintenance thread). */
static struct fx *fx_new(int window_ms, int memory)
{
	char yaml[1024];
	struct fx *f;

	snprintf(yaml, sizeof(yaml), base_yaml, window_ms);
	f = fx_alloc(yaml, "sbtask");
	if (memory) {
		assert_int_equal(rmet_init(&f->met), 0);
		assert_int_equal(rt_new(&f->cfg, NULL, &f->met, &f->rt), 0);
	} else {
		fx_start(f);
	}
	return f;
}

static void fx_free(struct fx *f, int memory)
{
	if (memory) {
		rt_free(f->rt);
		rmet_free(&f->met);
	} else {
		fx_stop(f);
	}
	fx_free_dir(f);
}

static int setup(void **state)
{
	*state = fx_new(300000, 0);
	return 0;
}

static int teardown(void **state)
{
	fx_free(*state, 0);
	return 0;
}

static int send_to_b(struct fx *f, const char *id, const char *conv, const char *delivery, int *dup)
{
	return fx_send(f, "b", id, conv, delivery, dup);
}

/* Pull b's mailbox; the message ids, comma-joined, into out. */
static void pull_b(struct fx *f, char *out, size_t outlen)
{
	struct buf b;
	struct rt_err e = {0};
	json_t *o, *v;
	char lease[33];
	size_t i;

	buf_init(&b, 1 << 20);
	assert_int_equal(rt_pull(f->rt, "b", NULL, 10, 0, NULL, lease, &b, &e), 0);
	o = json_loads(buf_str(&b), 0, NULL);
	assert_non_null(o);
	out[0] = '\0';
	json_array_foreach (json_object_get(o, "messages"), i, v) {
		if (i)
			strncat(out, ",", outlen - strlen(out) - 1);
		strncat(out, json_string_value(json_object_get(v, "message_id")), outlen - strlen(out) - 1);
	}
	json_decref(o);
	buf_free(&b);
}

static void settle_b(struct fx *f, const char *id, int ack)
{
	json_t *arr = json_pack("[s]", id);
	struct buf b;
	struct rt_err e = {0};

	buf_init(&b, 4096);
	assert_int_equal(rt_settle(f->rt, "b", NULL, arr, ack, &b, &e), 0);
	assert_null(strstr(buf_str(&b), "\"not_leased\":[\""));
	buf_free(&b);
	json_decref(arr);
}

static int task_state(struct fx *f, const char *id, struct rt_task *t)
{
	assert_int_equal(rt_task_get(f->rt, "b", id, t), 0);
	return t->state;
}

/* Wait until `n` dead letters are written. */
static void wait_dead_letters(struct fx *f, int64_t n)
{
	for (int i = 0; i < 100 && store_dl_count(f->st) < n; i++)
		usleep(20 * 1000);
	assert_int_equal(store_dl_count(f->st), n);
}

/* Run SQL on the database beside the router (a second connection). */
static void sql(struct fx *f, const char *q)
{
	sqlite3 *db = NULL;

	assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 2000);
	assert_int_equal(sqlite3_exec(db, q, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
}

/* The first column of the first row of `q`, as an integer. */
static int64_t sql_int(const char *path, const char *q)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int64_t v = -1;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, q, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

/* --- rt_task_get: one case per state ---------------------------------------- */

enum act { ACT_NONE, ACT_QUEUE, ACT_PULL, ACT_ACK, ACT_NACK, ACT_DIE, ACT_EXPIRE, ACT_REPLAY, ACT_CANCEL };

struct get_case {
	const char *name;
	enum act act;
	int restart; /* close and reopen over the same database before asking */
	int state;
	const char *reason;
};

/* Bring message "t1" (conversation "cv-1") to the state `act` names. */
static void act_on(struct fx *f, enum act act)
{
	char got[256];
	struct rt_task t;
	struct buf b;

	if (act == ACT_NONE)
		return;
	if (act == ACT_EXPIRE) {
		assert_int_equal(send_to_b(f, "t1", "cv-1", "\"timeout_ms\":100", NULL), 202);
		wait_dead_letters(f, 1);
		return;
	}
	assert_int_equal(send_to_b(f, "t1", "cv-1", act >= ACT_DIE ? "\"max_retries\":0" : NULL, NULL), 202);
	if (act == ACT_QUEUE)
		return;
	if (act == ACT_CANCEL) {
		assert_int_equal(rt_task_cancel(f->rt, "b", "t1", NULL, &t), 0);
		return;
	}
	pull_b(f, got, sizeof(got));
	assert_string_equal(got, "t1");
	if (act == ACT_PULL)
		return;
	settle_b(f, "t1", act == ACT_ACK);
	if (act < ACT_DIE)
		return;
	wait_dead_letters(f, 1);
	if (act == ACT_REPLAY) {
		buf_init(&b, 4096);
		assert_int_equal(rt_replay(f->rt, "b", NULL, NULL, 0, 10, &b), 0);
		assert_string_equal(buf_str(&b), "{\"replayed\":1,\"skipped\":0}\n");
		buf_free(&b);
	}
}

static void test_get_each_state(void **state)
{
	static const struct get_case cases[] = {
		{"unknown", ACT_NONE, 0, RT_TASK_UNKNOWN, ""},
		{"queued", ACT_QUEUE, 0, RT_TASK_SUBMITTED, ""},
		{"queued, after a restart", ACT_QUEUE, 1, RT_TASK_SUBMITTED, ""},
		{"pulled", ACT_PULL, 0, RT_TASK_WORKING, ""},
		{"acked", ACT_ACK, 0, RT_TASK_COMPLETED, ""},
		{"acked, after a restart", ACT_ACK, 1, RT_TASK_COMPLETED, ""},
		{"nacked", ACT_NACK, 0, RT_TASK_SUBMITTED, ""},
		{"out of retries", ACT_DIE, 0, RT_TASK_FAILED, "AgentNotResponding"},
		{"out of retries, after a restart", ACT_DIE, 1, RT_TASK_FAILED, "AgentNotResponding"},
		{"out of time", ACT_EXPIRE, 0, RT_TASK_FAILED, "Timeout"},
		{"replayed dead letter", ACT_REPLAY, 0, RT_TASK_SUBMITTED, ""},
		{"cancelled", ACT_CANCEL, 0, RT_TASK_CANCELED, ""},
		{"cancelled, after a restart", ACT_CANCEL, 1, RT_TASK_CANCELED, ""},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct get_case *c = &cases[i];
		struct fx *f = fx_new(300000, 0);
		struct rt_task t;
		int64_t before = util_now_ms();

		print_message("case: %s\n", c->name);
		act_on(f, c->act);
		if (c->restart) {
			fx_stop(f);
			fx_start(f);
		}
		assert_int_equal(task_state(f, "t1", &t), c->state);
		assert_string_equal(t.reason, c->reason);
		assert_string_equal(t.detail, ""); /* none of these deaths says more */
		if (c->state == RT_TASK_SUBMITTED || c->state == RT_TASK_WORKING || c->state == RT_TASK_FAILED) {
			assert_string_equal(t.conversation_id, "cv-1");
			assert_string_equal(t.sender, "a");
		}
		if (c->state == RT_TASK_UNKNOWN || c->state == RT_TASK_COMPLETED)
			assert_int_equal(t.updated_ms, 0);
		else
			assert_true(t.updated_ms >= before - 1000 && t.updated_ms <= util_now_ms());
		/* another receiver's task of the same id is not this one */
		assert_int_equal(rt_task_get(f->rt, "c", "t1", &t), 0);
		assert_int_equal(t.state, RT_TASK_UNKNOWN);
		fx_free(f, 0);
	}
}

/* A message dead-lettered and not written yet is FAILED already: with no
 * maintenance thread (a memory-only core) it stays on the dying list. */
static void test_get_dying_is_failed(void **state)
{
	struct fx *f = fx_new(300000, 1);
	struct rt_task t;
	char got[64];

	(void)state;
	assert_int_equal(send_to_b(f, "d1", "cv-d", "\"max_retries\":0", NULL), 202);
	pull_b(f, got, sizeof(got));
	settle_b(f, "d1", 0);
	assert_int_equal(task_state(f, "d1", &t), RT_TASK_FAILED);
	assert_string_equal(t.reason, "AgentNotResponding");
	assert_string_equal(t.conversation_id, "cv-d");
	assert_string_equal(t.sender, "a");
	assert_int_equal(rt_task_cancel(f->rt, "b", "d1", NULL, &t), -EALREADY);
	assert_int_equal(t.state, RT_TASK_FAILED);
	fx_free(f, 1);
}

/* --- rt_task_cancel -------------------------------------------------------- */

static void test_cancel_queued(void **state)
{
	struct fx *f = *state;
	struct rt_task t;
	struct rt_stats s;
	char got[256];
	int dup = 0;

	assert_int_equal(send_to_b(f, "q1", "cv-q", NULL, NULL), 202);
	assert_int_equal(send_to_b(f, "q2", NULL, NULL, NULL), 202);
	assert_int_equal(rt_task_cancel(f->rt, "b", "q1", TOK_A, &t), 0);
	assert_int_equal(t.state, RT_TASK_CANCELED);
	assert_string_equal(t.conversation_id, "cv-q");
	assert_string_equal(t.sender, "a");
	assert_int_equal(task_state(f, "q1", &t), RT_TASK_CANCELED);
	assert_int_equal(met_counter_get(f->met.cancelled), 1);
	rt_get_stats(f->rt, &s);
	assert_int_equal(s.queued, 1);
	assert_int_equal(rt_depth(f->rt, "b"), 1);
	/* deleted durably and recorded, in the same commit */
	assert_int_equal(sql_int(f->db, "SELECT count(*) FROM messages WHERE message_id='q1'"), 0);
	assert_int_equal(sql_int(f->db, "SELECT count(*) FROM cancelled WHERE message_id='q1' AND receiver='b'"), 1);
	pull_b(f, got, sizeof(got));
	assert_string_equal(got, "q2");
	/* again: already cancelled */
	assert_int_equal(rt_task_cancel(f->rt, "b", "q1", NULL, &t), -EALREADY);
	assert_int_equal(t.state, RT_TASK_CANCELED);
	/* sent again within the window: a duplicate, nothing stored */
	assert_int_equal(send_to_b(f, "q1", "cv-q", NULL, &dup), 202);
	assert_true(dup);
	rt_get_stats(f->rt, &s);
	assert_int_equal(s.queued, 0);
	assert_int_equal(task_state(f, "q1", &t), RT_TASK_CANCELED);
}

static void test_cancel_refusals(void **state)
{
	struct fx *f = *state;
	struct rt_task t;
	char got[256];

	assert_int_equal(send_to_b(f, "r1", NULL, NULL, NULL), 202);
	pull_b(f, got, sizeof(got));
	assert_string_equal(got, "r1");
	assert_int_equal(rt_task_cancel(f->rt, "b", "r1", NULL, &t), -EBUSY);
	assert_int_equal(t.state, RT_TASK_WORKING);
	settle_b(f, "r1", 1);
	assert_int_equal(rt_task_cancel(f->rt, "b", "r1", NULL, &t), -EALREADY);
	assert_int_equal(t.state, RT_TASK_COMPLETED);
	assert_int_equal(rt_task_cancel(f->rt, "b", "nope", NULL, &t), -ENOENT);
	assert_int_equal(t.state, RT_TASK_UNKNOWN);
	assert_int_equal(rt_task_cancel(f->rt, "nobody", "r1", NULL, &t), -ENOENT);
	/* only the sender's token cancels: the receiver's, another's, nobody's do not */
	assert_int_equal(send_to_b(f, "r2", NULL, NULL, NULL), 202);
	assert_int_equal(rt_task_cancel(f->rt, "b", "r2", TOK_B, &t), -EPERM);
	assert_int_equal(rt_task_cancel(f->rt, "b", "r2", TOK_S, &t), -EPERM);
	assert_int_equal(rt_task_cancel(f->rt, "b", "r2", TOK_X, &t), -EPERM);
	assert_int_equal(task_state(f, "r2", &t), RT_TASK_SUBMITTED);
	assert_int_equal(met_counter_get(f->met.cancelled), 0);
	pull_b(f, got, sizeof(got));
	assert_string_equal(got, "r2");
	assert_int_equal(rt_task_cancel(f->rt, "b", "r2", TOK_B, &t), -EPERM); /* leased: still not b's */
	assert_int_equal(rt_task_cancel(f->rt, "b", "r2", TOK_A, &t), -EBUSY);
}

/* The conversation moves on past a cancelled message, and keeps its order. */
static void test_cancel_keeps_conversation_order(void **state)
{
	struct fx *f = *state;
	struct rt_task t;
	char got[256];

	assert_int_equal(send_to_b(f, "k1", "cv-k", NULL, NULL), 202);
	assert_int_equal(send_to_b(f, "k2", "cv-k", NULL, NULL), 202);
	assert_int_equal(send_to_b(f, "k3", "cv-k", NULL, NULL), 202);
	assert_int_equal(send_to_b(f, "k4", "cv-k", NULL, NULL), 202);
	assert_int_equal(rt_task_cancel(f->rt, "b", "k1", NULL, &t), 0); /* the head */
	assert_int_equal(rt_task_cancel(f->rt, "b", "k3", NULL, &t), 0); /* the middle */
	pull_b(f, got, sizeof(got));
	assert_string_equal(got, "k2,k4");
	settle_b(f, "k2", 1);
	settle_b(f, "k4", 1);
	/* the lane is gone and comes back for the next message */
	assert_int_equal(send_to_b(f, "k5", "cv-k", NULL, NULL), 202);
	pull_b(f, got, sizeof(got));
	assert_string_equal(got, "k5");
}

/* A cancellation that cannot be committed changes nothing: the message stays
 * stored, queued in its place. */
static void test_cancel_commit_fails(void **state)
{
	struct fx *f = *state;
	struct rt_task t;
	char got[256];

	assert_int_equal(send_to_b(f, "f1", "cv-f", NULL, NULL), 202);
	assert_int_equal(send_to_b(f, "f2", "cv-f", NULL, NULL), 202);
	assert_int_equal(send_to_b(f, "f3", "cv-f", NULL, NULL), 202);
	assert_int_equal(send_to_b(f, "n1", NULL, "\"priority\":\"high\"", NULL), 202);
	sql(f, "CREATE TRIGGER no_cancel BEFORE INSERT ON cancelled BEGIN SELECT RAISE(ABORT, 'test'); END;");
	assert_int_equal(rt_task_cancel(f->rt, "b", "f1", NULL, &t), -EIO);
	assert_int_equal(t.state, RT_TASK_SUBMITTED);
	assert_int_equal(rt_task_cancel(f->rt, "b", "f2", NULL, &t), -EIO);
	assert_int_equal(rt_task_cancel(f->rt, "b", "n1", NULL, &t), -EIO);
	assert_int_equal(task_state(f, "f2", &t), RT_TASK_SUBMITTED);
	assert_int_equal(sql_int(f->db, "SELECT count(*) FROM messages"), 4);
	assert_int_equal(met_counter_get(f->met.cancelled), 0);
	pull_b(f, got, sizeof(got));
	assert_string_equal(got, "n1,f1,f2,f3");
	settle_b(f, "f1", 0);
	settle_b(f, "f2", 0);
	settle_b(f, "f3", 0);
	sql(f, "DROP TRIGGER no_cancel;");
	assert_int_equal(rt_task_cancel(f->rt, "b", "f2", NULL, &t), 0);
	pull_b(f, got, sizeof(got));
	assert_string_equal(got, "f1,f3");
}

/* Cancelled, then the router restarts over the same database: the message
 * is not delivered, its task is still CANCELED, and its id a duplicate. */
static void test_cancel_survives_restart(void **state)
{
	struct fx *f = *state;
	struct rt_task t;
	char got[256];
	int dup = 0;

	assert_int_equal(send_to_b(f, "p1", NULL, NULL, NULL), 202);
	assert_int_equal(send_to_b(f, "p2", NULL, NULL, NULL), 202);
	assert_int_equal(rt_task_cancel(f->rt, "b", "p1", NULL, &t), 0);
	fx_stop(f);
	fx_start(f);
	assert_int_equal(task_state(f, "p1", &t), RT_TASK_CANCELED);
	assert_true(t.updated_ms > 0);
	pull_b(f, got, sizeof(got));
	assert_string_equal(got, "p2");
	assert_int_equal(send_to_b(f, "p1", NULL, NULL, &dup), 202);
	assert_true(dup);
	pull_b(f, got, sizeof(got));
	assert_string_equal(got, "");
	/* the store's pruning drops cancellations with the window's ids */
	fx_stop(f);
	sql(f, "UPDATE cancelled SET cancelled_at=cancelled_at-400000; UPDATE accepted_log SET "
	       "accepted_at=accepted_at-400000;");
	fx_start(f);
	assert_int_equal(task_state(f, "p1", &t), RT_TASK_UNKNOWN);
	{
		struct store_op op = {.type = STORE_DEDUP_PRUNE, .i1 = util_now_ms() - 300000};
		struct store_ticket tk = {.ops = &op, .nops = 1};

		assert_int_equal(store_submit(f->st, &tk), 0);
		assert_int_equal(store_wait(f->st, &tk), 0);
	}
	assert_int_equal(sql_int(f->db, "SELECT count(*) FROM cancelled"), 0);
}

/* At recovery, a cancellation older than a later acceptance of the same id
 * (accepted again once the window had dropped it) does not flag that one. */
static void test_recovery_prefers_a_later_acceptance(void **state)
{
	struct fx *f = *state;
	struct rt_task t;
	char q[256];

	assert_int_equal(send_to_b(f, "v1", NULL, NULL, NULL), 202);
	assert_int_equal(rt_task_cancel(f->rt, "b", "v1", NULL, &t), 0);
	fx_stop(f);
	/* the first acceptance left the window; v1 was accepted again (and acked) after the cancellation */
	snprintf(q, sizeof(q),
		 "UPDATE accepted_log SET accepted_at=accepted_at-400000; UPDATE cancelled SET cancelled_at=%lld;"
		 "INSERT INTO accepted_log VALUES(1000,%lld,'1000 b v1'||char(10));",
		 (long long)util_now_ms() - 5000, (long long)util_now_ms() - 1000);
	sql(f, q);
	fx_start(f);
	assert_int_equal(task_state(f, "v1", &t), RT_TASK_COMPLETED);
	/* and without the later acceptance it is the cancelled one */
	fx_stop(f);
	sql(f, "DELETE FROM accepted_log WHERE seq=1000;");
	fx_start(f);
	assert_int_equal(task_state(f, "v1", &t), RT_TASK_CANCELED);
}

/* With a window of 0 nothing is remembered: no cancelled row, and a
 * settled or cancelled message is unknown; dead letters still answer. */
static void test_window_off(void **state)
{
	struct fx *f = fx_new(0, 0);
	struct rt_task t;
	char got[64];

	(void)state;
	assert_int_equal(send_to_b(f, "w1", NULL, NULL, NULL), 202);
	assert_int_equal(rt_task_cancel(f->rt, "b", "w1", NULL, &t), 0);
	assert_int_equal(t.state, RT_TASK_CANCELED);
	assert_int_equal(task_state(f, "w1", &t), RT_TASK_UNKNOWN);
	assert_int_equal(sql_int(f->db, "SELECT count(*) FROM cancelled"), 0);
	assert_int_equal(sql_int(f->db, "SELECT count(*) FROM messages"), 0);
	assert_int_equal(send_to_b(f, "w2", NULL, "\"max_retries\":0", NULL), 202);
	pull_b(f, got, sizeof(got));
	settle_b(f, "w2", 0);
	wait_dead_letters(f, 1);
	assert_int_equal(task_state(f, "w2", &t), RT_TASK_FAILED);
	assert_string_equal(t.reason, "AgentNotResponding");
	fx_free(f, 0);
}

/* --- rt_agent_for_token ------------------------------------------------------- */

static void test_agent_for_token(void **state)
{
	struct fx *f = *state;
	char id[MSG_AGENT_ID_MAX + 1];

	assert_int_equal(rt_agent_for_token(f->rt, TOK_B, id), 0);
	assert_string_equal(id, "b");
	assert_int_equal(rt_agent_for_token(f->rt, TOK_A, id), 0);
	assert_string_equal(id, "a");
	assert_int_equal(rt_agent_for_token(f->rt, TOK_S, id), 0);
	assert_string_equal(id, "y"); /* shared: the smallest id */
	assert_int_equal(rt_agent_for_token(f->rt, TOK_X, id), -ENOENT);
	assert_int_equal(rt_agent_for_token(f->rt, "", id), -ENOENT); /* c has no token */
	assert_int_equal(rt_agent_for_token(f->rt, NULL, id), -ENOENT);
	assert_int_equal(rt_agent_for_token(f->rt, TOK_B "0", id), -ENOENT);
}

/* --- the schema of an older database ------------------------------------------ */

static void test_old_database_gains_task_schema(void **state)
{
	struct fx *f = *state;
	char path[192];
	struct store *st = NULL;

	/* a v3 database as the previous router left it */
	snprintf(path, sizeof(path), "%s/old.db", f->dir);
	{
		sqlite3 *db = NULL;

		assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
		assert_int_equal(
			sqlite3_exec(db,
				     "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
				     "INSERT INTO meta VALUES('schema_version','3');"
				     "CREATE TABLE dead_letters(seq INTEGER PRIMARY KEY, message_id TEXT NOT NULL,"
				     " receiver TEXT NOT NULL, sender TEXT NOT NULL, conversation_id TEXT,"
				     " reason TEXT NOT NULL, attempts INTEGER NOT NULL, died_at INTEGER NOT NULL,"
				     " body BLOB NOT NULL);"
				     "INSERT INTO dead_letters VALUES(7,'old-1','b','a','cv-o','Timeout',1,1234,'{}');",
				     NULL, NULL, NULL),
			SQLITE_OK);
		sqlite3_close(db);
	}
	assert_int_equal(store_open(path, 1, 1000, &st), 0);
	store_close(st);
	assert_int_equal(sql_int(path, "SELECT count(*) FROM sqlite_master WHERE type='index' AND "
				       "name='dead_letters_id' AND tbl_name='dead_letters'"),
			 1);
	assert_int_equal(sql_int(path, "SELECT count(*) FROM sqlite_master WHERE type='table' AND name='cancelled'"),
			 1);
	assert_int_equal(sql_int(path, "SELECT value FROM meta WHERE key='schema_version'"), 3);
	/* store_dl_find's lookup uses the index */
	{
		sqlite3 *db = NULL;
		sqlite3_stmt *plan = NULL;
		int uses = 0;

		assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
		assert_int_equal(sqlite3_prepare_v2(db,
						    "EXPLAIN QUERY PLAN SELECT seq FROM dead_letters WHERE "
						    "message_id='old-1' AND receiver='b' ORDER BY seq DESC LIMIT 1",
						    -1, &plan, NULL),
				 SQLITE_OK);
		while (sqlite3_step(plan) == SQLITE_ROW)
			uses |= strstr((const char *)sqlite3_column_text(plan, 3), "dead_letters_id") != NULL;
		sqlite3_finalize(plan);
		sqlite3_close(db);
		assert_true(uses);
	}
}

/* --- a dead letter's detail (rt_engine_fail_why) ------------------------------ */

/* The first column of the first row of `q` as text into `out`; 0 when it is
 * NULL or there is no row ("" then). */
static int sql_text(const char *path, const char *q, char *out, size_t outlen)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int found = 0;

	out[0] = '\0';
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, q, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
		snprintf(out, outlen, "%s", (const char *)sqlite3_column_text(st, 0));
		found = 1;
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	return found;
}

/* Take the next `n` messages pushed to p as the push engine would, check
 * their ids (comma-joined in `ids`), and fail them: with `detail` through
 * rt_engine_fail_why, or through rt_engine_fail when `plain`. */
static void fail_p(struct fx *f, size_t n, const char *ids, const char *detail, int plain)
{
	struct rt_lease *l = rt_engine_take(f->rt, "p", n);
	char got[256] = "";

	assert_non_null(l);
	for (const struct rt_msg *m = l->msgs; m; m = m->lnext) {
		if (got[0])
			strncat(got, ",", sizeof(got) - strlen(got) - 1);
		strncat(got, m->message_id, sizeof(got) - strlen(got) - 1);
	}
	assert_string_equal(got, ids);
	if (plain)
		rt_engine_fail(f->rt, l, RT_DEATH_REJECTED);
	else
		rt_engine_fail_why(f->rt, l, RT_DEATH_REJECTED, detail);
}

/* p's dead letter of `id` as GET /v1/deadletters lists it (NULL when not
 * listed); *root owns it. */
static json_t *dl_listed(struct fx *f, const char *id, json_t **root)
{
	struct buf b;
	json_t *v;
	size_t i;

	buf_init(&b, 1 << 20);
	assert_int_equal(rt_deadletters_json(f->rt, "p", NULL, 0, 100, &b), 0);
	*root = json_loads(buf_str(&b), 0, NULL);
	buf_free(&b);
	assert_non_null(*root);
	json_array_foreach (json_object_get(*root, "deadletters"), i, v)
		if (strcmp(json_string_value(json_object_get(v, "message_id")), id) == 0)
			return v;
	return NULL;
}

/* The content of the next FIPA failure notice in a's mailbox, parsed (it
 * must be JSON); it is about `id`.  The caller releases it. */
static json_t *notice(struct fx *f, const char *id)
{
	struct buf b;
	struct rt_err e = {0};
	char lease[33];
	json_t *o, *m, *content, *ack;

	buf_init(&b, 1 << 20);
	/* the notice is sent once the dead letter is written: wait for it */
	assert_int_equal(rt_pull(f->rt, "a", NULL, 1, 3000, NULL, lease, &b, &e), 0);
	o = json_loads(buf_str(&b), 0, NULL);
	m = json_object_get(json_array_get(json_object_get(o, "messages"), 0), "message");
	assert_non_null(m);
	/* acked, so the next notice of its conversation comes */
	ack = json_pack("[O]", json_object_get(m, "message_id"));
	buf_reset(&b);
	assert_int_equal(rt_settle(f->rt, "a", NULL, ack, 1, &b, &e), 0);
	json_decref(ack);
	buf_free(&b);
	assert_string_equal(json_string_value(json_object_get(m, "performative")), "failure");
	assert_string_equal(json_string_value(json_object_get(m, "in_reply_to")), id);
	content = json_loads(json_string_value(json_object_get(m, "content")), 0, NULL);
	assert_non_null(content);
	assert_string_equal(json_string_value(json_object_get(content, "message_id")), id);
	assert_string_equal(json_string_value(json_object_get(content, "receiver")), "p");
	json_decref(o);
	return content;
}

/* Every message of a lease failed with a detail carries it: its row, the
 * listing, its sender's failure notice and its task, before and after the
 * write and across a restart.  The detail is an agent's words: quotes,
 * backslashes and control characters stay JSON everywhere. */
static void test_detail_everywhere(void **state)
{
	static const char why[] = "A2A error -32602: Invalid params: \"parts[0]\" \\ <x>\n\tend \xc3\xa9";
	static const char *const ids[] = {"x1", "x2"};
	struct fx *f = *state;
	struct rt_task t;
	char text[512], q[128];
	json_t *root, *dl, *n;

	assert_int_equal(fx_send(f, "p", "x1", "cv-x", NULL, NULL), 202);
	assert_int_equal(fx_send(f, "p", "x2", "cv-x", NULL, NULL), 202);
	fail_p(f, 2, "x1,x2", why, 0);
	for (size_t i = 0; i < 2; i++) {
		assert_int_equal(rt_task_get(f->rt, "p", ids[i], &t), 0); /* doomed, written or not */
		assert_int_equal(t.state, RT_TASK_FAILED);
		assert_string_equal(t.reason, "InvalidMessage");
		assert_string_equal(t.detail, why);
		n = notice(f, ids[i]);
		assert_string_equal(json_string_value(json_object_get(n, "reason")), "InvalidMessage");
		assert_string_equal(json_string_value(json_object_get(n, "detail")), why);
		assert_int_equal(json_integer_value(json_object_get(n, "attempts")), 1);
		json_decref(n);
	}
	wait_dead_letters(f, 2);
	for (int restart = 0; restart < 2; restart++) {
		for (size_t i = 0; i < 2; i++) {
			snprintf(q, sizeof(q), "SELECT detail FROM dead_letters WHERE message_id='%s'", ids[i]);
			assert_true(sql_text(f->db, q, text, sizeof(text)));
			assert_string_equal(text, why);
			dl = dl_listed(f, ids[i], &root);
			assert_non_null(dl);
			assert_string_equal(json_string_value(json_object_get(dl, "reason")), "InvalidMessage");
			assert_string_equal(json_string_value(json_object_get(dl, "detail")), why);
			json_decref(root);
			assert_int_equal(rt_task_get(f->rt, "p", ids[i], &t), 0); /* from the row now */
			assert_int_equal(t.state, RT_TASK_FAILED);
			assert_string_equal(t.detail, why);
			assert_string_equal(t.conversation_id, "cv-x");
		}
		fx_stop(f);
		fx_start(f);
	}
}

/* Without a detail (rt_engine_fail, a NULL or an empty one, a nack out of
 * retries) there is no "detail" anywhere: NULL in the row, no key in the
 * listing or the notice, "" in the task. */
static void test_detail_none(void **state)
{
	static const char *const ids[] = {"n1", "n2", "n3", "n4"};
	struct fx *f = *state;
	struct rt_task t;
	char q[128], got[64];
	json_t *root, *dl, *n;

	for (size_t i = 0; i < 3; i++)
		assert_int_equal(fx_send(f, "p", ids[i], NULL, NULL, NULL), 202);
	fail_p(f, 1, "n1", NULL, 1);
	fail_p(f, 1, "n2", NULL, 0);
	fail_p(f, 1, "n3", "", 0);
	assert_int_equal(fx_send(f, "p", "n4", NULL, "\"max_retries\":0", NULL), 202);
	{ /* n4 dies of a failed push with retries run out, as push.c fails it */
		struct rt_lease *l = rt_engine_take(f->rt, "p", 1);
		int death = 0;

		assert_non_null(l);
		assert_int_equal(rt_engine_retry(f->rt, l, RT_DEATH_NETWORK, &death), 0);
		rt_engine_fail(f->rt, l, death);
	}
	wait_dead_letters(f, 4);
	assert_int_equal(sql_int(f->db, "SELECT count(*) FROM dead_letters WHERE detail IS NULL"), 4);
	for (size_t i = 0; i < 4; i++) {
		assert_int_equal(rt_task_get(f->rt, "p", ids[i], &t), 0);
		assert_int_equal(t.state, RT_TASK_FAILED);
		assert_string_equal(t.detail, "");
		dl = dl_listed(f, ids[i], &root);
		assert_non_null(dl);
		assert_null(json_object_get(dl, "detail"));
		json_decref(root);
		n = notice(f, ids[i]);
		assert_null(json_object_get(n, "detail"));
		json_decref(n);
	}
	snprintf(q, sizeof(q), "SELECT reason FROM dead_letters WHERE message_id='n4'");
	assert_true(sql_text(f->db, q, got, sizeof(got)));
	assert_string_equal(got, "NetworkError");
}

/* rt_detail_cut: at most RT_DETAIL_MAX bytes, cut on a character boundary,
 * valid UTF-8 out whatever comes in. */
static void test_detail_cut(void **state)
{
	char in[512], out[RT_DETAIL_MAX + 1];

	(void)state;
	rt_detail_cut(NULL, out);
	assert_string_equal(out, "");
	rt_detail_cut("short", out);
	assert_string_equal(out, "short");
	/* 300 bytes: "a", 99 euro signs (3 bytes each), "xy"; 200 bytes would
	 * end inside the 67th euro sign, so 66 of them stay: 199 bytes */
	strcpy(in, "a");
	for (int i = 0; i < 99; i++)
		strcat(in, "\xe2\x82\xac");
	strcat(in, "xy");
	assert_int_equal(strlen(in), 300);
	rt_detail_cut(in, out);
	assert_int_equal(strlen(out), 199);
	assert_memory_equal(out, in, 199);
	assert_true(util_utf8_valid(out, strlen(out)));
	/* exactly 200 bytes of 4-byte characters are kept whole */
	in[0] = '\0';
	for (int i = 0; i < 75; i++)
		strcat(in, "\xf0\x9f\x98\x80");
	rt_detail_cut(in, out);
	assert_int_equal(strlen(out), 200);
	assert_memory_equal(out, in, 200);
	/* bytes that start no valid sequence become U+FFFD; a cut sequence too */
	rt_detail_cut("ok\xff!\xe2\x82", out);
	assert_string_equal(out, "ok\xef\xbf\xbd!\xef\xbf\xbd\xef\xbf\xbd");
}

/* A 300-byte detail of multi-byte characters is stored, listed and told
 * cut on a character boundary. */
static void test_detail_long_is_cut(void **state)
{
	struct fx *f = *state;
	char in[512], want[RT_DETAIL_MAX + 1], text[512];
	struct rt_task t;
	json_t *root, *dl, *n;

	/* "x", 99 euro signs, "yz": 300 bytes, of which 199 stay (66 euro signs) */
	strcpy(in, "x");
	for (int i = 0; i < 99; i++)
		strcat(in, "\xe2\x82\xac");
	strcat(in, "yz");
	assert_int_equal(strlen(in), 300);
	memcpy(want, in, 199);
	want[199] = '\0';
	assert_int_equal(fx_send(f, "p", "l1", NULL, NULL, NULL), 202);
	fail_p(f, 1, "l1", in, 0);
	wait_dead_letters(f, 1);
	assert_true(sql_text(f->db, "SELECT detail FROM dead_letters WHERE message_id='l1'", text, sizeof(text)));
	assert_string_equal(text, want);
	assert_int_equal(rt_task_get(f->rt, "p", "l1", &t), 0);
	assert_string_equal(t.detail, want);
	dl = dl_listed(f, "l1", &root);
	assert_string_equal(json_string_value(json_object_get(dl, "detail")), want);
	json_decref(root);
	n = notice(f, "l1");
	assert_string_equal(json_string_value(json_object_get(n, "detail")), want);
	json_decref(n);
}

/* A replayed message has no detail until it dies again, with that death's
 * (or none). */
static void test_detail_replay(void **state)
{
	struct fx *f = *state;
	struct rt_task t;
	struct buf b;
	char text[256];
	json_t *n;

	assert_int_equal(fx_send(f, "p", "r1", NULL, NULL, NULL), 202);
	fail_p(f, 1, "r1", "first death", 0);
	wait_dead_letters(f, 1);
	for (int round = 0; round < 2; round++) {
		buf_init(&b, 4096);
		assert_int_equal(rt_replay(f->rt, "p", NULL, NULL, 0, 10, &b), 0);
		assert_string_equal(buf_str(&b), "{\"replayed\":1,\"skipped\":0}\n");
		buf_free(&b);
		assert_int_equal(rt_task_get(f->rt, "p", "r1", &t), 0);
		assert_int_equal(t.state, RT_TASK_SUBMITTED);
		assert_string_equal(t.detail, "");
		fail_p(f, 1, "r1", round == 0 ? "second death" : NULL, round == 1);
		wait_dead_letters(f, 1);
		assert_int_equal(rt_task_get(f->rt, "p", "r1", &t), 0);
		assert_int_equal(t.state, RT_TASK_FAILED);
		assert_string_equal(t.detail, round == 0 ? "second death" : "");
		assert_int_equal(
			sql_text(f->db, "SELECT detail FROM dead_letters WHERE message_id='r1'", text, sizeof(text)),
			round == 0);
		if (round == 0)
			assert_string_equal(text, "second death");
	}
	n = notice(f, "r1");
	assert_string_equal(json_string_value(json_object_get(n, "detail")), "first death");
	json_decref(n);
	n = notice(f, "r1");
	assert_string_equal(json_string_value(json_object_get(n, "detail")), "second death");
	json_decref(n);
	n = notice(f, "r1");
	assert_null(json_object_get(n, "detail"));
	json_decref(n);
}

/* Doomed and not written yet (no maintenance thread in a memory-only
 * core), the task has the detail from the message in memory. */
static void test_detail_of_a_dying_message(void **state)
{
	struct fx *f = fx_new(300000, 1);
	struct rt_task t;

	(void)state;
	assert_int_equal(fx_send(f, "p", "d1", NULL, NULL, NULL), 202);
	fail_p(f, 1, "d1", "A2A error -32602: Invalid params", 0);
	assert_int_equal(rt_task_get(f->rt, "p", "d1", &t), 0);
	assert_int_equal(t.state, RT_TASK_FAILED);
	assert_string_equal(t.reason, "InvalidMessage");
	assert_string_equal(t.detail, "A2A error -32602: Invalid params");
	fx_free(f, 1); /* frees the dying message and its detail (LeakSanitizer) */
}

/* A v3 database from before the detail: it opens, gains the column (still
 * v3), its old rows list without a detail, and new ones have theirs;
 * opening it again changes nothing. */
static void test_old_database_gains_detail(void **state)
{
	struct fx *f = *state;
	struct rt_task t;
	char cmd[512], text[64];
	json_t *root, *dl;

	fx_stop(f);
	snprintf(cmd, sizeof(cmd), "rm -f %s %s-wal %s-shm", f->db, f->db, f->db);
	assert_int_equal(system(cmd), 0);
	sql(f, "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
	       "INSERT INTO meta VALUES('schema_version','3');"
	       "CREATE TABLE dead_letters(seq INTEGER PRIMARY KEY, message_id TEXT NOT NULL,"
	       " receiver TEXT NOT NULL, sender TEXT NOT NULL, conversation_id TEXT,"
	       " reason TEXT NOT NULL, attempts INTEGER NOT NULL, died_at INTEGER NOT NULL,"
	       " body BLOB NOT NULL);"
	       "INSERT INTO dead_letters VALUES(7,'old-1','p','a','cv-o','Timeout',1,"
	       " CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER),'{}');"); /* died now: not pruned */
	assert_int_equal(sql_int(f->db, "SELECT count(*) FROM pragma_table_info('dead_letters') WHERE name='detail'"),
			 0);
	for (int open = 0; open < 2; open++) {
		fx_start(f);
		assert_int_equal(
			sql_int(f->db, "SELECT count(*) FROM pragma_table_info('dead_letters') WHERE name='detail'"),
			1);
		assert_int_equal(sql_int(f->db, "SELECT value FROM meta WHERE key='schema_version'"), 3);
		dl = dl_listed(f, "old-1", &root);
		assert_non_null(dl);
		assert_string_equal(json_string_value(json_object_get(dl, "reason")), "Timeout");
		assert_null(json_object_get(dl, "detail"));
		json_decref(root);
		assert_int_equal(rt_task_get(f->rt, "p", "old-1", &t), 0);
		assert_int_equal(t.state, RT_TASK_FAILED);
		assert_string_equal(t.detail, "");
		if (open == 0) {
			assert_int_equal(fx_send(f, "p", "new-1", NULL, NULL, NULL), 202);
			fail_p(f, 1, "new-1", "said no", 0);
			wait_dead_letters(f, 2);
		}
		assert_int_equal(rt_task_get(f->rt, "p", "new-1", &t), 0);
		assert_string_equal(t.detail, "said no");
		assert_true(sql_text(f->db, "SELECT detail FROM dead_letters WHERE message_id='new-1'", text,
				     sizeof(text)));
		assert_string_equal(text, "said no");
		if (open == 0)
			fx_stop(f);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_get_each_state),
		cmocka_unit_test(test_get_dying_is_failed),
		cmocka_unit_test_setup_teardown(test_cancel_queued, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel_keeps_conversation_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel_commit_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel_survives_restart, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recovery_prefers_a_later_acceptance, setup, teardown),
		cmocka_unit_test(test_window_off),
		cmocka_unit_test_setup_teardown(test_agent_for_token, setup, teardown),
		cmocka_unit_test_setup_teardown(test_old_database_gains_task_schema, setup, teardown),
		cmocka_unit_test_setup_teardown(test_detail_everywhere, setup, teardown),
		cmocka_unit_test_setup_teardown(test_detail_none, setup, teardown),
		cmocka_unit_test(test_detail_cut),
		cmocka_unit_test_setup_teardown(test_detail_long_is_cut, setup, teardown),
		cmocka_unit_test_setup_teardown(test_detail_replay, setup, teardown),
		cmocka_unit_test(test_detail_of_a_dying_message),
		cmocka_unit_test_setup_teardown(test_old_database_gains_detail, setup, teardown),
	};

	if (util_init())
		return 1;
	log_set_level(LOG_ERROR);
	return cmocka_run_group_tests_name("task", tests, NULL, NULL);
}
