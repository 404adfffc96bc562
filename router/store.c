/*
 * SQLite persistence with a single writer thread.  Tickets queue in FIFO
 * order; the writer drains up to batch_max operations into one transaction
 * and commits it (SQLite's synchronous=NORMAL: the WAL is written, not
 * synced).  With storage.sync normal it then runs the commit callback for
 * each ticket and wakes the waiters; with full it hands the tickets to the
 * sync thread (store_sync.c), which completes them once an fdatasync of the
 * WAL covers them, while the writer goes on with the next transaction.
 * Checkpoints run on their own thread (ckpt.c).  Readers (recovery) use the
 * writer's connection before the writer starts.
 */
#include "store.h"

#include "ckpt.h"
#include "store_sync.h"

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "switchboard/buf.h"
#include "switchboard/log.h"
#include "switchboard/util.h"

enum {
	S_MSG_INS,
	S_ACC_INS,
	S_MSG_DEL,
	S_MSG_ATT,
	S_CONV_UPS,
	S_CONV_DEL,
	S_AGENT_UPS,
	S_DEDUP_PRUNE,
	S_DL_INS,
	S_DL_DEL,
	S_DL_PRUNE_AGE,
	S_DL_PRUNE_SIZE,
	S_CANCEL_INS,
	S_CANCEL_PRUNE,
	S_COUNT
};

static const char *const stmt_sql[S_COUNT] = {
	"INSERT INTO messages(seq,message_id,receiver,conversation_id,priority,created_at,accepted_at,body,sender,"
	"deadline_at,max_retries) VALUES(?,?,?,?,?,?,?,?,?,?,?)",
	"INSERT INTO accepted_log(seq,accepted_at,entries) VALUES(?,?,?)",
	"DELETE FROM messages WHERE seq=?",
	"UPDATE messages SET attempts=? WHERE seq=?",
	"INSERT INTO conversations(id,participants,protocol,created_at,last_activity,message_count) "
	"VALUES(?,?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET participants=excluded.participants,"
	"last_activity=excluded.last_activity,message_count=excluded.message_count",
	"DELETE FROM conversations WHERE id=?",
	"INSERT INTO agents(id,state,mode,capabilities,updated_at) VALUES(?,?,?,?,?) "
	"ON CONFLICT(id) DO UPDATE SET state=excluded.state,mode=excluded.mode,"
	"capabilities=excluded.capabilities,updated_at=excluded.updated_at",
	"DELETE FROM accepted_log WHERE accepted_at<?",
	"INSERT OR REPLACE INTO "
	"dead_letters(seq,message_id,receiver,sender,conversation_id,reason,attempts,died_at,body,detail) "
	"VALUES(?,?,?,?,?,?,?,?,?,?)",
	"DELETE FROM dead_letters WHERE seq=?",
	"DELETE FROM dead_letters WHERE died_at<?",
	"DELETE FROM dead_letters WHERE seq IN (SELECT seq FROM dead_letters ORDER BY seq DESC LIMIT -1 OFFSET ?)",
	"INSERT OR REPLACE INTO cancelled(message_id,receiver,cancelled_at) VALUES(?,?,?)",
	"DELETE FROM cancelled WHERE cancelled_at<?",
};

/*
 * The ids accepted in one commit, in one row: "<seq> <receiver> <message_id>\n"
 * per message (ids never hold spaces or newlines), keyed by the commit's
 * highest sequence.  Deduplication reads it after a restart; a row per
 * commit instead of a row and an index entry per message halves the
 * writer's B-tree work.
 */
#define ACCEPTED_LOG_SQL                                                                                               \
	"CREATE TABLE IF NOT EXISTS accepted_log(seq INTEGER PRIMARY KEY, accepted_at INTEGER NOT NULL,"               \
	" entries TEXT NOT NULL);"                                                                                     \
	"CREATE INDEX IF NOT EXISTS accepted_log_at ON accepted_log(accepted_at);"

#define ACCEPTED_LOG_MAX (64u << 20) /* batch_max entries of at most ~400 bytes */

/*
 * The current schema, applied on every open after migrate().  What is only
 * added (a table or an index that older routers never read) is created
 * here with IF NOT EXISTS and needs no version of its own: a v3 database
 * gains dead_letters_id (task lookups by message_id) and cancelled
 * (messages cancelled while queued) at its next open, and an older router
 * that opens a database which has them simply ignores them.  A column that
 * is only added (nullable, read by this router only) is the same case:
 * add_columns() adds it after this schema; older routers name their
 * columns in every statement, so they write NULL there and never read it.
 */
