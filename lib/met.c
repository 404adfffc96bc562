/*
 * Metrics registry.  Series are kept in registration order; consecutive
 * series with the same family name are rendered under one HELP/TYPE pair.
 * Values are atomics so updates never take a lock.
 */
#include "switchboard/met.h"
#include "switchboard/util.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum met_kind { K_COUNTER, K_GAUGE, K_HISTOGRAM };

struct met_series {
	int kind;
	const char *name;
	const char *help;
	char *labels;
	union {
		struct met_counter c;
		struct met_gauge g;
		struct met_histogram h;
	} u;
	struct met_series *next;
};

struct met_collector {
	met_collect_fn fn;
	void *ctx;
	struct met_collector *next;
};

struct met_registry {
	struct met_series *head, *tail;
	struct met_collector *chead, *ctail;
};

static uint64_t dbl_bits(double d)
{
	uint64_t u;

	memcpy(&u, &d, sizeof(u));
	return u;
}

static double bits_dbl(uint64_t u)
{
	double d;

	memcpy(&d, &u, sizeof(d));
	return d;
}

struct met_registry *met_new(void)
{
	return calloc(1, sizeof(struct met_registry));
}

void met_free(struct met_registry *r)
{
	if (!r)
		return;
	for (struct met_series *s = r->head, *n; s; s = n) {
		n = s->next;
		free(s->labels);
		free(s);
	}
	for (struct met_collector *c = r->chead, *n; c; c = n) {
		n = c->next;
		free(c);
	}
	free(r);
}

static struct met_series *series_add(struct met_registry *r, int kind, const char *name, const char *help,
				     const char *labels)
{
	struct met_series *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	if (labels && *labels) {
		s->labels = strdup(labels);
		if (!s->labels) {
			free(s);
			return NULL;
		}
	}
	s->kind = kind;
	s->name = name;
	s->help = help;
	/* keep a family's series together: insert after its last series */
	struct met_series *after = NULL;

	for (struct met_series *it = r->head; it; it = it->next)
		if (strcmp(it->name, name) == 0)
			after = it;
	if (after) {
		s->next = after->next;
		after->next = s;
		if (r->tail == after)
			r->tail = s;
	} else if (r->tail) {
		r->tail->next = s;
		r->tail = s;
	} else {
		r->head = r->tail = s;
	}
	return s;
}

struct met_counter *met_counter_add(struct met_registry *r, const char *name, const char *help, const char *labels)
{
	struct met_series *s = series_add(r, K_COUNTER, name, help, labels);

	return s ? &s->u.c : NULL;
}

struct met_gauge *met_gauge_add(struct met_registry *r, const char *name, const char *help, const char *labels)
{
	struct met_series *s = series_add(r, K_GAUGE, name, help, labels);

	return s ? &s->u.g : NULL;
}

struct met_histogram *met_histogram_add(struct met_registry *r, const char *name, const char *help, const char *labels,
					const double *bounds, size_t nbounds)
{
	struct met_series *s;

	if (nbounds > MET_MAX_BUCKETS)
		return NULL;
	s = series_add(r, K_HISTOGRAM, name, help, labels);
	if (!s)
		return NULL;
	memcpy(s->u.h.bounds, bounds, nbounds * sizeof(*bounds));
	s->u.h.nbounds = nbounds;
	return &s->u.h;
}

int met_collector_add(struct met_registry *r, met_collect_fn fn, void *ctx)
{
	struct met_collector *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	c->fn = fn;
	c->ctx = ctx;
	if (r->ctail)
		r->ctail->next = c;
	else
		r->chead = c;
	r->ctail = c;
	return 0;
}

void met_gauge_set(struct met_gauge *g, double v)
{
	if (g)
		atomic_store_explicit(&g->bits, dbl_bits(v), memory_order_relaxed);
}

