/*
 * kc_watch: list + watch loop feeding a uthash cache.  See kc_watch.h.
 */
#include "kc_watch.h"

#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uthash.h>

#include "switchboard/buf.h"
#include "switchboard/log.h"
#include "switchboard/util.h"

#define WATCH_MAX_LINE	(16u << 20) /* one event: an object is at most ~1.5 MiB in etcd */
#define WATCH_TIMEOUT_S 300

/* Objects are cached as compact JSON text, parsed when read: a jansson
 * tree costs several times its text in allocations, and 10,000 Agents
 * must fit in a few MiB. */
struct entry {
	char *key;
	char *text;
	char rv[32];
	UT_hash_handle hh;
};

struct kc_informer {
	struct kc *k;
	char *name, *path, *selector;
	kc_event_fn fn;
	void *ctx;
	struct met_counter *restarts, *relists;
	pthread_t thread;
	pthread_mutex_t lock; /* cache */
	struct entry *cache;
	char rv[64];
	atomic_int synced;
	volatile int stop;
	int need_list;
};

int kc_obj_key(const json_t *obj, char *out, size_t outlen)
{
	const json_t *md = json_object_get(obj, "metadata");
	const char *ns = json_string_value(json_object_get(md, "namespace"));
	const char *name = json_string_value(json_object_get(md, "name"));

	if (!name)
		return -EINVAL;
	snprintf(out, outlen, "%s/%s", ns ? ns : "", name);
	return 0;
}

static const char *obj_rv(const json_t *obj)
{
	const char *rv = json_string_value(json_object_get(json_object_get(obj, "metadata"), "resourceVersion"));

	return rv ? rv : "";
}

/* Cached objects drop managedFields and kubectl's last-applied copy of
 * the whole object: large, and never read here. */
static void slim(json_t *obj)
{
	json_t *md = json_object_get(obj, "metadata");

	json_object_del(md, "managedFields");
	json_object_del(json_object_get(md, "annotations"), "kubectl.kubernetes.io/last-applied-configuration");
}

static void entry_free(struct entry *e)
{
	free(e->key);
	free(e->text);
	free(e);
}

/* Store `obj` (borrowed, slimmed in place) in `e`.  Returns 0 or -ENOMEM. */
static int entry_set(struct entry *e, json_t *obj)
{
	char *text;

	slim(obj);
	text = json_dumps(obj, JSON_COMPACT);
	if (!text)
		return -ENOMEM;
	free(e->text);
	e->text = text;
	snprintf(e->rv, sizeof(e->rv), "%s", obj_rv(obj));
	return 0;
}

static json_t *entry_obj(const struct entry *e)
{
	return e && e->text ? json_loads(e->text, 0, NULL) : NULL;
}

/* Put `obj` (reference taken) in the cache; returns the previous object
 * (a new reference the caller drops, or NULL) through *old. */
static int cache_put(struct kc_informer *inf, json_t *obj, json_t **old)
{
	char key[600];
	struct entry *e;
	int rc = kc_obj_key(obj, key, sizeof(key));

	*old = NULL;
	if (rc)
		goto out;
	pthread_mutex_lock(&inf->lock);
	HASH_FIND_STR(inf->cache, key, e);
	if (e) {
		*old = entry_obj(e);
		rc = entry_set(e, obj);
	} else {
		e = calloc(1, sizeof(*e));
		if (e)
			e->key = strdup(key);
		rc = e && e->key ? entry_set(e, obj) : -ENOMEM;
		if (rc) {
			if (e)
				free(e->key);
			free(e);
		} else {
			HASH_ADD_KEYPTR(hh, inf->cache, e->key, strlen(e->key), e);
		}
	}
	pthread_mutex_unlock(&inf->lock);
out:
	json_decref(obj);
	return rc;
}

static json_t *cache_del(struct kc_informer *inf, const json_t *obj)
{
	char key[600];
	struct entry *e;
	json_t *old = NULL;

	if (kc_obj_key(obj, key, sizeof(key)))
		return NULL;
	pthread_mutex_lock(&inf->lock);
	HASH_FIND_STR(inf->cache, key, e);
	if (e) {
		HASH_DEL(inf->cache, e);
		old = entry_obj(e);
		entry_free(e);
	}
	pthread_mutex_unlock(&inf->lock);
	return old;
}

