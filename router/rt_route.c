/*
 * Submission: routing a batch of items into their receivers' queues and
 * making them deliverable once committed.  rt_submit hashes every item
 * first, without the lock (ids, receivers, conversations, the window's
 * keys); then, under it, it checks each item (sender, duplicates, receiver,
 * bounds, conversation), reserves its place and queues its store
 * operations, fetching ahead for the items that follow (the lookups of a
 * message are dependent cache misses: a window slot, a receiver, its id
 * index); then one ticket commits them all, and rt_on_commit publishes
 * them.  Clocks are read once per submission.  See rt.h for the promises:
 * a 202 only after the commit, conversations in order, duplicates
 * answered 202 without storing anything.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt_int.h"
#include "switchboard/util.h"

void rt_item_fail(struct rt_item *it, int status, const char *code, int reason, const char *field, const char *fmt,
		  const char *arg)
{
	it->status = status;
	it->code = code;
	it->reason = reason;
	snprintf(it->field, sizeof(it->field), "%s", field ? field : "");
	snprintf(it->message, sizeof(it->message), fmt, arg);
}

/* What identifies an item in the core's tables: computed for a whole
 * submission before the lock is taken (hash_items), so that routing under
 * it hashes nothing and can fetch ahead (route_prefetch). */
struct item_ids {
	size_t idlen;	   /* of its message_id */
	size_t recvlen;	   /* of its receiver */
	size_t convlen;	   /* of its conversation_id (0: none) */
	unsigned idhash;   /* uthash hash of the message_id (the receiver's by_id) */
	unsigned recvhash; /* of the receiver (rt->agents) */
	unsigned convhash; /* of the conversation_id (rt->convs, the lanes) */
	int keyed;	   /* `key` is the window's key of the message_id */
	struct dedup_key key;
	const struct rt_agent *guess; /* route_prefetch: the receiver it fetched ahead */
};

struct submit_ctx {
	struct store_op *ops;
	size_t nops;
	struct rt_msg **msgs; /* index = op index for inserts, NULL otherwise */
	char **owned;	      /* strings owned by the ticket (conversation JSON) */
	size_t nowned;
	int64_t now_ms;	      /* read once per submission: its messages are accepted at it */
	uint64_t now_ns;      /* monotonic, read with it (rate limits) */
	struct item_ids *ids; /* one per item */
};

/* Fail `it` when its caller's token is not the token of its sender `s`
 * (NULL: no such agent): 401 when the token belongs to no agent, 403 when
 * it is another agent's.  Returns 1 when it failed.  rt->lock held. */
static int refuse_sender(struct rt *rt, struct rt_item *it, const struct rt_agent *s)
{
	if (!it->auth_digest || rt_agent_token_ok(s, it->auth_digest))
		return 0;
	if (!rt_token_known(rt, it->auth_digest))
		rt_item_fail(it, 401, "Unauthorized", RM_UNAUTHORIZED, "sender",
			     "the bearer token belongs to no agent%s", "");
	else
		rt_item_fail(it, 403, "Forbidden", RM_FORBIDDEN, "sender",
			     "the bearer token does not belong to sender \"%.150s\"", it->m.sender);
	return 1;
}

void rt_check_senders(struct rt *rt, struct rt_item *items, size_t n)
{
	pthread_mutex_lock(&rt->lock);
	for (size_t i = 0; i < n; i++)
		if (!items[i].status && items[i].forwarded)
			refuse_sender(rt, &items[i], rt_find_agent(rt, items[i].m.sender));
	pthread_mutex_unlock(&rt->lock);
}

int rt_check_caller(struct rt *rt, const char *agent, const char *auth_digest, struct rt_err *err)
{
	struct rt_agent *a;
	int rc = 0;

	pthread_mutex_lock(&rt->lock);
	a = rt_find_agent(rt, agent);
	if (!a)
		rc = rt_err_no_agent(err, agent);
	else if (!rt_agent_token_ok(a, auth_digest))
		rc = rt_err_auth(rt, err, agent, auth_digest);
	pthread_mutex_unlock(&rt->lock);
	return rc;
}

