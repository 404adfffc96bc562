/*
 * Array-backed binary heap with index tracking.
 */
#include "switchboard/heap.h"

#include <errno.h>
#include <stdlib.h>

void heap_init(struct heap *h, heap_cmp_fn cmp, heap_index_fn set_index)
{
	h->v = NULL;
	h->n = h->cap = 0;
	h->cmp = cmp;
	h->set_index = set_index;
}

void heap_free(struct heap *h)
{
	free(h->v);
	h->v = NULL;
	h->n = h->cap = 0;
}

static void place(struct heap *h, size_t i, void *e)
{
	h->v[i] = e;
	if (h->set_index)
		h->set_index(e, i);
}

static void sift_up(struct heap *h, size_t i)
{
	void *e = h->v[i];

	while (i > 0) {
		size_t p = (i - 1) / 2;

		if (h->cmp(e, h->v[p]) >= 0)
			break;
		place(h, i, h->v[p]);
		i = p;
	}
	place(h, i, e);
}

static void sift_down(struct heap *h, size_t i)
{
	void *e = h->v[i];

	for (;;) {
		size_t l = 2 * i + 1, m = i;
		void *best = e;

		if (l < h->n && h->cmp(h->v[l], best) < 0) {
			m = l;
			best = h->v[l];
		}
		if (l + 1 < h->n && h->cmp(h->v[l + 1], best) < 0)
			m = l + 1;
		if (m == i)
			break;
		place(h, i, h->v[m]);
		i = m;
	}
	place(h, i, e);
}

int heap_push(struct heap *h, void *e)
{
	if (h->n == h->cap) {
		size_t nc = h->cap ? h->cap * 2 : 16;
		void **p = realloc(h->v, nc * sizeof(*p));

		if (!p)
			return -ENOMEM;
		h->v = p;
		h->cap = nc;
	}
	h->v[h->n++] = e;
	sift_up(h, h->n - 1);
	return 0;
}

void heap_remove(struct heap *h, size_t idx)
{
	void *gone;

	if (idx >= h->n)
		return;
	gone = h->v[idx];
	h->n--;
	if (idx != h->n) {
		h->v[idx] = h->v[h->n];
		heap_fix(h, idx);
	}
	if (h->set_index)
		h->set_index(gone, HEAP_NOT_IN);
}

void *heap_pop(struct heap *h)
{
	void *top = heap_peek(h);

	if (top)
		heap_remove(h, 0);
	return top;
}

void heap_fix(struct heap *h, size_t idx)
{
	if (idx >= h->n)
		return;
	if (idx > 0 && h->cmp(h->v[idx], h->v[(idx - 1) / 2]) < 0)
		sift_up(h, idx);
	else
		sift_down(h, idx);
}