static const char schema_sql[] =
	"CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
	"INSERT OR IGNORE INTO meta(key,value) VALUES('schema_version','3');"
	"CREATE TABLE IF NOT EXISTS agents(id TEXT PRIMARY KEY, state TEXT NOT NULL, mode TEXT NOT NULL,"
	" capabilities TEXT NOT NULL, updated_at INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS conversations(id TEXT PRIMARY KEY, participants TEXT NOT NULL,"
	" protocol TEXT, created_at INTEGER NOT NULL, last_activity INTEGER NOT NULL,"
	" message_count INTEGER NOT NULL);"
	"CREATE INDEX IF NOT EXISTS conversations_last ON conversations(last_activity);"
	"CREATE TABLE IF NOT EXISTS messages(seq INTEGER PRIMARY KEY, message_id TEXT NOT NULL,"
	" receiver TEXT NOT NULL, conversation_id TEXT, priority INTEGER NOT NULL,"
	" created_at INTEGER NOT NULL, accepted_at INTEGER NOT NULL,"
	" attempts INTEGER NOT NULL DEFAULT 0, body BLOB NOT NULL, sender TEXT NOT NULL DEFAULT '',"
	" deadline_at INTEGER NOT NULL DEFAULT 0, max_retries INTEGER NOT NULL DEFAULT -1);"
	"CREATE TABLE IF NOT EXISTS dead_letters(seq INTEGER PRIMARY KEY, message_id TEXT NOT NULL,"
	" receiver TEXT NOT NULL, sender TEXT NOT NULL, conversation_id TEXT, reason TEXT NOT NULL,"
	" attempts INTEGER NOT NULL, died_at INTEGER NOT NULL, body BLOB NOT NULL, detail TEXT);"
	"CREATE INDEX IF NOT EXISTS dead_letters_died ON dead_letters(died_at);"
	"CREATE INDEX IF NOT EXISTS dead_letters_id ON dead_letters(message_id);"
	"CREATE TABLE IF NOT EXISTS cancelled(message_id TEXT NOT NULL, receiver TEXT NOT NULL,"
	" cancelled_at INTEGER NOT NULL, PRIMARY KEY(receiver, message_id));"
	"CREATE INDEX IF NOT EXISTS cancelled_at ON cancelled(cancelled_at);" ACCEPTED_LOG_SQL;

struct store {
	sqlite3 *db;
	sqlite3 *rdb; /* read-only connection for listings beside the writer */
	pthread_mutex_t rlock;
	char *path;
	sqlite3_stmt *st[S_COUNT];
	pthread_t writer;
	int writer_started;
	pthread_mutex_t lock;
	pthread_cond_t work; /* writer waits for tickets */
	pthread_cond_t done; /* submitters wait for completion */
	struct store_ticket *head, *tail;
	size_t queued_ops;
	int closing;
	size_t batch_max;
	unsigned delay_us;
	store_commit_fn on_commit;
	void *ctx;
	struct store_stats stats;
	struct buf accepted;	 /* the writer's accepted_log entries for one commit */
	struct ckpt *ckpt;	 /* the checkpointer, once the writer runs */
	struct store_sync *sync; /* storage.sync full: fdatasyncs the WAL after commits */
	int sync_full;
	int64_t busy_ms;
};

static int exec(struct store *s, const char *sql)
{
	char *err = NULL;

	if (sqlite3_exec(s->db, sql, NULL, NULL, &err) != SQLITE_OK) {
		log_error("sqlite statement failed", "error", err ? err : "?", "path", s->path);
		sqlite3_free(err);
		return -EIO;
	}
	return 0;
}

/*
 * After each commit of the writer's connection: hand the WAL to the
 * checkpointer, or checkpoint here past INLINE_CKPT_FRAMES when there is
 * none yet (recovery and the schema, before the writer starts), or when it
 * has fallen CKPT_HARD_FRAMES behind.
 */
#define INLINE_CKPT_FRAMES 4000 /* pages (~16 MiB), SQLite's wal_autocheckpoint */

static int wal_hook(void *arg, sqlite3 *db, const char *name, int frames)
{
	struct store *s = arg;

	if (s->ckpt)
		ckpt_notify(s->ckpt, frames);
	if (frames >= (s->ckpt ? CKPT_HARD_FRAMES : INLINE_CKPT_FRAMES))
		sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
	return SQLITE_OK;
}

/* 1 when a query returns at least one row. */
static int has_row(struct store *s, const char *sql)
{
	sqlite3_stmt *st = NULL;
	int found = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW;

	sqlite3_finalize(st);
	return found;
}

/* Roll back the open transaction after a failed change, and say `why`. */
static void rollback(struct store *s, const char *why)
{
	char *err = NULL;

	sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, &err);
	sqlite3_free(err);
	log_error(why, "path", s->path);
}

/*
 * Bring a database written by an older router up to the current schema, in
 * one transaction; a new database gets the current schema directly.
 *   v1 -> v2: messages gains sender, deadline_at and max_retries.
 *   v2 -> v3: the accepted table (a row per message, v1 keyed by message_id,
 *   v2 by sequence) becomes accepted_log (a row per commit).
 */