int rt_caller_known(struct rt *rt, const char *auth_digest)
{
	int known;

	if (!auth_digest)
		return 1;
	pthread_mutex_lock(&rt->lock);
	known = rt_token_known(rt, auth_digest);
	pthread_mutex_unlock(&rt->lock);
	return known;
}

/* 1 when the receiver of `it` holds a message with its id here. */
static int stored_here(struct rt *rt, const struct rt_item *it)
{
	struct rt_agent *a = rt_find_agent(rt, it->m.receiver);
	struct rt_msg *m = NULL;

	if (a)
		HASH_FIND_STR(a->by_id, it->m.message_id, m);
	return m != NULL;
}

/* The checks on the sender of `it`: its token, then its rate limit (not for
 * a handoff: the message was accepted once already).  The sender is looked
 * up only when there is something to check.  Returns 1 when `it` failed.
 * rt->lock held. */
static int sender_refused(struct rt *rt, struct rt_item *it, uint64_t now_ns)
{
	struct rt_agent *s;
	int wait;

	if (!it->auth_digest && !rt->nrated)
		return 0;
	s = rt_find_agent(rt, it->m.sender);
	if (refuse_sender(rt, it, s))
		return 1;
	if (!s || it->handoff || (wait = rt_agent_rate_take(s, now_ns)) <= 0)
		return 0;
	rt_item_fail(it, 429, "RateLimited", RM_RATE_LIMITED, "sender",
		     "sender \"%s\" is over its rateLimit; retry later", it->m.sender);
	it->retry_after_s = wait;
	return 1;
}

/* Answer `it` as a duplicate: 202, nothing stored.  Returns 1. */
static int answer_duplicate(struct rt *rt, struct rt_item *it)
{
	it->status = 202;
	it->duplicate = 1;
	met_inc(rt->met->duplicates);
	return 1;
}

/* Answer `it` 409: a message with its id is being committed.  Returns 1. */
static int answer_in_flight(struct rt_item *it)
{
	rt_item_fail(it, 409, "InFlight", RM_INVALID_MESSAGE, "message_id", "%s",
		     "a message with this message_id is being committed; retry shortly");
	return 1;
}

/*
 * Whether the id of `it` was seen: in the window, or held by its receiver.
 * `ids` has its key whenever the window is on.  Returns 1 when `it` is
 * answered (a duplicate, or 409 while the first one commits), else 0 with
 * *a its receiver (NULL when there is no such agent).  rt->lock held.
 */
static int seen_before(struct rt *rt, struct rt_item *it, struct item_ids *ids, struct rt_agent **a)
{
	struct rt_msg *pending = NULL;
	unsigned flags = 0;
	uint64_t d = 0;

	*a = NULL;
	if (rt->cfg.delivery.dedup_window_ms || dedup_count(rt->dedup)) {
		if (!ids->keyed) /* the window came on since hash_items looked */
			dedup_key(rt->dedup, it->m.message_id, ids->idlen, &ids->key);
		ids->keyed = 1;
		d = dedup_find(rt->dedup, &ids->key);
		flags = d ? dedup_flags(rt->dedup, d) : 0;
	}
	if (flags & DEDUP_COMMITTED && it->handoff && !stored_here(rt, it)) {
		/* handed back to a router that once had it: the window remembers
		 * the message, but it left with its agent; take it in again */
		dedup_unlink(rt->dedup, d);
		d = 0;
	}
	if (d)
		return flags & DEDUP_COMMITTED ? answer_duplicate(rt, it) : answer_in_flight(it);
	*a = rt_find_agent_h(rt, it->m.receiver, ids->recvlen, ids->recvhash);
	if (*a)
		HASH_FIND_BYHASHVALUE(hh, (*a)->by_id, it->m.message_id, ids->idlen, ids->idhash, pending);
	if (!pending)
		return 0;
	return pending->state != RTM_RESERVED ? answer_duplicate(rt, it) : answer_in_flight(it);
}

