/*
 * met: a Prometheus metrics registry (text exposition format 0.0.4).
 * Counters, gauges and histograms are registered once at start, then
 * updated lock-free with atomics from any thread.  Collectors add series
 * computed at scrape time (queue depths, database size).  Series of one
 * family share a single HELP/TYPE header.
 */
#ifndef SWITCHBOARD_MET_H
#define SWITCHBOARD_MET_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "switchboard/buf.h"
#include "switchboard/common.h"

struct met_registry;

struct met_counter {
	_Atomic uint64_t v;
};

struct met_gauge {
	_Atomic uint64_t bits; /* a double */
};

#define MET_MAX_BUCKETS 24

struct met_histogram {
	double bounds[MET_MAX_BUCKETS];
	size_t nbounds;
	_Atomic uint64_t counts[MET_MAX_BUCKETS + 1]; /* last: +Inf */
	_Atomic uint64_t count;
	_Atomic uint64_t sum_bits; /* a double */
};

/* A collector writes extra series at scrape time with the met_write_*
 * helpers.  It runs on the scraping thread and must be thread-safe. */
typedef int (*met_collect_fn)(struct buf *out, void *ctx);

/* Create an empty registry, or NULL on ENOMEM. */
struct met_registry *met_new(void);

/* Free the registry and every metric it owns. */
void met_free(struct met_registry *r);

/* Register a series.  `name` and `help` must be string literals or outlive
 * the registry; `labels` is copied, e.g. `reason="timeout"` or NULL.
 * Returns the metric or NULL on ENOMEM.  Not thread-safe: call at start. */
struct met_counter *met_counter_add(struct met_registry *r, const char *name, const char *help, const char *labels);
struct met_gauge *met_gauge_add(struct met_registry *r, const char *name, const char *help, const char *labels);
/* `bounds` are ascending upper bounds (at most MET_MAX_BUCKETS). */
struct met_histogram *met_histogram_add(struct met_registry *r, const char *name, const char *help, const char *labels,
					const double *bounds, size_t nbounds);

/* Register a collector (ctx borrowed).  Returns 0 or -ENOMEM. */
int met_collector_add(struct met_registry *r, met_collect_fn fn, void *ctx) SB_MUST_CHECK;

/* Thread-safe updates. */
static inline void met_inc(struct met_counter *c)
{
	if (c)
		atomic_fetch_add_explicit(&c->v, 1, memory_order_relaxed);
}
static inline void met_add(struct met_counter *c, uint64_t n)
{
	if (c)
		atomic_fetch_add_explicit(&c->v, n, memory_order_relaxed);
}
void met_gauge_set(struct met_gauge *g, double v);
void met_observe(struct met_histogram *h, double v);

/* Observations of one histogram gathered without atomics, e.g. on the stack
 * of a loop, and added to it at once by met_hist_batch_flush(): the counts
 * met_observe() on each would give, and the same sum up to the rounding of
 * adding it in another order.  A batch belongs to one thread. */
struct met_hist_batch {
	struct met_histogram *h; /* NULL: observations go nowhere, as with met_observe(NULL, ...) */
	uint64_t n;
	double sum;
	size_t last; /* the bucket of the last observation: a batch's values tend to share one */
	uint64_t counts[MET_MAX_BUCKETS + 1];
};

/* An empty batch for `h` (borrowed; may be NULL). */
void met_hist_batch_init(struct met_hist_batch *b, struct met_histogram *h);

static inline void met_hist_batch_add(struct met_hist_batch *b, double v)
{
	const struct met_histogram *h = b->h;
	size_t i = b->last;

	if (!h)
		return;
	if ((i == h->nbounds || v <= h->bounds[i]) && (i == 0 || v > h->bounds[i - 1])) {
		b->counts[i]++; /* the same bucket as the last one */
	} else {
		for (i = 0; i < h->nbounds && v > h->bounds[i]; i++)
			;
		b->counts[i]++;
		b->last = i;
	}
	b->n++;
	b->sum += v;
}

/* Add the batch to its histogram (thread-safe against every other update)
 * and empty it. */
void met_hist_batch_flush(struct met_hist_batch *b);

/* Read a counter (for tests and status). */
uint64_t met_counter_get(const struct met_counter *c);

/* Render every family and collector.  Returns 0 or a buf error. */
int met_render(struct met_registry *r, struct buf *out) SB_MUST_CHECK;

/* Helpers for collectors. */
int met_write_header(struct buf *out, const char *name, const char *help, const char *type) SB_MUST_CHECK;
int met_write_sample(struct buf *out, const char *name, const char *labels, double v) SB_MUST_CHECK;

/* Append the label `key="value"` (value escaped) to `labels`, with a comma
 * first when `labels` is not empty.  Returns 0 or a buf error. */
int met_label(struct buf *labels, const char *key, const char *value) SB_MUST_CHECK;

#define MET_LABEL_VALUE_MAX 256 /* bytes of a label value kept; a longer one ends in "..." */

/* Append `s` escaped as a label value (without quotes): at most
 * MET_LABEL_VALUE_MAX bytes of it, cut on a character boundary, with any
 * byte that is not UTF-8 replaced by U+FFFD. */
int met_escape_label(struct buf *out, const char *s) SB_MUST_CHECK;

#endif
