/*
 * Unit tests for lib/: the bounded buffer, the heap, YAML <-> JSON, the
 * metrics registry, timestamps and ids.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "switchboard/buf.h"
#include "switchboard/heap.h"
#include "switchboard/met.h"
#include "switchboard/own.h"
#include "switchboard/util.h"
#include "switchboard/yjson.h"

static void test_buf_enforces_its_bound(void **state)
{
	struct buf b;

	(void)state;
	buf_init(&b, 8);
	assert_int_equal(buf_puts(&b, "12345678"), 0);
	assert_int_equal(buf_puts(&b, "9"), -E2BIG);
	assert_string_equal(buf_str(&b), "12345678"); /* unchanged on failure */
	buf_reset(&b);
	assert_int_equal(buf_json_str(&b, "a\"\n"), 0);
	assert_string_equal(buf_str(&b), "\"a\\\"\\n\"");
	assert_int_equal(buf_json_str(&b, "toolong"), -E2BIG);
	assert_string_equal(buf_str(&b), "\"a\\\"\\n\"");
	buf_free(&b);
}

static int int_cmp(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

static void test_deadlines_are_normalised(void **state)
{
	struct timespec now, d;
	int64_t ahead_ns;

	(void)state;
	clock_gettime(CLOCK_MONOTONIC, &now);
	d = util_deadline_us(CLOCK_MONOTONIC, 1999999); /* carries into the seconds */
	ahead_ns = (int64_t)(d.tv_sec - now.tv_sec) * 1000000000 + (d.tv_nsec - now.tv_nsec);
	assert_true(d.tv_nsec >= 0 && d.tv_nsec < 1000000000L);
	assert_true(ahead_ns >= 1999999000 && ahead_ns < 2100000000);
	d = util_deadline(CLOCK_MONOTONIC, 2500);
	ahead_ns = (int64_t)(d.tv_sec - now.tv_sec) * 1000000000 + (d.tv_nsec - now.tv_nsec);
	assert_true(d.tv_nsec >= 0 && d.tv_nsec < 1000000000L);
	assert_true(ahead_ns >= 2500000000 && ahead_ns < 2600000000);
	d = util_deadline_us(CLOCK_MONOTONIC, -5000000); /* past: now, never an invalid timespec */
	ahead_ns = (int64_t)(d.tv_sec - now.tv_sec) * 1000000000 + (d.tv_nsec - now.tv_nsec);
	assert_true(d.tv_nsec >= 0 && d.tv_nsec < 1000000000L);
	assert_true(ahead_ns >= 0 && ahead_ns < 100000000);
}

static void test_heap_orders_and_removes(void **state)
{
	struct heap h;
	int v[] = {5, 1, 9, 3, 7, 2};

	(void)state;
	heap_init(&h, int_cmp, NULL);
	for (size_t i = 0; i < 6; i++)
		assert_int_equal(heap_push(&h, &v[i]), 0);
	assert_int_equal(*(int *)heap_pop(&h), 1);
	heap_remove(&h, 0); /* removes 2 */
	assert_int_equal(*(int *)heap_pop(&h), 3);
	assert_int_equal(*(int *)heap_pop(&h), 5);
	assert_int_equal(*(int *)heap_pop(&h), 7);
	assert_int_equal(*(int *)heap_pop(&h), 9);
	assert_null(heap_pop(&h));
	heap_free(&h);
}

static void test_yaml_types_and_round_trip(void **state)
{
	const char *y = "a: 1\nb: 1.5\nc: true\nd: 'true'\ne: ~\nf: [x, 0x10]\ng: {h: \"007\"}\n";
	json_t *j = NULL, *k = NULL;
	char err[128];
	struct buf out;

	(void)state;
	assert_int_equal(yj_parse(y, strlen(y), &j, err, sizeof(err)), 0);
	assert_true(json_is_integer(json_object_get(j, "a")));
	assert_true(json_is_real(json_object_get(j, "b")));
	assert_true(json_is_true(json_object_get(j, "c")));
	assert_true(json_is_string(json_object_get(j, "d")));
	assert_true(json_is_null(json_object_get(j, "e")));
	assert_int_equal(json_integer_value(json_array_get(json_object_get(j, "f"), 1)), 16);
	buf_init(&out, 4096);
	assert_int_equal(yj_emit(j, 1, &out), 0);
	assert_int_equal(yj_parse(out.data, out.len, &k, err, sizeof(err)), 0);
	assert_true(json_equal(j, k));
	assert_int_equal(yj_parse("a: 1\na: 2\n", 10, &k, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "duplicate"));
	/* a "\0" escape would not survive the round trip through C strings */
	assert_int_equal(yj_parse("a: \"x\\0y\"\n", 10, &k, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "NUL"));
	json_decref(j);
	json_decref(k);
	buf_free(&out);
}

static void test_metrics_render(void **state)
{
	static const double b[] = {0.1, 1};
	struct met_registry *r = met_new();
	struct met_counter *c1, *c2;
	struct met_histogram *h;
	struct buf out;

	(void)state;
	c1 = met_counter_add(r, "x_total", "X.", "reason=\"a\"");
	h = met_histogram_add(r, "lat_seconds", "Latency.", NULL, b, 2);
	c2 = met_counter_add(r, "x_total", "X.", "reason=\"b\"");
	met_inc(c1);
	met_add(c2, 3);
	met_observe(h, 0.05);
	met_observe(h, 5);
	buf_init(&out, 1 << 16);
	assert_int_equal(met_render(r, &out), 0);
	/* one header per family, series of a family together */
	assert_non_null(
		strstr(buf_str(&out), "# TYPE x_total counter\nx_total{reason=\"a\"} 1\nx_total{reason=\"b\"} 3\n"));
	assert_non_null(strstr(buf_str(&out), "lat_seconds_bucket{le=\"0.1\"} 1\n"));
	assert_non_null(strstr(buf_str(&out), "lat_seconds_bucket{le=\"+Inf\"} 2\n"));
	assert_non_null(strstr(buf_str(&out), "lat_seconds_count 2\n"));
	buf_free(&out);
	met_free(r);
	buf_init(&out, 256);
	assert_int_equal(met_label(&out, "agent", "a\"b"), 0);
	assert_int_equal(met_label(&out, "endpoint", "x\\y"), 0);
	assert_string_equal(buf_str(&out), "agent=\"a\\\"b\",endpoint=\"x\\\\y\"");
	buf_free(&out);
	{
		/* a hostile value: long (it once failed the whole scrape), not UTF-8,
		 * with a newline; the labels stay bounded, valid and on one line */
		char big[5000];

		memset(big, 'e', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		big[10] = '\n';
		big[20] = (char)0xff;
		buf_init(&out, 1024);
		assert_int_equal(met_label(&out, "endpoint", big), 0);
		assert_true(out.len < MET_LABEL_VALUE_MAX + 40);
		assert_null(strchr(buf_str(&out), '\n'));
		assert_non_null(strstr(buf_str(&out), "\xef\xbf\xbd"));
		assert_true(util_utf8_valid(buf_str(&out), out.len));
		assert_non_null(strstr(buf_str(&out), "...\""));
		buf_free(&out);
	}
}

/* A batch of observations renders as the same observations one by one. */
static void test_histogram_batch(void **state)
{
	static const double b[] = {0.001, 0.01, 0.1, 1};
	static const double v[] = {0.005, 0.005, 0.0001, 2, 0.05, 0.05, 0.001, 1, 7, 0.005};
	struct met_registry *r = met_new();
	struct met_histogram *one = met_histogram_add(r, "one_seconds", "One by one.", NULL, b, 4);
	struct met_histogram *many = met_histogram_add(r, "many_seconds", "In a batch.", NULL, b, 4);
	struct met_hist_batch batch;
	struct buf out;
	char want[128];

	(void)state;
	met_hist_batch_init(&batch, many);
	for (size_t i = 0; i < SB_ARRAY_SIZE(v); i++) {
		met_observe(one, v[i]);
		met_hist_batch_add(&batch, v[i]);
	}
	met_hist_batch_flush(&batch);
	met_hist_batch_flush(&batch); /* empty now: adds nothing */
	for (size_t i = 0; i <= 4; i++)
		assert_int_equal(atomic_load(&one->counts[i]), atomic_load(&many->counts[i]));
	assert_int_equal(atomic_load(&one->count), SB_ARRAY_SIZE(v));
	assert_int_equal(atomic_load(&many->count), SB_ARRAY_SIZE(v));
	buf_init(&out, 1 << 16);
	assert_int_equal(met_render(r, &out), 0);
	assert_non_null(strstr(buf_str(&out), "many_seconds_bucket{le=\"0.01\"} 5\n"));
	assert_non_null(strstr(buf_str(&out), "many_seconds_bucket{le=\"1\"} 8\n"));
	assert_non_null(strstr(buf_str(&out), "many_seconds_bucket{le=\"+Inf\"} 10\n"));
	snprintf(want, sizeof(want), "many_seconds_sum %g", 10.1161);
	assert_non_null(strstr(buf_str(&out), want));
	buf_free(&out);
	/* a batch without a histogram drops what it is given */
	met_hist_batch_init(&batch, NULL);
	met_hist_batch_add(&batch, 1);
	met_hist_batch_flush(&batch);
	met_free(r);
}

static void test_rfc3339(void **state)
{
	int64_t ms;
	char s[32];

	(void)state;
	assert_int_equal(util_parse_rfc3339("2025-01-14T10:30:00.123Z", &ms), 0);
	util_fmt_rfc3339(ms, s);
	assert_string_equal(s, "2025-01-14T10:30:00.123Z");
	assert_int_equal(util_parse_rfc3339("2025-01-14T12:30:00+02:00", &ms), 0);
	util_fmt_rfc3339(ms, s);
	assert_string_equal(s, "2025-01-14T10:30:00.000Z");
	assert_int_not_equal(util_parse_rfc3339("2025-02-31T00:00:00Z", &ms), 0);
	assert_int_not_equal(util_parse_rfc3339("2025-01-14", &ms), 0);
	/* the per-thread cache of the seconds must not leak into another second */
	util_fmt_rfc3339(ms + 1, s);
	util_fmt_rfc3339(1000, s);
	assert_string_equal(s, "1970-01-01T00:00:01.000Z");
	util_fmt_rfc3339(999, s);
	assert_string_equal(s, "1970-01-01T00:00:00.999Z");
	util_fmt_rfc3339(-1, s);
	assert_string_equal(s, "1969-12-31T23:59:59.999Z");
}

/* spans of a JSON batch: strings with escaped quotes and backslashes */
static void test_json_span(void **state)
{
	static const struct {
		const char *in;
		int rc;
		size_t start, end;
	} cases[] = {
		{" {\"a\":\"x\\\"}\"}, ", 0, 1, 13}, /* {"a":"x\"}"} : an escaped quote */
		{"{\"a\":\"x\\\\\"}", 0, 0, 11},     /* {"a":"x\\"} : an escaped backslash */
		{"[\"]\", {\"b\": [1, 2]}] tail", 0, 0, 20},
		{"\"abc\\\\\\\"d\" ,", 0, 0, 10}, /* "abc\\\"d" */
		{"{\"a\":\"unterminated\\\"}", -EINVAL, 0, 0},
		{"{\"a\":{\"b\":1}", -EINVAL, 0, 0},
		{"  42 ,", 0, 2, 4},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t st = 99, en = 99;
		int rc = yj_json_span(cases[i].in, strlen(cases[i].in), &st, &en);

		assert_int_equal(rc, cases[i].rc);
		if (rc == 0) {
			assert_int_equal(st, cases[i].start);
			assert_int_equal(en, cases[i].end);
		}
	}
}

static void test_buf_numbers_and_json_strings(void **state)
{
	struct buf b;

	(void)state;
	buf_init(&b, 256);
	assert_int_equal(buf_put_u64(&b, 0), 0);
	assert_int_equal(buf_put_u64(&b, 18446744073709551615ull), 0);
	assert_int_equal(buf_json_str(&b, "plain \"q\" back\\slash\n\x01"
					  "end"),
			 0);
	assert_string_equal(buf_str(&b), "018446744073709551615\"plain \\\"q\\\" back\\\\slash\\n\\u0001end\"");
	buf_free(&b);
}

/* --- own: rendezvous ownership ------------------------------------------ */

/* Pinned: the operator and every router must compute the same owner, in
 * every version.  XXH64's published vectors first, then owners. */
static void test_own_vectors(void **state)
{
	static const struct {
		const char *id;
		uint32_t owner[5]; /* for 1 … 5 replicas */
	} rows[] = {
		{"alice", {0, 1, 2, 2, 2}},	      {"bob", {0, 0, 2, 2, 4}},
		{"carol", {0, 0, 0, 0, 0}},	      {"dave", {0, 0, 2, 2, 2}},
		{"agent-0001", {0, 0, 0, 0, 4}},      {"agent-0002", {0, 1, 1, 3, 3}},
		{"planner.eu-west", {0, 0, 2, 2, 4}}, {"x", {0, 0, 2, 2, 4}},
	};
	char e1[17], e2[17], e3[17];

	(void)state;
	assert_true(own_weight("", 0, 0) == 0xef46db3751d8e999ULL);
	assert_true(own_weight("a", 1, 0) == 0xd24ec4f1a98c6e5bULL);
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		for (uint32_t n = 1; n <= 5; n++)
			if (own_owner(rows[i].id, n) != rows[i].owner[n - 1])
				fail_msg("%s with %u replicas: owner %u, want %u", rows[i].id, n,
					 own_owner(rows[i].id, n), rows[i].owner[n - 1]);
	assert_int_equal(own_owner("alice", 0), 0);
	own_epoch(3, NULL, e1);
	assert_string_equal(e1, "006403b06861ff04");
	own_epoch(4, NULL, e2);
	own_epoch(3, "r1-0,r1-1,r1-2", e3);
	assert_string_not_equal(e1, e2);
	assert_string_not_equal(e1, e3);
}

/* Growing from n to n+1 replicas moves only agents to the new ordinal, about
 * 1/(n+1) of them; every ordinal gets a fair share. */
static void test_own_moves_little_and_balances(void **state)
{
	enum { N = 10000, MAXR = 8 };
	static uint32_t owner[N];
	char id[32];

	(void)state;
	for (size_t i = 0; i < N; i++)
		owner[i] = 0;
	for (uint32_t n = 1; n < MAXR; n++) {
		size_t moved = 0, count[MAXR] = {0};

		for (size_t i = 0; i < N; i++) {
			uint32_t o;

			snprintf(id, sizeof(id), "agent-%zu", i);
			o = own_owner(id, n + 1);
			if (o != owner[i]) {
				if (o != n)
					fail_msg("%s moved from %u to %u growing to %u replicas", id, owner[i], o,
						 n + 1);
				moved++;
			}
			owner[i] = o;
			count[o]++;
		}
		/* expected N/(n+1); allow +-15 % */
		assert_in_range(moved, N / (n + 1) * 85 / 100, N / (n + 1) * 115 / 100);
		for (uint32_t k = 0; k <= n; k++)
			assert_in_range(count[k], N / (n + 1) * 85 / 100, N / (n + 1) * 115 / 100);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_buf_enforces_its_bound),
		cmocka_unit_test(test_heap_orders_and_removes),
		cmocka_unit_test(test_yaml_types_and_round_trip),
		cmocka_unit_test(test_metrics_render),
		cmocka_unit_test(test_histogram_batch),
		cmocka_unit_test(test_rfc3339),
		cmocka_unit_test(test_deadlines_are_normalised),
		cmocka_unit_test(test_json_span),
		cmocka_unit_test(test_buf_numbers_and_json_strings),
		cmocka_unit_test(test_own_vectors),
		cmocka_unit_test(test_own_moves_little_and_balances),
	};

	if (util_init())
		return 1;
	return cmocka_run_group_tests_name("lib", tests, NULL, NULL);
}
