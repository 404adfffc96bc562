/*
 * The agent registry of the routing core: registering agents from the
 * config, their records and capabilities, and persisting their state.
 * Callers hold rt->lock unless a function says otherwise.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "rt_int.h"
#include "switchboard/util.h"

/* Delivery order within an agent: priority first, then sequence. */
static int ready_cmp(const void *a, const void *b)
{
	const struct rt_msg *x = a, *y = b;

	if (x->prio != y->prio)
		return x->prio > y->prio ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void msg_set_idx(void *e, size_t i)
{
	((struct rt_msg *)e)->heap_idx = i;
}

/* --- the registry's index: agents by id ------------------------------------- */
/* Open addressing, linear probing, at most half full; agents leave it only
 * with the core (rt_free), so nothing is ever deleted.  A slot keeps the
 * id's hash beside the agent: a probe past another agent reads no agent. */

static void index_put(struct rt_agent_slot *slots, size_t n, struct rt_agent *a, unsigned hv)
{
	size_t i = hv & (n - 1);

	while (slots[i].a)
		i = (i + 1) & (n - 1);
	slots[i].hash = hv;
	slots[i].len = (unsigned)strlen(a->id);
	slots[i].a = a;
}

int rt_agent_register(struct rt *rt, struct rt_agent *a)
{
	size_t len = strlen(a->id);
	unsigned hv;

	HASH_VALUE(a->id, len, hv);
	if (((size_t)HASH_COUNT(rt->agents) + 1) * 2 > rt->nagent_slots) {
		size_t n = rt->nagent_slots ? rt->nagent_slots * 2 : 64;
		struct rt_agent_slot *ns = calloc(n, sizeof(*ns));
		struct rt_agent *b, *tmp;

		if (!ns)
			return -ENOMEM;
		HASH_ITER (hh, rt->agents, b, tmp) {
			unsigned bh;

			HASH_VALUE(b->id, strlen(b->id), bh);
			index_put(ns, n, b, bh);
		}
		free(rt->agent_slots);
		rt->agent_slots = ns;
		rt->nagent_slots = n;
	}
	index_put(rt->agent_slots, rt->nagent_slots, a, hv);
	HASH_ADD_KEYPTR_BYHASHVALUE(hh, rt->agents, a->id, len, hv, a);
	return 0;
}

struct rt_agent *rt_find_agent_h(struct rt *rt, const char *id, size_t len, unsigned hv)
{
	size_t mask = rt->nagent_slots - 1;

	if (!rt->nagent_slots)
		return NULL;
	for (size_t i = hv & mask; rt->agent_slots[i].a; i = (i + 1) & mask) {
		struct rt_agent *a = rt->agent_slots[i].a;

		if (rt->agent_slots[i].hash == hv && rt->agent_slots[i].len == len && memcmp(a->id, id, len) == 0)
			return a;
	}
	return NULL;
}

struct rt_agent *rt_find_agent(struct rt *rt, const char *id)
{
	size_t len = strlen(id);
	unsigned hv;

	HASH_VALUE(id, len, hv);
	return rt_find_agent_h(rt, id, len, hv);
}

const struct rt_agent *rt_agent_peek(const struct rt *rt, unsigned hv)
{
	const struct rt_agent_slot *s;

	if (!rt->nagent_slots)
		return NULL;
	s = &rt->agent_slots[hv & (rt->nagent_slots - 1)];
	return s->hash == hv ? s->a : NULL;
}

const void *rt_agent_slot_of(const struct rt *rt, unsigned hv)
{
	return rt->nagent_slots ? &rt->agent_slots[hv & (rt->nagent_slots - 1)] : NULL;
}

/* Serialise and release `arr` (NULL-safe).  Returns a heap string or NULL. */
char *rt_json_dump_array(json_t *arr)
{
	char *s;

	if (!arr)
		return NULL;
	s = json_dumps(arr, JSON_COMPACT);
	json_decref(arr);
	return s;
}

static char *caps_to_json(const struct cfg_agent *ca)
{
	json_t *arr = json_array();

	for (size_t i = 0; arr && ca && i < ca->ncaps; i++) {
		json_t *o = json_pack("{s:s}", "name", ca->caps[i].name);

		if (o && ca->caps[i].description)
			json_object_set_new(o, "description", json_string(ca->caps[i].description));
		if (!o || json_array_append_new(arr, o)) {
			json_decref(arr);
			return NULL;
		}
	}
	return rt_json_dump_array(arr);
}

struct rt_agent *rt_agent_new(const char *id)
{
	size_t len = strlen(id);
	struct rt_agent *a = calloc(1, sizeof(*a) + len + 1);
	pthread_condattr_t ca;

	if (!a)
		return NULL;
	a->id = (char *)(a + 1); /* next to its hash handle: a lookup reads one place */
	memcpy(a->id, id, len + 1);
	heap_init(&a->ready, ready_cmp, msg_set_idx);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&a->cond, &ca);
	pthread_condattr_destroy(&ca);
	return a;
}

