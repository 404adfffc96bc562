/*
 * Pull delivery: long polls, leases, ack and nack, and lease expiry.  A pull
 * takes messages from the agent's ready heap under a lease; until the lease
 * is settled its messages are invisible to other pulls, and a lease that
 * expires puts them back (at-least-once).  An ack deletes the message
 * durably before the reply.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rt_int.h"
#include "switchboard/util.h"

static void lease_unlink(struct rt_lease *l, struct rt_msg *m)
{
	if (m->lprev)
		m->lprev->lnext = m->lnext;
	else
		l->msgs = m->lnext;
	if (m->lnext)
		m->lnext->lprev = m->lprev;
	m->lprev = m->lnext = NULL;
	m->lease = NULL;
	l->n--;
}

static void lease_release_if_empty(struct rt *rt, struct rt_lease *l)
{
	if (l->n)
		return;
	heap_remove(&rt->lease_heap, l->heap_idx);
	free(l);
}

/* Take up to `max` ready messages of `a` under a new lease. */
enum take_mode { TAKE_PULL, TAKE_ENGINE, TAKE_HANDOFF };

/* 1 while `a` is held for a handoff; a hold that ran out is lifted and
 * counted.  rt->lock held. */
static int held(struct rt *rt, struct rt_agent *a)
{
	if (!a->hold_until_ms)
		return 0;
	if (util_now_ms() < a->hold_until_ms)
		return 1;
	a->hold_until_ms = 0;
	met_inc(rt->met->handoff_timeouts);
	log_warn("handoff hold ran out: delivering what this router has; order may have broken", "agent_id", a->id);
	return 0;
}

int rt_agent_held(struct rt *rt, struct rt_agent *a)
{
	return held(rt, a);
}

static int take(struct rt *rt, struct rt_agent *a, size_t max, enum take_mode mode, struct rt_lease **out)
{
	struct rt_lease *l;
	struct rt_msg *m, *tail = NULL;
	uint64_t now = util_mono_ns();
	int engine = mode != TAKE_PULL;

	*out = NULL;
	if (!heap_peek(&a->ready) || (mode != TAKE_HANDOFF && (a->moving_out || held(rt, a))))
		return 0;
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	util_random_id(l->id);
	l->agent = a;
	l->engine = engine;
	l->expires_ns = engine ? UINT64_MAX : now + (uint64_t)rt->cfg.delivery.lease_timeout_ms * 1000000ull;
	while (l->n < max && (m = heap_pop(&a->ready))) {
		struct rt_lane *ln = m->lane;

		if (ln) {
			ln->head = m->lane_next;
			if (!ln->head)
				ln->tail = NULL;
			m->lane_next = NULL;
			ln->queued--;
			ln->inflight++;
			/* the next message of the conversation may follow in this same lease */
			if (ln->head)
				rt_heap_push(&a->ready, ln->head);
		}
		m->state = RTM_LEASED;
		m->lease = l;
		m->lprev = tail;
		if (tail)
			tail->lnext = m;
		else
			l->msgs = m;
		tail = m;
		l->n++;
		if (mode == TAKE_HANDOFF)
			; /* not a delivery: attempts and delivery metrics unchanged */
		else if (m->attempts++ == 0)
			met_observe(rt->met->deliver_latency, (double)(now - m->committed_ns) / 1e9);
		else
			met_inc(rt->met->redelivered);
		a->leased++;
		rt->total_leased++;
	}
	/* conversations with a message in flight leave the heap until settled */
	for (m = l->msgs; m; m = m->lnext)
		if (m->lane && m->lane->head && m->lane->head->heap_idx != HEAP_NOT_IN)
			heap_remove(&a->ready, m->lane->head->heap_idx);
	rt_heap_push(&rt->lease_heap, l);
	if (mode != TAKE_HANDOFF)
		met_add(rt->met->leased, l->n);
	*out = l;
	return 0;
}

