/*
 * rt: the routing core.  It owns the agent registry (O(1) lookup by id),
 * each agent's bounded queue, conversations, leases and the deduplication
 * window, and it drives the store so that a message is acknowledged only
 * after it is committed.  All state sits behind one mutex; every operation
 * under it is short (no I/O), and the only blocking waits (commit, long
 * poll) happen with the mutex released.  Thread-safe throughout.
 */
#ifndef SWITCHBOARD_RT_H
#define SWITCHBOARD_RT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "msg.h"
#include "rmet.h"
#include "store.h"
#include "switchboard/buf.h"
#include "switchboard/cfg.h"
#include "switchboard/common.h"

struct rt;

/* The outcome of an operation that failed as a whole. */
struct rt_err {
	int status;	  /* HTTP status */
	const char *code; /* error code for the JSON body */
	char message[200];
	int retry_after_s; /* >0: send Retry-After */
};

/* One message of a submission. */
struct rt_item {
	struct msg m;	  /* in: validated message; rt takes m.body on success */
	int status;	  /* in: non-zero if already rejected; out: 202 or an error */
	const char *code; /* out: error code when status != 202 */
	char field[64];
	char message[200];
	int duplicate;		 /* out: 1 when message_id was already accepted */
	int reason;		 /* out: enum rmet_reason for failures */
	int retry_after_s;	 /* out: for 429, when to retry */
	const char *auth_digest; /* in: SHA-256 hex of the caller's token, NULL when auth is off */
	int forwarded;		 /* in: its receiver is owned by another replica: rt_submit skips it */
	int handoff;		 /* in: handed off by the receiver's previous owner: passes its hold */
	uint32_t attempts;	 /* in (handoff): delivery attempts it already had */
	uint64_t started_ns;
};

/* Create the core with a copy of `cfg` (borrowed).  `st` and `met` are
 * borrowed and must outlive it.  With `st` NULL the core keeps everything
 * in memory and "commits" at once (for benchmarks; rt_start must not be
 * called then).  Returns 0 or -ENOMEM. */
int rt_new(const struct cfg *cfg, struct store *st, struct rmet *met, struct rt **out) SB_MUST_CHECK;

/* Rebuild queues, conversations and the dedup window from the store, then
 * start the store's writer and the maintenance thread.  Returns 0 or -EIO. */
int rt_start(struct rt *rt) SB_MUST_CHECK;

/* Stop accepting submissions (503) and wake every long poll.  Idempotent. */
void rt_drain(struct rt *rt);
int rt_is_draining(struct rt *rt);

/* Stop the maintenance thread.  The store is closed by its owner after. */
void rt_stop(struct rt *rt);
void rt_free(struct rt *rt);

/* Route `n` items: receiver lookup, dedup, back-pressure, conversation
 * tracking, then one group-committed write; returns after the commit with
 * each item's status set.  Returns 0 or -ENOMEM. */
int rt_submit(struct rt *rt, struct rt_item *items, size_t n) SB_MUST_CHECK;

/* Check the sender of every forwarded, not yet failed item against its
 * auth_digest, as rt_submit() would (401 or 403 in the item), before it is
 * forwarded to its owner: only this router saw the caller's token.
 * Thread-safe. */
void rt_check_senders(struct rt *rt, struct rt_item *items, size_t n);

/* 0 when `auth_digest` (NULL: auth off) may act as `agent`; otherwise
 * -EINVAL with `err` set (404 unknown agent, 401, 403).  Thread-safe. */
int rt_check_caller(struct rt *rt, const char *agent, const char *auth_digest, struct rt_err *err) SB_MUST_CHECK;

/* 1 when `auth_digest` is some configured agent's token (or NULL: auth is
 * off), so a request can be refused 401 before its body is parsed.
 * Thread-safe. */
int rt_caller_known(struct rt *rt, const char *auth_digest);

/* --- handoff: an agent's messages moving to its new owner (docs/cluster.md) */

struct rt_lease;

/* Hold `agent` until `until_ms` (wall clock; 0 lifts the hold): its
 * previous owner hands its messages off first, so new submissions get 503
 * HandoffInProgress and nothing is delivered until the hold is lifted or
 * runs out (counted as a handoff timeout).  Thread-safe. */
void rt_hold(struct rt *rt, const char *agent, int64_t until_ms);

/* Mark `agent` as owned elsewhere (`out` 1) or here again (0).  Moving out,
 * its pull leases go back to its queue (their consumers' acks now reach the
 * new owner) and it is no longer pushed or leased here.  Thread-safe. */
