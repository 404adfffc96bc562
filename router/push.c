/*
 * The push engine.  Its thread loops: start requests whose retry is due,
 * take new work from push agents whose breaker allows it (up to maxInFlight
 * requests each, halfOpenMaxCalls when half-open), run the multi handle, and
 * classify finished requests.  Breaker state lives here, keyed by agent.
 */
#include "push.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "a2aj.h"
#include "rt_int.h"
#include "switchboard/heap.h"
#include "switchboard/util.h"

#define MAX_AGENTS_PER_PASS 1024
#define ANSWER_EXCERPT	    4096       /* what is kept of an answer for the log */
#define A2A_ANSWER_MAX	    (4u << 20) /* what is read of an A2A agent's answer (its reply) */

enum { CB_CLOSED, CB_HALF_OPEN, CB_OPEN };

struct pstate { /* per push agent */
	char id[254];
	char endpoint[2049];
	int breaker;
	int fails;
	uint64_t opened_ns;
	int inflight; /* requests started or waiting to be retried */
	int half_open_calls;
	UT_hash_handle hh;
};

struct preq {
	struct rt_lease *lease;
	struct pstate *ps;
	CURL *easy;
	struct curl_slist *hdrs;
	struct buf body;
	struct buf resp;
	int64_t timeout_ms;
	uint64_t due_ns;
	size_t hidx;
	int half_open;		  /* counted against the half-open budget */
	int a2a;		  /* an A2A SendMessage: the answer is read whole */
	int answer_cut;		  /* the answer was longer than the buffer */
	struct preq *prev, *next; /* p->active while in the multi handle */
};

struct push {
	struct rt *rt;
	CURLM *multi;
	pthread_t thread;
	atomic_int stop;
	pthread_mutex_t lock; /* breaker states, for the metrics collector */
	struct pstate *states;
	struct heap retries;		/* preq by due_ns */
	struct preq *active;		/* requests in the multi handle */
	struct cfg_delivery d;		/* delivery settings, copied each pass */
	struct rt_engine_agent *agents; /* MAX_AGENTS_PER_PASS, reused each pass */
	push_reply_fn reply;		/* routes A2A agents' replies; may be NULL */
	void *reply_ctx;
};

static int due_cmp(const void *a, const void *b)
{
	const struct preq *x = a, *y = b;

	return x->due_ns < y->due_ns ? -1 : x->due_ns > y->due_ns;
}

static void due_idx(void *e, size_t i)
{
	((struct preq *)e)->hidx = i;
}

static size_t sink(char *p, size_t sz, size_t n, void *ud)
{
	struct preq *r = ud;
	size_t room = r->resp.limit - r->resp.len, take = sz * n < room ? sz * n : room;

	/* keep what fits (an excerpt for the log, or an A2A answer whole); read
	 * the rest away */
	if (take < sz * n)
		r->answer_cut = 1;
	if (take && buf_append(&r->resp, p, take))
		r->answer_cut = 1; /* out of memory: still consume the answer */
	return sz * n;
}

static void preq_free(struct preq *r)
{
	if (r->easy)
		curl_easy_cleanup(r->easy);
	curl_slist_free_all(r->hdrs);
	buf_free(&r->body);
	buf_free(&r->resp);
	free(r);
}

static struct pstate *state_of(struct push *p, const struct rt_engine_agent *ea)
{
	struct pstate *s;

	pthread_mutex_lock(&p->lock);
	HASH_FIND_STR(p->states, ea->id, s);
	if (!s) {
		s = calloc(1, sizeof(*s));
		if (s) {
			snprintf(s->id, sizeof(s->id), "%s", ea->id);
			HASH_ADD_STR(p->states, id, s);
		}
	}
	if (s)
		snprintf(s->endpoint, sizeof(s->endpoint), "%s", ea->endpoint);
	pthread_mutex_unlock(&p->lock);
	return s;
}