static int migrate(struct store *s)
{
	int rc;

	if (!has_row(s, "SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'") ||
	    has_row(s, "SELECT 1 FROM meta WHERE key='schema_version' AND CAST(value AS INTEGER)>=3"))
		return 0;
	log_info("migrating the database schema", "to", "3", "path", s->path);
	rc = exec(s, "BEGIN IMMEDIATE");
	if (!rc && !has_row(s, "SELECT 1 FROM pragma_table_info('messages') WHERE name='sender'"))
		rc = exec(s, "ALTER TABLE messages ADD COLUMN sender TEXT NOT NULL DEFAULT '';"
			     "ALTER TABLE messages ADD COLUMN deadline_at INTEGER NOT NULL DEFAULT 0;"
			     "ALTER TABLE messages ADD COLUMN max_retries INTEGER NOT NULL DEFAULT -1;");
	if (!rc && has_row(s, "SELECT 1 FROM sqlite_master WHERE type='table' AND name='accepted'"))
		rc = exec(s, ACCEPTED_LOG_SQL "INSERT OR IGNORE INTO accepted_log(seq,accepted_at,entries)"
					      " SELECT seq,accepted_at,seq||' '||receiver||' '||message_id||char(10)"
					      " FROM accepted; DROP TABLE accepted;");
	if (!rc)
		rc = exec(s, "UPDATE meta SET value='3' WHERE key='schema_version'; COMMIT");
	if (rc)
		rollback(s, "schema migration failed; the database is unchanged");
	return rc;
}

/* Columns added to a table after its version: NULL in older rows. */
static const struct {
	const char *table, *column, *decl;
} added_columns[] = {
	{"dead_letters", "detail", "TEXT"}, /* why a message died, in words, beside its reason */
};

/* 1 when `table` (a known name) has `column`. */
static int has_column(struct store *s, const char *table, const char *column)
{
	char sql[160];

	snprintf(sql, sizeof(sql), "SELECT 1 FROM pragma_table_info('%s') WHERE name='%s'", table, column);
	return has_row(s, sql);
}

/*
 * Give a database that lacks them the added_columns, all in one
 * transaction, after the schema (a new database has them from it already).
 * Idempotent: a column present is left alone, so nothing is written on most
 * opens.  No schema_version of its own (docs/router.md, "Schema versions"):
 * a router that does not know a column never reads it.
 */
static int add_columns(struct store *s)
{
	size_t i, n = sizeof(added_columns) / sizeof(added_columns[0]);
	char sql[192];
	int rc = 0;

	for (i = 0; i < n && has_column(s, added_columns[i].table, added_columns[i].column); i++)
		;
	if (i == n)
		return 0;
	rc = exec(s, "BEGIN IMMEDIATE");
	for (i = 0; i < n && !rc; i++) {
		if (has_column(s, added_columns[i].table, added_columns[i].column))
			continue;
		log_info("adding a column to the database", "table", added_columns[i].table, "column",
			 added_columns[i].column, "path", s->path);
		snprintf(sql, sizeof(sql), "ALTER TABLE %s ADD COLUMN %s %s", added_columns[i].table,
			 added_columns[i].column, added_columns[i].decl);
		rc = exec(s, sql);
	}
	if (!rc)
		rc = exec(s, "COMMIT");
	if (rc)
		rollback(s, "adding columns failed; the database is unchanged");
	return rc;
}

int store_open(const char *path, int sync_full, int64_t busy_ms, struct store **out)
{
	struct store *s = calloc(1, sizeof(*s));
	int rc = -EIO;

	if (!s)
		return -ENOMEM;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->work, NULL);
	pthread_cond_init(&s->done, NULL);
	buf_init(&s->accepted, ACCEPTED_LOG_MAX);
	s->path = strdup(path);
	if (!s->path) {
		rc = -ENOMEM;
		goto out;
	}
	if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL) !=
	    SQLITE_OK) {
		log_error("cannot open database", "path", path, "error", s->db ? sqlite3_errmsg(s->db) : "?");
		goto out;
	}
	sqlite3_busy_timeout(s->db, (int)busy_ms);
	if (exec(s, "PRAGMA journal_mode=WAL") ||
	    /* full: the sync thread fdatasyncs the WAL after each commit (store_sync.h) */
	    exec(s, "PRAGMA synchronous=NORMAL") || exec(s, "PRAGMA foreign_keys=OFF") ||
	    exec(s, "PRAGMA temp_store=MEMORY") || exec(s, "PRAGMA wal_autocheckpoint=0") ||
	    exec(s, "PRAGMA journal_size_limit=67108864") || migrate(s) || exec(s, schema_sql) || add_columns(s))
		goto out;
	s->sync_full = sync_full;
	s->busy_ms = busy_ms;
	sqlite3_wal_hook(s->db, wal_hook, s);
	if (sqlite3_open_v2(path, &s->rdb, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		log_error("cannot open the read connection", "path", path);
		goto out;
	}
	sqlite3_busy_timeout(s->rdb, (int)busy_ms);
	pthread_mutex_init(&s->rlock, NULL);
	for (int i = 0; i < S_COUNT; i++) {
		if (sqlite3_prepare_v3(s->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->st[i], NULL) !=
		    SQLITE_OK) {
			log_error("cannot prepare statement", "error", sqlite3_errmsg(s->db));
			goto out;
		}
	}
	*out = s;
	return 0;
out:
	for (int i = 0; i < S_COUNT; i++)
		sqlite3_finalize(s->st[i]);
	if (s->rdb)
		sqlite3_close(s->rdb);
	if (s->db)
		sqlite3_close(s->db);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->work);
	pthread_cond_destroy(&s->done);
	buf_free(&s->accepted);
	free(s->path);
	free(s);
	return rc;
}