void rt_moving_out(struct rt *rt, const char *agent, int out);

/* The next messages of a moving-out agent to hand off, in queue order (a
 * lease no one else sees; attempts unchanged); NULL when there is nothing
 * ready.  *left is what the agent still holds beyond this lease (messages
 * in flight to a push endpoint included).  Thread-safe. */
struct rt_lease *rt_handoff_take(struct rt *rt, const char *agent, size_t max, size_t *left);

/* The lease as the handoff request: each message's canonical body, one per
 * line, into `body`, and their attempts, comma-separated, into
 * `attempts`.  Returns 0 or -ENOMEM.  Thread-safe. */
int rt_handoff_body(struct rt *rt, const struct rt_lease *l, struct buf *body, struct buf *attempts) SB_MUST_CHECK;

/* The new owner committed the lease's messages: delete them here, durably.
 * Frees the lease.  Returns 0 or -EIO (they stay stored and are handed off
 * again after a restart: the new owner's dedup window drops them). */
int rt_handoff_commit(struct rt *rt, struct rt_lease *l) SB_MUST_CHECK;

/* The handoff failed: put the lease's messages back in order.  Frees it. */
void rt_handoff_release(struct rt *rt, struct rt_lease *l);

/* Messages `agent` holds here (queued, leased or being committed); 0 for an
 * unknown agent.  Thread-safe. */
size_t rt_depth(struct rt *rt, const char *agent);

/* What a long poll watches while it waits: gone(arg) is 1 once its client
 * has closed its connection.  Called every RT_WATCH_MS and before messages
 * are leased, with the routing lock held: it must not block. */
struct rt_watch {
	int (*gone)(void *arg);
	void *arg;
};

#define RT_WATCH_MS 500

/* Long-poll pull: wait up to `wait_ms` for messages for `agent`, lease up
 * to `max` of them, and write the JSON reply into `out`.  With `auth_digest`
 * (the SHA-256 hex of the caller's token) only the agent itself may pull.
 * With `w` (borrowed, may be NULL) a client that has gone ends the wait and
 * is leased nothing (its reply is the empty one).  `lease_id` receives the
 * new lease's id, "" when none.  Returns 0, or -EINVAL with `err` set
 * (unknown agent, 403), or -ENOMEM (then nothing stays leased).
 * Thread-safe. */
int rt_pull(struct rt *rt, const char *agent, const char *auth_digest, size_t max, int64_t wait_ms,
	    const struct rt_watch *w, char lease_id[33], struct buf *out, struct rt_err *err) SB_MUST_CHECK;

/* The reply of the pull that took lease `lease_id` (borrowed) did not reach
 * its client: put its messages back at once, as an expiry would (the
 * attempt counts).  Returns how many were put back; 0 when the lease is
 * already settled or expired.  Thread-safe. */
size_t rt_lease_release(struct rt *rt, const char *lease_id);

/* Settle leased messages by id (`ids`: JSON array of strings, borrowed).
 * `ack` 1 deletes them durably (returns after commit); 0 requeues them.
 * Writes {"acked"|"nacked":n,"results":[...]} into `out`. */
int rt_settle(struct rt *rt, const char *agent, const char *auth_digest, const json_t *ids, int ack, struct buf *out,
	      struct rt_err *err) SB_MUST_CHECK;

/* Apply a new config (borrowed; already validated) as one swap under the
 * routing lock: agents added, changed, or removed (a removed agent drains
 * its queue, then stops), and every hot setting.  Returns 0; -EAGAIN with
 * `why` filled when a queue bound would shrink below what is queued (then
 * nothing changed); -ENOMEM; or -EIO when persisting agent state failed
 * after the swap.  Thread-safe. */
int rt_reconfigure(struct rt *rt, const struct cfg *nc, char *why, size_t whylen) SB_MUST_CHECK;

/* Dead letters: list (filters may be NULL; `after` pages by sequence) and
 * replay (by sequence numbers, or by the filters up to `limit`), which
 * re-queues each entry with its original message_id and removes it from the
 * dead-letter table once committed.  Return 0, -EIO or -ENOMEM. */
int rt_deadletters_json(struct rt *rt, const char *agent, const char *reason, uint64_t after, int limit,
			struct buf *out) SB_MUST_CHECK;
int rt_replay(struct rt *rt, const char *agent, const char *reason, const uint64_t *seqs, size_t nseqs, int limit,
	      struct buf *out) SB_MUST_CHECK;