/* 1 when receiver `a` (NULL: no such agent) takes no message now, with `it`
 * failed: 404, 409 not accepting, 503 while its previous owner hands its
 * messages off, 429 when its queue or the router is full.  rt->lock held. */
static int receiver_refuses(struct rt *rt, struct rt_item *it, struct rt_agent *a)
{
	if (!a) {
		rt_item_fail(it, 404, "AgentNotFound", RM_AGENT_NOT_FOUND, "receiver", "no agent \"%s\" is registered",
			     it->m.receiver);
		return 1;
	}
	if (a->state != CFG_AGENT_RUNNING && a->state != CFG_AGENT_LOADED) {
		rt_item_fail(it, 409, "AgentNotAccepting", RM_AGENT_NOT_ACCEPTING, "receiver",
			     "the receiver is %s and accepts no new messages", cfg_agent_state_name(a->state));
		return 1;
	}
	if (!it->handoff && rt_agent_held(rt, a)) {
		/* its previous owner hands its messages off first: new ones queue
		 * behind them by coming back a moment later */
		rt_item_fail(it, 503, "HandoffInProgress", RM_SHUTTING_DOWN, "receiver",
			     "the messages of \"%.100s\" are moving here; retry shortly", it->m.receiver);
		it->retry_after_s = 1;
		return 1;
	}
	if (a->depth >= a->capacity) {
		rt_item_fail(it, 429, "QueueFull", RM_RESOURCE_EXHAUSTED, "receiver",
			     "the queue of \"%s\" is full; retry later", it->m.receiver);
		return 1;
	}
	if (rt->total_depth >= (size_t)rt->cfg.perf.max_concurrent_messages) {
		rt_item_fail(it, 429, "ResourceExhausted", RM_RESOURCE_EXHAUSTED, NULL, "%s",
			     "the router holds performance.maxConcurrentMessages messages; retry later");
		return 1;
	}
	return 0;
}

/* Reserve a place in `a`'s queue for `it`, accepted at `now_ms`: its record
 * (which takes its body), its id in `a`'s index and in the window.  NULL on
 * ENOMEM, with nothing reserved.  rt->lock held. */
static struct rt_msg *reserve(struct rt *rt, struct rt_item *it, struct rt_agent *a, const struct item_ids *ids,
			      int64_t now_ms)
{
	const struct msg *in = &it->m;
	struct rt_msg *m = rt_msg_alloc(in->message_id, ids->idlen, in->conversation_id, ids->convlen, in->sender,
					strlen(in->sender));

	if (!m)
		return NULL;
	m->seq = ++rt->next_seq;
	m->state = RTM_RESERVED;
	m->prio = in->priority;
	m->accepted_ms = now_ms;
	m->deadline_ms = now_ms + (in->timeout_ms ? in->timeout_ms : rt->cfg.perf.message_timeout_ms);
	m->max_retries = in->max_retries;
	m->started_ns = it->started_ns;
	m->conv_hash = ids->convhash;
	m->agent = a;
	m->body = it->m.body;
	m->body_len = it->m.body_len;
	it->m.body = NULL;
	HASH_ADD_KEYPTR_BYHASHVALUE(hh, a->by_id, m->message_id, ids->idlen, ids->idhash, m);
	a->depth++;
	a->reserved++;
	rt->total_depth++;
	if (rt->cfg.delivery.dedup_window_ms &&
	    dedup_add(rt->dedup, &ids->key, a->id, &a->dedup_hint, m->seq, now_ms, 0, &m->dedup))
		m->dedup = 0; /* out of memory: the message goes without its window entry */
	return m;
}

/* Queue the store operations of reserved message `m` of `it`: its insert
 * and, for a handoff, the attempts it had at its previous owner. */