static int write_lease(const struct rt *rt, const struct rt_agent *a, const struct rt_lease *l, struct buf *out)
{
	char exp[32];
	int rc;

	rc = buf_puts(out, "{\"agent\":");
	if (!rc)
		rc = buf_json_str(out, a->id);
	if (!l) {
		if (!rc)
			rc = buf_puts(out, ",\"lease_id\":null,\"messages\":[]}\n");
		return rc;
	}
	util_fmt_rfc3339(util_now_ms() + rt->cfg.delivery.lease_timeout_ms, exp);
	if (!rc)
		rc = buf_printf(out, ",\"lease_id\":\"%s\",\"lease_expires_at\":\"%s\",\"messages\":[", l->id, exp);
	for (const struct rt_msg *m = l->msgs; !rc && m; m = m->lnext) {
		rc = buf_puts(out, m == l->msgs ? "{\"message_id\":" : ",{\"message_id\":");
		if (!rc)
			rc = buf_json_str(out, m->message_id);
		if (!rc)
			rc = buf_puts(out, ",\"attempt\":");
		if (!rc)
			rc = buf_put_u64(out, m->attempts);
		if (!rc)
			rc = buf_puts(out, ",\"message\":");
		if (!rc)
			rc = buf_append(out, m->body, m->body_len);
		if (!rc)
			rc = buf_puts(out, "}");
	}
	if (!rc)
		rc = buf_puts(out, "]}\n");
	return rc;
}

/* Put every message of lease `l` back in its queue, as an expiry does (the
 * attempt counts), and free it.  rt->lock held. */
static void put_back(struct rt *rt, struct rt_lease *l)
{
	struct rt_msg *m;

	heap_remove(&rt->lease_heap, l->heap_idx);
	while ((m = l->msgs)) {
		lease_unlink(l, m);
		rt_requeue(rt, m);
	}
	free(l);
}

/* Wait until `a` has a ready message, the router drains, `deadline`
 * passes or the watched client has gone (then returns 1).  rt->lock held. */
static int wait_ready(struct rt *rt, struct rt_agent *a, int64_t wait_ms, const struct rt_watch *w)
{
	struct timespec deadline = util_deadline(CLOCK_MONOTONIC, wait_ms);
	uint64_t end = util_mono_ns() + (uint64_t)wait_ms * 1000000ull;
	int rc;

	while (!heap_peek(&a->ready) && !rt->draining && wait_ms > 0) {
		uint64_t now = util_mono_ns();
		struct timespec slice = deadline;

		if (w && w->gone(w->arg))
			return 1;
		if (now >= end)
			break;
		/* wake now and then to see whether the client is still there */
		if (w && end - now > RT_WATCH_MS * 1000000ull)
			slice = util_deadline(CLOCK_MONOTONIC, RT_WATCH_MS);
		a->waiters++;
		rc = pthread_cond_timedwait(&a->cond, &rt->lock, &slice);
		a->waiters--;
		if (rc == ETIMEDOUT && !w)
			break;
	}
	return w && w->gone(w->arg);
}

int rt_pull(struct rt *rt, const char *agent, const char *auth_digest, size_t max, int64_t wait_ms,
	    const struct rt_watch *w, char lease_id[33], struct buf *out, struct rt_err *err)
{
	struct rt_agent *a;
	struct rt_lease *l = NULL;
	int rc = 0;

	lease_id[0] = '\0';
	pthread_mutex_lock(&rt->lock);
	a = rt_find_agent(rt, agent);
	if (!a) {
		pthread_mutex_unlock(&rt->lock);
		return rt_err_no_agent(err, agent);
	}
	if (!rt_agent_token_ok(a, auth_digest)) {
		pthread_mutex_unlock(&rt->lock);
		return rt_err_auth(rt, err, agent, auth_digest);
	}
	if (max > (size_t)rt->cfg.delivery.max_pull_batch)
		max = (size_t)rt->cfg.delivery.max_pull_batch;
	/* a client that has gone gets no lease: nobody would read its answer */
	if (!wait_ready(rt, a, wait_ms, w))
		rc = take(rt, a, max, TAKE_PULL, &l);
	if (!rc)
		rc = write_lease(rt, a, l, out);
	if (rc && l)
		put_back(rt, l); /* no answer to carry the lease */
	else if (l)
		memcpy(lease_id, l->id, sizeof(l->id));
	/* another poller may be waiting and more messages may be ready */
	if (heap_peek(&a->ready))
		pthread_cond_signal(&a->cond);
	pthread_mutex_unlock(&rt->lock);
	return rc;
}