static const char *col_text(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);

	return t ? (const char *)t : NULL;
}

/* Run a SELECT on `db`, binding its parameters with `bind` (may be NULL),
 * and hand each row to `row`; a non-zero return from `row` stops the scan
 * and is returned. */
static int scan_db(sqlite3 *db, const char *sql, void (*bind)(sqlite3_stmt *st, const void *arg), const void *arg,
		   int (*row)(sqlite3_stmt *st, void *ctx), void *ctx)
{
	sqlite3_stmt *st = NULL;
	int rc = 0, r;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	if (bind)
		bind(st, arg);
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		rc = row(st, ctx);
		if (rc)
			goto out;
	}
	if (r != SQLITE_DONE)
		rc = -EIO;
out:
	sqlite3_finalize(st);
	return rc;
}

static void bind_i64(sqlite3_stmt *st, const void *arg)
{
	sqlite3_bind_int64(st, 1, *(const int64_t *)arg);
}

/* Scan on the writer's connection (before the writer starts). */
static int scan(struct store *s, const char *sql, const int64_t *arg, int (*row)(sqlite3_stmt *st, void *ctx),
		void *ctx)
{
	return scan_db(s->db, sql, arg ? bind_i64 : NULL, arg, row, ctx);
}

struct scan_ctx {
	store_msg_fn msg;
	store_conv_fn conv;
	store_dedup_fn dedup;
	store_dl_fn dl;
	store_cancel_fn cancel;
	void *ctx;
};

static int msg_row(sqlite3_stmt *st, void *arg)
{
	struct scan_ctx *sc = arg;
	struct store_msg_row r = {
		.seq = (uint64_t)sqlite3_column_int64(st, 0),
		.message_id = col_text(st, 1),
		.receiver = col_text(st, 2),
		.conversation = col_text(st, 3),
		.priority = sqlite3_column_int(st, 4),
		.accepted_ms = sqlite3_column_int64(st, 5),
		.attempts = sqlite3_column_int(st, 6),
		.body = sqlite3_column_blob(st, 7),
		.len = (size_t)sqlite3_column_bytes(st, 7),
		.sender = col_text(st, 8),
		.deadline_ms = sqlite3_column_int64(st, 9),
		.max_retries = sqlite3_column_int(st, 10),
	};

	return sc->msg(sc->ctx, &r);
}

static int dl_row(sqlite3_stmt *st, void *arg)
{
	struct scan_ctx *sc = arg;
	struct store_dl_row r = {
		.seq = (uint64_t)sqlite3_column_int64(st, 0),
		.message_id = col_text(st, 1),
		.receiver = col_text(st, 2),
		.sender = col_text(st, 3),
		.conversation = col_text(st, 4),
		.reason = col_text(st, 5),
		.attempts = sqlite3_column_int(st, 6),
		.died_ms = sqlite3_column_int64(st, 7),
		.body = sqlite3_column_blob(st, 8),
		.len = (size_t)sqlite3_column_bytes(st, 8),
		.detail = col_text(st, 9),
	};

	if (r.detail && !*r.detail)
		r.detail = NULL;
	return sc->dl(sc->ctx, &r);
}

static int conv_row(sqlite3_stmt *st, void *arg)
{
	struct scan_ctx *sc = arg;

	return sc->conv(sc->ctx, col_text(st, 0), col_text(st, 1), col_text(st, 2), sqlite3_column_int64(st, 3),
			sqlite3_column_int64(st, 4), sqlite3_column_int64(st, 5));
}

static int cancel_row(sqlite3_stmt *st, void *arg)
{
	struct scan_ctx *sc = arg;

	return sc->cancel(sc->ctx, col_text(st, 0), col_text(st, 1), sqlite3_column_int64(st, 2));
}