static void queue_insert(struct submit_ctx *sc, const struct rt_item *it, struct rt_msg *m)
{
	struct store_op *op = &sc->ops[sc->nops];

	memset(op, 0, sizeof(*op));
	op->type = STORE_MSG_INSERT;
	op->seq = m->seq;
	op->id = m->message_id;
	op->receiver = m->agent->id;
	op->conversation = m->conv_id;
	op->text = m->body;
	op->text_len = m->body_len;
	op->i1 = m->prio;
	op->i2 = it->m.created_ms;
	op->i3 = m->accepted_ms;
	op->sender = m->sender;
	op->deadline_ms = m->deadline_ms;
	op->max_retries = m->max_retries;
	sc->msgs[sc->nops++] = m;
	if (it->handoff && it->attempts) {
		/* the attempts it had at its previous owner count here too */
		m->attempts = it->attempts;
		op = &sc->ops[sc->nops];
		memset(op, 0, sizeof(*op));
		op->type = STORE_MSG_ATTEMPTS;
		op->seq = m->seq;
		op->i1 = it->attempts;
		sc->msgs[sc->nops++] = NULL;
	}
}

static int route_one(struct rt *rt, struct rt_item *it, struct item_ids *ids, struct submit_ctx *sc,
		     struct rt_conv **conv)
{
	struct rt_agent *a;
	struct rt_msg *m;
	int rc;

	*conv = NULL;
	if (sender_refused(rt, it, sc->now_ns))
		return 0;
	if (seen_before(rt, it, ids, &a) || receiver_refuses(rt, it, a))
		return 0;
	if (ids->convlen) {
		rc = rt_conv_touch(rt, it, ids->convlen, ids->convhash, sc->now_ms, conv);
		if (rc == -EAGAIN)
			return 0;
		if (rc)
			return rc;
	}
	m = reserve(rt, it, a, ids, sc->now_ms);
	if (!m)
		return -ENOMEM;
	queue_insert(sc, it, m);
	it->status = 202;
	return 0;
}

/* Hash what routing looks up, for every item still to route; the window's
 * key only while the window is on (rt->keyed; route_one checks again).
 * Pure: runs before the lock is taken. */
static void hash_items(struct rt *rt, const struct rt_item *items, size_t n, struct item_ids *ids)
{
	int keyed = atomic_load_explicit(&rt->keyed, memory_order_relaxed);

	for (size_t i = 0; i < n; i++) {
		const struct msg *m = &items[i].m;
		struct item_ids *d = &ids[i];

		if (i + 4 < n) { /* an item spans many cache lines: the ones read here, ahead */
			const struct rt_item *next = &items[i + 4];

			__builtin_prefetch(next->m.message_id);
			__builtin_prefetch(next->m.receiver);
			__builtin_prefetch(next->m.conversation_id);
			__builtin_prefetch(&next->status);
			__builtin_prefetch(&next->forwarded);
		}

		*d = (struct item_ids){0};
		if (items[i].forwarded || items[i].status)
			continue;
		d->idlen = strlen(m->message_id);
		d->recvlen = strlen(m->receiver);
		d->convlen = strlen(m->conversation_id);
		HASH_VALUE(m->message_id, d->idlen, d->idhash);
		HASH_VALUE(m->receiver, d->recvlen, d->recvhash);
		if (d->convlen)
			HASH_VALUE(m->conversation_id, d->convlen, d->convhash);
		if (keyed) {
			dedup_key(rt->dedup, m->message_id, d->idlen, &d->key);
			d->keyed = 1;
		}
	}
}

/* How far ahead of routing route_prefetch starts on an item, and
 * publish_prefetch on a message. */
#define PREFETCH_AHEAD 8
#define PUBLISH_AHEAD  12 /* in four steps */

/*
 * Routing item `it` is `ahead` items away: fetch toward the cache the next
 * link of what it will read, each from a link fetched at an earlier step
 * (so nothing here waits for memory): the window's slot and the receivers'
 * slot, then the receiver, then its by_id table, bucket and first entry.
 * Only a guess (the agent in the first slot probed, whatever the tables
 * became since): route_one looks everything up again.  rt->lock held.
 */