void rt_agent_free(struct rt_agent *a)
{
	struct rt_msg *m;
	struct rt_lane *l;

	while ((m = a->by_id) != NULL) {
		HASH_DEL(a->by_id, m); /* NOLINT(clang-analyzer-unix.Malloc): uthash resets the head */
		rt_msg_free(m);
	}
	while ((l = a->lanes) != NULL) {
		HASH_DEL(a->lanes, l); /* NOLINT(clang-analyzer-unix.Malloc): uthash resets the head */
		free(l->conv_id);
		free(l);
	}
	heap_free(&a->ready);
	pthread_cond_destroy(&a->cond);
	free(a->caps_json);
	free(a);
}

/* The token index: one entry per distinct configured token digest, counted
 * by the agents that have it, so a caller's token can be told apart as
 * "another agent's" (403) or "nobody's" (401) in one lookup. */
struct rt_token {
	char digest[65];
	unsigned refs;
	UT_hash_handle hh;
};

static int token_ref(struct rt *rt, const char *digest)
{
	struct rt_token *t;

	if (!*digest)
		return 0;
	HASH_FIND_STR(rt->tokens, digest, t);
	if (!t) {
		t = calloc(1, sizeof(*t));
		if (!t)
			return -ENOMEM;
		snprintf(t->digest, sizeof(t->digest), "%s", digest);
		HASH_ADD_STR(rt->tokens, digest, t);
	}
	t->refs++;
	return 0;
}

static void token_unref(struct rt *rt, const char *digest)
{
	struct rt_token *t;

	if (!*digest)
		return;
	HASH_FIND_STR(rt->tokens, digest, t);
	if (t && --t->refs == 0) {
		HASH_DEL(rt->tokens, t);
		free(t);
	}
}

int rt_token_known(const struct rt *rt, const char *digest)
{
	struct rt_token *t;

	HASH_FIND_STR(rt->tokens, digest, t);
	return t != NULL;
}

void rt_tokens_free(struct rt *rt)
{
	struct rt_token *t;

	while ((t = rt->tokens) != NULL) {
		HASH_DEL(rt->tokens, t); /* NOLINT(clang-analyzer-unix.Malloc): uthash resets the head */
		free(t);
	}
}

/* Give `a` the token digest `digest` ("" for none), keeping the index. */
static int set_token(struct rt *rt, struct rt_agent *a, const char *digest)
{
	if (strcmp(a->token_sha256, digest) == 0)
		return 0;
	if (token_ref(rt, digest))
		return -ENOMEM;
	token_unref(rt, a->token_sha256);
	snprintf(a->token_sha256, sizeof(a->token_sha256), "%s", digest);
	return 0;
}

int rt_agent_apply_cfg(struct rt *rt, struct rt_agent *a, const struct cfg_agent *ca)
{
	char *caps = caps_to_json(ca);

	if (!caps || set_token(rt, a, ca->token_sha256 ? ca->token_sha256 : "")) {
		free(caps);
		return -ENOMEM;
	}
	free(a->caps_json);
	a->caps_json = caps;
	a->state = ca->state;
	if (a->mode != ca->mode || !a->configured)
		rt->npush += (ca->mode == CFG_MODE_PUSH) - (a->configured && a->mode == CFG_MODE_PUSH);
	a->mode = ca->mode;
	a->capacity = (size_t)(ca->queue_size ? ca->queue_size : rt->cfg.perf.agent_queue_size);
	a->configured = 1;
	a->notify = ca->notify_on_failure;
	if (a->rate != ca->rate_per_sec || a->burst != (double)ca->rate_burst) {
		rt->nrated += (size_t)(ca->rate_per_sec > 0) - (size_t)(a->rate > 0);
		a->rate = ca->rate_per_sec;
		a->burst = (double)ca->rate_burst;
		a->tokens = a->burst;
		a->refill_ns = 0;
	}
	return 0;
}

