/*
 * Private to router/rt*.c: the data structures of the routing core.
 */
#ifndef SWITCHBOARD_RT_INT_H
#define SWITCHBOARD_RT_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "dedup.h"
#include "rt.h"
#include "switchboard/heap.h"
#include "switchboard/log.h"

#define uthash_fatal(msg)                                                                                              \
	do {                                                                                                           \
		log_error("out of memory in hash table", "detail", msg);                                               \
		abort();                                                                                               \
	} while (0)
#include <xxhash.h>
/* xxHash (XXH3) instead of uthash's default Jenkins hash: faster on ids */
#define HASH_FUNCTION(keyptr, keylen, hashv) ((hashv) = (unsigned)XXH3_64bits((keyptr), (size_t)(keylen)))
#include <uthash.h>

enum rt_msg_state { RTM_RESERVED, RTM_QUEUED, RTM_LEASED };

struct rt_lease;
struct rt_lane;
struct rt_agent;

/* Fields in the order routing and publishing read them: the first two
 * cache lines are what rt_route.c touches per message. */
struct rt_msg {
	uint64_t seq;
	int state; /* enum rt_msg_state */
	int prio;
	struct rt_agent *agent;
	struct rt_lane *lane;	  /* NULL: not in a conversation */
	struct rt_msg *lane_next; /* lane FIFO */
	size_t heap_idx;
	size_t dl_idx;	     /* in rt->deadline_heap */
	int64_t deadline_ms; /* dies undelivered after this (0: never) */
	uint64_t dedup;	     /* its window entry (dedup.h; 0: none) until the commit (never pruned before) */
	uint64_t started_ns; /* when the submission arrived (routing latency) */
	char *conv_id;	     /* points into this allocation; NULL if none */
	unsigned conv_hash;  /* uthash hash of conv_id (for its lane) */
	uint32_t attempts;
	int cancelling;	 /* out of its queue while rt_task_cancel commits (state stays RTM_QUEUED) */
	int max_retries; /* -1: delivery.maxRetries */
	int64_t accepted_ms;
	uint64_t committed_ns;	      /* when it became deliverable */
	struct rt_lease *lease;	      /* while leased */
	struct rt_msg *lprev, *lnext; /* lease membership */
	int death;		      /* enum rt_death once doomed */
	char *detail;		      /* owned: once doomed, why in words (rt_engine_fail_why); NULL normally */
	struct rt_msg *dnext;	      /* rt->dying list */
	char *message_id;	      /* points into this allocation */
	char *sender;		      /* points into this allocation */
	char *body;		      /* owned */
	size_t body_len;
	UT_hash_handle hh; /* agent->by_id */
};

struct rt_lane {
	char *conv_id;
	struct rt_msg *head, *tail;
	size_t queued;
	size_t inflight;
	UT_hash_handle hh;
};

/* Fields in the order routing and publishing read them: the first two
 * cache lines are what rt_route.c touches per message. */
struct rt_agent {
	char *id;  /* points into this allocation */
	int state; /* enum cfg_agent_state */
	int mode;  /* enum cfg_mode */
	size_t capacity;
	size_t depth;	 /* reserved + queued + leased */
	size_t reserved; /* accepted, waiting for its commit: not deliverable yet */
	size_t leased;
	struct rt_msg *by_id;
	struct rt_lane *lanes;
	struct heap ready;
	int64_t hold_until_ms; /* moving in: its previous owner hands off first (0: no hold) */
	uint64_t dedup_hint;   /* where the window interned its id (dedup_add) */
	int moving_out;	       /* owned by another replica now: handed off, never delivered here */
	int waiters;	       /* long polls waiting on cond: only they need a signal */
	pthread_cond_t cond;
	int configured;		    /* present in the running config */
	int notify;		    /* send it a FIPA failure when its messages die */
	char *caps_json;	    /* capabilities as JSON, for views and the store */
	char token_sha256[65];	    /* "" when the agent has no token */
	double rate, burst, tokens; /* token bucket for messages it sends; rate 0: unlimited */
	uint64_t refill_ns;
	UT_hash_handle hh;
};

/* A slot of the registry's index (rt_agent.c): the id's hash and length,
 * and the agent. */
struct rt_agent_slot {
	unsigned hash;
	unsigned len;	    /* of the id */
	struct rt_agent *a; /* NULL: empty */
};

