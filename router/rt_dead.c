/*
 * Dead letters.  A message dies when its delivery attempts run out (nack or
 * lease expiry beyond delivery.maxRetries or the message's max_retries) or
 * its deadline passes (delivery.timeout_ms, else performance.messageTimeoutMs).
 * Under the routing lock it is detached from its agent and queued on
 * rt->dying; the maintenance thread then moves it to the dead_letters table
 * in one transaction, counts it, and sends its sender a FIPA failure.
 * A death has a reason (rt_death_name) and may have a detail, why in words
 * (rt_engine_fail_why: e.g. the A2A error an agent answered), kept on the
 * doomed message and written beside the reason: in its row, the listing,
 * the failure notice's content and its task.
 * Dead letters can be listed and replayed (re-queued with a new sequence;
 * a replayed message has no detail until it dies again, with that death's).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt_int.h"
#include "switchboard/util.h"

#define ROUTER_AGENT_ID "switchboard-router"

/* Unlink a queued message from its lane, keeping the lane's head rule. */
static void lane_unlink(struct rt_agent *a, struct rt_lane *l, struct rt_msg *m)
{
	struct rt_msg **pp = &l->head, *prev = NULL;

	while (*pp && *pp != m) {
		prev = *pp;
		pp = &(*pp)->lane_next;
	}
	if (!*pp)
		return;
	*pp = m->lane_next;
	if (l->tail == m)
		l->tail = prev;
	m->lane_next = NULL;
	l->queued--;
	if (l->inflight == 0 && l->head && l->head->heap_idx == HEAP_NOT_IN)
		rt_heap_push(&a->ready, l->head);
}

void rt_unqueue(struct rt_msg *m)
{
	struct rt_agent *a = m->agent;

	if (m->heap_idx != HEAP_NOT_IN)
		heap_remove(&a->ready, m->heap_idx);
	if (m->lane)
		lane_unlink(a, m->lane, m);
}

void rt_detach(struct rt *rt, struct rt_msg *m)
{
	struct rt_agent *a = m->agent;

	if (m->lane)
		rt_lane_maybe_free(a, m->lane);
	m->lane = NULL;
	if (m->dl_idx != HEAP_NOT_IN)
		heap_remove(&rt->deadline_heap, m->dl_idx);
	HASH_DEL(a->by_id, m);
	a->depth--;
	if (m->state == RTM_RESERVED)
		a->reserved--;
	rt->total_depth--;
	if (a->state == CFG_AGENT_DRAINING && a->depth == 0)
		a->state = CFG_AGENT_STOPPED;
}

void rt_doom(struct rt *rt, struct rt_msg *m, int death)
{
	rt_doom_why(rt, m, death, NULL);
}

void rt_doom_why(struct rt *rt, struct rt_msg *m, int death, const char *detail)
{
	if (m->state == RTM_QUEUED)
		rt_unqueue(m);
	rt_detach(rt, m);
	m->death = death;
	free(m->detail);
	m->detail = detail && *detail ? strdup(detail) : NULL; /* out of memory: it dies without one */
	m->dnext = NULL;
	*rt->dying_tail = m;
	rt->dying_tail = &m->dnext;
	pthread_cond_signal(&rt->maint_cond);
}

void rt_detail_cut(const char *in, char out[RT_DETAIL_MAX + 1])
{
	static const char replacement[] = "\xef\xbf\xbd"; /* U+FFFD */
	const unsigned char *p = (const unsigned char *)(in ? in : "");
	size_t avail = strlen((const char *)p), o = 0;

	while (avail) {
		size_t n = util_utf8_next(p, avail);
		size_t len = n ? n : sizeof(replacement) - 1;

		if (o + len > RT_DETAIL_MAX)
			break;
		memcpy(out + o, n ? (const void *)p : (const void *)replacement, len);
		o += len;
		p += n ? n : 1;
		avail -= n ? n : 1;
	}
	out[o] = '\0';
}

void rt_expire_deadlines(struct rt *rt, int64_t now_ms)
{
	struct rt_msg *m;

	while ((m = heap_peek(&rt->deadline_heap)) && m->deadline_ms <= now_ms) {
		heap_pop(&rt->deadline_heap);
		if (m->state == RTM_QUEUED)
			rt_doom(rt, m, RT_DEATH_TIMEOUT);
		/* a leased message is judged when its lease ends (rt_requeue) */
	}
}

/* The content of a failure notice: a JSON object, every string escaped
 * (the detail is the receiver's own words). */