/* Replace the cache with a fresh list, reporting the difference. */
static int relist(struct kc_informer *inf)
{
	struct kc_status st;
	json_t *items = NULL, *item;
	struct entry *fresh = NULL, *e, *tmp;
	size_t i;
	int rc;

	rc = kc_list(inf->k, inf->path, inf->selector, &items, inf->rv, &st);
	if (rc) {
		log_warn("list failed", "resource", inf->name, "reason", st.reason, "detail", st.message);
		return rc;
	}
	json_array_foreach (items, i, item) {
		char key[600];
		struct entry *n;

		if (kc_obj_key(item, key, sizeof(key)))
			continue;
		n = calloc(1, sizeof(*n));
		if (n)
			n->key = strdup(key);
		if (!n || !n->key || entry_set(n, item)) {
			if (n)
				free(n->key);
			free(n);
			rc = -ENOMEM;
			goto out;
		}
		HASH_ADD_KEYPTR(hh, fresh, n->key, strlen(n->key), n);
	}
	pthread_mutex_lock(&inf->lock);
	tmp = inf->cache;
	inf->cache = fresh;
	fresh = tmp; /* now the old cache */
	pthread_mutex_unlock(&inf->lock);
	/* report: deletions (old not in new), additions and changes */
	HASH_ITER (hh, fresh, e, tmp) {
		struct entry *n;

		pthread_mutex_lock(&inf->lock);
		HASH_FIND_STR(inf->cache, e->key, n);
		pthread_mutex_unlock(&inf->lock);
		if (!n) {
			json_t *o = entry_obj(e);

			if (o)
				inf->fn(KC_DELETED, o, o, inf->ctx);
			json_decref(o);
		}
	}
	json_array_foreach (items, i, item) {
		char key[600];
		struct entry *o = NULL;

		if (kc_obj_key(item, key, sizeof(key)))
			continue;
		HASH_FIND_STR(fresh, key, o);
		if (!o)
			inf->fn(KC_ADDED, NULL, item, inf->ctx);
		else if (strcmp(o->rv, obj_rv(item)) != 0) {
			json_t *prev = entry_obj(o);

			inf->fn(KC_MODIFIED, prev, item, inf->ctx);
			json_decref(prev);
		}
	}
out:
	HASH_ITER (hh, fresh, e, tmp) {
		HASH_DEL(fresh, e);
		entry_free(e);
	}
	json_decref(items);
	return rc;
}

static int on_line(const char *line, size_t len, void *ctx)
{
	struct kc_informer *inf = ctx;
	json_error_t je;
	json_t *ev = json_loadb(line, len, 0, &je), *obj, *old = NULL;
	const char *type = json_string_value(json_object_get(ev, "type"));
	int rc = 0;

	obj = json_object_get(ev, "object");
	if (!ev || !type || !json_is_object(obj)) {
		log_warn("malformed watch event; reconnecting", "resource", inf->name, "detail",
			 ev ? "missing type or object" : je.text);
		json_decref(ev);
		return -EBADMSG;
	}
	if (strcmp(type, "ERROR") == 0) {
		json_int_t code = json_integer_value(json_object_get(obj, "code"));

		log_info("watch error event", "resource", inf->name, "detail",
			 json_string_value(json_object_get(obj, "message")));
		json_decref(ev);
		return code == 410 ? -ESTALE : -EPROTO;
	}
	snprintf(inf->rv, sizeof(inf->rv), "%s", obj_rv(obj));
	if (strcmp(type, "BOOKMARK") == 0) {
		json_decref(ev);
		return 0;
	}
	if (strcmp(type, "DELETED") == 0) {
		old = cache_del(inf, obj);
		inf->fn(KC_DELETED, old ? old : obj, obj, inf->ctx);
	} else if (strcmp(type, "ADDED") == 0 || strcmp(type, "MODIFIED") == 0) {
		rc = cache_put(inf, json_incref(obj), &old);
		if (!rc)
			inf->fn(old ? KC_MODIFIED : KC_ADDED, old, obj, inf->ctx);
	}
	json_decref(old);
	json_decref(ev);
	return rc;
}

static void pause_ms(struct kc_informer *inf, unsigned ms)
{
	for (unsigned t = 0; t < ms && !inf->stop; t += 100)
		usleep(100 * 1000);
}