/* Finish a lane's in-flight message: unblock the conversation. */
static void lane_settled(struct rt_agent *a, struct rt_lane *ln);

/* Gone from this router (acknowledged, or handed off): fill a delete op,
 * update the counters, free the message. */
static void drop_one(struct rt *rt, struct rt_agent *a, struct rt_msg *m, struct store_op *op)
{
	op->type = STORE_MSG_DELETE;
	op->seq = m->seq;
	a->leased--;
	rt->total_leased--;
	a->depth--;
	rt->total_depth--;
	HASH_DEL(a->by_id, m); /* NOLINT(clang-analyzer-core.NullDereference): m is in the table */
	if (m->dl_idx != HEAP_NOT_IN)
		heap_remove(&rt->deadline_heap, m->dl_idx);
	if (m->lane)
		lane_settled(a, m->lane);
	rt_msg_free(m);
}

/* Acknowledged by its consumer. */
static void ack_one(struct rt *rt, struct rt_agent *a, struct rt_msg *m, struct store_op *op)
{
	drop_one(rt, a, m, op);
	met_inc(rt->met->delivered);
}

static void lane_settled(struct rt_agent *a, struct rt_lane *ln)
{
	ln->inflight--;
	if (ln->inflight == 0) {
		if (ln->head && ln->head->heap_idx == HEAP_NOT_IN) {
			rt_heap_push(&a->ready, ln->head);
			pthread_cond_signal(&a->cond);
		}
		rt_lane_maybe_free(a, ln);
	}
}

int rt_settle(struct rt *rt, const char *agent, const char *auth_digest, const json_t *ids, int ack, struct buf *out,
	      struct rt_err *err)
{
	struct rt_agent *a;
	struct store_op *ops = NULL;
	struct store_ticket t = {0};
	json_t *missing = json_array();
	size_t n = json_array_size(ids), nops = 0, settled = 0, i;
	json_t *v;
	char *miss = NULL;
	int rc = 0;

	if (!missing)
		return -ENOMEM;
	ops = calloc(n + 1, sizeof(*ops));
	if (!ops) {
		json_decref(missing);
		return -ENOMEM;
	}
	pthread_mutex_lock(&rt->lock);
	a = rt_find_agent(rt, agent);
	if (!a || !rt_agent_token_ok(a, auth_digest)) {
		pthread_mutex_unlock(&rt->lock);
		rc = a ? rt_err_auth(rt, err, agent, auth_digest) : rt_err_no_agent(err, agent);
		goto out;
	}
	json_array_foreach (ids, i, v) {
		struct rt_msg *m = NULL;
		struct rt_lease *l;

		HASH_FIND_STR(a->by_id, json_string_value(v), m);
		if (!m || m->state != RTM_LEASED || m->lease->engine) {
			json_array_append(missing, v);
			continue;
		}
		l = m->lease;
		lease_unlink(l, m);
		lease_release_if_empty(rt, l);
		settled++;
		if (!ack) {
			rt_requeue(rt, m);
			met_inc(rt->met->nacked);
			continue;
		}
		ack_one(rt, a, m, &ops[nops++]);
	}
	if (a->state == CFG_AGENT_DRAINING && a->depth == 0) {
		a->state = CFG_AGENT_STOPPED;
		log_info("agent drained and stopped", "agent_id", a->id);
	}
	if (nops && rt->st) {
		t.ops = ops;
		t.nops = nops;
		rc = store_submit(rt->st, &t);
	} else {
		nops = 0; /* memory-only core: nothing to write */
	}
	pthread_mutex_unlock(&rt->lock);
	if (nops && !rc)
		rc = store_wait(rt->st, &t);
	if (rc) {
		/* the messages are gone from memory; the store still has them, so
		 * they come back after a restart: at-least-once holds */
		err->status = 503;
		err->code = "StorageUnavailable";
		snprintf(err->message, sizeof(err->message), "%s", "the acknowledgement could not be stored");
		rc = -EINVAL;
		goto out;
	}
	miss = json_dumps(missing, JSON_COMPACT);
	if (!miss) {
		rc = -ENOMEM;
		goto out;
	}
	rc = buf_printf(out, "{\"%s\":%zu,\"not_leased\":%s}\n", ack ? "acked" : "nacked", settled, miss);
out:
	free(miss);
	free(ops);
	json_decref(missing);
	return rc;
}