static int failure_content(const struct rt_msg *m, struct buf *b)
{
	int rc = buf_puts(b, "{\"reason\":");

	if (!rc)
		rc = buf_json_str(b, rt_death_name(m->death));
	if (!rc && m->detail) {
		rc = buf_puts(b, ",\"detail\":");
		if (!rc)
			rc = buf_json_str(b, m->detail);
	}
	if (!rc)
		rc = buf_puts(b, ",\"message_id\":");
	if (!rc)
		rc = buf_json_str(b, m->message_id);
	if (!rc)
		rc = buf_puts(b, ",\"receiver\":");
	if (!rc)
		rc = buf_json_str(b, m->agent->id);
	if (!rc)
		rc = buf_printf(b, ",\"attempts\":%u}", m->attempts);
	return rc;
}

/* The failure message a sender gets for a message of its that died. */
static int failure_item(struct rt *rt, const struct rt_msg *m, struct rt_item *it)
{
	struct buf content;
	struct rt_agent *s = rt_find_agent(rt, m->sender);
	int made = 0;

	if (!s || !s->configured || !s->notify || strcmp(m->sender, ROUTER_AGENT_ID) == 0)
		return 0;
	buf_init(&content, 16384);
	memset(it, 0, sizeof(*it));
	if (failure_content(m, &content) == 0 && msg_make(&it->m, PERF_FAILURE, ROUTER_AGENT_ID, m->sender, m->conv_id,
							  m->message_id, buf_str(&content)) == 0) {
		it->started_ns = util_mono_ns();
		made = 1;
	}
	buf_free(&content);
	return made;
}

/* The write of doomed message `m` as a dead letter that died at `now`. */
static void dead_op(const struct rt_msg *m, int64_t now, struct store_op *op)
{
	op->type = STORE_DEAD_LETTER;
	op->seq = m->seq;
	op->id = m->message_id;
	op->receiver = m->agent->id;
	op->sender = m->sender;
	op->conversation = m->conv_id;
	op->text = m->body;
	op->text_len = m->body_len;
	op->text2 = rt_death_name(m->death);
	op->text3 = m->detail;
	op->i1 = m->attempts;
	op->i2 = now;
}

/* Count and log the messages of `list`, written as dead letters. */
static void dead_count(struct rt *rt, const struct rt_msg *list)
{
	for (const struct rt_msg *m = list; m; m = m->dnext) {
		met_inc(rt->met->dead_letters[m->death]);
		met_inc(rt->met->failed[m->death == RT_DEATH_TIMEOUT	? RM_TIMEOUT
					: m->death == RT_DEATH_NETWORK	? RM_NETWORK_ERROR
					: m->death == RT_DEATH_REJECTED ? RM_INVALID_MESSAGE
									: RM_AGENT_NOT_RESPONDING]);
		log_warn("message dead-lettered", "message_id", m->message_id, "agent_id", m->agent->id,
			 "conversation_id", m->conv_id, "reason", rt_death_name(m->death), "detail", m->detail);
	}
}

void rt_dead_process(struct rt *rt, int prune)
{
	struct rt_msg *list, *m;
	struct store_op *ops = NULL;
	struct rt_item *notes = NULL;
	struct store_ticket t = {0};
	size_t n = 0, i = 0, nnotes = 0;
	int64_t now = util_now_ms();

	pthread_mutex_lock(&rt->lock);
	list = rt->dying;
	rt->dying = NULL;
	rt->dying_tail = &rt->dying;
	rt->dead_writing = list; /* still dying to rt_task_get until it is written */
	for (m = list; m; m = m->dnext)
		n++;
	ops = calloc(n + 1, sizeof(*ops));
	notes = calloc(n + 1, sizeof(*notes));
	if (!ops || !notes) { /* retry on the next pass */
		*rt->dying_tail = list;
		while (*rt->dying_tail)
			rt->dying_tail = &(*rt->dying_tail)->dnext;
		rt->dead_writing = NULL;
		pthread_mutex_unlock(&rt->lock);
		free(ops);
		free(notes);
		return;
	}
	for (m = list; m; m = m->dnext) {
		dead_op(m, now, &ops[i++]);
		nnotes += (size_t)failure_item(rt, m, &notes[nnotes]);
	}
	if (prune || n) { /* the bounds hold as soon as new dead letters land */
		ops[i].type = STORE_DL_PRUNE;
		ops[i].i1 = now - rt->cfg.delivery.dl_retention_ms;
		ops[i].i2 = rt->cfg.delivery.dl_max_size;
		i++;
	}
	pthread_mutex_unlock(&rt->lock);
	if (i && rt->st) {
		t.ops = ops;
		t.nops = i;
		if (store_submit(rt->st, &t) || store_wait(rt->st, &t))
			log_error("dead letters could not be stored; the messages stay in the store and return at "
				  "restart");
	}
	pthread_mutex_lock(&rt->lock);
	rt->dead_writing = NULL; /* written (or failed): the table answers for them now */
	pthread_mutex_unlock(&rt->lock);
	dead_count(rt, list);
	if (nnotes && rt_submit(rt, notes, nnotes))
		log_error("could not send failure notices");
	for (size_t k = 0; k < nnotes; k++)
		msg_free(&notes[k].m);
	while (list) {
		m = list;
		list = m->dnext;
		rt_msg_free(m);
	}
	free(ops);
	free(notes);
}