int rt_persist_agents(struct rt *rt)
{
	size_t n = HASH_COUNT(rt->agents), i = 0;
	struct store_op *ops = calloc(n + 1, sizeof(*ops));
	struct store_ticket t = {0};
	struct rt_agent *a, *tmp;
	int rc;

	if (!ops)
		return -ENOMEM;
	HASH_ITER (hh, rt->agents, a, tmp) {
		ops[i].type = STORE_AGENT_UPSERT;
		ops[i].id = a->id;
		ops[i].text = a->caps_json;
		ops[i].text2 = cfg_agent_state_name(a->state);
		ops[i].text3 = cfg_mode_name(a->mode);
		ops[i].i1 = util_now_ms();
		i++;
	}
	t.ops = ops;
	t.nops = n;
	rc = store_submit(rt->st, &t);
	if (!rc)
		rc = store_wait(rt->st, &t);
	free(ops);
	return rc;
}

/* Capacity `ca` would give an agent under config `c`. */
static size_t capacity_of(const struct cfg *c, const struct cfg_agent *ca)
{
	return (size_t)(ca->queue_size ? ca->queue_size : c->perf.agent_queue_size);
}

int rt_reconfigure(struct rt *rt, const struct cfg *nc, char *why, size_t whylen)
{
	struct cfg fresh, old;
	struct rt_agent *a, *tmp;
	int rc;

	rc = cfg_copy(&fresh, nc);
	if (rc)
		return rc;
	pthread_mutex_lock(&rt->lock);
	/* a shrink is hot only if what is queued fits */
	for (size_t i = 0; i < nc->nagents; i++) {
		a = rt_find_agent(rt, nc->agents[i].id);
		if (a && a->depth > capacity_of(nc, &nc->agents[i])) {
			snprintf(why, whylen,
				 "agent \"%.100s\" holds %zu messages; its new queue bound %zu would not fit", a->id,
				 a->depth, capacity_of(nc, &nc->agents[i]));
			rc = -EAGAIN;
			goto fail;
		}
	}
	if (rt->total_depth > (size_t)nc->perf.max_concurrent_messages) {
		snprintf(why, whylen,
			 "the router holds %zu messages; performance.maxConcurrentMessages %lld would not fit",
			 rt->total_depth, (long long)nc->perf.max_concurrent_messages);
		rc = -EAGAIN;
		goto fail;
	}
	/* new and changed agents */
	for (size_t i = 0; i < nc->nagents; i++) {
		a = rt_find_agent(rt, nc->agents[i].id);
		if (!a) {
			a = rt_agent_new(nc->agents[i].id);
			if (!a || rt_agent_register(rt, a)) {
				if (a)
					rt_agent_free(a);
				rc = -ENOMEM;
				goto fail;
			}
		}
		/* apply against the new config so the default queue bound is the new one */
		old = rt->cfg;
		rt->cfg = fresh;
		rc = rt_agent_apply_cfg(rt, a, &nc->agents[i]);
		rt->cfg = old;
		if (rc)
			goto fail;
		pthread_cond_broadcast(&a->cond);
	}
	/* agents no longer configured drain what they hold, then stop */
	HASH_ITER (hh, rt->agents, a, tmp) {
		if (!a->configured || cfg_find_agent(nc, a->id))
			continue;
		a->configured = 0;
		/* a removed agent keeps its mailbox, not its credentials: its token
		 * authenticates nothing from now on */
		token_unref(rt, a->token_sha256);
		sodium_memzero(a->token_sha256, sizeof(a->token_sha256));
		if (a->mode == CFG_MODE_PUSH)
			rt->npush--;
		a->state = a->depth ? CFG_AGENT_DRAINING : CFG_AGENT_STOPPED;
		pthread_cond_broadcast(&a->cond);
	}
	old = rt->cfg;
	rt->cfg = fresh;
	atomic_store_explicit(&rt->keyed, fresh.delivery.dedup_window_ms > 0, memory_order_relaxed);
	pthread_mutex_unlock(&rt->lock);
	cfg_free(&old);
	return rt_persist_agents(rt);
fail:
	pthread_mutex_unlock(&rt->lock);
	cfg_free(&fresh);
	return rc;
}

int rt_agent_token_ok(const struct rt_agent *a, const char *digest)
{
	if (!digest)
		return 1;
	if (!a || strlen(a->token_sha256) != 64 || strlen(digest) != 64)
		return 0;
	return sodium_memcmp(a->token_sha256, digest, 64) == 0;
}

int rt_agent_rate_take(struct rt_agent *a, uint64_t now_ns)
{
	if (a->rate <= 0)
		return 0;
	if (a->refill_ns) {
		a->tokens += (double)(now_ns - a->refill_ns) / 1e9 * a->rate;
		if (a->tokens > a->burst)
			a->tokens = a->burst;
	}
	a->refill_ns = now_ns;
	if (a->tokens >= 1.0) {
		a->tokens -= 1.0;
		return 0;
	}
	return (int)((1.0 - a->tokens) / a->rate) + 1;
}