static void breaker_set(struct push *p, struct pstate *s, int state)
{
	static const char *const names[] = {"closed", "half-open", "open"};

	if (s->breaker == state)
		return;
	pthread_mutex_lock(&p->lock);
	s->breaker = state;
	pthread_mutex_unlock(&p->lock);
	if (state == CB_OPEN)
		s->opened_ns = util_mono_ns();
	s->half_open_calls = 0;
	log_warn("circuit breaker", "agent_id", s->id, "state", names[state]);
}

/* How many more requests the agent may have in flight now. */
static int allowance(struct push *p, struct pstate *s, int64_t max_in_flight)
{
	if (s->breaker == CB_OPEN) {
		if (util_mono_ns() - s->opened_ns < (uint64_t)p->d.cb_timeout_ms * 1000000ull)
			return 0;
		breaker_set(p, s, CB_HALF_OPEN);
	}
	if (s->breaker == CB_HALF_OPEN)
		return (int)p->d.cb_half_open_max_calls - s->half_open_calls;
	return (int)max_in_flight - s->inflight;
}

static int start(struct push *p, struct preq *r)
{
	CURL *e = curl_easy_init();

	if (!e)
		return -ENOMEM;
	if (r->easy)
		curl_easy_cleanup(r->easy);
	r->easy = e;
	buf_reset(&r->resp);
	r->answer_cut = 0;
	curl_easy_setopt(e, CURLOPT_URL, r->ps->endpoint);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body.data);
	curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)r->body.len);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->hdrs);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, sink);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)r->timeout_ms);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)p->d.connection_timeout_ms);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_PRIVATE, r);
	if (r->ps->breaker == CB_HALF_OPEN) {
		r->half_open = 1;
		r->ps->half_open_calls++;
	}
	if (curl_multi_add_handle(p->multi, e) != CURLM_OK)
		return -EIO;
	r->prev = NULL;
	r->next = p->active;
	if (p->active)
		p->active->prev = r;
	p->active = r;
	return 0;
}

/* Retry delay for the given attempt: base * factor^(attempt-1), capped, plus jitter. */
static uint64_t backoff_ns(const struct cfg_delivery *c, unsigned attempt)
{
	double d = (double)c->base_retry_delay_ms;

	for (unsigned i = 1; i < attempt && d < (double)c->retry_max_delay_ms; i++)
		d *= c->retry_backoff_factor;
	if (d > (double)c->retry_max_delay_ms)
		d = (double)c->retry_max_delay_ms;
	if (c->retry_jitter_ms > 0)
		d += (double)(util_mono_ns() % (uint64_t)(c->retry_jitter_ms + 1));
	return (uint64_t)(d * 1e6);
}

/* The request is done with (its lease settled): free its slot. */
static void done(struct preq *r)
{
	r->ps->inflight--;
	preq_free(r);
}

static void delivered(struct push *p, struct preq *r)
{
	r->ps->fails = 0;
	if (r->ps->breaker != CB_CLOSED)
		breaker_set(p, r->ps, CB_CLOSED);
	if (rt_engine_ack(p->rt, r->lease))
		log_error("a push delivery could not be recorded; it will be delivered again after a restart",
			  "agent_id", r->ps->id);
	done(r);
}

/* The agent refused the message for good: dead-letter it, saying why. */
static void refused(struct push *p, struct preq *r, const char *why)
{
	log_warn("push delivery refused", "agent_id", r->ps->id, "message_id",
		 r->lease->msgs ? r->lease->msgs->message_id : "", "detail", why);
	rt_engine_fail_why(p->rt, r->lease, RT_DEATH_REJECTED, why);
	done(r);
}

/* A failure worth retrying: count it against the breaker, then try again
 * after the backoff, or dead-letter when attempts or time ran out, with
 * `why` (the last failure) as the dead letter's detail. */
