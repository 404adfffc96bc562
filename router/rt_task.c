/*
 * Tasks: a message's life as A2A sees it (docs/a2a.md), and the
 * deduplication window that remembers it once the message is gone.
 *
 * The window (dedup.c) holds every message_id accepted within
 * delivery.dedupWindowMs, with its receiver, in age order for pruning.  A
 * resubmission of an id in the window is a duplicate and stores nothing,
 * cancelled or not.  It is rebuilt from the store's accepted_log and
 * cancelled tables at start.
 *
 * A task's state is read from the routing state first (queued, leased,
 * dying), then from the dead-letter table, then from the window (settled or
 * cancelled).  rt_task_cancel takes a queued message out of its queue,
 * deletes it and records the cancellation in one commit, and only then drops
 * it; a failed commit puts it back where it was.  Store reads and commits
 * run with rt->lock released; everything under it is short.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt_int.h"
#include "switchboard/util.h"

/* --- deduplication window (callers hold rt->lock) --------------------------- */

int rt_recover_dedup(void *ctx, const char *message_id, const char *receiver, uint64_t seq, int64_t accepted_ms)
{
	struct rt *rt = ctx;
	struct dedup_key k;
	uint64_t d;
	int rc = 0;

	if (!message_id || !receiver)
		return 0;
	dedup_key(rt->dedup, message_id, strlen(message_id), &k);
	if (!dedup_find(rt->dedup, &k))
		rc = dedup_add(rt->dedup, &k, receiver, NULL, seq, accepted_ms, DEDUP_COMMITTED, &d);
	(void)rc; /* out of memory: this id is not deduplicated, and recovery goes on */
	return 0;
}

/* Remember message `k` of `receiver` as cancelled at `at_ms`, for the
 * window from then on: its entry (created when it was pruned already,
 * unless the window is 0) moves to the newest end.  An entry of the same id
 * for another receiver is left alone.  Without memory the store's row still
 * brings it back at restart. */
static void remember_cancelled(struct rt *rt, const struct dedup_key *k, const char *receiver, int64_t at_ms)
{
	const unsigned flags = DEDUP_COMMITTED | DEDUP_CANCELLED;
	uint64_t d = dedup_find(rt->dedup, k);
	int rc;

	if (d ? !dedup_receiver_is(rt->dedup, d, receiver) : rt->cfg.delivery.dedup_window_ms == 0)
		return; /* another receiver's; or a window of 0, which remembers nothing */
	rc = d ? dedup_renew(rt->dedup, d, at_ms, flags, &d)
	       : dedup_add(rt->dedup, k, receiver, NULL, 0, at_ms, flags, &d);
	(void)rc;
}

int rt_recover_cancelled(void *ctx, const char *message_id, const char *receiver, int64_t cancelled_ms)
{
	struct rt *rt = ctx;
	struct dedup_key k;
	uint64_t d;

	if (!message_id || !receiver)
		return 0;
	dedup_key(rt->dedup, message_id, strlen(message_id), &k);
	d = dedup_find(rt->dedup, &k);
	if (d && !(dedup_flags(rt->dedup, d) & DEDUP_CANCELLED) && dedup_since_ms(rt->dedup, d) > cancelled_ms)
		return 0; /* accepted again after it was cancelled (its entry had been pruned): that one counts */
	remember_cancelled(rt, &k, receiver, cancelled_ms);
	return 0;
}

/* --- task state ----------------------------------------------------------- */

_Static_assert(sizeof(((struct rt_task *)0)->detail) > RT_DETAIL_MAX, "a task holds a whole detail");

/* What the routing state says of a message. */
enum seen {
	SEEN_NONE,	/* nothing: not held, not in the window */
	SEEN_HELD,	/* queued, leased or dying: the task is filled */
	SEEN_SETTLED,	/* gone, in the window: acked, delivered (or dead-lettered) */
	SEEN_CANCELLED, /* gone, in the window, cancelled */
};