void rt_expire_leases(struct rt *rt, uint64_t now_ns)
{
	struct rt_lease *l;

	while ((l = heap_peek(&rt->lease_heap)) && l->expires_ns <= now_ns) {
		put_back(rt, l);
		met_inc(rt->met->lease_expired);
	}
}

size_t rt_lease_release(struct rt *rt, const char *lease_id)
{
	size_t n = 0;

	pthread_mutex_lock(&rt->lock);
	for (size_t i = 0; i < rt->lease_heap.n; i++) {
		struct rt_lease *l = rt->lease_heap.v[i];

		if (l->engine || strcmp(l->id, lease_id) != 0)
			continue;
		n = l->n;
		put_back(rt, l);
		met_inc(rt->met->lease_released);
		break;
	}
	pthread_mutex_unlock(&rt->lock);
	return n;
}

/* --- the push engine's side ------------------------------------------------- */

size_t rt_engine_agents(struct rt *rt, struct rt_engine_agent *out, size_t max, struct cfg_delivery *d)
{
	struct rt_agent *a, *tmp;
	size_t n = 0;

	pthread_mutex_lock(&rt->lock);
	*d = rt->cfg.delivery;
	if (!rt->npush) {
		pthread_mutex_unlock(&rt->lock);
		return 0;
	}
	HASH_ITER (hh, rt->agents, a, tmp) {
		const struct cfg_agent *ca;

		if (n == max)
			break;
		if (a->mode != CFG_MODE_PUSH || !heap_peek(&a->ready) || a->moving_out || held(rt, a) ||
		    (a->state != CFG_AGENT_RUNNING && a->state != CFG_AGENT_DRAINING))
			continue;
		ca = cfg_find_agent(&rt->cfg, a->id);
		if (!ca || !ca->endpoint)
			continue; /* removed from the config: its endpoint is gone with it */
		snprintf(out[n].id, sizeof(out[n].id), "%s", a->id);
		snprintf(out[n].endpoint, sizeof(out[n].endpoint), "%s", ca->endpoint);
		out[n].timeout_ms = ca->timeout_ms;
		out[n].max_in_flight = ca->max_in_flight;
		out[n].protocol = ca->protocol;
		out[n].ready = a->depth - a->leased - a->reserved; /* committed and waiting */
		out[n].oldest_ns = ((const struct rt_msg *)heap_peek(&a->ready))->committed_ns;
		n++;
	}
	pthread_mutex_unlock(&rt->lock);
	return n;
}

struct rt_lease *rt_engine_take(struct rt *rt, const char *agent, size_t max)
{
	struct rt_agent *a;
	struct rt_lease *l = NULL;

	pthread_mutex_lock(&rt->lock);
	a = rt_find_agent(rt, agent);
	if (a && take(rt, a, max, TAKE_ENGINE, &l))
		l = NULL;
	pthread_mutex_unlock(&rt->lock);
	return l;
}