/* --- listing and replay ----------------------------------------------------- */

struct dl_collect {
	struct buf *out;
	int n, rc;
	uint64_t last;
};

static int dl_to_json(void *ctx, const struct store_dl_row *r)
{
	struct dl_collect *c = ctx;
	char died[32];
	struct buf *o = c->out;
	int rc;

	util_fmt_rfc3339(r->died_ms, died);
	rc = buf_printf(o, "%s{\"seq\":%llu,\"message_id\":", c->n ? "," : "", (unsigned long long)r->seq);
	if (!rc)
		rc = buf_json_str(o, r->message_id ? r->message_id : "");
	if (!rc)
		rc = buf_puts(o, ",\"receiver\":");
	if (!rc)
		rc = buf_json_str(o, r->receiver ? r->receiver : "");
	if (!rc)
		rc = buf_puts(o, ",\"sender\":");
	if (!rc)
		rc = buf_json_str(o, r->sender ? r->sender : "");
	if (!rc)
		rc = buf_puts(o, ",\"reason\":");
	if (!rc)
		rc = buf_json_str(o, r->reason ? r->reason : "");
	if (!rc && r->detail) {
		rc = buf_puts(o, ",\"detail\":");
		if (!rc)
			rc = buf_json_str(o, r->detail);
	}
	if (!rc)
		rc = buf_printf(o, ",\"attempts\":%d,\"died_at\":\"%s\",\"message\":", r->attempts, died);
	if (!rc)
		rc = buf_append(o, r->body, r->len);
	if (!rc)
		rc = buf_puts(o, "}");
	c->n++;
	c->last = r->seq;
	return rc;
}

int rt_deadletters_json(struct rt *rt, const char *agent, const char *reason, uint64_t after, int limit,
			struct buf *out)
{
	struct dl_collect c = {.out = out};
	int rc = buf_puts(out, "{\"deadletters\":[");

	if (!rc)
		rc = store_dl_list(rt->st, agent, reason, after, limit, dl_to_json, &c);
	if (!rc && c.n == limit)
		rc = buf_printf(out, "],\"next_after\":%llu}\n", (unsigned long long)c.last);
	else if (!rc)
		rc = buf_puts(out, "],\"next_after\":null}\n");
	return rc;
}

struct replay_row {
	uint64_t seq;
	char *message_id, *receiver, *sender, *conv, *body;
	size_t len;
};

struct replay_set {
	struct replay_row *rows;
	size_t n, cap;
	int rc;
};

static char *dup_or_empty(const char *s)
{
	return strdup(s ? s : "");
}

static int replay_collect(void *ctx, const struct store_dl_row *r)
{
	struct replay_set *set = ctx;
	struct replay_row *row;

	if (set->n == set->cap) {
		size_t nc = set->cap ? set->cap * 2 : 64;
		struct replay_row *p = realloc(set->rows, nc * sizeof(*p));

		if (!p)
			return -ENOMEM;
		set->rows = p;
		set->cap = nc;
	}
	row = &set->rows[set->n];
	memset(row, 0, sizeof(*row));
	row->seq = r->seq;
	row->message_id = dup_or_empty(r->message_id);
	row->receiver = dup_or_empty(r->receiver);
	row->sender = dup_or_empty(r->sender);
	row->conv = r->conversation && *r->conversation ? strdup(r->conversation) : NULL;
	row->body = malloc(r->len + 1);
	set->n++;
	if (!row->message_id || !row->receiver || !row->sender || !row->body)
		return -ENOMEM;
	memcpy(row->body, r->body, r->len);
	row->body[r->len] = '\0';
	row->len = r->len;
	return 0;
}

static void replay_free(struct replay_set *set)
{
	for (size_t i = 0; i < set->n; i++) {
		free(set->rows[i].message_id);
		free(set->rows[i].receiver);
		free(set->rows[i].sender);
		free(set->rows[i].conv);
		free(set->rows[i].body);
	}
	free(set->rows);
}