struct rt_conv {
	char *id;
	char *protocol;
	char **parts;
	size_t nparts;
	char *parts_json; /* JSON array of parts, re-rendered when one joins */
	int64_t created_ms;
	int64_t last_ms;
	int64_t heap_ms; /* its key in rt->conv_heap: never after last_ms (rt_conv_expire) */
	uint64_t count;
	uint64_t touch_gen; /* rt->touch_gen of the last submission that touched it */
	size_t heap_idx;
	UT_hash_handle hh;
};

struct rt_lease {
	char id[33];
	struct rt_agent *agent;
	uint64_t expires_ns;
	struct rt_msg *msgs; /* doubly linked through lprev/lnext */
	size_t n;
	size_t heap_idx;
	int engine; /* held by the push engine: never expires, settled only by it */
};

struct rt {
	pthread_mutex_t lock;
	struct cfg cfg;
	struct store *st;
	struct rmet *met;
	struct rt_agent *agents;	   /* every agent, for iteration (rt_agent_register) */
	struct rt_agent_slot *agent_slots; /* the same by id, for lookups (rt_find_agent) */
	size_t nagent_slots;
	struct rt_token *tokens; /* every configured token digest: 401 or 403 */
	struct rt_conv *convs;
	struct heap conv_heap;		    /* by heap_ms */
	uint64_t touch_gen;		    /* one per rt_submit */
	struct heap lease_heap;		    /* leases by expiry; owns them */
	struct heap deadline_heap;	    /* queued and leased messages by deadline */
	struct rt_msg *dying, **dying_tail; /* detached, waiting to be written as dead letters */
	struct rt_msg *dead_writing;	    /* taken off dying, being written (read-only until cleared) */
	size_t npush;			    /* agents in push mode */
	size_t nrated;			    /* agents with a rateLimit: senders are looked up */
	void (*push_wake)(void *ctx);	    /* called when a push agent gets work; may be NULL */
	void *push_ctx;
	struct dedup *dedup; /* the deduplication window */
	_Atomic int keyed;   /* delivery.dedupWindowMs > 0, for a look without the lock (rt_submit) */
	size_t ndedup_max;
	uint64_t next_seq;
	size_t total_depth;
	size_t total_leased;
	int draining;
	int stopping;
	pthread_t maint;
	int maint_started;
	pthread_cond_t maint_cond;
	int64_t started_ms;
};

/* Why a message died; names are the design material's FailureReason set
 * plus Timeout. */
enum rt_death {
	RT_DEATH_NOT_RESPONDING = 1,
	RT_DEATH_TIMEOUT,
	RT_DEATH_NETWORK,  /* push: connection errors until attempts ran out */
	RT_DEATH_REJECTED, /* push: the agent answered a permanent 4xx */
	RT_DEATH_COUNT
};
const char *rt_death_name(int death);

/* rt_dead.c: dead letters (callers hold rt->lock unless noted) */
/* Take a queued message out of its agent's ready heap and its lane (the
 * lane's next message moves up); its state is unchanged. */
void rt_unqueue(struct rt_msg *m);
/* Detach a message that is neither queued (rt_unqueue) nor leased from its
 * agent: lane, deadline heap, by_id and the depth counters.  The caller
 * owns it after. */
void rt_detach(struct rt *rt, struct rt_msg *m);
/* Detach a message that is not leased (queued, or just unleased by the
 * caller) from its agent and queue it for the dead-letter table. */
void rt_doom(struct rt *rt, struct rt_msg *m, int death);
/* rt_doom with a detail: `detail` (borrowed; NULL or "" for none), already
 * cut by rt_detail_cut, is copied onto the message for its dead letter, its
 * sender's failure notice and its task.  Out of memory, the message dies
 * without its detail. */
void rt_doom_why(struct rt *rt, struct rt_msg *m, int death, const char *detail);
/* At most RT_DETAIL_MAX bytes of `in` (NULL: none) into `out`, cut on a
 * character boundary, as valid UTF-8: a byte that starts no valid sequence
 * becomes U+FFFD.  Pure, thread-safe. */
void rt_detail_cut(const char *in, char out[RT_DETAIL_MAX + 1]);
/* Doom queued messages whose deadline passed. */
void rt_expire_deadlines(struct rt *rt, int64_t now_ms);
/* Write doomed messages as dead letters, notify their senders, prune the
 * table.  Called by the maintenance thread WITHOUT rt->lock. */
