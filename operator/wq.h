/*
 * wq: the reconcile work queue.  Keys ("routerconfig/ns/name") are
 * deduplicated: adding a key that is already waiting keeps one entry, due
 * at the earlier of the two times.  Debounced adds wait for a quiet period
 * (bounded by a maximum wait), so a burst of events becomes one reconcile
 * however long the burst takes.  A key is never handed out twice at once;
 * one added while it is being processed runs again afterwards.  Failures
 * back off per key exponentially (250 ms doubling to 60 s) and successes
 * reset the backoff.
 */
#ifndef SWITCHBOARD_WQ_H
#define SWITCHBOARD_WQ_H

#include <stddef.h>
#include <stdint.h>

#include "switchboard/common.h"

#define WQ_KEY_MAX 600

struct wq;

/* Create an empty queue, or return -ENOMEM. */
int wq_new(struct wq **out) SB_MUST_CHECK;
void wq_free(struct wq *q);

/* Make `key` (copied) due in `delay_ms` (0: now).  Returns 0 or -ENOMEM.
 * Thread-safe. */
int wq_add(struct wq *q, const char *key, int64_t delay_ms) SB_MUST_CHECK;

/* Debounce `key` (copied): due once no further wq_debounce() of it has come
 * for `quiet_ms`, but at most `max_ms` after the first of the burst, so a
 * steady stream of edits still reconciles.  A key already due sooner for
 * another reason (wq_add(), a retry) keeps its time.  Returns 0, -E2BIG or
 * -ENOMEM.  Thread-safe. */
int wq_debounce(struct wq *q, const char *key, int64_t quiet_ms, int64_t max_ms) SB_MUST_CHECK;

/* Wait up to `timeout_ms` for a due key and copy it into `key`.  Returns 0,
 * -ETIMEDOUT, or -ECANCELED after wq_shutdown().  The caller must call
 * wq_done() for the key.  Thread-safe. */
int wq_get(struct wq *q, char key[WQ_KEY_MAX], int timeout_ms) SB_MUST_CHECK;

/* Finish processing `key`.  With `failed` the key comes back after its
 * backoff; otherwise its backoff is reset, and it comes back after
 * `requeue_ms` when that is positive.  Thread-safe. */
void wq_done(struct wq *q, const char *key, int failed, int64_t requeue_ms);

/* Wake every waiter; wq_get() then returns -ECANCELED.  Thread-safe. */
void wq_shutdown(struct wq *q);

/* Keys waiting (due or not).  Thread-safe. */
size_t wq_len(struct wq *q);

#endif