static void retry_later(struct push *p, struct preq *r, int temporary_death, const char *why)
{
	int death = 0;

	r->ps->fails++;
	if (r->ps->breaker == CB_HALF_OPEN || (r->ps->breaker == CB_CLOSED && r->ps->fails >= (int)p->d.cb_threshold))
		breaker_set(p, r->ps, CB_OPEN);
	if (!rt_engine_retry(p->rt, r->lease, temporary_death, &death)) {
		rt_engine_fail_why(p->rt, r->lease, death, why);
		done(r);
		return;
	}
	r->due_ns = util_mono_ns() + backoff_ns(&p->d, r->lease->msgs ? r->lease->msgs->attempts : 1);
	if (heap_push(&p->retries, r)) {
		rt_engine_fail(p->rt, r->lease, RT_DEATH_NOT_RESPONDING);
		done(r);
	}
}

/* Hand an A2A agent's reply to the hook.  0, or -EAGAIN to deliver again. */
static int route_reply(struct push *p, struct preq *r, const struct a2aj_send *reply)
{
	const struct rt_msg *m = r->lease->msgs;
	struct push_reply pr = {.agent = r->ps->id,
				.to = m->sender,
				.conversation = m->conv_id,
				.in_reply_to = m->message_id,
				.reply = reply};
	int rc;

	if (!p->reply || !m->sender[0])
		return 0;
	rc = p->reply(p->reply_ctx, &pr);
	return rc == -EAGAIN || rc == -ENOMEM ? -EAGAIN : 0;
}

enum { A2A_DELIVERED, A2A_RETRY, A2A_REFUSED };

/* What an A2A agent's 2xx answer means; `why` says it for a failure. */
static int a2a_outcome(struct push *p, struct preq *r, char *why, size_t whylen)
{
	struct a2aj_answer a;
	int out = A2A_DELIVERED;

	if (r->answer_cut) {
		snprintf(why, whylen, "the A2A agent's answer is over %u bytes", A2A_ANSWER_MAX);
		return A2A_REFUSED;
	}
	if (a2aj_read_answer(r->resp.data, r->resp.len, &a)) {
		a2aj_answer_free(&a);
		snprintf(why, whylen, "out of memory reading the A2A agent's answer");
		return A2A_RETRY;
	}
	if (a.kind == A2AJ_ANS_REPLY && route_reply(p, r, &a.reply)) {
		snprintf(why, whylen, "the A2A agent's reply could not be routed now");
		out = A2A_RETRY;
	} else if (a.kind == A2AJ_ANS_ERROR || a.kind == A2AJ_ANS_INVALID) {
		snprintf(why, whylen, "%s", a.detail);
		out = a.kind == A2AJ_ANS_ERROR && a.transient ? A2A_RETRY : A2A_REFUSED;
	}
	a2aj_answer_free(&a);
	return out;
}

static void finished(struct push *p, struct preq *r, CURLcode cc)
{
	long status = 0;
	char why[256];

	curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
	curl_multi_remove_handle(p->multi, r->easy);
	if (r->prev)
		r->prev->next = r->next;
	else
		p->active = r->next;
	if (r->next)
		r->next->prev = r->prev;
	r->prev = r->next = NULL;
	if (r->half_open) {
		r->ps->half_open_calls--;
		r->half_open = 0;
	}
	if (cc == CURLE_OK && status >= 200 && status < 300) {
		int o = r->a2a ? a2a_outcome(p, r, why, sizeof(why)) : A2A_DELIVERED;

		if (o == A2A_DELIVERED)
			delivered(p, r);
		else if (o == A2A_REFUSED)
			refused(p, r, why);
		else
			retry_later(p, r, RT_DEATH_NOT_RESPONDING, why);
		return;
	}
	if (cc != CURLE_OK)
		snprintf(why, sizeof(why), "%s", curl_easy_strerror(cc));
	else
		snprintf(why, sizeof(why), "the agent answered HTTP %ld", status);
	if (cc == CURLE_OK && status != 408 && status != 429 && status < 500) {
		refused(p, r, why);
		return;
	}
	retry_later(p, r, cc != CURLE_OK ? RT_DEATH_NETWORK : RT_DEATH_NOT_RESPONDING, why);
}

/* The body of a request for lease `l`: the message or batch as stored, or
 * for an A2A agent the SendMessage that carries its one message. */
