/*
 * Unit tests for FIPA-ACL message validation: every rejected input must
 * name its field, and valid input must be canonicalised with an id.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "msg.h"
#include "switchboard/util.h"

static int check(const char *json, struct msg *m, struct msg_err *e)
{
	memset(e, 0, sizeof(*e));
	return msg_parse(json, strlen(json), 64, m, e);
}

static void expect_field(const char *json, int status, const char *field)
{
	struct msg m;
	struct msg_err e;

	assert_int_equal(check(json, &m, &e), -22);
	assert_int_equal(e.status, status);
	assert_string_equal(e.field, field);
	assert_true(strlen(e.message) > 0);
}

static void test_valid_message_gets_id_and_timestamp(void **state)
{
	struct msg m;
	struct msg_err e;
	json_t *body;

	(void)state;
	assert_int_equal(check("{\"performative\":\"query-if\",\"sender\":\"a\",\"receiver\":\"b\","
			       "\"content\":\"hi\",\"conversation_id\":\"c-1\","
			       "\"traceparent\":\"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\","
			       "\"delivery\":{\"priority\":\"critical\",\"timeout_ms\":5000,\"max_retries\":3}}",
			       &m, &e),
			 0);
	assert_int_equal(m.performative, PERF_QUERY_IF);
	assert_int_equal(m.priority, MSG_PRIO_CRITICAL);
	assert_int_equal(m.max_retries, 3);
	assert_string_equal(m.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
	assert_int_equal(strlen(m.message_id), 32);
	body = json_loads(m.body, 0, NULL);
	assert_non_null(body);
	assert_string_equal(json_string_value(json_object_get(body, "message_id")), m.message_id);
	assert_non_null(json_object_get(body, "created_at"));
	json_decref(body);
	msg_free(&m);
}

static void test_rejections_name_the_field(void **state)
{
	(void)state;
	expect_field("{\"sender\":\"a\",\"receiver\":\"b\"}", 400, "performative");
	expect_field("{\"performative\":\"shout\",\"sender\":\"a\",\"receiver\":\"b\"}", 400, "performative");
	expect_field("{\"performative\":7,\"sender\":\"a\",\"receiver\":\"b\"}", 400, "performative");
	expect_field("{\"performative\":\"inform\",\"receiver\":\"b\"}", 400, "sender");
	expect_field("{\"performative\":\"inform\",\"sender\":\"a b\",\"receiver\":\"b\"}", 400, "sender");
	expect_field("{\"performative\":\"inform\",\"sender\":\"a\",\"receiver\":42}", 400, "receiver");
	expect_field("{\"performative\":\"inform\",\"sender\":\"a\",\"receiver\":\"b\",\"content\":7}", 400, "content");
	expect_field("{\"performative\":\"inform\",\"sender\":\"a\",\"receiver\":\"b\",\"recipient\":\"c\"}", 400,
		     "recipient");
	expect_field("{\"performative\":\"inform\",\"sender\":\"a\",\"receiver\":\"b\","
		     "\"traceparent\":\"00-00000000000000000000000000000000-00f067aa0ba902b7-01\"}",
		     400, "traceparent");
	expect_field("{\"performative\":\"inform\",\"sender\":\"a\",\"receiver\":\"b\",\"traceparent\":\"garbage\"}",
		     400, "traceparent");
	expect_field("{\"performative\":\"inform\",\"sender\":\"a\",\"receiver\":\"b\",\"tracestate\":\"=x\"}", 400,
		     "tracestate");
	expect_field("{\"performative\":\"inform\",\"sender\":\"a\",\"receiver\":\"b\",\"created_at\":\"yesterday\"}",
		     400, "created_at");
	expect_field("{\"performative\":\"inform\",\"sender\":\"a\",\"receiver\":\"b\","
		     "\"delivery\":{\"priority\":\"urgent\"}}",
		     400, "delivery.priority");
	expect_field("{\"performative\":\"inform\",\"sender\":\"a\",\"receiver\":\"b\","
		     "\"delivery\":{\"timeout_ms\":\"soon\"}}",
		     400, "delivery.timeout_ms");
	expect_field("{\"performative\":\"inform\",\"sender\":\"a\",\"receiver\":\"b\",\"content_base64\":\"!!!\"}",
		     400, "content_base64");
	expect_field("{\"performative\":\"inform\",\"sender\":\"a\",\"receiver\":\"b\",\"message_id\":\"a b\"}", 400,
		     "message_id");
	/* hostile shapes (found by fuzzing): never a table index of -1, never an empty field */
	expect_field("1", 400, "(body)");
	expect_field("null", 400, "(body)");
	expect_field("\"x\"", 400, "(body)");
	expect_field("{\"\":1}", 400, "(key)");
	expect_field("{\"performative\":\"inform\",\"sender\":\"a\",\"receiver\":\"b\",\"delivery\":{\"\":1}}", 400,
		     "delivery.(key)");
	expect_field("{\"performative\":\"inform\",\"sender\":\"a\",\"receiver\":\"b\",\"content\":\"\xed\xa0\x80\"}",
		     400, "content");
	expect_field("{\"performative\":\"inform\",\"sender\":\"a\",\"receiver\":\"b\",\"content\":\"\xc0\x80\"}", 400,
		     "content");
	expect_field("{\"performative\":\"inform\",\"sender\":\"a\",\"receiver\":\"b\",\"content\":\"\\u0000x\"}", 400,
		     "content");
	expect_field("{\"performative\":\f\"inform\",\"sender\":\"a\",\"receiver\":\"b\"}", 400, "(body)");
	expect_field("{\"\\u0000receiver\":\"b\"}", 400, "(key)");
	expect_field("{\"performative\":\"inform\",\"sender\":\"a\",\"receiver\":\"b\",\"content\":\"x\\ud800\"}", 400,
		     "(body)");
	expect_field("{\"performative\":\"inform\",\"sender\":\"a\",\"receiver\":\"b\",\"content\":\"x\\udc00y\"}", 400,
		     "(body)");
	expect_field("{\"performative\":\"inform\",\"sender\":\"a\",\"receiver\":\"b\"}\"}", 400, "(body)");
}