void met_observe(struct met_histogram *h, double v)
{
	size_t i;
	uint64_t old, nw;

	if (!h)
		return;
	for (i = 0; i < h->nbounds && v > h->bounds[i]; i++)
		;
	atomic_fetch_add_explicit(&h->counts[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
	old = atomic_load_explicit(&h->sum_bits, memory_order_relaxed);
	do {
		nw = dbl_bits(bits_dbl(old) + v);
	} while (!atomic_compare_exchange_weak_explicit(&h->sum_bits, &old, nw, memory_order_relaxed,
							memory_order_relaxed));
}

void met_hist_batch_init(struct met_hist_batch *b, struct met_histogram *h)
{
	memset(b, 0, sizeof(*b));
	b->h = h;
}

void met_hist_batch_flush(struct met_hist_batch *b)
{
	struct met_histogram *h = b->h;
	uint64_t old, nw;

	if (!h || !b->n)
		return;
	for (size_t i = 0; i <= h->nbounds; i++)
		if (b->counts[i])
			atomic_fetch_add_explicit(&h->counts[i], b->counts[i], memory_order_relaxed);
	atomic_fetch_add_explicit(&h->count, b->n, memory_order_relaxed);
	old = atomic_load_explicit(&h->sum_bits, memory_order_relaxed);
	do {
		nw = dbl_bits(bits_dbl(old) + b->sum);
	} while (!atomic_compare_exchange_weak_explicit(&h->sum_bits, &old, nw, memory_order_relaxed,
							memory_order_relaxed));
	met_hist_batch_init(b, h);
}

uint64_t met_counter_get(const struct met_counter *c)
{
	return c ? atomic_load_explicit(&((struct met_counter *)c)->v, memory_order_relaxed) : 0;
}

int met_escape_label(struct buf *out, const char *s)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + strlen(s);
	size_t kept = 0;
	int rc = 0;

	while (!rc && p < end) {
		size_t n = util_utf8_next(p, (size_t)(end - p));

		if (kept + (n ? n : 1) > MET_LABEL_VALUE_MAX) {
			rc = buf_puts(out, "..."); /* a long value is cut, never the whole scrape */
			break;
		}
		if (!n) /* the text format is UTF-8 */
			rc = buf_puts(out, "\xef\xbf\xbd");
		else if (*p == '\\')
			rc = buf_puts(out, "\\\\");
		else if (*p == '"')
			rc = buf_puts(out, "\\\"");
		else if (*p == '\n')
			rc = buf_puts(out, "\\n");
		else
			rc = buf_append(out, p, n);
		n = n ? n : 1;
		kept += n;
		p += n;
	}
	return rc;
}

int met_label(struct buf *labels, const char *key, const char *value)
{
	int rc = buf_printf(labels, "%s%s=\"", labels->len ? "," : "", key);

	if (!rc)
		rc = met_escape_label(labels, value);
	return rc ? rc : buf_puts(labels, "\"");
}

int met_write_header(struct buf *out, const char *name, const char *help, const char *type)
{
	return buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static int write_value(struct buf *out, double v)
{
	if (isnan(v))
		return buf_puts(out, "NaN\n");
	if (isinf(v))
		return buf_puts(out, v > 0 ? "+Inf\n" : "-Inf\n");
	if (v == floor(v) && fabs(v) < 1e15)
		return buf_printf(out, "%.0f\n", v);
	return buf_printf(out, "%.9g\n", v);
}

int met_write_sample(struct buf *out, const char *name, const char *labels, double v)
{
	int rc = labels && *labels ? buf_printf(out, "%s{%s} ", name, labels) : buf_printf(out, "%s ", name);

	return rc ? rc : write_value(out, v);
}

static int render_histogram(struct buf *out, const struct met_series *s)
{
	const struct met_histogram *h = &s->u.h;
	const char *l = s->labels ? s->labels : "";
	const char *sep = *l ? "," : "";
	uint64_t cum = 0;
	int rc = 0;

	for (size_t i = 0; !rc && i <= h->nbounds; i++) {
		cum += atomic_load_explicit(&((struct met_histogram *)h)->counts[i], memory_order_relaxed);
		if (i < h->nbounds)
			rc = buf_printf(out, "%s_bucket{%s%sle=\"%.9g\"} %llu\n", s->name, l, sep, h->bounds[i],
					(unsigned long long)cum);
		else
			rc = buf_printf(out, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", s->name, l, sep,
					(unsigned long long)cum);
	}
	if (!rc)
		rc = buf_printf(out, "%s_sum%s%s%s ", s->name, *l ? "{" : "", l, *l ? "}" : "");
	if (!rc)
		rc = write_value(out, bits_dbl(atomic_load_explicit(&((struct met_histogram *)h)->sum_bits,
								    memory_order_relaxed)));
	/* _count equals the +Inf bucket, as the format requires */
	if (!rc)
		rc = buf_printf(out, "%s_count%s%s%s %llu\n", s->name, *l ? "{" : "", l, *l ? "}" : "",
				(unsigned long long)cum);
	return rc;
}

int met_render(struct met_registry *r, struct buf *out)
{
	static const char *const types[] = {"counter", "gauge", "histogram"};
	const char *last = NULL;
	int rc = 0;

	for (struct met_series *s = r->head; !rc && s; s = s->next) {
		if (!last || strcmp(last, s->name) != 0)
			rc = met_write_header(out, s->name, s->help, types[s->kind]);
		last = s->name;
		if (rc)
			break;
		switch (s->kind) {
		case K_COUNTER:
			rc = met_write_sample(out, s->name, s->labels, (double)met_counter_get(&s->u.c));
			break;
		case K_GAUGE:
			rc = met_write_sample(out, s->name, s->labels,
					      bits_dbl(atomic_load_explicit(&s->u.g.bits, memory_order_relaxed)));
			break;
		default:
			rc = render_histogram(out, s);
		}
	}
	for (struct met_collector *c = r->chead; !rc && c; c = c->next)
		rc = c->fn(out, c->ctx);
	return rc;
}