static void task_from_msg(struct rt_task *out, const struct rt_msg *m, int state, int64_t updated_ms)
{
	out->state = state;
	snprintf(out->conversation_id, sizeof(out->conversation_id), "%s", m->conv_id ? m->conv_id : "");
	snprintf(out->sender, sizeof(out->sender), "%s", m->sender);
	out->reason[0] = '\0';
	out->detail[0] = '\0';
	out->updated_ms = updated_ms;
}

/* A message dead-lettered but not written yet: on rt->dying, or taken off
 * it by rt_dead_process and being written.  Both lists are short (what died
 * since the last maintenance pass).  rt->lock held. */
static const struct rt_msg *find_dying(const struct rt *rt, const char *receiver, const char *id)
{
	const struct rt_msg *lists[2] = {rt->dying, rt->dead_writing};

	for (int i = 0; i < 2; i++)
		for (const struct rt_msg *m = lists[i]; m; m = m->dnext)
			if (strcmp(m->message_id, id) == 0 && strcmp(m->agent->id, receiver) == 0)
				return m;
	return NULL;
}

/* The message `id` of `receiver` that this router holds, or NULL.
 * rt->lock held. */
static struct rt_msg *held_msg(struct rt *rt, const char *receiver, const char *id)
{
	struct rt_agent *a = rt_find_agent(rt, receiver);
	struct rt_msg *m = NULL;

	if (a)
		HASH_FIND_STR(a->by_id, id, m);
	return m;
}

/*
 * Classify message `id` of `receiver` by the routing state; SEEN_HELD fills
 * `out`, SEEN_SETTLED and SEEN_CANCELLED set *since_ms.  A doomed message
 * not written yet is FAILED already (it is detached for good; its row only
 * records it), died "now".  rt->lock held.
 */
static enum seen seen_locked(struct rt *rt, const char *receiver, const char *id, struct rt_task *out,
			     int64_t *since_ms)
{
	const struct rt_msg *m = held_msg(rt, receiver, id);
	struct dedup_key k;
	uint64_t d;
	unsigned flags;

	if (m) {
		task_from_msg(out, m, m->state == RTM_LEASED ? RT_TASK_WORKING : RT_TASK_SUBMITTED, m->accepted_ms);
		return SEEN_HELD;
	}
	m = find_dying(rt, receiver, id);
	if (m) {
		task_from_msg(out, m, RT_TASK_FAILED, util_now_ms());
		snprintf(out->reason, sizeof(out->reason), "%s", rt_death_name(m->death));
		rt_detail_cut(m->detail, out->detail);
		return SEEN_HELD;
	}
	dedup_key(rt->dedup, id, strlen(id), &k);
	d = dedup_find(rt->dedup, &k);
	flags = d ? dedup_flags(rt->dedup, d) : 0;
	if (!(flags & DEDUP_COMMITTED) || !dedup_receiver_is(rt->dedup, d, receiver))
		return SEEN_NONE;
	*since_ms = dedup_since_ms(rt->dedup, d);
	return flags & DEDUP_CANCELLED ? SEEN_CANCELLED : SEEN_SETTLED;
}

struct dl_found {
	struct rt_task *t;
	int found;
};

static int dl_found_row(void *ctx, const struct store_dl_row *r)
{
	struct dl_found *f = ctx;
	struct rt_task *t = f->t;

	f->found = 1;
	t->state = RT_TASK_FAILED;
	snprintf(t->conversation_id, sizeof(t->conversation_id), "%s", r->conversation ? r->conversation : "");
	snprintf(t->sender, sizeof(t->sender), "%s", r->sender ? r->sender : "");
	snprintf(t->reason, sizeof(t->reason), "%s", r->reason ? r->reason : "");
	rt_detail_cut(r->detail, t->detail); /* the row's was cut so already, unless written by hand */
	t->updated_ms = r->died_ms;
	return 0;
}

/*
 * The task of a message that was not held at a first look (under the lock):
 * its dead letter, if any, is committed by then (rt_dead_process keeps it
 * visible until the write returns).  Read the dead letter without the lock,
 * then look again: a message held now was replayed (or sent again) in
 * between, and what is in memory wins.  A dead letter counts unless the
 * window's entry is newer than it (a later life of the same id, settled or
 * cancelled).
 */
