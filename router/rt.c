/*
 * Routing core: registry, submission, commit visibility, conversations,
 * recovery and the maintenance thread (the deduplication window is
 * dedup.c, its part in tasks rt_task.c).  See rt.h for the locking rule:
 * one mutex, never held across I/O or a wait.
 *
 * Delivery order: each agent has a ready heap ordered by (priority desc,
 * sequence asc).  A message without a conversation goes straight into the
 * heap.  Messages of one conversation queue in a lane and only the lane's
 * head is ever in the heap, and only while nothing of that lane is leased;
 * so a conversation is delivered strictly in order, even across retries,
 * while unrelated traffic still goes by priority.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rt_int.h"
#include "switchboard/util.h"

/* --- heaps ---------------------------------------------------------------- */

static int conv_cmp(const void *a, const void *b)
{
	const struct rt_conv *x = a, *y = b;

	return x->last_ms < y->last_ms ? -1 : x->last_ms > y->last_ms;
}

static void conv_set_idx(void *e, size_t i)
{
	((struct rt_conv *)e)->heap_idx = i;
}

static int lease_cmp(const void *a, const void *b)
{
	const struct rt_lease *x = a, *y = b;

	return x->expires_ns < y->expires_ns ? -1 : x->expires_ns > y->expires_ns;
}

static void lease_set_idx(void *e, size_t i)
{
	((struct rt_lease *)e)->heap_idx = i;
}

/* --- messages and lanes ---------------------------------------------------- */

void rt_msg_free(struct rt_msg *m)
{
	if (!m)
		return;
	free(m->detail);
	free(m->body);
	free(m);
}

struct rt_msg *rt_msg_new(const char *message_id, const char *conv_id, const char *sender)
{
	size_t il = strlen(message_id) + 1, cl = conv_id && *conv_id ? strlen(conv_id) + 1 : 0;
	size_t sl = strlen(sender ? sender : "") + 1;
	struct rt_msg *m = calloc(1, sizeof(*m) + il + cl + sl);

	if (!m)
		return NULL;
	m->message_id = (char *)(m + 1);
	memcpy(m->message_id, message_id, il);
	if (cl) {
		m->conv_id = m->message_id + il;
		memcpy(m->conv_id, conv_id, cl);
	}
	m->sender = m->message_id + il + cl;
	memcpy(m->sender, sender ? sender : "", sl);
	m->heap_idx = HEAP_NOT_IN;
	m->dl_idx = HEAP_NOT_IN;
	m->max_retries = -1;
	return m;
}

const char *rt_death_name(int death)
{
	static const char *const names[RT_DEATH_COUNT] = {"", "AgentNotResponding", "Timeout", "NetworkError",
							  "InvalidMessage"};

	return death > 0 && death < RT_DEATH_COUNT ? names[death] : "Unknown";
}

int rt_msg_attempts_left(const struct rt *rt, const struct rt_msg *m)
{
	int64_t max = m->max_retries >= 0 ? m->max_retries : rt->cfg.delivery.max_retries;

	return (int64_t)m->attempts <= max;
}

static int deadline_cmp(const void *a, const void *b)
{
	const struct rt_msg *x = a, *y = b;

	return x->deadline_ms < y->deadline_ms ? -1 : x->deadline_ms > y->deadline_ms;
}

static void deadline_set_idx(void *e, size_t i)
{
	((struct rt_msg *)e)->dl_idx = i;
}

static struct rt_lane *lane_get(struct rt_agent *a, const char *conv_id)
{
	struct rt_lane *l;

	HASH_FIND_STR(a->lanes, conv_id, l);
	if (l)
		return l;
	l = calloc(1, sizeof(*l));
	if (!l)
		return NULL;
	l->conv_id = strdup(conv_id);
	if (!l->conv_id) {
		free(l);
		return NULL;
	}
	HASH_ADD_KEYPTR(hh, a->lanes, l->conv_id, strlen(l->conv_id), l);
	return l;
}

void rt_lane_maybe_free(struct rt_agent *a, struct rt_lane *l)
{
	if (l->head || l->inflight)
		return;
	HASH_DEL(a->lanes, l);
	free(l->conv_id);
	free(l);
}

void rt_heap_push(struct heap *h, void *e)
{
	if (heap_push(h, e)) {
		log_error("out of memory growing a delivery heap");
		abort();
	}
}