void rt_dead_process(struct rt *rt, int prune);

/* rt.c */
/* A new message record (all strings copied into it); NULL on ENOMEM. */
struct rt_msg *rt_msg_new(const char *message_id, const char *conv_id, const char *sender);
/* rt_msg_new for strings of known lengths: the id (`il` bytes), the
 * conversation (`cl` bytes, 0: none; conv_hash is left to the caller) and
 * the sender (`sl` bytes), copied into the record's own allocation: the one
 * allocation a routed message costs besides its body.  NULL on ENOMEM. */
struct rt_msg *rt_msg_alloc(const char *id, size_t il, const char *conv, size_t cl, const char *sender, size_t sl);
/* `a`'s lane for conversation `conv_id` (`len` bytes, uthash hash `hv`),
 * created when it has none; NULL on ENOMEM. */
struct rt_lane *rt_lane_get_h(struct rt_agent *a, const char *conv_id, size_t len, unsigned hv);
int rt_msg_attempts_left(const struct rt *rt, const struct rt_msg *m);
void rt_msg_free(struct rt_msg *m);
void rt_make_ready(struct rt *rt, struct rt_msg *m);
void rt_requeue(struct rt *rt, struct rt_msg *m);
void rt_lane_maybe_free(struct rt_agent *a, struct rt_lane *l);
void rt_heap_push(struct heap *h, void *e);

void rt_conv_expire(struct rt *rt, int64_t now_ms, struct store_op **ops, size_t *nops, char ***ids, size_t *nids);

/* rt_route.c */
/* The store's commit callback (store_start): publish a submission's
 * messages, or undo their reservations when its commit failed. */
void rt_on_commit(struct store_ticket *t, void *ctx);
/* Make a committed message deliverable: lane, ready heap, deadline heap, metrics. */
void rt_publish(struct rt *rt, struct rt_msg *m, uint64_t now_ns);
void rt_item_fail(struct rt_item *it, int status, const char *code, int reason, const char *field, const char *fmt,
		  const char *arg);

/* rt_task.c: the deduplication window's part in tasks and recovery (callers
 * hold rt->lock); the window itself is dedup.c, tasks are in rt.h */
/* Recovery callbacks for store_load_dedup() and store_load_cancelled()
 * (after it: a cancellation flags its message's entry). */
int rt_recover_dedup(void *ctx, const char *message_id, const char *receiver, uint64_t seq, int64_t accepted_ms);
int rt_recover_cancelled(void *ctx, const char *message_id, const char *receiver, int64_t cancelled_ms);

/* rt_agent.c: registry records (callers hold rt->lock unless noted) */
/* Add `a` (taken) to the registry: rt->agents and its index.  Returns 0, or
 * -ENOMEM with `a` not added (still the caller's). */
int rt_agent_register(struct rt *rt, struct rt_agent *a) SB_MUST_CHECK;
/* The agent with id `id`, or NULL: one probe of the index, usually. */
struct rt_agent *rt_find_agent(struct rt *rt, const char *id);
/* rt_find_agent for an id of `len` bytes whose uthash hash (HASH_VALUE) is
 * `hv`. */
struct rt_agent *rt_find_agent_h(struct rt *rt, const char *id, size_t len, unsigned hv);
/* For fetching ahead: the index slot an id hashed `hv` is looked up in
 * first (NULL: no index yet), and the agent in it when its hash is `hv`
 * (probably, not surely, that id's agent; NULL otherwise). */
const void *rt_agent_slot_of(const struct rt *rt, unsigned hv);
const struct rt_agent *rt_agent_peek(const struct rt *rt, unsigned hv);
/* Serialise and release `arr` (NULL-safe): a heap string or NULL. */
char *rt_json_dump_array(json_t *arr);
struct rt_agent *rt_agent_new(const char *id);
void rt_agent_free(struct rt_agent *a);
int rt_agent_apply_cfg(struct rt *rt, struct rt_agent *a, const struct cfg_agent *ca) SB_MUST_CHECK;
/* Write every agent's state to the store and wait for the commit; called
 * without rt->lock.  Returns 0 or -EIO. */
int rt_persist_agents(struct rt *rt) SB_MUST_CHECK;