/* An accepted_log row: "<seq> <receiver> <message_id>\n" per message. */
static int dedup_row(sqlite3_stmt *st, void *arg)
{
	struct scan_ctx *sc = arg;
	const char *p = col_text(st, 0);
	int64_t at = sqlite3_column_int64(st, 1);
	char *copy = p ? strdup(p) : NULL, *save = NULL, *line;
	int rc = 0;

	if (!copy)
		return p ? -ENOMEM : 0;
	for (line = strtok_r(copy, "\n", &save); line && !rc; line = strtok_r(NULL, "\n", &save)) {
		char *end, *recv, *id;
		unsigned long long seq = strtoull(line, &end, 10);

		recv = *end == ' ' ? end + 1 : NULL;
		id = recv ? strchr(recv, ' ') : NULL;
		if (!id || id == recv || !id[1]) {
			log_warn("skipping a malformed accepted_log entry; its id is not deduplicated", "entry", line);
			continue;
		}
		*id++ = '\0';
		rc = sc->dedup(sc->ctx, id, recv, (uint64_t)seq, at);
	}
	free(copy);
	return rc;
}

int store_load_messages(struct store *s, store_msg_fn fn, void *ctx)
{
	struct scan_ctx sc = {.msg = fn, .ctx = ctx};

	return scan(
		s,
		"SELECT seq,message_id,receiver,conversation_id,priority,accepted_at,attempts,body,sender,deadline_at,"
		"max_retries FROM messages ORDER BY seq",
		NULL, msg_row, &sc);
}

int store_load_conversations(struct store *s, store_conv_fn fn, void *ctx)
{
	struct scan_ctx sc = {.conv = fn, .ctx = ctx};

	return scan(s, "SELECT id,participants,protocol,created_at,last_activity,message_count FROM conversations",
		    NULL, conv_row, &sc);
}

int store_load_dedup(struct store *s, int64_t since_ms, store_dedup_fn fn, void *ctx)
{
	struct scan_ctx sc = {.dedup = fn, .ctx = ctx};

	return scan(s, "SELECT entries,accepted_at FROM accepted_log WHERE accepted_at>=? ORDER BY seq", &since_ms,
		    dedup_row, &sc);
}

int store_load_cancelled(struct store *s, int64_t since_ms, store_cancel_fn fn, void *ctx)
{
	struct scan_ctx sc = {.cancel = fn, .ctx = ctx};

	return scan(
		s, "SELECT message_id,receiver,cancelled_at FROM cancelled WHERE cancelled_at>=? ORDER BY cancelled_at",
		&since_ms, cancel_row, &sc);
}