/* --- tasks: a message's life as A2A sees it (docs/a2a.md) ------------- */

enum rt_task_state {
	RT_TASK_UNKNOWN,   /* never seen, or settled before the dedup window */
	RT_TASK_SUBMITTED, /* accepted (committing or queued), not leased */
	RT_TASK_WORKING,   /* leased by a pull, or in flight to a push endpoint */
	RT_TASK_COMPLETED, /* acknowledged or delivered */
	RT_TASK_FAILED,	   /* dead-lettered (reason set) */
	RT_TASK_CANCELED   /* cancelled while queued (rt_task_cancel) */
};

/* The longest detail a dead letter keeps, in bytes of UTF-8 (the text is
 * cut on a character boundary to fit). */
#define RT_DETAIL_MAX 200

struct rt_task {
	int state;			      /* enum rt_task_state */
	char conversation_id[MSG_ID_MAX + 1]; /* "" when unknown (e.g. completed) */
	char sender[MSG_AGENT_ID_MAX + 1];    /* "" when unknown */
	char reason[64];		      /* FAILED: the dead letter's reason */
	char detail[208];   /* FAILED: why, in words (valid UTF-8, <= RT_DETAIL_MAX bytes); "" when none */
	int64_t updated_ms; /* accepted, died or cancelled; 0 when unknown (completed) */
};

/* The state of message `message_id` sent to `receiver` (both borrowed), as
 * far as this router knows: its queues and leases (a message being
 * committed, or put back by a replay, is SUBMITTED; one dead-lettered and
 * not written yet is FAILED already), then the dead-letter table (which
 * outlives the window), then its dedup window (settled: COMPLETED, or
 * cancelled).  What is in memory wins over a dead letter, and a dead letter
 * over a window entry older than it.  Fills `out` (state RT_TASK_UNKNOWN when
 * not found; a FAILED reason is the dead letter's, e.g. "Timeout", and its
 * detail the dead letter's too, "" when it has none).
 * Returns 0 or -EIO.  Thread-safe; reads the store without the routing lock. */
int rt_task_get(struct rt *rt, const char *receiver, const char *message_id, struct rt_task *out) SB_MUST_CHECK;

/* Cancel a message not delivered yet: a queued one (not leased, not in
 * flight) is deleted and remembered as cancelled in one commit, for the
 * dedup window from now (across restarts; a resubmission of its id in the
 * window is a duplicate and stores nothing); returns 0 after the commit with
 * `out` CANCELED.  With `auth_digest` (SHA-256 hex of the caller's token;
 * NULL: auth off) only the message's sender may cancel a message this router
 * holds: -EPERM (a message no longer held is answered as rt_task_get answers
 * anyone).  -EBUSY when it is leased, in flight, being committed or being
 * cancelled; -EALREADY when it is completed, failed or cancelled (`out`
 * filled either way); -ENOENT when unknown; -EIO when the store failed (a
 * failed commit leaves the message queued, in its place, and `out` says
 * SUBMITTED).  Thread-safe. */
int rt_task_cancel(struct rt *rt, const char *receiver, const char *message_id, const char *auth_digest,
		   struct rt_task *out) SB_MUST_CHECK;

/* The id of the configured agent whose token has SHA-256 hex `digest`
 * (borrowed) into `out`; returns 0, or -ENOENT (also for NULL).  An agent
 * without a token, or removed from the config, never matches; when agents
 * share a token, the smallest id is returned.  Thread-safe. */
int rt_agent_for_token(struct rt *rt, const char *digest, char out[MSG_AGENT_ID_MAX + 1]) SB_MUST_CHECK;

/* JSON views for the API. */
int rt_agents_json(struct rt *rt, struct buf *out) SB_MUST_CHECK;
int rt_agent_json(struct rt *rt, const char *id, struct buf *out, struct rt_err *err) SB_MUST_CHECK;
int rt_conversation_json(struct rt *rt, const char *id, struct buf *out, struct rt_err *err) SB_MUST_CHECK;

/* Metrics collector (registered by rt_new): queue depth, conversations,
 * agents by state, database size, resident memory. */
int rt_collect_metrics(struct buf *out, void *rt) SB_MUST_CHECK;

/* Counters for status and tests. */
struct rt_stats {
	size_t agents;
	size_t queued;
	size_t leased;
	size_t conversations;
	size_t dedup_entries;
};
void rt_get_stats(struct rt *rt, struct rt_stats *s);

#endif
