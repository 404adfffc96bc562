/*
 * fuzz_metrics: the Prometheus writer (lib/met.c) with hostile label values,
 * such as agent ids or reasons a client chose.  The input is up to eight
 * NUL-separated label values.  Each one goes through met_escape_label() and
 * met_label(), which must leave no raw newline and must unescape back to
 * the value; then a registry with counters, gauges, a histogram and a
 * collector labelled with them is rendered by met_render(), and every line
 * of the exposition must parse: a HELP/TYPE comment, or a sample whose
 * label block is `key="value"` pairs with only \\, \" and \n escapes,
 * followed by one value.  A raw newline inside a label value breaks a
 * sample into two lines and fails that parse.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "switchboard/buf.h"
#include "switchboard/met.h"
#include "switchboard/util.h"

#define MAX_VALUES 8

/* Undo met_escape_label() on [p, end); 0 when an escape is not one it
 * writes or a quote or newline is raw. */
static int unescape_is(const char *p, const char *end, const char *want)
{
	for (; p < end; p++, want++) {
		char c = *p;

		if (c == '"' || c == '\n')
			return 0;
		if (c == '\\') {
			if (++p == end)
				return 0;
			c = *p == 'n' ? '\n' : *p;
			if (*p != 'n' && *p != '\\' && *p != '"')
				return 0;
		}
		if (*want != c)
			return 0;
	}
	return *want == '\0';
}

/* A value comes back exactly when it is valid UTF-8 of at most
 * MET_LABEL_VALUE_MAX bytes; any value gives valid UTF-8 on one line,
 * bounded (an escape or U+FFFD is at most 3 bytes for 1, "..." marks a cut). */
static void check_escapes(const char *v)
{
	int exact = util_utf8_valid(v, strlen(v)) && strlen(v) <= MET_LABEL_VALUE_MAX;
	struct buf b, l;

	buf_init(&b, 1u << 20);
	buf_init(&l, 1u << 20);
	if (met_escape_label(&b, v) == 0) {
		FZ_CHECK(!memchr(buf_str(&b), '\n', b.len));
		FZ_CHECK(util_utf8_valid(buf_str(&b), b.len));
		FZ_CHECK(b.len <= 3 * MET_LABEL_VALUE_MAX + 3); /* U+FFFD is 3 bytes for 1 */
		FZ_CHECK(!exact || unescape_is(buf_str(&b), buf_str(&b) + b.len, v));
	}
	if (met_label(&l, "agent", v) == 0) {
		FZ_CHECK(l.len >= 8 && memcmp(l.data, "agent=\"", 7) == 0 && l.data[l.len - 1] == '"');
		FZ_CHECK(!exact || unescape_is(l.data + 7, l.data + l.len - 1, v));
	}
	buf_free(&b);
	buf_free(&l);
}

/* Skip one label value after its opening quote; NULL when it is broken. */
static const char *skip_value(const char *p, const char *end)
{
	for (; p < end && *p != '"'; p++) {
		if (*p == '\n')
			return NULL;
		if (*p == '\\' && (++p == end || (*p != 'n' && *p != '\\' && *p != '"')))
			return NULL;
	}
	return p < end ? p + 1 : NULL;
}

/* One exposition line [p, end) without its newline. */
static int line_ok(const char *p, const char *end)
{
	char *num_end;

	if (*p == '#')
		return end - p > 7 && (memcmp(p, "# HELP ", 7) == 0 || memcmp(p, "# TYPE ", 7) == 0);
	p += strspn(p, "abcdefghijklmnopqrstuvwxyz_ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:");
	if (p < end && *p == '{') {
		do {
			p++;
			p += strspn(p, "abcdefghijklmnopqrstuvwxyz_ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789");
			if (end - p < 2 || p[0] != '=' || p[1] != '"')
				return 0;
			p = skip_value(p + 2, end);
			if (!p || p == end)
				return 0;
		} while (*p == ',');
		if (*p++ != '}')
			return 0;
	}
	if (p == end || *p++ != ' ')
		return 0;
	if ((end - p == 3 && memcmp(p, "NaN", 3) == 0) || (end - p == 4 && (*p == '+' || *p == '-')))
		return 1;
	strtod(p, &num_end);
	return num_end == end && num_end != p;
}

static int collect(struct buf *out, void *ctx)
{
	const char *labels = ctx;
	int rc = met_write_header(out, "fz_collected", "Collected at scrape time.", "gauge");

	return rc ? rc : met_write_sample(out, "fz_collected", labels, 1.5);
}

static void check_render(const char *const *vals, size_t n, const uint8_t *data, size_t size)
{
	static const double bounds[] = {0.001, 0.1, 1, 10};
	struct met_registry *r = met_new();
	struct buf labels, out;

	buf_init(&labels, 1u << 20);
	buf_init(&out, 16u << 20);
	for (size_t i = 0; i < n; i++) {
		char key[16];

		snprintf(key, sizeof(key), "l%zu", i);
		if (met_label(&labels, key, vals[i]))
			goto done;
	}
	if (!r || met_collector_add(r, collect, labels.data))
		goto done;
	met_add(met_counter_add(r, "fz_total", "A counter.", buf_str(&labels)), size);
	met_inc(met_counter_add(r, "fz_total", "A counter.", NULL));
	met_gauge_set(met_gauge_add(r, "fz_gauge", "A gauge.", buf_str(&labels)), size ? (double)data[0] - 100 : 0);
	met_observe(met_histogram_add(r, "fz_seconds", "A histogram.", buf_str(&labels), bounds, 4),
		    (double)size / 100);
	if (met_render(r, &out) == 0) {
		const char *p = buf_str(&out), *end = p + out.len;

		FZ_CHECK(out.len == 0 || end[-1] == '\n');
		while (p < end) {
			const char *nl = memchr(p, '\n', (size_t)(end - p));

			FZ_CHECK(nl && line_ok(p, nl));
			p = nl + 1;
		}
	}
done:
	met_free(r);
	buf_free(&labels);
	buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fz_cstr(data, size), *p;
	const char *vals[MAX_VALUES];
	size_t n = 0;

	if (!s)
		return 0;
	for (p = s; n < MAX_VALUES && p <= s + size; p += strlen(p) + 1)
		vals[n++] = p;
	for (size_t i = 0; i < n; i++)
		check_escapes(vals[i]);
	check_render(vals, n, data, size);
	free(s);
	return 0;
}