static int request_body(struct push *p, struct preq *r, int batch)
{
	struct buf fipa;
	int rc;

	if (!r->a2a)
		return rt_engine_body(p->rt, r->lease, batch, &r->body);
	buf_init(&fipa, (size_t)1 << 30);
	rc = rt_engine_body(p->rt, r->lease, 0, &fipa);
	if (!rc)
		rc = a2aj_from_fipa(fipa.data, fipa.len, &r->body);
	buf_free(&fipa);
	return rc;
}

/* A request for lease `l` (taken; failed here when it cannot start). */
static struct preq *new_request(struct push *p, struct pstate *s, const struct rt_engine_agent *ea, struct rt_lease *l,
				int batch)
{
	struct preq *r = calloc(1, sizeof(*r));

	if (!r) {
		rt_engine_fail(p->rt, l, RT_DEATH_NOT_RESPONDING);
		return NULL;
	}
	r->lease = l;
	r->ps = s;
	r->timeout_ms = ea->timeout_ms;
	r->hidx = HEAP_NOT_IN;
	r->a2a = ea->protocol == CFG_PROTO_A2A;
	buf_init(&r->body, (size_t)1 << 30);
	buf_init(&r->resp, r->a2a ? A2A_ANSWER_MAX : ANSWER_EXCERPT);
	r->hdrs = curl_slist_append(NULL, "Content-Type: application/json");
	if (r->hdrs && r->a2a) {
		struct curl_slist *h = curl_slist_append(r->hdrs, "A2A-Version: 1.0");

		if (!h)
			curl_slist_free_all(r->hdrs);
		r->hdrs = h;
	}
	if (!r->hdrs || request_body(p, r, batch) || start(p, r)) {
		rt_engine_fail(p->rt, l, RT_DEATH_NOT_RESPONDING);
		preq_free(r);
		return NULL;
	}
	return r;
}

static void fill(struct push *p)
{
	struct rt_engine_agent *agents = p->agents;
	size_t n = rt_engine_agents(p->rt, agents, MAX_AGENTS_PER_PASS, &p->d);
	uint64_t now = util_mono_ns();

	for (size_t i = 0; i < n; i++) {
		/* an A2A agent gets one SendMessage per message, never a batch */
		int batch = p->d.batch_enabled && agents[i].protocol != CFG_PROTO_A2A;
		size_t per = batch ? (size_t)p->d.batch_max_size : 1;
		struct pstate *s;
		int allowed;

		/* a batch waits up to batch.timeoutMs to fill */
		if (batch && agents[i].ready < per &&
		    now - agents[i].oldest_ns < (uint64_t)p->d.batch_timeout_ms * 1000000ull)
			continue;
		s = state_of(p, &agents[i]);
		allowed = s ? allowance(p, s, agents[i].max_in_flight) : 0;
		while (allowed-- > 0) {
			struct rt_lease *l = rt_engine_take(p->rt, agents[i].id, per);

			if (!l || !new_request(p, s, &agents[i], l, batch))
				break;
			s->inflight++;
		}
	}
}