static void route_prefetch(struct rt *rt, struct item_ids *ids, size_t ahead)
{
	const UT_hash_table *t;
	const UT_hash_handle *hh;
	const struct rt_msg *head;

	switch (ahead) {
	case PREFETCH_AHEAD:
		if (ids->keyed)
			dedup_prefetch(rt->dedup, &ids->key);
		__builtin_prefetch(rt_agent_slot_of(rt, ids->recvhash));
		break;
	case 6:
		ids->guess = rt_agent_peek(rt, ids->recvhash);
		if (ids->guess) { /* its two hot lines, and its id after the struct */
			__builtin_prefetch(ids->guess);
			__builtin_prefetch(&ids->guess->ready);
			__builtin_prefetch(ids->guess + 1);
		}
		break;
	case 4:
		if (ids->guess && ids->guess->by_id)
			__builtin_prefetch(&ids->guess->by_id->hh);
		break;
	case 3:
		if (ids->guess && ids->guess->by_id)
			__builtin_prefetch(ids->guess->by_id->hh.tbl);
		break;
	case 2:
		if (ids->guess && ids->guess->by_id) {
			t = ids->guess->by_id->hh.tbl;
			__builtin_prefetch(&t->buckets[ids->idhash & (t->num_buckets - 1)]);
		}
		break;
	case 1:
		if (ids->guess && (head = ids->guess->by_id) != NULL) {
			t = head->hh.tbl;
			hh = t->buckets[ids->idhash & (t->num_buckets - 1)].hh_head;
			if (hh)
				__builtin_prefetch(hh);
		}
		break;
	default:
		break;
	}
}

/* Undo a reservation whose commit failed. */
static void unreserve(struct rt *rt, struct rt_msg *m)
{
	struct rt_agent *a = m->agent;

	if (m->dedup)
		dedup_unlink(rt->dedup, m->dedup);
	HASH_DEL(a->by_id, m);
	a->depth--;
	a->reserved--;
	rt->total_depth--;
	rt_msg_free(m);
}

/* Make committed message `m` deliverable (rt_publish without metrics). */
static void publish(struct rt *rt, struct rt_msg *m, uint64_t now_ns)
{
	m->committed_ns = now_ns;
	if (m->conv_id) {
		m->lane = rt_lane_get_h(m->agent, m->conv_id, strlen(m->conv_id), m->conv_hash);
		if (!m->lane) {
			log_error("out of memory creating a conversation lane");
			abort();
		}
	}
	rt_make_ready(rt, m);
	if (m->deadline_ms)
		rt_heap_push(&rt->deadline_heap, m);
}

void rt_publish(struct rt *rt, struct rt_msg *m, uint64_t now_ns)
{
	publish(rt, m, now_ns);
	met_inc(rt->met->routed);
	met_observe(rt->met->routing, (double)(now_ns - m->started_ns) / 1e9);
}

/*
 * Publishing message `m` is `ahead` messages away: fetch toward the cache
 * what publishing it reads, one link per step, each from a link fetched at
 * the step before (so nothing here waits for memory): the message (routed
 * a whole submission ago), its receiver's ready heap, then the parents its
 * places in that heap and in the deadline heap will be compared with, the
 * array slots and then the messages in them.  A guess (a conversation may
 * keep it out of the ready heap): publish does the real work.  rt->lock
 * held.
 */
static void publish_prefetch(const struct rt *rt, const struct rt_msg *m, size_t ahead)
{
	const struct heap *dh = &rt->deadline_heap, *h;
	size_t dn = dh->n + ahead; /* where it lands if everything before it does */

	switch (ahead) {
	case PUBLISH_AHEAD:
		__builtin_prefetch(m);
		if ((dn - 1) / 2 < dh->n)
			__builtin_prefetch(&dh->v[(dn - 1) / 2]);
		break;
	case PUBLISH_AHEAD * 3 / 4:
		__builtin_prefetch(&m->agent->ready);
		if ((dn - 1) / 2 < dh->n)
			__builtin_prefetch(dh->v[(dn - 1) / 2]);
		break;
	case PUBLISH_AHEAD / 2:
		h = &m->agent->ready;
		if (h->n)
			__builtin_prefetch(&h->v[(h->n - 1) / 2]);
		break;
	case PUBLISH_AHEAD / 4:
		h = &m->agent->ready;
		if (h->n)
			__builtin_prefetch(h->v[(h->n - 1) / 2]);
		break;
	default:
		break;
	}
}