static void test_duplicates_nesting_and_syntax(void **state)
{
	struct msg m;
	struct msg_err e;

	(void)state;
	expect_field("{\"performative\":\"inform\",\"sender\":\"a\",\"receiver\":\"b\",\"sender\":\"c\"}", 400,
		     "sender");
	expect_field("{\"performative\":\"inform\",\"sender\":\"a\",\"receiver\":\"b\",\"language\":{\"x\":1}}", 400,
		     "language");
	expect_field("{\"performative\":\"inform\",\"sender\":\"a\",\"receiver\":\"b\",\"delivery\":{\"x\":1}}", 400,
		     "delivery.x");
	expect_field("[1,2]", 400, "(body)");
	expect_field("{\"performative\":null,\"sender\":\"a\",\"receiver\":\"b\"}", 400, "performative");
	assert_int_equal(check("{\"performative\":\"inform\"", &m, &e), -EBADMSG);
	assert_string_equal(e.field, "(body)");
	/* invalid UTF-8 names the field it is in, key or value, at either depth */
	expect_field("{\"performative\":\"inform\",\"sender\":\"a\",\"receiver\":\"b\",\"content\":\"\xff\"}", 400,
		     "content");
	expect_field("{\"performative\":\"inform\",\"sender\":\"a\xc3\",\"receiver\":\"b\"}", 400, "sender");
	expect_field("{\"performative\":\"inform\",\"sender\":\"a\",\"receiver\":\"b\",\"\xfe\":1}", 400, "(key)");
	expect_field("{\"performative\":\"inform\",\"sender\":\"a\",\"receiver\":\"b\",\"delivery\":{\"\x80\":1}}", 400,
		     "delivery.(key)");
	expect_field("{\"performative\":\"inform\",\"sender\":\"a\",\"receiver\":\"b\",\"content\":\"\\u00e9\xe9\"}",
		     400, "content");
}

static void test_body_keeps_the_senders_bytes(void **state)
{
	struct msg m;
	struct msg_err e;
	const char *in =
		"{ \"performative\": \"inform\", \"sender\": \"a\", \"receiver\": \"b\","
		" \"content\": \"caf\\u00e9\", \"message_id\": \"m-1\", \"created_at\": \"2025-01-14T10:30:00Z\" }";

	(void)state;
	assert_int_equal(check(in, &m, &e), 0);
	assert_string_equal(m.body, in); /* nothing re-encoded, nothing added */
	msg_free(&m);
	assert_int_equal(check("{\"performative\":\"inform\",\"sender\":\"a\",\"receiver\":\"b\"}\n", &m, &e), 0);
	assert_non_null(strstr(m.body, ",\"message_id\":\""));
	assert_non_null(strstr(m.body, ",\"created_at\":\""));
	assert_int_equal(m.body[m.body_len - 1], '}');
	msg_free(&m);
}