int rt_engine_body(struct rt *rt, const struct rt_lease *l, int batch, struct buf *out)
{
	int rc = 0;

	pthread_mutex_lock(&rt->lock);
	if (batch)
		rc = buf_puts(out, "{\"messages\":[");
	for (const struct rt_msg *m = l->msgs; !rc && m; m = m->lnext) {
		if (m != l->msgs)
			rc = buf_puts(out, ",");
		if (!rc)
			rc = buf_append(out, m->body, m->body_len);
	}
	if (!rc && batch)
		rc = buf_puts(out, "]}");
	pthread_mutex_unlock(&rt->lock);
	return rc;
}

/* Every message of lease `l` leaves this router: deleted durably, counted
 * as delivered (`delivered` 1: the push engine's ack) or not (a handoff).
 * Frees the lease.  Returns 0 or the store's error. */
static int settle_lease(struct rt *rt, struct rt_lease *l, int delivered)
{
	struct store_op *ops = calloc(l->n + 1, sizeof(*ops));
	struct store_ticket t = {0};
	struct rt_agent *a = l->agent;
	size_t nops = 0;
	int rc = 0;

	if (!ops)
		return -ENOMEM;
	pthread_mutex_lock(&rt->lock);
	while (l->msgs) {
		struct rt_msg *m = l->msgs;

		lease_unlink(l, m);
		if (delivered)
			ack_one(rt, a, m, &ops[nops++]);
		else
			drop_one(rt, a, m, &ops[nops++]);
	}
	if (a->state == CFG_AGENT_DRAINING && a->depth == 0)
		a->state = CFG_AGENT_STOPPED;
	lease_release_if_empty(rt, l);
	if (nops && rt->st) {
		t.ops = ops;
		t.nops = nops;
		rc = store_submit(rt->st, &t);
	} else {
		nops = 0;
	}
	pthread_mutex_unlock(&rt->lock);
	if (nops && !rc)
		rc = store_wait(rt->st, &t);
	free(ops);
	return rc;
}

int rt_engine_ack(struct rt *rt, struct rt_lease *l)
{
	return settle_lease(rt, l, 1);
}

int rt_engine_retry(struct rt *rt, struct rt_lease *l, int temporary_death, int *death)
{
	int64_t now = util_now_ms();
	int ok = 1;

	pthread_mutex_lock(&rt->lock);
	for (struct rt_msg *m = l->msgs; m; m = m->lnext) {
		if (!rt_msg_attempts_left(rt, m)) {
			ok = 0;
			*death = temporary_death;
		} else if (m->deadline_ms && m->deadline_ms <= now) {
			ok = 0;
			*death = RT_DEATH_TIMEOUT;
		}
	}
	if (ok) {
		for (struct rt_msg *m = l->msgs; m; m = m->lnext)
			m->attempts++;
		met_inc(rt->met->retries);
		met_add(rt->met->redelivered, l->n);
	}
	pthread_mutex_unlock(&rt->lock);
	return ok;
}

void rt_engine_fail(struct rt *rt, struct rt_lease *l, int death)
{
	rt_engine_fail_why(rt, l, death, NULL);
}

void rt_engine_fail_why(struct rt *rt, struct rt_lease *l, int death, const char *detail)
{
	char cut[RT_DETAIL_MAX + 1];

	rt_detail_cut(detail, cut); /* before the lock: it is the same for every message */
	pthread_mutex_lock(&rt->lock);
	while (l->msgs) {
		struct rt_msg *m = l->msgs;
		struct rt_lane *ln = m->lane;

		lease_unlink(l, m);
		m->agent->leased--;
		rt->total_leased--;
		if (ln) {
			ln->inflight--;
			if (ln->inflight == 0 && ln->head && ln->head->heap_idx == HEAP_NOT_IN)
				rt_heap_push(&m->agent->ready, ln->head);
		}
		rt_doom_why(rt, m, death, cut);
	}
	lease_release_if_empty(rt, l);
	pthread_mutex_unlock(&rt->lock);
}

/* --- handoff: a moving agent's messages leave for their new owner -------- */

