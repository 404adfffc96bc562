/*
 * The deduplication window: every message_id accepted within
 * delivery.dedupWindowMs, with its receiver, in a hash for lookups and a
 * list in age order for pruning.  A resubmission of an id in the window is a
 * duplicate and stores nothing.  The window is rebuilt from the store's
 * accepted_log at start.  Callers hold rt->lock.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "rt_int.h"

/* --- deduplication window -------------------------------------------------- */

struct rt_dedup *rt_dedup_find(struct rt *rt, const char *id)
{
	struct rt_dedup *d;

	HASH_FIND_STR(rt->dedup, id, d);
	return d;
}

void rt_dedup_unlink(struct rt *rt, struct rt_dedup *d)
{
	HASH_DEL(rt->dedup, d);
	if (d->older)
		d->older->newer = d->newer;
	else
		rt->dedup_oldest = d->newer;
	if (d->newer)
		d->newer->older = d->older;
	else
		rt->dedup_newest = d->older;
	rt->ndedup--;
	free(d);
}

struct rt_dedup *rt_dedup_add(struct rt *rt, const char *id, const char *receiver, uint64_t seq, int64_t accepted_ms,
			      int committed)
{
	size_t il = strlen(id) + 1, rl = strlen(receiver) + 1;
	struct rt_dedup *d;

	if (rt->cfg.delivery.dedup_window_ms == 0)
		return NULL;
	d = calloc(1, sizeof(*d) + il + rl);
	if (!d)
		return NULL;
	d->message_id = (char *)(d + 1);
	memcpy(d->message_id, id, il);
	d->receiver = d->message_id + il;
	memcpy(d->receiver, receiver, rl);
	d->seq = seq;
	d->accepted_ms = accepted_ms;
	d->committed = committed;
	d->older = rt->dedup_newest;
	if (rt->dedup_newest)
		rt->dedup_newest->newer = d;
	else
		rt->dedup_oldest = d;
	rt->dedup_newest = d;
	HASH_ADD_KEYPTR(hh, rt->dedup, d->message_id, il - 1, d);
	rt->ndedup++;
	return d;
}

/* Remove the oldest entry; the list must not be empty. */
static void dedup_pop_oldest(struct rt *rt)
{
	struct rt_dedup *d = rt->dedup_oldest;

	rt->dedup_oldest = d->newer;
	if (d->newer)
		d->newer->older = NULL;
	else
		rt->dedup_newest = NULL;
	HASH_DEL(rt->dedup, d); /* NOLINT(clang-analyzer-core.NullDereference): d is in the table */
	rt->ndedup--;
	free(d);
}

void rt_dedup_prune(struct rt *rt, int64_t now_ms)
{
	int64_t cutoff = now_ms - rt->cfg.delivery.dedup_window_ms;
	const struct rt_dedup *d;

	while ((d = rt->dedup_oldest) != NULL && d->committed &&
	       (d->accepted_ms < cutoff || rt->ndedup > rt->ndedup_max))
		dedup_pop_oldest(rt);
}

void rt_dedup_clear(struct rt *rt)
{
	while (rt->dedup_oldest)
		dedup_pop_oldest(rt);
}

int rt_recover_dedup(void *ctx, const char *message_id, const char *receiver, uint64_t seq, int64_t accepted_ms)
{
	struct rt *rt = ctx;

	if (message_id && receiver && !rt_dedup_find(rt, message_id))
		rt_dedup_add(rt, message_id, receiver, seq, accepted_ms, 1);
	return 0;
}