static void *informer_main(void *arg)
{
	struct kc_informer *inf = arg;
	unsigned backoff = 250;
	struct buf url;

	buf_init(&url, 16384);
	while (!inf->stop) {
		struct kc_status st;
		int rc;

		if (inf->need_list) {
			if (relist(inf)) {
				pause_ms(inf, backoff);
				backoff = backoff < 30000 ? backoff * 2 : 30000;
				continue;
			}
			if (atomic_exchange(&inf->synced, 1))
				met_inc(inf->relists);
			inf->need_list = 0;
		}
		buf_reset(&url);
		rc = buf_printf(&url, "%s%cwatch=1&allowWatchBookmarks=true&timeoutSeconds=%u&resourceVersion=%s",
				inf->path, strchr(inf->path, '?') ? '&' : '?',
				WATCH_TIMEOUT_S + randombytes_uniform(60), inf->rv);
		if (!rc && inf->selector) {
			rc = buf_puts(&url, "&labelSelector=");
			if (!rc)
				rc = kc_urlenc(&url, inf->selector);
		}
		if (rc)
			break;
		met_inc(inf->restarts);
		rc = kc_stream(inf->k, buf_str(&url), WATCH_MAX_LINE, on_line, inf, &inf->stop, &st);
		if (rc == -ECANCELED || inf->stop)
			break;
		if (rc == -ESTALE) {
			log_info("watch expired (410 Gone): relisting", "resource", inf->name);
			inf->need_list = 1;
			backoff = 250;
			continue;
		}
		if (rc == 0) {
			backoff = 250; /* normal end of a watch: resume at once */
			continue;
		}
		log_warn("watch failed; resuming with backoff", "resource", inf->name, "reason", st.reason, "detail",
			 st.message);
		if (rc == -EBADMSG || rc == -E2BIG || rc == -EPROTO)
			inf->need_list = 1;
		pause_ms(inf, backoff);
		backoff = backoff < 30000 ? backoff * 2 : 30000;
	}
	buf_free(&url);
	kc_thread_done();
	return NULL;
}

int kc_informer_start(struct kc *k, const struct kc_informer_opts *o, struct kc_informer **out)
{
	struct kc_informer *inf = calloc(1, sizeof(*inf));
	int rc;

	if (!inf)
		return -ENOMEM;
	inf->k = k;
	inf->name = strdup(o->name);
	inf->path = strdup(o->path);
	inf->selector = o->label_selector ? strdup(o->label_selector) : NULL;
	inf->fn = o->fn;
	inf->ctx = o->ctx;
	inf->restarts = o->restarts;
	inf->relists = o->relists;
	inf->need_list = 1;
	pthread_mutex_init(&inf->lock, NULL);
	if (!inf->name || !inf->path || (o->label_selector && !inf->selector)) {
		rc = -ENOMEM;
		goto fail;
	}
	rc = -pthread_create(&inf->thread, NULL, informer_main, inf);
	if (rc)
		goto fail;
	*out = inf;
	return 0;
fail:
	free(inf->name);
	free(inf->path);
	free(inf->selector);
	pthread_mutex_destroy(&inf->lock);
	free(inf);
	return rc;
}

void kc_informer_stop(struct kc_informer *inf)
{
	struct entry *e, *tmp;

	if (!inf)
		return;
	inf->stop = 1;
	pthread_join(inf->thread, NULL);
	HASH_ITER (hh, inf->cache, e, tmp) {
		HASH_DEL(inf->cache, e); /* NOLINT(clang-analyzer-unix.Malloc): uthash resets the head */
		entry_free(e);
	}
	free(inf->name);
	free(inf->path);
	free(inf->selector);
	pthread_mutex_destroy(&inf->lock);
	free(inf);
}

int kc_informer_synced(struct kc_informer *inf)
{
	return atomic_load(&inf->synced);
}

json_t *kc_informer_get(struct kc_informer *inf, const char *ns, const char *name)
{
	char key[600];
	struct entry *e;
	json_t *obj = NULL;

	snprintf(key, sizeof(key), "%s/%s", ns ? ns : "", name);
	pthread_mutex_lock(&inf->lock);
	HASH_FIND_STR(inf->cache, key, e);
	if (e)
		obj = entry_obj(e);
	pthread_mutex_unlock(&inf->lock);
	return obj;
}

json_t *kc_informer_list(struct kc_informer *inf)
{
	json_t *arr = json_array();
	struct entry *e, *tmp;

	if (!arr)
		return NULL;
	pthread_mutex_lock(&inf->lock);
	HASH_ITER (hh, inf->cache, e, tmp) {
		if (json_array_append_new(arr, entry_obj(e))) {
			json_decref(arr);
			arr = NULL;
			break;
		}
	}
	pthread_mutex_unlock(&inf->lock);
	return arr;
}

size_t kc_informer_size(struct kc_informer *inf)
{
	size_t n;

	pthread_mutex_lock(&inf->lock);
	n = HASH_COUNT(inf->cache);
	pthread_mutex_unlock(&inf->lock);
	return n;
}