/* A committed (or requeued) message becomes deliverable. */
void rt_make_ready(struct rt *rt, struct rt_msg *m)
{
	struct rt_agent *a = m->agent;
	struct rt_lane *l = m->lane;

	if (m->state == RTM_RESERVED)
		a->reserved--; /* committed */
	m->state = RTM_QUEUED;
	if (!l) {
		rt_heap_push(&a->ready, m);
	} else {
		/* append in sequence order (requeued messages go back in front) */
		struct rt_msg **pp = &l->head;

		if (l->tail && l->tail->seq < m->seq) /* the common case, O(1): newest last */
			pp = &l->tail->lane_next;
		while (*pp && (*pp)->seq < m->seq)
			pp = &(*pp)->lane_next;
		m->lane_next = *pp;
		*pp = m;
		if (!m->lane_next)
			l->tail = m;
		l->queued++;
		if (l->inflight == 0) {
			/* the head may have changed: only the head sits in the heap */
			if (l->head != m) {
				/* head already in heap; nothing to do */
			} else {
				if (m->lane_next && m->lane_next->heap_idx != HEAP_NOT_IN)
					heap_remove(&a->ready, m->lane_next->heap_idx);
				rt_heap_push(&a->ready, m);
			}
		}
	}
	pthread_cond_signal(&a->cond);
	if (a->mode == CFG_MODE_PUSH && rt->push_wake)
		rt->push_wake(rt->push_ctx);
}

/* Return a leased message to its queue (nack or lease expiry). */
void rt_requeue(struct rt *rt, struct rt_msg *m)
{
	struct rt_lane *l = m->lane;

	m->lease = NULL;
	m->lprev = m->lnext = NULL;
	m->agent->leased--;
	rt->total_leased--;
	if (l)
		l->inflight--;
	if (!rt_msg_attempts_left(rt, m) || (m->deadline_ms && m->deadline_ms <= util_now_ms())) {
		/* out of attempts or time: dead-letter instead of redelivering.  The
		 * conversation moves on first; rt_doom may free an emptied lane. */
		if (l && l->inflight == 0 && l->head && l->head->heap_idx == HEAP_NOT_IN)
			rt_heap_push(&m->agent->ready, l->head);
		rt_doom(rt, m, rt_msg_attempts_left(rt, m) ? RT_DEATH_TIMEOUT : RT_DEATH_NOT_RESPONDING);
		return;
	}
	rt_make_ready(rt, m);
	if (l && l->inflight == 0 && l->head && l->head->heap_idx == HEAP_NOT_IN)
		rt_heap_push(&m->agent->ready, l->head);
}

/* --- agents --------------------------------------------------------------- */

struct rt_agent *rt_find_agent(struct rt *rt, const char *id)
{
	struct rt_agent *a;

	HASH_FIND_STR(rt->agents, id, a);
	return a;
}

/* --- conversations ---------------------------------------------------------- */

/* --- submission ------------------------------------------------------------- */

void rt_item_fail(struct rt_item *it, int status, const char *code, int reason, const char *field, const char *fmt,
		  const char *arg)
{
	it->status = status;
	it->code = code;
	it->reason = reason;
	snprintf(it->field, sizeof(it->field), "%s", field ? field : "");
	snprintf(it->message, sizeof(it->message), fmt, arg);
}

struct submit_ctx {
	struct store_op *ops;
	size_t nops;
	struct rt_msg **msgs; /* index = op index for inserts, NULL otherwise */
	char **owned;	      /* strings owned by the ticket (conversation JSON) */
	size_t nowned;
};

/* Fail `it` when its caller's token is not its sender's: 401 when the token
 * belongs to no agent, 403 when it is another agent's.  Returns 1 when it
 * failed.  rt->lock held. */
