/*
 * Routing core: message records, lanes and queues, the core's lifecycle,
 * recovery and the maintenance thread (submission and commit visibility
 * are rt_route.c, the registry rt_agent.c, conversations rt_conv.c, the
 * deduplication window dedup.c and its part in tasks rt_task.c).  See rt.h
 * for the locking rule: one mutex, never held across I/O or a wait.
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

	return x->heap_ms < y->heap_ms ? -1 : x->heap_ms > y->heap_ms;
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

struct rt_msg *rt_msg_alloc(const char *id, size_t il, const char *conv, size_t cl, const char *sender, size_t sl)
{
	struct rt_msg *m = malloc(sizeof(*m) + il + 1 + (cl ? cl + 1 : 0) + sl + 1);
	char *p;

	if (!m)
		return NULL;
	*m = (struct rt_msg){.heap_idx = HEAP_NOT_IN, .dl_idx = HEAP_NOT_IN, .max_retries = -1};
	p = (char *)(m + 1);
	m->message_id = p;
	memcpy(p, id, il);
	p[il] = '\0';
	p += il + 1;
	if (cl) {
		m->conv_id = p;
		memcpy(p, conv, cl);
		p[cl] = '\0';
		p += cl + 1;
	}
	m->sender = p;
	memcpy(p, sender, sl);
	p[sl] = '\0';
	return m;
}

struct rt_msg *rt_msg_new(const char *message_id, const char *conv_id, const char *sender)
{
	size_t cl = conv_id ? strlen(conv_id) : 0;
	struct rt_msg *m;

	sender = sender ? sender : "";
	m = rt_msg_alloc(message_id, strlen(message_id), conv_id, cl, sender, strlen(sender));
	if (m && cl)
		HASH_VALUE(conv_id, cl, m->conv_hash);
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

struct rt_lane *rt_lane_get_h(struct rt_agent *a, const char *conv_id, size_t len, unsigned hv)
{
	struct rt_lane *l;

	HASH_FIND_BYHASHVALUE(hh, a->lanes, conv_id, len, hv, l);
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
	HASH_ADD_KEYPTR_BYHASHVALUE(hh, a->lanes, l->conv_id, len, hv, l);
	return l;
}

static struct rt_lane *lane_get(struct rt_agent *a, const char *conv_id)
{
	size_t len = strlen(conv_id);
	unsigned hv;

	HASH_VALUE(conv_id, len, hv);
	return rt_lane_get_h(a, conv_id, len, hv);
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
	if (a->waiters) /* a long poll waits (under this lock, so none is missed) */
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
	atomic_init(&rt->keyed, cfg->delivery.dedup_window_ms > 0);
	rc = dedup_new(&rt->dedup);
	if (rc) {
		rt_free(rt);
		return rc;
	}
	rt->started_ms = util_now_ms();
	for (size_t i = 0; i < cfg->nagents; i++) {
		struct rt_agent *a = rt_agent_new(cfg->agents[i].id);

		if (!a || rt_agent_apply_cfg(rt, a, &cfg->agents[i]) || rt_agent_register(rt, a)) {
			if (a)
				rt_agent_free(a);
			rt_free(rt);
			return -ENOMEM;
		}
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
		if (!a->caps_json || rt_agent_register(rt, a)) {
			rt_agent_free(a);
			return -ENOMEM;
		}
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
			 rt_on_commit, rt);
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
	free(rt->agent_slots);
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