void rt_on_commit(struct store_ticket *t, void *ctx)
{
	struct rt *rt = ctx;
	struct submit_ctx *sc = t->user;
	uint64_t now = util_mono_ns(), routed = 0;
	struct met_hist_batch latency;

	met_observe(rt->met->commit_batch, (double)t->nops);
	if (!sc)
		return;
	met_hist_batch_init(&latency, rt->met->routing);
	pthread_mutex_lock(&rt->lock);
	for (size_t i = 0; i < sc->nops; i++) {
		struct rt_msg *m = sc->msgs ? sc->msgs[i] : NULL;

		if (!m)
			continue;
		if (t->rc) {
			unreserve(rt, m);
			sc->msgs[i] = NULL;
			continue;
		}
		for (size_t k = PUBLISH_AHEAD / 4; k <= PUBLISH_AHEAD; k += PUBLISH_AHEAD / 4)
			if (i + k < sc->nops && sc->msgs[i + k])
				publish_prefetch(rt, sc->msgs[i + k], k);
		if (m->dedup) { /* from here on the window may prune it */
			dedup_commit(rt->dedup, m->dedup);
			m->dedup = 0;
		}
		publish(rt, m, now);
		met_hist_batch_add(&latency, (double)(now - m->started_ns) / 1e9);
		routed++;
	}
	pthread_mutex_unlock(&rt->lock);
	/* before rt_submit returns: the writer wakes its waiter after this */
	met_add(rt->met->routed, routed);
	met_hist_batch_flush(&latency);
}

/* Queue a snapshot of each conversation the submission touched (after its
 * messages' inserts).  Returns 0 or -ENOMEM.  rt->lock held. */
static int queue_conversations(struct submit_ctx *sc, struct rt_conv **touched, size_t ntouched)
{
	for (size_t k = 0; k < ntouched; k++) {
		struct rt_conv *c = touched[k];
		struct store_op *op = &sc->ops[sc->nops];
		char *parts;

		sc->msgs[sc->nops++] = NULL; /* not a message insert */
		if (!c->parts_json)
			c->parts_json = rt_conv_parts_json(c);
		parts = c->parts_json ? strdup(c->parts_json) : NULL; /* the ticket owns its copy */
		if (!parts)
			return -ENOMEM;
		sc->owned[sc->nowned++] = parts;
		memset(op, 0, sizeof(*op));
		op->type = STORE_CONV_UPSERT;
		op->id = c->id; /* conversations outlive the ticket: expiry runs on this lock */
		op->text = parts;
		op->text2 = c->protocol;
		op->i1 = c->created_ms;
		op->i2 = c->last_ms;
		op->i3 = (int64_t)c->count;
	}
	return 0;
}

/* Route the items under the lock: reservations and their store operations
 * into `sc`.  Returns 0 or -ENOMEM (the caller undoes the reservations). */
static int route_all(struct rt *rt, struct rt_item *items, size_t n, struct submit_ctx *sc, struct rt_conv **touched)
{
	size_t ntouched = 0;
	uint64_t received = 0;
	int rc = 0;

	sc->now_ms = util_now_ms();
	sc->now_ns = util_mono_ns();
	rt->touch_gen++;
	for (size_t i = 0; i < n; i++) {
		struct rt_item *it = &items[i];
		struct rt_conv *c = NULL;

		for (size_t k = 1; k <= PREFETCH_AHEAD && i + k < n; k++)
			if (!items[i + k].forwarded && !items[i + k].status)
				route_prefetch(rt, &sc->ids[i + k], k);
		if (it->forwarded)
			continue; /* another replica's: forwarded there, and counted there */
		received++;
		if (it->status)
			continue;
		if (rt->draining) {
			rt_item_fail(it, 503, "ShuttingDown", RM_SHUTTING_DOWN, NULL, "%s",
				     "the router is draining; send to another replica");
			continue;
		}
		rc = route_one(rt, it, &sc->ids[i], sc, &c);
		if (rc)
			break;
		if (c && c->touch_gen != rt->touch_gen) { /* first time in this submission */
			c->touch_gen = rt->touch_gen;
			touched[ntouched++] = c;
		}
	}
	met_add(rt->met->received, received);
	return rc ? rc : queue_conversations(sc, touched, ntouched);
}