int rt_replay(struct rt *rt, const char *agent, const char *reason, const uint64_t *seqs, size_t nseqs, int limit,
	      struct buf *out)
{
	struct replay_set set = {0};
	struct store_op *ops = NULL;
	struct rt_msg **msgs = NULL;
	struct store_ticket t = {0};
	size_t nops = 0, replayed = 0, skipped = 0;
	int rc = 0;

	if (nseqs) {
		for (size_t i = 0; !rc && i < nseqs; i++)
			if (seqs[i])
				rc = store_dl_list(rt->st, NULL, NULL, seqs[i] - 1, 1, replay_collect, &set);
		/* keep only exact matches */
		for (size_t i = 0; !rc && i < set.n; i++) {
			int want = 0;

			for (size_t k = 0; k < nseqs; k++)
				want |= seqs[k] == set.rows[i].seq;
			if (!want)
				set.rows[i].seq = 0;
		}
	} else {
		rc = store_dl_list(rt->st, agent, reason, 0, limit, replay_collect, &set);
	}
	if (rc)
		goto out;
	ops = calloc(2 * set.n + 1, sizeof(*ops));
	msgs = calloc(set.n + 1, sizeof(struct rt_msg *));
	if (!ops || !msgs) {
		rc = -ENOMEM;
		goto out;
	}
	pthread_mutex_lock(&rt->lock);
	for (size_t i = 0; i < set.n; i++) {
		struct replay_row *r = &set.rows[i];
		struct rt_agent *a = r->seq ? rt_find_agent(rt, r->receiver) : NULL;
		struct rt_msg *m = NULL, *dup = NULL;

		if (a)
			HASH_FIND_STR(a->by_id, r->message_id, dup);
		if (!a || dup || (a->state != CFG_AGENT_RUNNING && a->state != CFG_AGENT_LOADED) ||
		    a->depth >= a->capacity) {
			skipped += r->seq != 0;
			continue;
		}
		m = rt_msg_new(r->message_id, r->conv, r->sender);
		if (!m) {
			rc = -ENOMEM;
			break;
		}
		m->seq = ++rt->next_seq;
		m->state = RTM_RESERVED;
		m->prio = MSG_PRIO_NORMAL;
		m->accepted_ms = util_now_ms();
		m->deadline_ms = m->accepted_ms + rt->cfg.perf.message_timeout_ms;
		m->started_ns = util_mono_ns();
		m->agent = a;
		m->body = r->body;
		m->body_len = r->len;
		r->body = NULL;
		HASH_ADD_KEYPTR(hh, a->by_id, m->message_id, strlen(m->message_id), m);
		a->depth++;
		a->reserved++;
		rt->total_depth++;
		msgs[replayed++] = m;
		ops[nops].type = STORE_MSG_INSERT;
		ops[nops].seq = m->seq;
		ops[nops].id = m->message_id;
		ops[nops].receiver = a->id;
		ops[nops].conversation = m->conv_id;
		ops[nops].text = m->body;
		ops[nops].text_len = m->body_len;
		ops[nops].i1 = m->prio;
		ops[nops].i2 = m->accepted_ms;
		ops[nops].i3 = m->accepted_ms;
		ops[nops].sender = m->sender;
		ops[nops].deadline_ms = m->deadline_ms;
		ops[nops].max_retries = -1;
		nops++;
		ops[nops].type = STORE_DL_DELETE;
		ops[nops].seq = r->seq;
		nops++;
	}
	pthread_mutex_unlock(&rt->lock);
	if (nops) {
		t.ops = ops;
		t.nops = nops;
		rc = store_submit(rt->st, &t);
		if (!rc)
			rc = store_wait(rt->st, &t);
	}
	pthread_mutex_lock(&rt->lock);
	for (size_t i = 0; i < replayed; i++) {
		if (rc) { /* not stored: undo */
			HASH_DEL(msgs[i]->agent->by_id, msgs[i]);
			msgs[i]->agent->depth--;
			msgs[i]->agent->reserved--;
			rt->total_depth--;
			rt_msg_free(msgs[i]);
		} else {
			rt_publish(rt, msgs[i], util_mono_ns());
		}
	}
	pthread_mutex_unlock(&rt->lock);
	if (!rc)
		rc = buf_printf(out, "{\"replayed\":%zu,\"skipped\":%zu}\n", replayed, skipped);
out:
	replay_free(&set);
	free(ops);
	free(msgs);
	return rc;
}
