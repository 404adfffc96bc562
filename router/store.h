/*
 * store: the router's durable state in SQLite (WAL mode): queued messages,
 * the accepted-id table behind deduplication, messages cancelled while
 * queued, dead letters, conversations and agents.
 * All writes go through one writer thread that commits many operations per
 * transaction (group commit): a caller submits a ticket of operations and
 * waits until the transaction holding them is committed, which is the
 * moment a message may be acknowledged.  storage.sync selects full (a
 * ticket completes once an fdatasync of the WAL covers its commit: many
 * commits share one, and the writer does not wait for it) or normal (the
 * WAL is fsynced at checkpoints; a power loss can drop the last commits, a
 * process crash cannot).
 */
#ifndef SWITCHBOARD_STORE_H
#define SWITCHBOARD_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "switchboard/common.h"

struct store;

enum store_op_type {
	STORE_MSG_INSERT,
	STORE_MSG_DELETE,
	STORE_MSG_ATTEMPTS,
	STORE_CONV_UPSERT,
	STORE_CONV_DELETE,
	STORE_AGENT_UPSERT,
	STORE_DEDUP_PRUNE, /* drop accepted ids and cancellations older than i1 */
	STORE_DEAD_LETTER, /* move message `seq` to dead_letters (one transaction) */
	STORE_DL_DELETE,   /* remove dead letter `seq` (replayed) */
	STORE_DL_PRUNE,	   /* drop dead letters older than i1, and beyond i2 entries */
	STORE_MSG_CANCEL,  /* delete message `seq` and record (id, receiver) as cancelled at i1 (one transaction) */
};

/* One write.  Pointers are borrowed until the ticket completes. */
struct store_op {
	int type;
	uint64_t seq;
	const char *id;		  /* message_id, conversation id or agent id */
	const char *receiver;	  /* MSG_INSERT, DEAD_LETTER, MSG_CANCEL */
	const char *conversation; /* MSG_INSERT, may be NULL */
	const char *text;	  /* body / participants JSON / capabilities JSON */
	size_t text_len;
	const char *text2;  /* protocol / agent state / DEAD_LETTER: reason */
	const char *text3;  /* agent mode / DEAD_LETTER: detail, why in words (NULL: none) */
	int64_t i1, i2, i3; /* priority/created/accepted; created/last/count; attempts */
	int64_t i4;
	const char *sender;  /* MSG_INSERT, DEAD_LETTER */
	int64_t deadline_ms; /* MSG_INSERT: when it dies undelivered (0: never) */
	int64_t max_retries; /* MSG_INSERT: -1 for the config's */
};

struct store_ticket {
	struct store_op *ops;
	size_t nops;
	int done;
	int rc; /* 0, or -EIO when the transaction failed */
	void *user;
	struct store_ticket *next;
};

/* Called on the writer thread after a ticket's transaction has committed
 * (rc 0) or failed, before any waiter is woken. */
typedef void (*store_commit_fn)(struct store_ticket *t, void *ctx);

struct store_stats {
	uint64_t commits;
	uint64_t ops;
	uint64_t failed_commits;
	uint64_t busy_ns;     /* time spent executing and committing transactions */
	uint64_t checkpoints; /* checkpoints run by the checkpointer (storage.sync normal; ckpt.h) */
};

/* Open or create the database at `path`, apply the schema, and set WAL
 * mode and the sync level.  Returns 0 or -EIO (message in the log). */
int store_open(const char *path, int sync_full, int64_t busy_ms, struct store **out) SB_MUST_CHECK;

/* Recovery readers; run before store_start().  The callbacks borrow their
 * arguments.  A callback's non-zero return stops the scan and is returned. */
/* A stored message, as recovery reads it back. */
struct store_msg_row {
	uint64_t seq;
	const char *message_id, *receiver, *sender, *conversation;
	int priority, attempts, max_retries;
	int64_t accepted_ms, deadline_ms;
	const char *body;
	size_t len;
};
typedef int (*store_msg_fn)(void *ctx, const struct store_msg_row *row);

/* A dead letter. */
struct store_dl_row {
	uint64_t seq;
	const char *message_id, *receiver, *sender, *conversation, *reason;
	const char *detail; /* why, in words, beside the reason; NULL when none (and in rows older than it) */
	int attempts;
	int64_t died_ms;
	const char *body;
	size_t len;
};
typedef int (*store_dl_fn)(void *ctx, const struct store_dl_row *row);
typedef int (*store_conv_fn)(void *ctx, const char *id, const char *participants_json, const char *protocol,
			     int64_t created_ms, int64_t last_ms, int64_t count);
typedef int (*store_dedup_fn)(void *ctx, const char *message_id, const char *receiver, uint64_t seq,
			      int64_t accepted_ms);
int store_load_messages(struct store *s, store_msg_fn fn, void *ctx) SB_MUST_CHECK;
int store_load_conversations(struct store *s, store_conv_fn fn, void *ctx) SB_MUST_CHECK;
int store_load_dedup(struct store *s, int64_t since_ms, store_dedup_fn fn, void *ctx) SB_MUST_CHECK;
/* Messages cancelled at `since_ms` or later (STORE_MSG_CANCEL). */
typedef int (*store_cancel_fn)(void *ctx, const char *message_id, const char *receiver, int64_t cancelled_ms);
int store_load_cancelled(struct store *s, int64_t since_ms, store_cancel_fn fn, void *ctx) SB_MUST_CHECK;
/* Dead letters in sequence order after `after_seq`, optionally only for
 * `agent` and/or `reason` (NULL: any), at most `limit`.  Uses a read-only
 * connection, so it runs beside the writer.  Thread-safe. */
int store_dl_list(struct store *s, const char *agent, const char *reason, uint64_t after_seq, int limit, store_dl_fn fn,
		  void *ctx) SB_MUST_CHECK;

/* The newest dead letter of `message_id` sent to `receiver` (both
 * borrowed): `fn` is called once when there is one, not at all otherwise.
 * Read-only connection, like store_dl_list.  Returns 0, -EIO, or the
 * callback's non-zero return.  Thread-safe. */
int store_dl_find(struct store *s, const char *receiver, const char *message_id, store_dl_fn fn,
		  void *ctx) SB_MUST_CHECK;

/* Number of dead letters (-1 on error).  Thread-safe. */
int64_t store_dl_count(struct store *s);

/* Highest message sequence ever stored (0 when empty). */
int store_max_seq(struct store *s, uint64_t *out) SB_MUST_CHECK;

/* Start the writer thread.  `batch_max` bounds operations per transaction;
 * `delay_us` is the longest the writer waits for more work once it has
 * some (0: commit whatever is queued at once). */
int store_start(struct store *s, size_t batch_max, unsigned delay_us, store_commit_fn fn, void *ctx) SB_MUST_CHECK;

/* Queue a ticket (borrowed until done).  Thread-safe.  Returns 0, or
 * -ESHUTDOWN after store_close() began. */
int store_submit(struct store *s, struct store_ticket *t) SB_MUST_CHECK;

/* Block until `t` is done; returns its rc.  Thread-safe. */
int store_wait(struct store *s, struct store_ticket *t) SB_MUST_CHECK;

/* Size of the database and WAL files in bytes. Thread-safe. */
int64_t store_size_bytes(const struct store *s);

void store_get_stats(struct store *s, struct store_stats *out);

/* Commit what is queued, stop the writer, checkpoint, close and free. */
void store_close(struct store *s);

#endif