/* Undo every reservation in `sc` (a routing or store failure). */
static void unreserve_all(struct rt *rt, struct submit_ctx *sc)
{
	for (size_t i = 0; i < sc->nops; i++)
		if (sc->msgs[i]) {
			unreserve(rt, sc->msgs[i]);
			sc->msgs[i] = NULL;
		}
}

/* Count the failures and log the accepted (sampled, at debug). */
static void submit_report(struct rt *rt, const struct rt_item *items, size_t n, double sample_rate)
{
	int debug = log_enabled(LOG_DEBUG);

	for (size_t i = 0; i < n; i++) {
		if (items[i].status != 202)
			met_inc(rt->met->failed[items[i].reason]);
		else if (debug && log_sample(sample_rate))
			log_debug("message routed", "message_id", items[i].m.message_id, "conversation_id",
				  items[i].m.conversation_id[0] ? items[i].m.conversation_id : NULL, "trace_id",
				  items[i].m.trace_id[0] ? items[i].m.trace_id : NULL, "agent_id", items[i].m.receiver,
				  "sender", items[i].m.sender, "n:duplicate", items[i].duplicate ? "true" : "false");
	}
}

int rt_submit(struct rt *rt, struct rt_item *items, size_t n)
{
	struct submit_ctx sc = {0};
	struct store_ticket t = {0};
	struct rt_conv **touched = NULL;
	int rc = 0, wrc;
	double sample_rate;

	/* every entry below is written before it is read: no need to zero */
	sc.ops = malloc((3 * n + 1) * sizeof(*sc.ops)); /* insert, attempts (handoff), conversation */
	sc.msgs = malloc((3 * n + 1) * sizeof(struct rt_msg *));
	sc.owned = malloc((n + 1) * sizeof(*sc.owned));
	sc.ids = malloc((n + 1) * sizeof(*sc.ids));
	touched = malloc((n + 1) * sizeof(struct rt_conv *));
	if (!sc.ops || !sc.msgs || !sc.owned || !sc.ids || !touched) {
		rc = -ENOMEM;
		goto out;
	}
	hash_items(rt, items, n, sc.ids);
	pthread_mutex_lock(&rt->lock);
	sample_rate = rt->cfg.obs.log_sample_rate; /* rt->cfg is swapped under the lock (rt_reconfigure) */
	rc = route_all(rt, items, n, &sc, touched);
	if (rc) {
		unreserve_all(rt, &sc);
		pthread_mutex_unlock(&rt->lock);
		goto out;
	}
	if (sc.nops == 0) {
		pthread_mutex_unlock(&rt->lock);
		goto finish;
	}
	t.ops = sc.ops;
	t.nops = sc.nops;
	t.user = &sc;
	if (!rt->st) { /* memory-only core (benchmarks): "commit" at once */
		pthread_mutex_unlock(&rt->lock);
		rt_on_commit(&t, rt);
		goto finish;
	}
	wrc = store_submit(rt->st, &t);
	if (wrc)
		unreserve_all(rt, &sc);
	pthread_mutex_unlock(&rt->lock);
	if (!wrc)
		wrc = store_wait(rt->st, &t);
	if (wrc) {
		for (size_t i = 0; i < n; i++)
			if (items[i].status == 202 && !items[i].duplicate)
				rt_item_fail(&items[i], 503, "StorageUnavailable", RM_STORAGE_ERROR, NULL, "%s",
					     "the message could not be stored; it was not accepted");
	}
finish:
	submit_report(rt, items, n, sample_rate);
out:
	for (size_t i = 0; i < sc.nowned; i++)
		free(sc.owned[i]);
	free(sc.owned);
	free(sc.ops);
	free(sc.msgs);
	free(sc.ids);
	free(touched);
	return rc;
}