static void test_size_limits_give_413(void **state)
{
	char big[200];

	(void)state;
	memset(big, 'x', 100);
	big[100] = '\0';
	{
		char json[400];

		snprintf(json, sizeof(json),
			 "{\"performative\":\"inform\",\"sender\":\"a\",\"receiver\":\"b\",\"content\":\"%s\"}", big);
		expect_field(json, 413, "content");
	}
	/* 96 bytes of base64 decode to 72 > 64 */
	expect_field(
		"{\"performative\":\"inform\",\"sender\":\"a\",\"receiver\":\"b\",\"content_base64\":"
		"\"QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB\"}",
		413, "content_base64");
}

static void test_trace_context_rules(void **state)
{
	char tid[33];

	(void)state;
	assert_int_equal(msg_traceparent_ok("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", tid), 0);
	assert_int_not_equal(msg_traceparent_ok("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", NULL), 0);
	assert_int_not_equal(msg_traceparent_ok("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", NULL), 0);
	assert_int_not_equal(msg_traceparent_ok("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", NULL), 0);
	assert_int_equal(msg_tracestate_ok("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"), 0);
	assert_int_not_equal(msg_tracestate_ok("Rojo=1"), 0);
	assert_int_not_equal(msg_tracestate_ok("a=b=c"), 0);
}

static void test_utf8_validator(void **state)
{
	(void)state;
	assert_true(util_utf8_valid("h\xc3\xa9llo", 6));
	assert_false(util_utf8_valid("\xc3\x28", 2));	      /* bad continuation */
	assert_false(util_utf8_valid("\xc0\xaf", 2));	      /* overlong */
	assert_false(util_utf8_valid("\xed\xa0\x80", 3));     /* surrogate */
	assert_false(util_utf8_valid("\xf4\x90\x80\x80", 4)); /* above U+10FFFF */
}

/* The validators skip ASCII eight bytes at a time: a bad byte (or sequence)
 * is found at every offset of a long text, before, inside and after a word. */
static void test_bad_bytes_found_at_every_offset(void **state)
{
	static const char *const bad_utf8[] = {"\xc3\x28", "\xc0\xaf", "\xed\xa0\x80", "\x80", "\xff"};
	char text[64], json[160];

	(void)state;
	for (size_t at = 0; at < 40; at++) {
		for (size_t k = 0; k < sizeof(bad_utf8) / sizeof(bad_utf8[0]); k++) {
			size_t bl = strlen(bad_utf8[k]);

			memset(text, 'a', sizeof(text));
			memcpy(text + at, bad_utf8[k], bl);
			assert_false(util_utf8_valid(text, 48));
			assert_true(util_utf8_valid(text, at)); /* all ASCII before it */
		}
		memcpy(text + at, "h\xc3\xa9", 3); /* a good two-byte sequence anywhere */
		assert_true(util_utf8_valid(text, 48));
		/* a control character other than JSON's white space, between tokens,
		 * at each offset of the body: refused; JSON's white space: taken */
		for (int c = 0; c < 0x20; c++) {
			struct msg m;
			struct msg_err e;
			int ok = c == '\t' || c == '\n' || c == '\r';
			int n = snprintf(json, sizeof(json),
					 "{\"performative\":\"inform\",\"sender\":\"a\",%*s"
					 "\"receiver\":\"b\"}",
					 (int)at + 1, "");

			assert_true(n > 0 && (size_t)n < sizeof(json));
			json[38 + at] = (char)c; /* the last of the spaces before "receiver" */
			if (c == 0)
				continue; /* a C string would end there */
			assert_int_equal(msg_parse(json, (size_t)n, 64, &m, &e) == 0, ok);
			if (ok)
				msg_free(&m);
			else
				assert_string_equal(e.field, "(body)");
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_message_gets_id_and_timestamp),
		cmocka_unit_test(test_rejections_name_the_field),
		cmocka_unit_test(test_duplicates_nesting_and_syntax),
		cmocka_unit_test(test_body_keeps_the_senders_bytes),
		cmocka_unit_test(test_size_limits_give_413),
		cmocka_unit_test(test_trace_context_rules),
		cmocka_unit_test(test_utf8_validator),
		cmocka_unit_test(test_bad_bytes_found_at_every_offset),
	};

	if (util_init())
		return 1;
	return cmocka_run_group_tests_name("msg", tests, NULL, NULL);
}