int store_max_seq(struct store *s, uint64_t *out)
{
	sqlite3_stmt *st = NULL;
	int rc = -EIO;

	if (sqlite3_prepare_v2(s->db,
			       "SELECT max(coalesce((SELECT max(seq) FROM messages),0),"
			       "coalesce((SELECT max(seq) FROM accepted_log),0))",
			       -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	if (sqlite3_step(st) == SQLITE_ROW) {
		*out = (uint64_t)sqlite3_column_int64(st, 0);
		rc = 0;
	}
	sqlite3_finalize(st);
	return rc;
}

static void bind_text(sqlite3_stmt *st, int i, const char *t)
{
	if (t)
		sqlite3_bind_text(st, i, t, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, i);
}

struct dl_filter {
	const char *agent, *reason;
	uint64_t after;
	int limit;
};

static void bind_dl(sqlite3_stmt *st, const void *arg)
{
	const struct dl_filter *f = arg;

	sqlite3_bind_int64(st, 1, (sqlite3_int64)f->after);
	bind_text(st, 2, f->agent);
	bind_text(st, 3, f->reason);
	sqlite3_bind_int(st, 4, f->limit);
}

int store_dl_list(struct store *s, const char *agent, const char *reason, uint64_t after_seq, int limit, store_dl_fn fn,
		  void *ctx)
{
	struct scan_ctx sc = {.dl = fn, .ctx = ctx};
	struct dl_filter f = {agent, reason, after_seq, limit};
	int rc;

	pthread_mutex_lock(&s->rlock);
	rc = scan_db(s->rdb,
		     "SELECT seq,message_id,receiver,sender,conversation_id,reason,attempts,died_at,body,detail "
		     "FROM dead_letters WHERE seq>?1 AND (?2 IS NULL OR receiver=?2) AND (?3 IS NULL OR reason=?3) "
		     "ORDER BY seq LIMIT ?4",
		     bind_dl, &f, dl_row, &sc);
	pthread_mutex_unlock(&s->rlock);
	return rc;
}

struct dl_key {
	const char *receiver, *message_id;
};

static void bind_dl_key(sqlite3_stmt *st, const void *arg)
{
	const struct dl_key *k = arg;

	bind_text(st, 1, k->message_id);
	bind_text(st, 2, k->receiver);
}

int store_dl_find(struct store *s, const char *receiver, const char *message_id, store_dl_fn fn, void *ctx)
{
	struct scan_ctx sc = {.dl = fn, .ctx = ctx};
	struct dl_key k = {receiver, message_id};
	int rc;

	pthread_mutex_lock(&s->rlock);
	rc = scan_db(s->rdb,
		     "SELECT seq,message_id,receiver,sender,conversation_id,reason,attempts,died_at,body,detail "
		     "FROM dead_letters WHERE message_id=?1 AND receiver=?2 ORDER BY seq DESC LIMIT 1",
		     bind_dl_key, &k, dl_row, &sc);
	pthread_mutex_unlock(&s->rlock);
	return rc;
}

int64_t store_dl_count(struct store *s)
{
	sqlite3_stmt *st = NULL;
	int64_t n = -1;

	pthread_mutex_lock(&s->rlock);
	if (sqlite3_prepare_v2(s->rdb, "SELECT count(*) FROM dead_letters", -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->rlock);
	return n;
}

static int step(struct store *s, sqlite3_stmt *st)
{
	int r = sqlite3_step(st);

	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (r != SQLITE_DONE) {
		log_error("sqlite write failed", "error", sqlite3_errmsg(s->db));
		return -EIO;
	}
	return 0;
}

static int apply_op(struct store *s, const struct store_op *op)
{
	sqlite3_stmt *st;
	int rc;

	switch (op->type) {
	case STORE_MSG_INSERT:
		st = s->st[S_MSG_INS];
		sqlite3_bind_int64(st, 1, (sqlite3_int64)op->seq);
		bind_text(st, 2, op->id);
		bind_text(st, 3, op->receiver);
		bind_text(st, 4, op->conversation);
		sqlite3_bind_int64(st, 5, op->i1);
		sqlite3_bind_int64(st, 6, op->i2);
		sqlite3_bind_int64(st, 7, op->i3);
		sqlite3_bind_blob(st, 8, op->text, (int)op->text_len, SQLITE_STATIC);
		bind_text(st, 9, op->sender ? op->sender : "");
		sqlite3_bind_int64(st, 10, op->deadline_ms);
		sqlite3_bind_int64(st, 11, op->max_retries);
		return step(s, st); /* its id goes into the commit's accepted_log row */
	case STORE_MSG_DELETE:
		st = s->st[S_MSG_DEL];
		sqlite3_bind_int64(st, 1, (sqlite3_int64)op->seq);
		return step(s, st);
	case STORE_MSG_ATTEMPTS:
		st = s->st[S_MSG_ATT];
		sqlite3_bind_int64(st, 1, op->i1);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)op->seq);
		return step(s, st);
	case STORE_CONV_UPSERT:
		st = s->st[S_CONV_UPS];
		bind_text(st, 1, op->id);
		bind_text(st, 2, op->text);
		bind_text(st, 3, op->text2);
		sqlite3_bind_int64(st, 4, op->i1);
		sqlite3_bind_int64(st, 5, op->i2);
		sqlite3_bind_int64(st, 6, op->i3);
		return step(s, st);
	case STORE_CONV_DELETE:
		st = s->st[S_CONV_DEL];
		bind_text(st, 1, op->id);
		return step(s, st);
	case STORE_AGENT_UPSERT:
		st = s->st[S_AGENT_UPS];
		bind_text(st, 1, op->id);
		bind_text(st, 2, op->text2);
		bind_text(st, 3, op->text3);
		bind_text(st, 4, op->text ? op->text : "[]");
		sqlite3_bind_int64(st, 5, op->i1);
		return step(s, st);
	case STORE_DEDUP_PRUNE:
		st = s->st[S_DEDUP_PRUNE];
		sqlite3_bind_int64(st, 1, op->i1);
		rc = step(s, st);
		if (rc)
			return rc;
		st = s->st[S_CANCEL_PRUNE];
		sqlite3_bind_int64(st, 1, op->i1);
		return step(s, st);
	case STORE_DEAD_LETTER:
		st = s->st[S_DL_INS];
		sqlite3_bind_int64(st, 1, (sqlite3_int64)op->seq);
		bind_text(st, 2, op->id);
		bind_text(st, 3, op->receiver);
		bind_text(st, 4, op->sender ? op->sender : "");
		bind_text(st, 5, op->conversation);
		bind_text(st, 6, op->text2);
		sqlite3_bind_int64(st, 7, op->i1);
		sqlite3_bind_int64(st, 8, op->i2);
		sqlite3_bind_blob(st, 9, op->text, (int)op->text_len, SQLITE_STATIC);
		bind_text(st, 10, op->text3 && *op->text3 ? op->text3 : NULL);
		rc = step(s, st);
		if (rc)
			return rc;
		st = s->st[S_MSG_DEL];
		sqlite3_bind_int64(st, 1, (sqlite3_int64)op->seq);
		return step(s, st);
	case STORE_MSG_CANCEL:
		st = s->st[S_MSG_DEL];
		sqlite3_bind_int64(st, 1, (sqlite3_int64)op->seq);
		rc = step(s, st);
		if (rc)
			return rc;
		st = s->st[S_CANCEL_INS];
		bind_text(st, 1, op->id);
		bind_text(st, 2, op->receiver);
		sqlite3_bind_int64(st, 3, op->i1);
		return step(s, st);
	case STORE_DL_DELETE:
		st = s->st[S_DL_DEL];
		sqlite3_bind_int64(st, 1, (sqlite3_int64)op->seq);
		return step(s, st);
	case STORE_DL_PRUNE:
		st = s->st[S_DL_PRUNE_AGE];
		sqlite3_bind_int64(st, 1, op->i1);
		rc = step(s, st);
		if (rc)
			return rc;
		st = s->st[S_DL_PRUNE_SIZE];
		sqlite3_bind_int64(st, 1, op->i2);
		return step(s, st);
	default:
		return -EINVAL;
	}
}

/* One accepted_log row for every message a commit inserts. */
static int log_accepted(struct store *s, const struct store_ticket *batch)
{
	const struct store_ticket *t;
	uint64_t last = 0;
	int64_t at = 0;
	sqlite3_stmt *st = s->st[S_ACC_INS];
	int rc = 0;

	buf_reset(&s->accepted);
	for (t = batch; t && !rc; t = t->next)
		for (size_t i = 0; i < t->nops && !rc; i++) {
			const struct store_op *op = &t->ops[i];

			if (op->type != STORE_MSG_INSERT)
				continue;
			rc = buf_put_u64(&s->accepted, op->seq);
			if (!rc)
				rc = buf_puts(&s->accepted, " ");
			if (!rc)
				rc = buf_puts(&s->accepted, op->receiver);
			if (!rc)
				rc = buf_puts(&s->accepted, " ");
			if (!rc)
				rc = buf_puts(&s->accepted, op->id);
			if (!rc)
				rc = buf_puts(&s->accepted, "\n");
			last = op->seq > last ? op->seq : last;
			at = op->i3 > at ? op->i3 : at;
		}
	if (rc || !s->accepted.len)
		return rc;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)last);
	sqlite3_bind_int64(st, 2, at);
	sqlite3_bind_text(st, 3, buf_str(&s->accepted), (int)s->accepted.len, SQLITE_STATIC);
	return step(s, st);
}

