/*
 * handoff: the worker that moves a lost agent's messages to its new owner,
 * and the bookkeeping of what moves when the assignment changes.  One job
 * per agent moving out; the worker takes a batch (a lease no consumer sees,
 * in queue order, so a conversation's messages leave in order), sends it,
 * deletes it only once the new owner answered 202 for every message, and
 * puts it back otherwise, to try again after a pause.  See handoff.h.
 */
#include "handoff.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <urcu-bp.h>

#include "fwd.h"
#include "peer.h"
#include "reload.h"
#include "switchboard/log.h"
#include "switchboard/own.h"
#include "switchboard/util.h"

#define HO_BATCH    256
#define HO_PAUSE_MS 200

struct ho_job {
	char agent[254];
	uint32_t owner; /* the new owner's ordinal */
};

struct ho {
	struct app *app;
	pthread_mutex_t lock; /* jobs */
	pthread_cond_t wake;
	struct ho_job *jobs;
	size_t njobs, cap;
	pthread_t thread;
	atomic_int stop;
};

static void pause_ms(struct ho *h, int64_t ms)
{
	struct timespec ts = {.tv_sec = 0, .tv_nsec = 50 * 1000000L};

	for (int64_t waited = 0; waited < ms && !atomic_load(&h->stop); waited += 50)
		nanosleep(&ts, NULL);
}

/* Send one batch; commit it on a 202 for every message, release it
 * otherwise.  Returns 0 when it left this router, -EAGAIN or -ENOMEM. */
static int send_batch(struct ho *h, struct rt_lease *l, const struct ho_job *j)
{
	struct buf body, attempts, header;
	struct peer_resp r;
	int rc;

	buf_init(&body, PEER_BODY_LIMIT);
	buf_init(&attempts, 1u << 16);
	buf_init(&header, 1u << 16);
	peer_resp_init(&r);
	rc = rt_handoff_body(h->app->rt, l, &body, &attempts);
	rc = rc ?: buf_printf(&header, "X-Switchboard-Attempts: %s", attempts.data ? attempts.data : "");
	if (!rc) {
		struct peer_req rq = {.method = "POST",
				      .path = "/peer/v1/handoff",
				      .ctype = "application/x-ndjson",
				      .body = body.data,
				      .len = body.len,
				      .header = header.data};

		rc = fwd_call(h->app, j->owner, &rq, &r);
	}
	if (!rc && r.status == 202) {
		rc = rt_handoff_commit(h->app->rt, l);
		if (rc == -ENOMEM) {
			rt_handoff_release(h->app->rt, l); /* sent again later: a duplicate there */
			rc = -EAGAIN;
		} else if (rc) {
			log_error("handed off, but the deletes could not be stored: they are handed off again "
				  "after a restart",
				  "agent_id", j->agent);
			rc = 0; /* they left: the new owner has them */
		}
	} else {
		rt_handoff_release(h->app->rt, l);
		if (!rc)
			log_info("handoff batch refused; retrying", "agent_id", j->agent, "detail",
				 r.status ? (r.body.data ? r.body.data : "") : r.error);
		rc = rc ?: -EAGAIN;
	}
	peer_resp_free(&r);
	buf_free(&header);
	buf_free(&attempts);
	buf_free(&body);
	return rc;
}

/* Tell the new owner everything has moved.  Returns 0 or -EAGAIN. */
static int send_done(struct ho *h, const struct ho_job *j)
{
	char path[400];
	struct peer_resp r;
	struct peer_req rq = {.method = "POST", .path = path, .ctype = "application/json", .body = "{}", .len = 2};
	int rc;

	snprintf(path, sizeof(path), "/peer/v1/handoff/done?agent=%s", j->agent);
	peer_resp_init(&r);
	rc = fwd_call(h->app, j->owner, &rq, &r);
	if (!rc && r.status != 200)
		rc = -EAGAIN;
	peer_resp_free(&r);
	return rc;
}

/* Move everything of one agent.  Returns 0 when it is done, -EAGAIN to try
 * again later. */
static int run_job(struct ho *h, const struct ho_job *j)
{
	while (!atomic_load(&h->stop)) {
		size_t left = 0;
		struct rt_lease *l = rt_handoff_take(h->app->rt, j->agent, HO_BATCH, &left);

		if (!l) {
			if (left)
				return -EAGAIN; /* still with a push endpoint, or being committed */
			return send_done(h, j);
		}
		if (send_batch(h, l, j))
			return -EAGAIN;
	}
	return -EAGAIN;
}

/* The first job, copied (0), or none (-ENOENT). */
static int first_job(struct ho *h, struct ho_job *out)
{
	int rc = -ENOENT;

	pthread_mutex_lock(&h->lock);
	if (h->njobs) {
		*out = h->jobs[0];
		rc = 0;
	}
	pthread_mutex_unlock(&h->lock);
	return rc;
}

/* Drop the job of `agent` if it still goes to `owner`; with `rotate`, move
 * it to the end instead (a job that must wait does not block the others). */
static void job_finish(struct ho *h, const struct ho_job *j, int rotate)
{
	pthread_mutex_lock(&h->lock);
	for (size_t i = 0; i < h->njobs; i++) {
		struct ho_job cur = h->jobs[i];

		if (strcmp(cur.agent, j->agent) != 0 || cur.owner != j->owner)
			continue;
		memmove(&h->jobs[i], &h->jobs[i + 1], (h->njobs - i - 1) * sizeof(*h->jobs));
		if (rotate)
			h->jobs[h->njobs - 1] = cur;
		else
			h->njobs--;
		break;
	}
	met_gauge_set(h->app->met.handoffs, (double)h->njobs);
	pthread_mutex_unlock(&h->lock);
}

