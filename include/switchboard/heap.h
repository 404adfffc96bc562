/*
 * heap: a binary min-heap of pointers ordered by a caller's comparison.
 * Each element may record its own index (through `set_index`) so it can be
 * removed or re-prioritised in O(log n).  Used for conversation expiry,
 * lease expiry and per-agent delivery order.  Not thread-safe: the owner
 * serialises access.
 */
#ifndef SWITCHBOARD_HEAP_H
#define SWITCHBOARD_HEAP_H

#include <stddef.h>

#include "switchboard/common.h"

/* Return <0 when `a` must come out before `b`. */
typedef int (*heap_cmp_fn)(const void *a, const void *b);
/* Told each time an element moves; may be NULL. */
typedef void (*heap_index_fn)(void *elem, size_t idx);

struct heap {
	void **v;
	size_t n, cap;
	heap_cmp_fn cmp;
	heap_index_fn set_index;
};

#define HEAP_NOT_IN ((size_t)-1)

void heap_init(struct heap *h, heap_cmp_fn cmp, heap_index_fn set_index);
void heap_free(struct heap *h); /* frees the array, not the elements */

/* Insert `e` (borrowed; the heap never frees it).  0 or -ENOMEM. */
int heap_push(struct heap *h, void *e) SB_MUST_CHECK;

/* The smallest element, or NULL. */
static inline void *heap_peek(const struct heap *h)
{
	return h->n ? h->v[0] : NULL;
}

/* Remove and return the smallest element, or NULL. */
void *heap_pop(struct heap *h);

/* Remove the element at `idx` (as reported through set_index). */
void heap_remove(struct heap *h, size_t idx);

/* Restore order after the element at `idx` changed its key. */
void heap_fix(struct heap *h, size_t idx);

#endif