static void *engine_main(void *arg)
{
	struct push *p = arg;

	pthread_setname_np(pthread_self(), "sb-push");
	while (!atomic_load(&p->stop)) {
		struct preq *r;
		CURLMsg *m;
		int running = 0, left = 0,
		    wait_ms = p->d.batch_enabled && p->d.batch_timeout_ms < 20 ? 1 + (int)p->d.batch_timeout_ms : 20;
		uint64_t now = util_mono_ns();

		/* due retries go again, unless their breaker is open */
		while ((r = heap_peek(&p->retries)) && r->due_ns <= now) {
			if (allowance(p, r->ps, 1 + r->ps->inflight) <= 0 && r->ps->breaker != CB_CLOSED) {
				r->due_ns = now + 50 * 1000000ull;
				heap_fix(&p->retries, r->hidx);
				break;
			}
			heap_pop(&p->retries);
			if (start(p, r)) {
				rt_engine_fail(p->rt, r->lease, RT_DEATH_NOT_RESPONDING);
				r->ps->inflight--;
				preq_free(r);
			}
		}
		fill(p);
		curl_multi_perform(p->multi, &running);
		while ((m = curl_multi_info_read(p->multi, &left))) {
			if (m->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
			finished(p, r, m->data.result);
		}
		if ((r = heap_peek(&p->retries)) && r->due_ns > now && (r->due_ns - now) / 1000000 < (uint64_t)wait_ms)
			wait_ms = (int)((r->due_ns - now) / 1000000) + 1;
		curl_multi_poll(p->multi, NULL, 0, wait_ms, NULL);
	}
	return NULL;
}

static void wake(void *ctx)
{
	curl_multi_wakeup(((struct push *)ctx)->multi); /* thread-safe */
}

int push_start(struct rt *rt, push_reply_fn reply, void *reply_ctx, struct push **out)
{
	struct push *p = calloc(1, sizeof(*p));
	int rc;

	if (!p)
		return -ENOMEM;
	p->rt = rt;
	p->reply = reply;
	p->reply_ctx = reply_ctx;
	pthread_mutex_lock(&rt->lock);
	p->d = rt->cfg.delivery;
	pthread_mutex_unlock(&rt->lock);
	p->multi = curl_multi_init();
	p->agents = calloc(MAX_AGENTS_PER_PASS, sizeof(*p->agents));
	if (!p->multi || !p->agents) {
		if (p->multi)
			curl_multi_cleanup(p->multi);
		free(p->agents);
		free(p);
		return -ENOMEM;
	}
	curl_multi_setopt(p->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)p->d.connection_pool_size);
	pthread_mutex_init(&p->lock, NULL);
	heap_init(&p->retries, due_cmp, due_idx);
	rc = pthread_create(&p->thread, NULL, engine_main, p);
	if (rc) {
		curl_multi_cleanup(p->multi);
		free(p->agents);
		free(p);
		return -rc;
	}
	pthread_mutex_lock(&rt->lock);
	rt->push_ctx = p;
	rt->push_wake = wake;
	pthread_mutex_unlock(&rt->lock);
	*out = p;
	return 0;
}

void push_stop(struct push *p)
{
	struct pstate *s;
	struct preq *r;

	if (!p)
		return;
	pthread_mutex_lock(&p->rt->lock);
	p->rt->push_wake = NULL;
	pthread_mutex_unlock(&p->rt->lock);
	atomic_store(&p->stop, 1);
	curl_multi_wakeup(p->multi);
	pthread_join(p->thread, NULL);
	/* abandon what is in flight: the messages stay stored */
	while ((r = p->active)) {
		p->active = r->next;
		curl_multi_remove_handle(p->multi, r->easy);
		preq_free(r);
	}
	while ((r = heap_pop(&p->retries)))
		preq_free(r);
	heap_free(&p->retries);
	curl_multi_cleanup(p->multi);
	while ((s = p->states) != NULL) {
		HASH_DEL(p->states, s); /* NOLINT(clang-analyzer-unix.Malloc): uthash resets the head */
		free(s);
	}
	pthread_mutex_destroy(&p->lock);
	free(p->agents);
	free(p);
}

int push_collect_metrics(struct buf *out, void *arg)
{
	struct push *p = arg;
	struct pstate *s, *tmp;
	int rc =
		met_write_header(out, "switchboard_router_circuit_breaker_state",
				 "Circuit breaker of a push agent's endpoint: 0 closed, 1 half-open, 2 open.", "gauge");

	pthread_mutex_lock(&p->lock);
	HASH_ITER (hh, p->states, s, tmp) {
		struct buf l;

		if (rc)
			break;
		buf_init(&l, 4096);
		rc = met_label(&l, "agent", s->id);
		if (!rc)
			rc = met_label(&l, "endpoint", s->endpoint);
		if (!rc)
			rc = met_write_sample(out, "switchboard_router_circuit_breaker_state", buf_str(&l), s->breaker);
		buf_free(&l);
	}
	pthread_mutex_unlock(&p->lock);
	return rc;
}
