/*
 * wq: deduplicating delayed work queue with per-key backoff (see wq.h).
 * Entries live in one uthash table; the next due key is found by a scan,
 * which is cheap at the sizes an operator handles (thousands of keys).
 */
#include "wq.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uthash.h>

#include "switchboard/util.h"

#define BACKOFF_BASE_MS 250
#define BACKOFF_MAX_MS	60000

struct item {
	char key[WQ_KEY_MAX];
	int64_t due_ms;	  /* valid while queued */
	int64_t first_ms; /* when a debounced burst began; valid while `debounced` */
	int queued;
	int debounced; /* queued only by wq_debounce(): later events may postpone it */
	int processing;
	int failures;
	UT_hash_handle hh;
};

struct wq {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct item *items;
	size_t queued;
	int shutdown;
};

static int64_t mono_ms(void)
{
	return (int64_t)(util_mono_ns() / 1000000u);
}

int wq_new(struct wq **out)
{
	struct wq *q = calloc(1, sizeof(*q));
	pthread_condattr_t a;

	if (!q)
		return -ENOMEM;
	pthread_mutex_init(&q->lock, NULL);
	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(&q->cond, &a);
	pthread_condattr_destroy(&a);
	*out = q;
	return 0;
}

void wq_free(struct wq *q)
{
	struct item *it, *tmp;

	if (!q)
		return;
	HASH_ITER (hh, q->items, it, tmp) {
		HASH_DEL(q->items, it); /* NOLINT(clang-analyzer-unix.Malloc): uthash resets the head */
		free(it);
	}
	pthread_cond_destroy(&q->cond);
	pthread_mutex_destroy(&q->lock);
	free(q);
}

/* Queue `it` due at `due`, keeping an earlier due time.  Lock held. */
static void schedule(struct wq *q, struct item *it, int64_t due)
{
	if (!it->queued) {
		it->queued = 1;
		it->due_ms = due;
		q->queued++;
	} else if (due < it->due_ms) {
		it->due_ms = due;
	}
	it->debounced = 0;
	pthread_cond_broadcast(&q->cond);
}

/* Find or create the entry for `key`.  Lock held. */
static int lookup(struct wq *q, const char *key, struct item **out)
{
	struct item *it;

	HASH_FIND_STR(q->items, key, it);
	if (!it) {
		it = calloc(1, sizeof(*it));
		if (!it)
			return -ENOMEM;
		strcpy(it->key, key);
		HASH_ADD_STR(q->items, key, it);
	}
	*out = it;
	return 0;
}

int wq_add(struct wq *q, const char *key, int64_t delay_ms)
{
	struct item *it;
	int rc;

	if (strlen(key) >= WQ_KEY_MAX)
		return -E2BIG;
	pthread_mutex_lock(&q->lock);
	rc = lookup(q, key, &it);
	if (rc == 0)
		schedule(q, it, mono_ms() + (delay_ms > 0 ? delay_ms : 0));
	pthread_mutex_unlock(&q->lock);
	return rc;
}

int wq_debounce(struct wq *q, const char *key, int64_t quiet_ms, int64_t max_ms)
{
	struct item *it;
	int64_t now;
	int rc;

	if (strlen(key) >= WQ_KEY_MAX)
		return -E2BIG;
	pthread_mutex_lock(&q->lock);
	rc = lookup(q, key, &it);
	if (rc)
		goto out;
	now = mono_ms();
	if (it->queued && it->debounced) {
		/* trailing edge: wait for `quiet_ms` of silence, but never
		 * longer than `max_ms` after the burst began */
		int64_t due = now + quiet_ms, cap = it->first_ms + (max_ms > quiet_ms ? max_ms : quiet_ms);

		it->due_ms = due < cap ? due : cap;
	} else if (!it->queued || it->due_ms > now + quiet_ms) {
		/* a burst begins; a key queued for later (a convergence poll, a
		 * retry's backoff) becomes due after the quiet period too */
		schedule(q, it, now + quiet_ms);
		it->debounced = 1;
		it->first_ms = now;
	} /* else due sooner for another reason (a resync): keep it */
out:
	pthread_mutex_unlock(&q->lock);
	return rc;
}

int wq_get(struct wq *q, char key[WQ_KEY_MAX], int timeout_ms)
{
	int64_t deadline = mono_ms() + timeout_ms;
	int rc = -ETIMEDOUT;

	pthread_mutex_lock(&q->lock);
	while (!q->shutdown) {
		struct item *it, *tmp, *best = NULL;
		int64_t now = mono_ms(), wake = deadline;
		struct timespec ts;

		HASH_ITER (hh, q->items, it, tmp) {
			if (!it->queued || it->processing)
				continue;
			if (!best || it->due_ms < best->due_ms)
				best = it;
		}
		if (best && best->due_ms <= now) {
			best->queued = 0;
			best->processing = 1;
			q->queued--;
			strcpy(key, best->key);
			rc = 0;
			break;
		}
		if (now >= deadline)
			break;
		if (best && best->due_ms < wake)
			wake = best->due_ms;
		ts = util_deadline(CLOCK_MONOTONIC, wake - now);
		pthread_cond_timedwait(&q->cond, &q->lock, &ts);
	}
	if (q->shutdown)
		rc = -ECANCELED;
	pthread_mutex_unlock(&q->lock);
	return rc;
}

void wq_done(struct wq *q, const char *key, int failed, int64_t requeue_ms)
{
	struct item *it;

	pthread_mutex_lock(&q->lock);
	HASH_FIND_STR(q->items, key, it);
	if (!it) {
		pthread_mutex_unlock(&q->lock);
		return;
	}
	it->processing = 0;
	if (failed) {
		int64_t delay = (int64_t)BACKOFF_BASE_MS << (it->failures < 8 ? it->failures : 8);

		if (delay > BACKOFF_MAX_MS)
			delay = BACKOFF_MAX_MS;
		it->failures++;
		schedule(q, it, mono_ms() + delay);
	} else {
		it->failures = 0;
		if (requeue_ms > 0)
			schedule(q, it, mono_ms() + requeue_ms);
	}
	if (!it->queued && !it->processing) {
		HASH_DEL(q->items, it);
		free(it);
	}
	pthread_cond_broadcast(&q->cond);
	pthread_mutex_unlock(&q->lock);
}

void wq_shutdown(struct wq *q)
{
	pthread_mutex_lock(&q->lock);
	q->shutdown = 1;
	pthread_cond_broadcast(&q->cond);
	pthread_mutex_unlock(&q->lock);
}

size_t wq_len(struct wq *q)
{
	size_t n;

	pthread_mutex_lock(&q->lock);
	n = q->queued;
	pthread_mutex_unlock(&q->lock);
	return n;
}