static void *ho_main(void *arg)
{
	struct ho *h = arg;
	struct ho_job j;

	while (!atomic_load(&h->stop)) {
		if (first_job(h, &j)) {
			pause_ms(h, HO_PAUSE_MS);
			continue;
		}
		if (run_job(h, &j) == 0) {
			char owner[12];

			snprintf(owner, sizeof(owner), "%u", j.owner);
			log_info("handoff done", "agent_id", j.agent, "n:owner", owner);
			job_finish(h, &j, 0);
		} else {
			job_finish(h, &j, 1);
			pause_ms(h, HO_PAUSE_MS);
		}
	}
	return NULL;
}

int ho_start(struct app *app, struct ho **out)
{
	struct ho *h = calloc(1, sizeof(*h));
	int rc;

	*out = NULL;
	if (!h)
		return -ENOMEM;
	h->app = app;
	pthread_mutex_init(&h->lock, NULL);
	pthread_cond_init(&h->wake, NULL);
	rc = pthread_create(&h->thread, NULL, ho_main, h);
	if (rc) {
		pthread_mutex_destroy(&h->lock);
		pthread_cond_destroy(&h->wake);
		free(h);
		return -rc;
	}
	*out = h;
	return 0;
}

void ho_stop(struct ho *h)
{
	if (!h)
		return;
	atomic_store(&h->stop, 1);
	pthread_join(h->thread, NULL);
	pthread_mutex_destroy(&h->lock);
	pthread_cond_destroy(&h->wake);
	free(h->jobs);
	free(h);
}

size_t ho_in_progress(struct ho *h)
{
	size_t n;

	pthread_mutex_lock(&h->lock);
	n = h->njobs;
	pthread_mutex_unlock(&h->lock);
	return n;
}

/* Queue (or re-aim) the job of `agent`; owner UINT32_MAX drops it.
 * h->lock held.  Returns 0 or -ENOMEM. */
static int set_job(struct ho *h, const char *agent, uint32_t owner)
{
	for (size_t i = 0; i < h->njobs; i++) {
		if (strcmp(h->jobs[i].agent, agent) != 0)
			continue;
		if (owner == UINT32_MAX)
			memmove(&h->jobs[i], &h->jobs[i + 1], (--h->njobs - i) * sizeof(*h->jobs));
		else
			h->jobs[i].owner = owner;
		return 0;
	}
	if (owner == UINT32_MAX)
		return 0;
	if (h->njobs == h->cap) {
		size_t cap = h->cap ? h->cap * 2 : 16;
		struct ho_job *g = realloc(h->jobs, cap * sizeof(*g));

		if (!g)
			return -ENOMEM;
		h->jobs = g;
		h->cap = cap;
	}
	snprintf(h->jobs[h->njobs].agent, sizeof(h->jobs[0].agent), "%s", agent);
	h->jobs[h->njobs++].owner = owner;
	return 0;
}

/* The ids of the configured agents (heap array of heap strings), copied
 * out of the current snapshot, and the hold to give. */
static char **agent_ids(struct app *app, size_t *n, int64_t *hold_ms)
{
	const struct snap *s;
	char **ids;

	rcu_read_lock();
	s = rcu_dereference(app->snap);
	*n = s->cfg.nagents;
	*hold_ms = s->cfg.cluster.handoff_timeout_ms;
	ids = calloc(*n + 1, sizeof(*ids));
	for (size_t i = 0; ids && i < *n; i++) {
		ids[i] = strdup(s->cfg.agents[i].id);
		if (!ids[i]) {
			while (i--)
				free(ids[i]);
			free(ids);
			ids = NULL;
		}
	}
	rcu_read_unlock();
	return ids;
}

int ho_reassign(struct ho *h, uint32_t old_replicas, uint32_t new_replicas)
{
	uint32_t self = (uint32_t)h->app->cfg.cluster.ordinal;
	size_t n = 0;
	int64_t hold_ms = 0, until;
	char **ids = agent_ids(h->app, &n, &hold_ms);
	int rc = ids ? 0 : -ENOMEM;

	until = util_now_ms() + hold_ms;
	pthread_mutex_lock(&h->lock);
	for (size_t i = 0; !rc && i < n; i++) {
		uint32_t was = own_owner(ids[i], old_replicas), now = own_owner(ids[i], new_replicas);

		if (now == self) {
			rt_moving_out(h->app->rt, ids[i], 0);
			rc = set_job(h, ids[i], UINT32_MAX);
			if (was != self)
				rt_hold(h->app->rt, ids[i], until); /* its previous owner hands off first */
			continue;
		}
		if (was != self && !rt_depth(h->app->rt, ids[i]))
			continue; /* never here, nothing here */
		rt_moving_out(h->app->rt, ids[i], 1);
		rc = set_job(h, ids[i], now);
	}
	met_gauge_set(h->app->met.handoffs, (double)h->njobs);
	pthread_mutex_unlock(&h->lock);
	for (size_t i = 0; ids && i < n; i++)
		free(ids[i]);
	free(ids);
	return rc;
}