/* Finish a batch of tickets: the commit callback for each, then mark them
 * done and wake their waiters.  On the writer thread, or on the sync thread
 * with storage.sync full. */
static void complete(struct store *s, struct store_ticket *batch, int rc)
{
	struct store_ticket *t;

	for (t = batch; t; t = t->next) {
		t->rc = rc;
		if (s->on_commit)
			s->on_commit(t, s->ctx);
	}
	pthread_mutex_lock(&s->lock);
	for (t = batch; t;) {
		struct store_ticket *n = t->next;

		t->next = NULL;
		t->done = 1;
		t = n;
	}
	pthread_cond_broadcast(&s->done);
	pthread_mutex_unlock(&s->lock);
}

/* The sync thread's verdict on committed batches.  A failed fdatasync
 * leaves the WAL in an unknown state: the kernel may have dropped the pages
 * it could not write, and a later sync that succeeds says nothing of them,
 * so a commit acknowledged after it could sit behind a hole that recovery
 * stops at.  The router stops instead (as PostgreSQL does), and its restart
 * recovers what the disk holds; clients that got no answer retry, and the
 * dedup window catches what was stored after all. */
static void synced(struct store_ticket *batch, int rc, void *ctx)
{
	if (rc) {
		log_error("the WAL could not be synced to disk; stopping so that a restart recovers what it holds");
		abort();
	}
	complete(ctx, batch, 0);
}

/* Take whole queued tickets up to batch_max operations (at least one),
 * after waiting up to delay_us for more; NULL once closing with nothing
 * queued.  s->lock held. */
static struct store_ticket *take_batch(struct store *s, size_t *nops)
{
	struct store_ticket *batch, *last;

	while (!s->head && !s->closing)
		pthread_cond_wait(&s->work, &s->lock);
	if (!s->head)
		return NULL;
	if (s->delay_us && s->queued_ops < s->batch_max && !s->closing) {
		struct timespec ts = util_deadline_us(CLOCK_REALTIME, s->delay_us);

		while (s->queued_ops < s->batch_max && !s->closing &&
		       pthread_cond_timedwait(&s->work, &s->lock, &ts) == 0)
			;
	}
	batch = last = s->head;
	*nops = last->nops;
	while (last->next && *nops + last->next->nops <= s->batch_max) {
		last = last->next;
		*nops += last->nops;
	}
	s->head = last->next;
	if (!s->head)
		s->tail = NULL;
	last->next = NULL;
	s->queued_ops -= *nops;
	return batch;
}

/* Execute and commit one batch in one transaction; 0 or -EIO (rolled back). */
static int run_batch(struct store *s, const struct store_ticket *batch)
{
	int rc = exec(s, "BEGIN IMMEDIATE");

	for (const struct store_ticket *t = batch; !rc && t; t = t->next)
		for (size_t i = 0; !rc && i < t->nops; i++)
			rc = apply_op(s, &t->ops[i]);
	if (!rc)
		rc = log_accepted(s, batch);
	if (!rc)
		rc = exec(s, "COMMIT");
	if (rc) {
		char *err = NULL;

		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, &err);
		sqlite3_free(err);
		rc = -EIO;
	}
	return rc;
}