void rt_hold(struct rt *rt, const char *agent, int64_t until_ms)
{
	struct rt_agent *a;

	pthread_mutex_lock(&rt->lock);
	a = rt_find_agent(rt, agent);
	if (a) {
		a->hold_until_ms = until_ms;
		if (!until_ms && heap_peek(&a->ready)) {
			pthread_cond_broadcast(&a->cond); /* long polls waiting on the hold */
			if (a->mode == CFG_MODE_PUSH && rt->push_wake)
				rt->push_wake(rt->push_ctx);
		}
	}
	pthread_mutex_unlock(&rt->lock);
}

void rt_moving_out(struct rt *rt, const char *agent, int out)
{
	struct rt_agent *a;
	struct rt_lease *l;

	pthread_mutex_lock(&rt->lock);
	a = rt_find_agent(rt, agent);
	if (a && out && !a->moving_out) {
		/* its consumers' acks now reach the new owner: the pull leases go
		 * back to the queue, to be handed off (at-least-once) */
		struct rt_lease **mine = calloc(rt->lease_heap.n + 1, sizeof(struct rt_lease *));
		size_t k = 0;

		for (size_t i = 0; mine && i < rt->lease_heap.n; i++) {
			l = rt->lease_heap.v[i];
			if (l->agent == a && !l->engine)
				mine[k++] = l;
		}
		for (size_t i = 0; i < k; i++) {
			l = mine[i];
			while (l->msgs) {
				struct rt_msg *m = l->msgs;

				lease_unlink(l, m);
				rt_requeue(rt, m);
			}
			lease_release_if_empty(rt, l);
		}
		free(mine); /* on ENOMEM the leases just run out, as they would anyway */
	}
	if (a)
		a->moving_out = out;
	pthread_mutex_unlock(&rt->lock);
}

struct rt_lease *rt_handoff_take(struct rt *rt, const char *agent, size_t max, size_t *left)
{
	struct rt_agent *a;
	struct rt_lease *l = NULL;

	*left = 0;
	pthread_mutex_lock(&rt->lock);
	a = rt_find_agent(rt, agent);
	if (a && take(rt, a, max, TAKE_HANDOFF, &l))
		l = NULL;
	if (a)
		*left = a->depth - (l ? l->n : 0);
	pthread_mutex_unlock(&rt->lock);
	return l;
}

int rt_handoff_body(struct rt *rt, const struct rt_lease *l, struct buf *body, struct buf *attempts)
{
	int rc = 0;

	pthread_mutex_lock(&rt->lock);
	for (const struct rt_msg *m = l->msgs; !rc && m; m = m->lnext) {
		rc = buf_append(body, m->body, m->body_len);
		rc = rc ?: buf_puts(body, "\n");
		rc = rc ?: buf_printf(attempts, "%s%u", m == l->msgs ? "" : ",", m->attempts);
	}
	pthread_mutex_unlock(&rt->lock);
	return rc;
}

int rt_handoff_commit(struct rt *rt, struct rt_lease *l)
{
	size_t n = l->n;
	int rc = settle_lease(rt, l, 0);

	if (rc == -ENOMEM)
		return rc;
	met_add(rt->met->handed_off, n);
	return rc ? -EIO : 0;
}

void rt_handoff_release(struct rt *rt, struct rt_lease *l)
{
	pthread_mutex_lock(&rt->lock);
	while (l->msgs) {
		struct rt_msg *m = l->msgs;

		lease_unlink(l, m);
		rt_requeue(rt, m);
	}
	lease_release_if_empty(rt, l);
	pthread_mutex_unlock(&rt->lock);
}

size_t rt_depth(struct rt *rt, const char *agent)
{
	struct rt_agent *a;
	size_t n = 0;

	pthread_mutex_lock(&rt->lock);
	a = rt_find_agent(rt, agent);
	if (a)
		n = a->depth;
	pthread_mutex_unlock(&rt->lock);
	return n;
}
