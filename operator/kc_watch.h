/*
 * kc_watch: informers.  An informer lists a collection, then watches it
 * with bookmarks, keeping an in-memory cache of the objects keyed by
 * "namespace/name".  Watch events are framed line by line as they arrive.
 * A closed stream is resumed from the last resourceVersion with backoff; a
 * 410 Gone (the version was compacted away) triggers a relist whose result
 * is diffed against the cache, so handlers see every add, change and delete
 * they missed.  Handlers run on the informer's thread, after the cache is
 * updated, without any lock held.
 */
#ifndef SWITCHBOARD_KC_WATCH_H
#define SWITCHBOARD_KC_WATCH_H

#include <jansson.h>

#include "kc.h"
#include "switchboard/common.h"
#include "switchboard/met.h"

enum kc_event { KC_ADDED, KC_MODIFIED, KC_DELETED };

/* `old` is NULL for KC_ADDED; `nw` is the last known object for KC_DELETED.
 * Both are borrowed for the call. */
typedef void (*kc_event_fn)(int type, const json_t *old, const json_t *nw, void *ctx);

struct kc_informer_opts {
	const char *name;	    /* for logs and metrics, e.g. "agents" */
	const char *path;	    /* collection URL, e.g. /apis/g/v/namespaces/ns/agents */
	const char *label_selector; /* may be NULL */
	kc_event_fn fn;
	void *ctx;
	struct met_counter *restarts; /* may be NULL: watch (re)connects */
	struct met_counter *relists;  /* may be NULL: lists after the first */
};

struct kc_informer;

/* Start the informer's thread.  The options' strings are copied.  Returns 0
 * and stores the informer in *out, or -errno. */
int kc_informer_start(struct kc *k, const struct kc_informer_opts *o, struct kc_informer **out) SB_MUST_CHECK;

/* Stop the thread (within about a second) and free the cache. */
void kc_informer_stop(struct kc_informer *inf);

/* 1 once the first list has been loaded.  Thread-safe. */
int kc_informer_synced(struct kc_informer *inf);

/* The cached object (a new reference; treat it as read-only), or NULL.
 * Thread-safe. */
json_t *kc_informer_get(struct kc_informer *inf, const char *ns, const char *name);

/* Every cached object, as a new array of references (read-only objects),
 * or NULL on ENOMEM.  Thread-safe. */
json_t *kc_informer_list(struct kc_informer *inf);

/* Number of cached objects.  Thread-safe. */
size_t kc_informer_size(struct kc_informer *inf);

/* "namespace/name" of an object into `out`; returns 0 or -EINVAL when the
 * object has no name. */
int kc_obj_key(const json_t *obj, char *out, size_t outlen) SB_MUST_CHECK;

#endif