static void *writer_main(void *arg)
{
	struct store *s = arg;

	pthread_setname_np(pthread_self(), "sb-writer");
	for (;;) {
		struct store_ticket *batch;
		size_t nops = 0;
		uint64_t t0;
		int rc;

		pthread_mutex_lock(&s->lock);
		batch = take_batch(s, &nops);
		pthread_mutex_unlock(&s->lock);
		if (!batch)
			break;
		t0 = util_mono_ns();
		rc = run_batch(s, batch);
		pthread_mutex_lock(&s->lock);
		s->stats.commits++;
		s->stats.ops += nops;
		s->stats.busy_ns += util_mono_ns() - t0;
		if (rc)
			s->stats.failed_commits++;
		pthread_mutex_unlock(&s->lock);
		if (!rc && s->sync)
			store_sync_push(s->sync, batch); /* completed once the WAL is on disk */
		else
			complete(s, batch, rc);
	}
	return NULL;
}

int store_start(struct store *s, size_t batch_max, unsigned delay_us, store_commit_fn fn, void *ctx)
{
	int rc;

	s->batch_max = batch_max ? batch_max : 1024;
	s->delay_us = delay_us;
	s->on_commit = fn;
	s->ctx = ctx;
	rc = ckpt_start(s->path, s->busy_ms, &s->ckpt);
	if (!rc && s->sync_full) {
		char wal[4200];

		snprintf(wal, sizeof(wal), "%s-wal", s->path);
		rc = store_sync_start(wal, synced, s, &s->sync);
	}
	if (!rc)
		rc = -pthread_create(&s->writer, NULL, writer_main, s);
	if (rc) {
		store_sync_stop(s->sync);
		s->sync = NULL;
		ckpt_stop(s->ckpt);
		s->ckpt = NULL;
		return rc;
	}
	s->writer_started = 1;
	return 0;
}

int store_submit(struct store *s, struct store_ticket *t)
{
	t->done = 0;
	t->rc = 0;
	t->next = NULL;
	pthread_mutex_lock(&s->lock);
	if (s->closing) {
		pthread_mutex_unlock(&s->lock);
		return -ESHUTDOWN;
	}
	if (s->tail)
		s->tail->next = t;
	else
		s->head = t;
	s->tail = t;
	s->queued_ops += t->nops;
	pthread_cond_signal(&s->work);
	pthread_mutex_unlock(&s->lock);
	return 0;
}

int store_wait(struct store *s, struct store_ticket *t)
{
	pthread_mutex_lock(&s->lock);
	while (!t->done)
		pthread_cond_wait(&s->done, &s->lock);
	pthread_mutex_unlock(&s->lock);
	return t->rc;
}

int64_t store_size_bytes(const struct store *s)
{
	char p[4200];
	struct stat st;
	int64_t total = 0;

	if (stat(s->path, &st) == 0)
		total += st.st_size;
	snprintf(p, sizeof(p), "%s-wal", s->path);
	if (stat(p, &st) == 0)
		total += st.st_size;
	return total;
}

void store_get_stats(struct store *s, struct store_stats *out)
{
	pthread_mutex_lock(&s->lock);
	*out = s->stats;
	out->checkpoints = s->ckpt ? ckpt_count(s->ckpt) : 0;
	pthread_mutex_unlock(&s->lock);
}

void store_close(struct store *s)
{
	struct ckpt *ckpt;
	char *err = NULL;

	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	s->closing = 1;
	pthread_cond_signal(&s->work);
	pthread_mutex_unlock(&s->lock);
	if (s->writer_started)
		pthread_join(s->writer, NULL);
	store_sync_stop(s->sync); /* syncs and completes what the writer committed last */
	s->sync = NULL;
	pthread_mutex_lock(&s->lock);
	ckpt = s->ckpt;
	s->ckpt = NULL;
	pthread_mutex_unlock(&s->lock);
	ckpt_stop(ckpt); /* before the last checkpoint, which truncates the WAL */
	for (int i = 0; i < S_COUNT; i++)
		sqlite3_finalize(s->st[i]);
	if (sqlite3_exec(s->db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, &err) != SQLITE_OK)
		log_warn("checkpoint at close failed", "error", err ? err : "?");
	sqlite3_free(err);
	sqlite3_close(s->rdb);
	pthread_mutex_destroy(&s->rlock);
	if (sqlite3_close(s->db) != SQLITE_OK)
		log_error("database did not close cleanly", "path", s->path);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->work);
	pthread_cond_destroy(&s->done);
	buf_free(&s->accepted);
	free(s->path);
	free(s);
}