static int task_lookup(struct rt *rt, const char *receiver, const char *id, struct rt_task *out)
{
	struct rt_task dl = {0};
	struct dl_found f = {&dl, 0};
	int64_t since = 0;
	enum seen s;
	int rc = 0;

	if (rt->st)
		rc = store_dl_find(rt->st, receiver, id, dl_found_row, &f);
	if (rc)
		return rc < 0 ? rc : -EIO;
	pthread_mutex_lock(&rt->lock);
	s = seen_locked(rt, receiver, id, out, &since);
	pthread_mutex_unlock(&rt->lock);
	if (s == SEEN_HELD)
		return 0;
	if (f.found && (s == SEEN_NONE || dl.updated_ms >= since)) {
		*out = dl;
		return 0;
	}
	memset(out, 0, sizeof(*out));
	if (s == SEEN_CANCELLED) {
		out->state = RT_TASK_CANCELED;
		out->updated_ms = since;
	} else {
		out->state = s == SEEN_SETTLED ? RT_TASK_COMPLETED : RT_TASK_UNKNOWN;
	}
	return 0;
}

int rt_task_get(struct rt *rt, const char *receiver, const char *message_id, struct rt_task *out)
{
	int64_t since = 0;
	enum seen s;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&rt->lock);
	s = seen_locked(rt, receiver, message_id, out, &since);
	pthread_mutex_unlock(&rt->lock);
	if (s == SEEN_HELD)
		return 0;
	return task_lookup(rt, receiver, message_id, out);
}

/* --- cancellation ------------------------------------------------------------ */

/* The hold rt_task_cancel put on `l` ends: when nothing else of the
 * conversation is in flight, its head is deliverable again. */
static void lane_resume(struct rt *rt, struct rt_agent *a, struct rt_lane *l)
{
	l->inflight--;
	if (l->inflight || !l->head || l->head->heap_idx != HEAP_NOT_IN)
		return;
	rt_heap_push(&a->ready, l->head);
	pthread_cond_signal(&a->cond);
	if (a->mode == CFG_MODE_PUSH && rt->push_wake)
		rt->push_wake(rt->push_ctx);
}

/*
 * Start cancelling held message `m`: check the caller, fill `out`, and when
 * it is queued take it out of its queue and its deadline heap, still held
 * and counted (so a resubmission is a duplicate and a second cancel
 * -EBUSY).  Its conversation waits as behind a message in flight, so that
 * a failed commit can put it back in its place.  rt->lock held.
 */
static int cancel_begin(struct rt *rt, struct rt_msg *m, const char *auth_digest, struct rt_task *out)
{
	struct rt_lane *l = m->lane;

	if (auth_digest && !rt_agent_token_ok(rt_find_agent(rt, m->sender), auth_digest))
		return -EPERM;
	task_from_msg(out, m, m->state == RTM_LEASED ? RT_TASK_WORKING : RT_TASK_SUBMITTED, m->accepted_ms);
	if (m->state != RTM_QUEUED || m->cancelling)
		return -EBUSY; /* leased, in flight, being committed or being cancelled */
	m->cancelling = 1;
	if (l) {
		if (l->head && l->head->heap_idx != HEAP_NOT_IN)
			heap_remove(&m->agent->ready, l->head->heap_idx);
		l->inflight++;
	}
	rt_unqueue(m);
	if (m->dl_idx != HEAP_NOT_IN)
		heap_remove(&rt->deadline_heap, m->dl_idx);
	return 0;
}

/* The cancellation is committed: drop `m` for good.  rt->lock held. */
static void cancel_done(struct rt *rt, struct rt_msg *m, int64_t now_ms)
{
	struct rt_agent *a = m->agent;
	struct dedup_key k;

	if (m->lane)
		lane_resume(rt, a, m->lane);
	rt_detach(rt, m);
	dedup_key(rt->dedup, m->message_id, strlen(m->message_id), &k);
	remember_cancelled(rt, &k, a->id, now_ms);
	met_inc(rt->met->cancelled);
	rt_msg_free(m);
}