static int refuse_sender(struct rt *rt, struct rt_item *it)
{
	if (!it->auth_digest || rt_agent_token_ok(rt_find_agent(rt, it->m.sender), it->auth_digest))
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
			refuse_sender(rt, &items[i]);
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

static int route_one(struct rt *rt, struct rt_item *it, struct submit_ctx *sc, struct rt_conv **conv)
{
	struct rt_agent *a;
	struct dedup_key key;
	uint64_t d = 0;
	unsigned dflags = 0;
	struct rt_msg *m, *pending;
	struct store_op *op;
	int rc;

	*conv = NULL;
	{
		struct rt_agent *s = rt_find_agent(rt, it->m.sender);
		int wait;

		if (refuse_sender(rt, it))
			return 0;
		if (s && !it->handoff && (wait = rt_agent_rate_take(s, util_mono_ns())) > 0) {
			rt_item_fail(it, 429, "RateLimited", RM_RATE_LIMITED, "sender",
				     "sender \"%s\" is over its rateLimit; retry later", it->m.sender);
			it->retry_after_s = wait;
			return 0;
		}
	}
	if (rt->cfg.delivery.dedup_window_ms || dedup_count(rt->dedup)) {
		dedup_key(rt->dedup, it->m.message_id, strlen(it->m.message_id), &key);
		d = dedup_find(rt->dedup, &key);
		dflags = d ? dedup_flags(rt->dedup, d) : 0;
	}
	if (dflags & DEDUP_COMMITTED && it->handoff && !stored_here(rt, it)) {
		/* handed back to a router that once had it: the window remembers
		 * the message, but it left with its agent; take it in again */
		dedup_unlink(rt->dedup, d);
		d = 0;
	}
	if (!d) {
		a = rt_find_agent(rt, it->m.receiver);
		pending = NULL;
		if (a)
			HASH_FIND_STR(a->by_id, it->m.message_id, pending);
		if (pending && pending->state != RTM_RESERVED) {
			it->status = 202;
			it->duplicate = 1;
			met_inc(rt->met->duplicates);
			return 0;
		}
		if (pending) {
			rt_item_fail(it, 409, "InFlight", RM_INVALID_MESSAGE, "message_id", "%s",
				     "a message with this message_id is being committed; retry shortly");
			return 0;
		}
	} else if (dflags & DEDUP_COMMITTED) {
		it->status = 202;
		it->duplicate = 1;
		met_inc(rt->met->duplicates);
		return 0;
	} else {
		rt_item_fail(it, 409, "InFlight", RM_INVALID_MESSAGE, "message_id", "%s",
			     "a message with this message_id is being committed; retry shortly");
		return 0;
	}
	if (!a) {
		rt_item_fail(it, 404, "AgentNotFound", RM_AGENT_NOT_FOUND, "receiver", "no agent \"%s\" is registered",
			     it->m.receiver);
		return 0;
	}
	if (a->state != CFG_AGENT_RUNNING && a->state != CFG_AGENT_LOADED) {
		rt_item_fail(it, 409, "AgentNotAccepting", RM_AGENT_NOT_ACCEPTING, "receiver",
			     "the receiver is %s and accepts no new messages", cfg_agent_state_name(a->state));
		return 0;
	}
	if (!it->handoff && rt_agent_held(rt, a)) {
		/* its previous owner hands its messages off first: new ones queue
		 * behind them by coming back a moment later */
		rt_item_fail(it, 503, "HandoffInProgress", RM_SHUTTING_DOWN, "receiver",
			     "the messages of \"%.100s\" are moving here; retry shortly", it->m.receiver);
		it->retry_after_s = 1;
		return 0;
	}
	if (a->depth >= a->capacity) {
		rt_item_fail(it, 429, "QueueFull", RM_RESOURCE_EXHAUSTED, "receiver",
			     "the queue of \"%s\" is full; retry later", it->m.receiver);
		return 0;
	}
	if (rt->total_depth >= (size_t)rt->cfg.perf.max_concurrent_messages) {
		rt_item_fail(it, 429, "ResourceExhausted", RM_RESOURCE_EXHAUSTED, NULL, "%s",
			     "the router holds performance.maxConcurrentMessages messages; retry later");
		return 0;
	}
	if (it->m.conversation_id[0]) {
		rc = rt_conv_touch(rt, it, conv);
		if (rc == -EAGAIN)
			return 0;
		if (rc)
			return rc;
	}
	m = rt_msg_new(it->m.message_id, it->m.conversation_id, it->m.sender);
	if (!m)
		return -ENOMEM;
	m->seq = ++rt->next_seq;
	m->state = RTM_RESERVED;
	m->prio = it->m.priority;
	m->accepted_ms = util_now_ms();
	m->deadline_ms = m->accepted_ms + (it->m.timeout_ms ? it->m.timeout_ms : rt->cfg.perf.message_timeout_ms);
	m->max_retries = it->m.max_retries;
	m->started_ns = it->started_ns;
	m->agent = a;
	m->body = it->m.body;
	m->body_len = it->m.body_len;
	it->m.body = NULL;
	HASH_ADD_KEYPTR(hh, a->by_id, m->message_id, strlen(m->message_id), m);
	a->depth++;
	a->reserved++;
	rt->total_depth++;
	if (rt->cfg.delivery.dedup_window_ms &&
	    dedup_add(rt->dedup, &key, a->id, &a->dedup_hint, m->seq, m->accepted_ms, 0, &m->dedup))
		m->dedup = 0; /* out of memory: the message goes without its window entry */
	op = &sc->ops[sc->nops];
	memset(op, 0, sizeof(*op));
	op->type = STORE_MSG_INSERT;
	op->seq = m->seq;
	op->id = m->message_id;
	op->receiver = a->id;
	op->conversation = m->conv_id;
	op->text = m->body;
	op->text_len = m->body_len;
	op->i1 = m->prio;
	op->i2 = it->m.created_ms;
	op->i3 = m->accepted_ms;
	op->sender = m->sender;
	op->deadline_ms = m->deadline_ms;
	op->max_retries = m->max_retries;
	sc->msgs[sc->nops] = m;
	sc->nops++;
	if (it->handoff && it->attempts) {
		/* the attempts it had at its previous owner count here too */
		m->attempts = it->attempts;
		op = &sc->ops[sc->nops];
		memset(op, 0, sizeof(*op));
		op->type = STORE_MSG_ATTEMPTS;
		op->seq = m->seq;
		op->i1 = it->attempts;
		sc->msgs[sc->nops] = NULL;
		sc->nops++;
	}
	it->status = 202;
	return 0;
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

void rt_publish(struct rt *rt, struct rt_msg *m, uint64_t now_ns)
{
	m->committed_ns = now_ns;
	if (m->conv_id) {
		m->lane = lane_get(m->agent, m->conv_id);
		if (!m->lane) {
			log_error("out of memory creating a conversation lane");
			abort();
		}
	}
	rt_make_ready(rt, m);
	if (m->deadline_ms)
		rt_heap_push(&rt->deadline_heap, m);
	met_inc(rt->met->routed);
	met_observe(rt->met->routing, (double)(now_ns - m->started_ns) / 1e9);
}

static void on_commit(struct store_ticket *t, void *ctx)
{
	struct rt *rt = ctx;
	struct submit_ctx *sc = t->user;
	uint64_t now = util_mono_ns();

	met_observe(rt->met->commit_batch, (double)t->nops);
	if (!sc)
		return;
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
		if (m->dedup) { /* from here on the window may prune it */
			dedup_commit(rt->dedup, m->dedup);
			m->dedup = 0;
		}
		rt_publish(rt, m, now);
	}
	pthread_mutex_unlock(&rt->lock);
}

int rt_submit(struct rt *rt, struct rt_item *items, size_t n)
{
	struct submit_ctx sc = {0};
	struct store_ticket t = {0};
	struct rt_conv **touched = NULL;
	size_t ntouched = 0;
	int rc = 0, wrc;
	double sample_rate;

	/* every entry below is written before it is read: no need to zero */
	sc.ops = malloc((3 * n + 1) * sizeof(*sc.ops)); /* insert, attempts (handoff), conversation */
	sc.msgs = malloc((3 * n + 1) * sizeof(struct rt_msg *));
	sc.owned = malloc((n + 1) * sizeof(*sc.owned));
	touched = malloc((n + 1) * sizeof(struct rt_conv *));
	if (!sc.ops || !sc.msgs || !sc.owned || !touched) {
		rc = -ENOMEM;
		goto out;
	}
	pthread_mutex_lock(&rt->lock);
	sample_rate = rt->cfg.obs.log_sample_rate; /* rt->cfg is swapped under the lock (rt_reconfigure) */
	for (size_t i = 0; i < n; i++) {
		struct rt_item *it = &items[i];
		struct rt_conv *c = NULL;

		if (it->forwarded)
			continue; /* another replica's: forwarded there, and counted there */
		met_inc(rt->met->received);
		if (it->status)
			continue;
		if (rt->draining) {
			rt_item_fail(it, 503, "ShuttingDown", RM_SHUTTING_DOWN, NULL, "%s",
				     "the router is draining; send to another replica");
			continue;
		}
		rc = route_one(rt, it, &sc, &c);
		if (rc)
			break;
		if (c) {
			size_t k;

			for (k = 0; k < ntouched && touched[k] != c; k++)
				;
			if (k == ntouched)
				touched[ntouched++] = c;
		}
	}
	/* one snapshot per conversation touched */
	for (size_t k = 0; !rc && k < ntouched; k++) {
		struct rt_conv *c = touched[k];
		struct store_op *op = &sc.ops[sc.nops];
		char *parts;

		sc.msgs[sc.nops++] = NULL; /* not a message insert */
		if (!c->parts_json)
			c->parts_json = rt_conv_parts_json(c);
		parts = c->parts_json ? strdup(c->parts_json) : NULL; /* the ticket owns its copy */
		if (!parts) {
			rc = -ENOMEM;
			break;
		}
		sc.owned[sc.nowned++] = parts;
		memset(op, 0, sizeof(*op));
		op->type = STORE_CONV_UPSERT;
		op->id = c->id; /* conversations outlive the ticket: expiry runs on this lock */
		op->text = parts;
		op->text2 = c->protocol;
		op->i1 = c->created_ms;
		op->i2 = c->last_ms;
		op->i3 = (int64_t)c->count;
	}
	if (rc) {
		for (size_t i = 0; i < sc.nops; i++)
			if (sc.msgs[i]) {
				unreserve(rt, sc.msgs[i]);
				sc.msgs[i] = NULL;
			}
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
		on_commit(&t, rt);
		goto finish;
	}
	wrc = store_submit(rt->st, &t);
	if (wrc) {
		for (size_t i = 0; i < sc.nops; i++)
			if (sc.msgs[i]) {
				unreserve(rt, sc.msgs[i]);
				sc.msgs[i] = NULL;
			}
	}
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
	for (size_t i = 0; i < n; i++) {
		if (items[i].status != 202)
			met_inc(rt->met->failed[items[i].reason]);
		else if (log_enabled(LOG_DEBUG) && log_sample(sample_rate))
			log_debug("message routed", "message_id", items[i].m.message_id, "conversation_id",
				  items[i].m.conversation_id[0] ? items[i].m.conversation_id : NULL, "trace_id",
				  items[i].m.trace_id[0] ? items[i].m.trace_id : NULL, "agent_id", items[i].m.receiver,
				  "sender", items[i].m.sender, "n:duplicate", items[i].duplicate ? "true" : "false");
	}
out:
	for (size_t i = 0; i < sc.nowned; i++)
		free(sc.owned[i]);
	free(sc.owned);
	free(sc.ops);
	free(sc.msgs);
	free(touched);
	return rc;
}

/* --- lifecycle --------------------------------------------------------------- */

int rt_new(const struct cfg *cfg, struct store *st, struct rmet *met, struct rt **out)
{
	struct rt *rt = calloc(1, sizeof(*rt));
	pthread_condattr_t ca;
	int rc;

	if (!rt)
		return -ENOMEM;
	rc = cfg_copy(&rt->cfg, cfg);
	if (rc) {
		free(rt);
		return rc;
	}
	pthread_mutex_init(&rt->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&rt->maint_cond, &ca);
	pthread_condattr_destroy(&ca);
	heap_init(&rt->conv_heap, conv_cmp, conv_set_idx);
	heap_init(&rt->lease_heap, lease_cmp, lease_set_idx);
	heap_init(&rt->deadline_heap, deadline_cmp, deadline_set_idx);
	rt->dying_tail = &rt->dying;
	rt->st = st;
	rt->met = met;
	rt->ndedup_max = (size_t)(cfg->profile == CFG_PROFILE_DEVELOPMENT ? 100000 : 1000000);
	rc = dedup_new(&rt->dedup);
	if (rc) {
		rt_free(rt);
		return rc;
	}
	rt->started_ms = util_now_ms();
	for (size_t i = 0; i < cfg->nagents; i++) {
		struct rt_agent *a = rt_agent_new(cfg->agents[i].id);

		if (!a || rt_agent_apply_cfg(rt, a, &cfg->agents[i])) {
			if (a)
				rt_agent_free(a);
			rt_free(rt);
			return -ENOMEM;
		}
		HASH_ADD_KEYPTR(hh, rt->agents, a->id, strlen(a->id), a);
	}
	if (met && met_collector_add(met->reg, rt_collect_metrics, rt)) {
		rt_free(rt);
		return -ENOMEM;
	}
	*out = rt;
	return 0;
}

static int recover_msg(void *ctx, const struct store_msg_row *row)
{
	struct rt *rt = ctx;
	const char *receiver = row->receiver, *body = row->body;
	struct rt_agent *a;
	struct rt_msg *m;
	size_t len = row->len;

	if (!row->message_id || !receiver || !body)
		return 0;
	a = rt_find_agent(rt, receiver);
	if (!a) {
		/* an agent removed from the config keeps its mailbox, draining */
		a = rt_agent_new(receiver);
		if (!a)
			return -ENOMEM;
		a->state = CFG_AGENT_DRAINING;
		a->mode = CFG_MODE_PULL;
		a->capacity = (size_t)rt->cfg.perf.agent_queue_size;
		a->caps_json = strdup("[]");
		if (!a->caps_json) {
			rt_agent_free(a);
			return -ENOMEM;
		}
		HASH_ADD_KEYPTR(hh, rt->agents, a->id, strlen(a->id), a);
	}
	m = rt_msg_new(row->message_id, row->conversation, row->sender);
	if (!m)
		return -ENOMEM;
	m->body = malloc(len + 1);
	if (!m->body) {
		rt_msg_free(m);
		return -ENOMEM;
	}
	memcpy(m->body, body, len);
	m->body[len] = '\0';
	m->body_len = len;
	m->seq = row->seq;
	m->prio = row->priority;
	m->attempts = (uint32_t)row->attempts;
	m->accepted_ms = row->accepted_ms;
	m->deadline_ms = row->deadline_ms;
	m->max_retries = row->max_retries;
	m->committed_ns = m->started_ns = util_mono_ns();
	m->state = RTM_QUEUED; /* stored already: never counted as reserved */
	m->agent = a;
	if (m->conv_id) {
		m->lane = lane_get(a, m->conv_id);
		if (!m->lane) {
			rt_msg_free(m);
			return -ENOMEM;
		}
	}
	HASH_ADD_KEYPTR(hh, a->by_id, m->message_id, strlen(m->message_id), m);
	a->depth++;
	rt->total_depth++;
	if (a->depth > a->capacity)
		a->capacity = a->depth; /* never refuse what is already stored */
	rt_make_ready(rt, m);
	if (m->deadline_ms)
		rt_heap_push(&rt->deadline_heap, m);
	if (row->seq > rt->next_seq)
		rt->next_seq = row->seq;
	return 0;
}

static void *maint_main(void *arg);

int rt_start(struct rt *rt)
{
	uint64_t maxseq = 0;
	int rc;

	rc = store_load_messages(rt->st, recover_msg, rt);
	if (!rc)
		rc = store_load_conversations(rt->st, rt_recover_conv, rt);
	if (!rc && rt->cfg.delivery.dedup_window_ms)
		rc = store_load_dedup(rt->st, util_now_ms() - rt->cfg.delivery.dedup_window_ms, rt_recover_dedup, rt);
	if (!rc && rt->cfg.delivery.dedup_window_ms)
		rc = store_load_cancelled(rt->st, util_now_ms() - rt->cfg.delivery.dedup_window_ms,
					  rt_recover_cancelled, rt);
	if (!rc)
		rc = store_max_seq(rt->st, &maxseq);
	if (rc) {
		log_error("recovery from the database failed", "error", strerror(-rc));
		return -EIO;
	}
	if (maxseq > rt->next_seq)
		rt->next_seq = maxseq;
	{
		char q[32], c[32], d[32];

		snprintf(q, sizeof(q), "%zu", rt->total_depth);
		snprintf(c, sizeof(c), "%u", HASH_COUNT(rt->convs));
		snprintf(d, sizeof(d), "%zu", dedup_count(rt->dedup));
		log_info("recovered state from the database", "n:queued_messages", q, "n:conversations", c,
			 "n:dedup_entries", d);
	}
	rc = store_start(rt->st, (size_t)rt->cfg.storage.commit_batch_max, (unsigned)rt->cfg.storage.commit_delay_us,
			 on_commit, rt);
	if (rc)
		return rc;
	rc = rt_persist_agents(rt);
	if (rc)
		return rc;
	rc = pthread_create(&rt->maint, NULL, maint_main, rt);
	if (rc)
		return -rc;
	rt->maint_started = 1;
	return 0;
}

void rt_drain(struct rt *rt)
{
	struct rt_agent *a, *tmp;

	pthread_mutex_lock(&rt->lock);
	rt->draining = 1;
	HASH_ITER (hh, rt->agents, a, tmp)
		pthread_cond_broadcast(&a->cond);
	pthread_mutex_unlock(&rt->lock);
}

int rt_is_draining(struct rt *rt)
{
	int d;

	pthread_mutex_lock(&rt->lock);
	d = rt->draining;
	pthread_mutex_unlock(&rt->lock);
	return d;
}

void rt_stop(struct rt *rt)
{
	if (!rt || !rt->maint_started)
		return;
	pthread_mutex_lock(&rt->lock);
	rt->stopping = 1;
	pthread_cond_signal(&rt->maint_cond);
	pthread_mutex_unlock(&rt->lock);
	pthread_join(rt->maint, NULL);
	rt->maint_started = 0;
}

void rt_free(struct rt *rt)
{
	struct rt_agent *a;
	struct rt_conv *c;
	struct rt_lease *l;

	if (!rt)
		return;
	rt_stop(rt);
	while ((l = heap_pop(&rt->lease_heap)))
		free(l);
	while ((a = rt->agents) != NULL) {
		HASH_DEL(rt->agents, a); /* NOLINT(clang-analyzer-unix.Malloc): uthash resets the head */
		rt_agent_free(a);
	}
	while ((c = rt->convs) != NULL) {
		HASH_DEL(rt->convs, c); /* NOLINT(clang-analyzer-unix.Malloc): uthash resets the head */
		rt_conv_free(c);
	}
	rt_tokens_free(rt);
	dedup_free(rt->dedup);
	heap_free(&rt->conv_heap);
	heap_free(&rt->lease_heap);
	heap_free(&rt->deadline_heap);
	while (rt->dying) {
		struct rt_msg *m = rt->dying;

		rt->dying = m->dnext;
		rt_msg_free(m);
	}
	cfg_free(&rt->cfg);
	pthread_mutex_destroy(&rt->lock);
	pthread_cond_destroy(&rt->maint_cond);
	free(rt);
}

/* --- maintenance thread ------------------------------------------------------ */

static void maint_write(struct rt *rt, struct store_op *ops, size_t n)
{
	struct store_ticket t = {0};

	if (!n)
		return;
	t.ops = ops;
	t.nops = n;
	if (store_submit(rt->st, &t) == 0 && store_wait(rt->st, &t) != 0)
		log_warn("maintenance write failed; it will be retried");
}

static void *maint_main(void *arg)
{
	struct rt *rt = arg;
	int64_t last_prune = util_now_ms();

	pthread_setname_np(pthread_self(), "sb-maint");
	pthread_mutex_lock(&rt->lock);
	while (!rt->stopping) {
		struct timespec ts;
		struct store_op *ops = NULL;
		char **ids = NULL;
		size_t nops = 0, nids = 0;
		int64_t now = util_now_ms();
		int prune = now - last_prune > 10000; /* table pruning every 10 s */

		if (prune)
			last_prune = now;
		rt_expire_leases(rt, util_mono_ns());
		rt_expire_deadlines(rt, now);
		dedup_prune(rt->dedup, now - rt->cfg.delivery.dedup_window_ms, rt->ndedup_max);
		rt_conv_expire(rt, now, &ops, &nops, &ids, &nids);
		if (nops) {
			pthread_mutex_unlock(&rt->lock);
			maint_write(rt, ops, nops);
			pthread_mutex_lock(&rt->lock);
		}
		for (size_t i = 0; i < nids; i++)
			free(ids[i]);
		free(ids);
		free(ops);
		if (rt->dying || prune) {
			pthread_mutex_unlock(&rt->lock);
			rt_dead_process(rt, prune);
			pthread_mutex_lock(&rt->lock);
		}
		if (prune && rt->cfg.delivery.dedup_window_ms) {
			struct store_op op = {.type = STORE_DEDUP_PRUNE};

			op.i1 = now - rt->cfg.delivery.dedup_window_ms;
			pthread_mutex_unlock(&rt->lock);
			maint_write(rt, &op, 1);
			pthread_mutex_lock(&rt->lock);
		}
		ts = util_deadline(CLOCK_MONOTONIC, 50);
		if (!rt->stopping)
			pthread_cond_timedwait(&rt->maint_cond, &rt->lock, &ts);
	}
	pthread_mutex_unlock(&rt->lock);
	return NULL;
}