/* rt_conv.c: conversations (callers hold rt->lock) */
void rt_conv_free(struct rt_conv *c);
int rt_conv_add_part(struct rt_conv *c, const char *agent) SB_MUST_CHECK;
struct rt_conv *rt_conv_new(const char *id, const char *protocol, int64_t created_ms);
char *rt_conv_parts_json(const struct rt_conv *c);
/* Track the conversation of a message being routed at `now_ms`; its id is
 * `len` bytes with uthash hash `hv`.  -EAGAIN when the item was rejected
 * (status filled), -ENOMEM, or 0 with the conversation. */
int rt_conv_touch(struct rt *rt, struct rt_item *it, size_t len, unsigned hv, int64_t now_ms,
		  struct rt_conv **out) SB_MUST_CHECK;
/* Recovery callback for store_load_conversations(). */
int rt_recover_conv(void *ctx, const char *id, const char *parts, const char *protocol, int64_t created_ms,
		    int64_t last_ms, int64_t count);

/* 1 when `digest` (hex SHA-256 of a bearer token) is `a`'s token, compared
 * in constant time; NULL `digest` (auth off) always passes. */
int rt_agent_token_ok(const struct rt_agent *a, const char *digest);

/* Take one message from `a`'s send budget; 0, or the seconds to wait. */
int rt_agent_rate_take(struct rt_agent *a, uint64_t now_ns);

/* 1 while `a` is held for a handoff (rt_hold); lifts a hold that ran out.
 * rt->lock held. */
int rt_agent_held(struct rt *rt, struct rt_agent *a);

/* Fill `err` for a caller whose token is not `agent`'s: 401 Unauthorized
 * when the token belongs to no agent at all (the caller is not
 * authenticated), 403 Forbidden when it is another agent's.  rt->lock
 * held.  Returns -EINVAL. */
int rt_err_auth(const struct rt *rt, struct rt_err *err, const char *agent, const char *digest);

/* 1 when some configured agent has the token with hex SHA-256 `digest`.
 * rt->lock held. */
int rt_token_known(const struct rt *rt, const char *digest);

/* Free the token index (rt_free). */
void rt_tokens_free(struct rt *rt);

/* Fill `err` with 404 AgentNotFound for `agent`; returns -EINVAL. */
int rt_err_no_agent(struct rt_err *err, const char *agent);

/* rt_pull.c: the push engine's side of leases (each takes rt->lock) */
struct rt_engine_agent {
	char id[254];
	char endpoint[2049];
	int64_t timeout_ms;
	int64_t max_in_flight;
	int protocol;	    /* enum cfg_protocol: a2a agents get one SendMessage per message */
	size_t ready;	    /* messages waiting (not leased) */
	uint64_t oldest_ns; /* when the oldest ready message became deliverable */
};
/* Push agents that are configured, Running or Draining, and have messages
 * ready; at most `max`.  Also copies the current delivery settings into *d,
 * so the engine never reads a config being swapped.  Returns the count. */
size_t rt_engine_agents(struct rt *rt, struct rt_engine_agent *out, size_t max, struct cfg_delivery *d);
/* Lease up to `max` ready messages of `agent` for the engine; NULL when none. */
struct rt_lease *rt_engine_take(struct rt *rt, const char *agent, size_t max);
/* The request body for a lease: the message itself, or {"messages":[...]}. */
int rt_engine_body(struct rt *rt, const struct rt_lease *l, int batch, struct buf *out) SB_MUST_CHECK;
/* Delivered: delete durably (waits for the commit) and free the lease. */
int rt_engine_ack(struct rt *rt, struct rt_lease *l) SB_MUST_CHECK;
/* Count another attempt; 1 when every message may be tried again, else 0
 * (then *death tells why). */
int rt_engine_retry(struct rt *rt, struct rt_lease *l, int temporary_death, int *death);
/* Dead-letter every message of the lease and free it. */
void rt_engine_fail(struct rt *rt, struct rt_lease *l, int death);
/* rt_engine_fail with a detail, why in words (e.g. "A2A error -32602:
 * Invalid params"): `detail` (borrowed, may be NULL for none, UTF-8) is cut
 * to at most RT_DETAIL_MAX bytes on a character boundary (rt_detail_cut)
 * and attached to every message of the lease: its dead letter's `detail`,
 * its sender's FIPA failure notice and its FAILED task carry it.  Frees the
 * lease.  Takes rt->lock. */
void rt_engine_fail_why(struct rt *rt, struct rt_lease *l, int death, const char *detail);

/* rt_pull.c */
void rt_expire_leases(struct rt *rt, uint64_t now_ns);

#endif