/* The commit failed: `m` goes back into its queue, in sequence order (its
 * lane held everything behind it meanwhile).  rt->lock held. */
static void cancel_undo(struct rt *rt, struct rt_msg *m)
{
	m->cancelling = 0;
	rt_make_ready(rt, m);
	if (m->lane)
		lane_resume(rt, m->agent, m->lane);
	if (m->deadline_ms)
		rt_heap_push(&rt->deadline_heap, m);
}

/* Delete `m` (taken by cancel_begin) and record its cancellation in one
 * commit, then drop it; on failure put it back.  Called without the lock. */
static int cancel_commit(struct rt *rt, struct rt_msg *m, int remember, struct rt_task *out)
{
	struct store_op op = {0};
	struct store_ticket t = {0};
	int64_t now = util_now_ms();
	int rc = 0;

	/* m stays allocated until cancel_done: only a queued message that is
	 * not cancelling is ever detached by anyone else */
	op.type = remember ? STORE_MSG_CANCEL : STORE_MSG_DELETE;
	op.seq = m->seq;
	op.id = m->message_id;
	op.receiver = m->agent->id;
	op.i1 = now;
	if (rt->st) {
		t.ops = &op;
		t.nops = 1;
		rc = store_submit(rt->st, &t);
		if (!rc)
			rc = store_wait(rt->st, &t);
	}
	if (rc)
		log_warn("a cancellation could not be stored; the message stays queued", "message_id", m->message_id,
			 "agent_id", m->agent->id);
	pthread_mutex_lock(&rt->lock);
	if (rc)
		cancel_undo(rt, m);
	else
		cancel_done(rt, m, now);
	pthread_mutex_unlock(&rt->lock);
	if (rc)
		return -EIO; /* `out` still says SUBMITTED: it is */
	out->state = RT_TASK_CANCELED;
	out->updated_ms = now;
	return 0;
}

int rt_task_cancel(struct rt *rt, const char *receiver, const char *message_id, const char *auth_digest,
		   struct rt_task *out)
{
	struct rt_msg *m;
	int rc, remember = 0;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&rt->lock);
	m = held_msg(rt, receiver, message_id);
	rc = m ? cancel_begin(rt, m, auth_digest, out) : -ENOENT;
	remember = rt->cfg.delivery.dedup_window_ms > 0; /* a window of 0 remembers nothing */
	pthread_mutex_unlock(&rt->lock);
	if (!rc)
		return cancel_commit(rt, m, remember, out);
	if (rc != -ENOENT)
		return rc;
	/* not held: what rt_task_get says, which any caller may ask */
	rc = rt_task_get(rt, receiver, message_id, out);
	if (rc)
		return rc;
	switch (out->state) {
	case RT_TASK_UNKNOWN:
		return -ENOENT;
	case RT_TASK_SUBMITTED:
	case RT_TASK_WORKING:
		return -EBUSY; /* replayed from the dead letters meanwhile: ask again */
	default:
		return -EALREADY;
	}
}

/* --- callers ----------------------------------------------------------------- */

int rt_agent_for_token(struct rt *rt, const char *digest, char out[MSG_AGENT_ID_MAX + 1])
{
	struct rt_agent *a, *tmp, *found = NULL;

	if (!digest)
		return -ENOENT;
	pthread_mutex_lock(&rt->lock);
	HASH_ITER (hh, rt->agents, a, tmp) {
		/* every agent is compared (in constant time), so the time taken
		 * does not tell where the match is; an empty token never matches */
		if (a->configured && rt_agent_token_ok(a, digest) && (!found || strcmp(a->id, found->id) < 0))
			found = a;
	}
	if (found)
		snprintf(out, MSG_AGENT_ID_MAX + 1, "%s", found->id);
	pthread_mutex_unlock(&rt->lock);
	return found ? 0 : -ENOENT;
}
