/*
 * Unit tests for a2aj, the A2A JSON-RPC reader and writer: a table of
 * requests with the error code and field each must be refused with, the
 * A2A message → FIPA-ACL mapping, and the Tasks and errors written back in
 * both protocol versions.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "a2aj.h"

struct parse_case {
	const char *body;
	const char *version; /* the A2A-Version header, NULL when absent */
	int code;	     /* 0: parsed */
	const char *field;   /* the field named, "" for none */
	int version_out, method_out;
};

static const struct parse_case parse_cases[] = {
	{"{bad", NULL, A2AJ_PARSE_ERROR, "", 0, 0},
	{"{\"jsonrpc\":\"2.0\",\"id\":1,\"id\":2,\"method\":\"GetTask\"}", NULL, A2AJ_PARSE_ERROR, "", 0, 0},
	{"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"Get\xff\"}", NULL, A2AJ_PARSE_ERROR, "", 0, 0},
	{"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"GetTask\"} x", NULL, A2AJ_PARSE_ERROR, "", 0, 0},
	{"[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"GetTask\"}]", NULL, A2AJ_INVALID_REQUEST, "", 0, 0},
	{"7", NULL, A2AJ_INVALID_REQUEST, "", 0, 0},
	{"{\"jsonrpc\":\"1.0\",\"id\":1,\"method\":\"GetTask\"}", NULL, A2AJ_INVALID_REQUEST, "jsonrpc", 0, 0},
	{"{\"jsonrpc\":\"2.0\",\"method\":\"GetTask\"}", NULL, A2AJ_INVALID_REQUEST, "id", 0, 0},
	{"{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"GetTask\"}", NULL, A2AJ_INVALID_REQUEST, "id", 0, 0},
	{"{\"jsonrpc\":\"2.0\",\"id\":{},\"method\":\"GetTask\"}", NULL, A2AJ_INVALID_REQUEST, "id", 0, 0},
	{"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":5}", NULL, A2AJ_INVALID_REQUEST, "method", 0, 0},
	{"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"GetTask\",\"params\":[1]}", NULL, A2AJ_INVALID_PARAMS, "params", 0,
	 0},
	{"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"Nope\"}", NULL, A2AJ_METHOD_NOT_FOUND, "method", 0, 0},
	{"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"SendStreamingMessage\"}", NULL, A2AJ_METHOD_NOT_FOUND, "method", 0,
	 0},
	{"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"message/stream\"}", NULL, A2AJ_METHOD_NOT_FOUND, "method", 0, 0},
	{"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"GetTask\"}", "9.9", A2AJ_VERSION_NOT_SUPPORTED, "A2A-Version", 0,
	 0},
	{"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"message/send\"}", "1.0", A2AJ_METHOD_NOT_FOUND, "method", 0, 0},
	{"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"SendMessage\"}", NULL, 0, "", A2AJ_V10, A2AJ_SEND},
	{"{\"jsonrpc\":\"2.0\",\"id\":\"x\",\"method\":\"CancelTask\"}", "1.0.2", 0, "", A2AJ_V10, A2AJ_CANCEL},
	{"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"message/send\"}", NULL, 0, "", A2AJ_V03, A2AJ_SEND},
	{"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/get\"}", "0.3.0", 0, "", A2AJ_V03, A2AJ_GET},
};

static void test_parse_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]); i++) {
		const struct parse_case *c = &parse_cases[i];
		struct a2aj_req rq;
		struct a2aj_err e = {0};
		int rc = a2aj_parse(c->body, strlen(c->body), c->version, &rq, &e);

		if (c->code == 0) {
			assert_int_equal(rc, 0);
			assert_int_equal(rq.version, c->version_out);
			assert_int_equal(rq.method, c->method_out);
		} else {
			if (rc != -EINVAL || e.code != c->code || strcmp(e.field, c->field) != 0)
				fail_msg("case %zu (%s): rc %d code %d field '%s'", i, c->body, rc, e.code, e.field);
			assert_true(strlen(e.message) > 0);
		}
		a2aj_req_free(&rq);
	}
}

struct send_case {
	const char *params;
	int version;
	int code;
	const char *field;
};

static const struct send_case send_cases[] = {
	{"{}", A2AJ_V10, A2AJ_INVALID_PARAMS, "params.message"},
	{"{\"message\":5}", A2AJ_V10, A2AJ_INVALID_PARAMS, "params.message"},
	{"{\"message\":{\"parts\":[{\"text\":\"x\"}]}}", A2AJ_V10, A2AJ_INVALID_PARAMS, "params.message.messageId"},
	{"{\"message\":{\"messageId\":\"\",\"parts\":[{\"text\":\"x\"}]}}", A2AJ_V10, A2AJ_INVALID_PARAMS,
	 "params.message.messageId"},
	{"{\"message\":{\"messageId\":7,\"parts\":[{\"text\":\"x\"}]}}", A2AJ_V10, A2AJ_INVALID_PARAMS,
	 "params.message.messageId"},
	{"{\"message\":{\"messageId\":\"m\",\"parts\":\"x\"}}", A2AJ_V10, A2AJ_INVALID_PARAMS, "params.message.parts"},
	{"{\"message\":{\"messageId\":\"m\",\"parts\":[]}}", A2AJ_V10, A2AJ_INVALID_PARAMS, "params.message.parts"},
	{"{\"message\":{\"messageId\":\"m\",\"parts\":[5]}}", A2AJ_V10, A2AJ_INVALID_PARAMS, "params.message.parts[0]"},
	{"{\"message\":{\"messageId\":\"m\",\"parts\":[{\"text\":\"a\"},{\"text\":\"a\",\"url\":\"u\"}]}}", A2AJ_V10,
	 A2AJ_INVALID_PARAMS, "params.message.parts[1]"},
	{"{\"message\":{\"messageId\":\"m\",\"parts\":[{\"text\":1}]}}", A2AJ_V10, A2AJ_INVALID_PARAMS,
	 "params.message.parts[0].text"},
	{"{\"message\":{\"messageId\":\"m\",\"parts\":[{\"text\":\"a\",\"zz\":1}]}}", A2AJ_V10, A2AJ_INVALID_PARAMS,
	 "params.message.parts[0].zz"},
	{"{\"message\":{\"messageId\":\"m\",\"bogus\":1,\"parts\":[{\"text\":\"a\"}]}}", A2AJ_V10, A2AJ_INVALID_PARAMS,
	 "params.message.bogus"},
	{"{\"message\":{\"messageId\":\"m\",\"metadata\":{\"sender\":5},\"parts\":[{\"text\":\"a\"}]}}", A2AJ_V10,
	 A2AJ_INVALID_PARAMS, "params.message.metadata.sender"},
	{"{\"message\":{\"messageId\":\"m\",\"parts\":[{\"text\":\"a\"}]},\"configuration\":{"
	 "\"taskPushNotificationConfig\":{\"url\":\"http://x\"}}}",
	 A2AJ_V10, A2AJ_PUSH_NOT_SUPPORTED, "params.configuration"},
	{"{\"message\":{\"kind\":\"message\",\"messageId\":\"m\",\"parts\":[{\"kind\":\"video\"}]}}", A2AJ_V03,
	 A2AJ_INVALID_PARAMS, "params.message.parts[0].kind"},
	{"{\"message\":{\"messageId\":\"m\",\"parts\":[{\"kind\":\"data\",\"data\":[1]}]}}", A2AJ_V03,
	 A2AJ_INVALID_PARAMS, "params.message.parts[0].data"},
	{"{\"message\":{\"messageId\":\"m\",\"parts\":[{\"kind\":\"file\",\"file\":{}}]}}", A2AJ_V03,
	 A2AJ_INVALID_PARAMS, "params.message.parts[0].file"},
	{"{\"message\":{\"messageId\":\"m\",\"parts\":[{\"text\":\"a\"}]},\"extra\":1}", A2AJ_V10, A2AJ_INVALID_PARAMS,
	 "params.extra"},
};

static int read_send(const char *params, int version, struct a2aj_req *rq, struct a2aj_send *s, struct a2aj_err *e)
{
	char body[1024];

	snprintf(body, sizeof(body), "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"%s\",\"params\":%s}",
		 version == A2AJ_V03 ? "message/send" : "SendMessage", params);
	assert_int_equal(a2aj_parse(body, strlen(body), NULL, rq, e), 0);
	return a2aj_send_read(rq, s, e);
}

static void test_send_params_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(send_cases) / sizeof(send_cases[0]); i++) {
		const struct send_case *c = &send_cases[i];
		struct a2aj_req rq;
		struct a2aj_send s;
		struct a2aj_err e = {0};
		int rc = read_send(c->params, c->version, &rq, &s, &e);

		if (rc != -EINVAL || e.code != c->code || strcmp(e.field, c->field) != 0)
			fail_msg("case %zu (%s): rc %d code %d field '%s'", i, c->params, rc, e.code, e.field);
		a2aj_send_free(&s);
		a2aj_req_free(&rq);
	}
}

/* The FIPA-ACL text for `params`, parsed back. */
static json_t *fipa_of(const char *params, int version)
{
	struct a2aj_req rq;
	struct a2aj_send s;
	struct a2aj_err e = {0};
	struct buf out;
	json_t *j;

	assert_int_equal(read_send(params, version, &rq, &s, &e), 0);
	buf_init(&out, 1 << 20);
	assert_int_equal(a2aj_to_fipa(&s, "bob", s.sender ? s.sender : "anonymous", s.message_id, "c1", NULL, &out), 0);
	j = json_loads(out.data, 0, NULL);
	assert_non_null(j);
	buf_free(&out);
	a2aj_send_free(&s);
	a2aj_req_free(&rq);
	return j;
}

static void test_mapping_to_fipa(void **state)
{
	json_t *j, *parts;

	(void)state;
	j = fipa_of("{\"message\":{\"messageId\":\"m1\",\"role\":\"ROLE_USER\",\"parts\":[{\"text\":\"hi\"}]}}",
		    A2AJ_V10);
	assert_string_equal(json_string_value(json_object_get(j, "content")), "hi");
	assert_string_equal(json_string_value(json_object_get(j, "performative")), "request");
	assert_string_equal(json_string_value(json_object_get(j, "sender")), "anonymous");
	assert_string_equal(json_string_value(json_object_get(j, "receiver")), "bob");
	assert_string_equal(json_string_value(json_object_get(j, "message_id")), "m1");
	assert_string_equal(json_string_value(json_object_get(j, "conversation_id")), "c1");
	assert_null(json_object_get(j, "language"));
	json_decref(j);

	j = fipa_of("{\"message\":{\"messageId\":\"m2\",\"metadata\":{\"sender\":\"alice\",\"performative\":\"inform\","
		    "\"inReplyTo\":\"m0\"},\"parts\":[{\"data\":{\"k\":1}},{\"url\":\"http://x/f\",\"mediaType\":\"a/"
		    "b\"}]}}",
		    A2AJ_V10);
	assert_string_equal(json_string_value(json_object_get(j, "sender")), "alice");
	assert_string_equal(json_string_value(json_object_get(j, "performative")), "inform");
	assert_string_equal(json_string_value(json_object_get(j, "in_reply_to")), "m0");
	assert_string_equal(json_string_value(json_object_get(j, "language")), "application/a2a-parts+json");
	parts = json_loads(json_string_value(json_object_get(j, "content")), 0, NULL);
	assert_int_equal(json_array_size(parts), 2);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(json_array_get(parts, 0), "data"), "k")),
			 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(parts, 1), "url")), "http://x/f");
	json_decref(parts);
	json_decref(j);

	/* 0.3's parts are stored in 1.0's shape */
	j = fipa_of("{\"message\":{\"kind\":\"message\",\"messageId\":\"m3\",\"role\":\"user\",\"parts\":[{\"kind\":"
		    "\"file\",\"file\":{\"uri\":\"http://x/g\",\"name\":\"g.txt\"}}]}}",
		    A2AJ_V03);
	parts = json_loads(json_string_value(json_object_get(j, "content")), 0, NULL);
	assert_string_equal(json_string_value(json_object_get(json_array_get(parts, 0), "url")), "http://x/g");
	assert_string_equal(json_string_value(json_object_get(json_array_get(parts, 0), "filename")), "g.txt");
	assert_null(json_object_get(json_array_get(parts, 0), "kind"));
	json_decref(parts);
	json_decref(j);
}

static json_t *written_task(int version, const struct rt_task *t, int for_send)
{
	char body[128];
	struct a2aj_req rq;
	struct a2aj_err e;
	struct buf out;
	json_t *j;

	snprintf(body, sizeof(body), "{\"jsonrpc\":\"2.0\",\"id\":\"r1\",\"method\":\"%s\"}",
		 version == A2AJ_V03 ? "tasks/get" : "GetTask");
	assert_int_equal(a2aj_parse(body, strlen(body), NULL, &rq, &e), 0);
	buf_init(&out, 1 << 16);
	assert_int_equal(a2aj_write_task(&out, &rq, "m1", t, for_send, 1764536400000), 0);
	j = json_loads(out.data, 0, NULL);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "id")), "r1");
	buf_free(&out);
	a2aj_req_free(&rq);
	return j;
}

static void test_tasks_in_both_versions(void **state)
{
	struct rt_task t = {.state = RT_TASK_SUBMITTED, .conversation_id = "c1"};
	struct rt_task f = {.state = RT_TASK_FAILED, .reason = "NotResponding"};
	json_t *j, *task;
	char *text;

	(void)state;
	j = written_task(A2AJ_V10, &t, 1);
	task = json_object_get(json_object_get(j, "result"), "task");
	assert_string_equal(json_string_value(json_object_get(task, "id")), "m1");
	assert_string_equal(json_string_value(json_object_get(task, "contextId")), "c1");
	assert_string_equal(json_string_value(json_object_get(json_object_get(task, "status"), "state")),
			    "TASK_STATE_SUBMITTED");
	json_decref(j);

	j = written_task(A2AJ_V03, &t, 1);
	task = json_object_get(j, "result");
	assert_string_equal(json_string_value(json_object_get(task, "kind")), "task");
	assert_string_equal(json_string_value(json_object_get(json_object_get(task, "status"), "state")), "submitted");
	json_decref(j);

	j = written_task(A2AJ_V10, &f, 0);
	task = json_object_get(j, "result");
	assert_null(json_object_get(task, "contextId"));
	assert_string_equal(json_string_value(json_object_get(json_object_get(task, "status"), "state")),
			    "TASK_STATE_FAILED");
	text = json_dumps(json_object_get(json_object_get(task, "status"), "message"), 0);
	assert_non_null(text);
	assert_non_null(strstr(text, "NotResponding"));
	free(text);
	json_decref(j);
}

/* The text of a written failed task's status message (version's shape). */
static void failed_text(int version, const struct rt_task *t, char *out, size_t outlen)
{
	json_t *j = written_task(version, t, 0);
	const json_t *msg = json_object_get(json_object_get(json_object_get(j, "result"), "status"), "message");
	const json_t *part = json_array_get(json_object_get(msg, "parts"), 0);

	assert_non_null(part);
	if (version == A2AJ_V03)
		assert_string_equal(json_string_value(json_object_get(part, "kind")), "text");
	assert_non_null(json_string_value(json_object_get(part, "text")));
	snprintf(out, outlen, "%s", json_string_value(json_object_get(part, "text")));
	json_decref(j);
}

/* A failed task says its dead letter's reason, and its detail when there is
 * one: "dead-lettered: <reason>: <detail>", whole, in both versions. */
static void test_failed_task_says_the_detail(void **state)
{
	static const int versions[] = {A2AJ_V10, A2AJ_V03};
	struct rt_task f = {
		.state = RT_TASK_FAILED, .reason = "InvalidMessage", .detail = "A2A error -32602: Invalid params"};
	char text[512], want[512];

	(void)state;
	for (size_t v = 0; v < 2; v++) {
		failed_text(versions[v], &f, text, sizeof(text));
		assert_string_equal(text, "dead-lettered: InvalidMessage: A2A error -32602: Invalid params");
	}
	/* none: the reason alone */
	f.detail[0] = '\0';
	failed_text(A2AJ_V10, &f, text, sizeof(text));
	assert_string_equal(text, "dead-lettered: InvalidMessage");
	/* the longest reason and detail fit whole: 63 bytes, and 200 of multi-byte characters */
	memset(f.reason, 'R', 63);
	f.reason[63] = '\0';
	strcpy(f.detail, "xy");
	for (int i = 0; i < 66; i++)
		strcat(f.detail, "\xe2\x82\xac");
	assert_int_equal(strlen(f.detail), RT_DETAIL_MAX);
	snprintf(want, sizeof(want), "dead-lettered: %s: %s", f.reason, f.detail);
	failed_text(A2AJ_V03, &f, text, sizeof(text));
	assert_string_equal(text, want);
	/* a detail that is not UTF-8 is left out; the task is still written */
	strcpy(f.reason, "InvalidMessage");
	strcpy(f.detail, "bad \xff byte");
	failed_text(A2AJ_V10, &f, text, sizeof(text));
	assert_string_equal(text, "dead-lettered: InvalidMessage");
}

static void test_errors_echo_the_id_and_name_the_field(void **state)
{
	const char *body = "{\"jsonrpc\":\"2.0\",\"id\":42,\"method\":\"SendMessage\",\"params\":{}}";
	struct a2aj_req rq;
	struct a2aj_send s;
	struct a2aj_err e = {0};
	struct buf out;
	json_t *j, *info;

	(void)state;
	assert_int_equal(a2aj_parse(body, strlen(body), NULL, &rq, &e), 0);
	assert_int_equal(a2aj_send_read(&rq, &s, &e), -EINVAL);
	buf_init(&out, 1 << 16);
	assert_int_equal(a2aj_write_error(&out, &rq, &e), 0);
	j = json_loads(out.data, 0, NULL);
	assert_int_equal(json_integer_value(json_object_get(j, "id")), 42);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "error"), "code")), -32602);
	info = json_array_get(json_object_get(json_object_get(j, "error"), "data"), 0);
	assert_string_equal(json_string_value(json_object_get(json_object_get(info, "metadata"), "field")),
			    "params.message");
	json_decref(j);
	buf_reset(&out);
	/* no request: id null; an A2A error's domain is A2A's */
	a2aj_fail(&e, A2AJ_TASK_NOT_FOUND, 200, "TASK_NOT_FOUND", NULL, "no task");
	assert_int_equal(a2aj_write_error(&out, NULL, &e), 0);
	j = json_loads(out.data, 0, NULL);
	assert_true(json_is_null(json_object_get(j, "id")));
	info = json_array_get(json_object_get(json_object_get(j, "error"), "data"), 0);
	assert_string_equal(json_string_value(json_object_get(info, "domain")), "a2a-protocol.org");
	json_decref(j);
	buf_free(&out);
	a2aj_send_free(&s);
	a2aj_req_free(&rq);
}

static void test_cut_text_stays_utf8(void **state)
{
	struct a2aj_err e;
	char big[400];

	(void)state;
	/* 'é' is two bytes: a message cut inside one must drop the half */
	for (size_t i = 0; i + 2 < sizeof(big); i += 2)
		memcpy(big + i, "\xc3\xa9", 2);
	big[sizeof(big) - 2] = '\0';
	a2aj_fail(&e, A2AJ_INVALID_PARAMS, 200, "InvalidParams", big, "%s", big);
	for (int i = 0; i < 2; i++) {
		json_t *s = json_string(i ? e.field : e.message);

		assert_non_null(s);
		json_decref(s);
	}
}

static void test_delivery_request_from_fipa(void **state)
{
	static const char plain[] = "{\"performative\":\"inform\",\"sender\":\"alice\",\"receiver\":\"bob\","
				    "\"message_id\":\"m9\",\"conversation_id\":\"c9\",\"content\":\"hi\","
				    "\"in_reply_to\":\"m8\"}";
	static const char parts[] = "{\"performative\":\"request\",\"sender\":\"alice\",\"receiver\":\"bob\","
				    "\"message_id\":\"m10\",\"language\":\"application/a2a-parts+json\","
				    "\"content\":\"[{\\\"data\\\":{\\\"k\\\":2}}]\"}";
	struct buf out;
	json_t *j, *m;

	(void)state;
	buf_init(&out, 1 << 16);
	assert_int_equal(a2aj_from_fipa(plain, strlen(plain), &out), 0);
	j = json_loads(out.data, 0, NULL);
	assert_string_equal(json_string_value(json_object_get(j, "method")), "SendMessage");
	assert_string_equal(json_string_value(json_object_get(j, "id")), "m9");
	m = json_object_get(json_object_get(j, "params"), "message");
	assert_string_equal(json_string_value(json_object_get(m, "messageId")), "m9");
	assert_string_equal(json_string_value(json_object_get(m, "contextId")), "c9");
	assert_string_equal(json_string_value(json_object_get(m, "role")), "ROLE_USER");
	assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(m, "parts"), 0), "text")),
			    "hi");
	assert_string_equal(json_string_value(json_object_get(json_object_get(m, "metadata"), "sender")), "alice");
	assert_string_equal(json_string_value(json_object_get(json_object_get(m, "metadata"), "inReplyTo")), "m8");
	json_decref(j);
	buf_reset(&out);
	assert_int_equal(a2aj_from_fipa(parts, strlen(parts), &out), 0);
	j = json_loads(out.data, 0, NULL);
	m = json_object_get(json_object_get(j, "params"), "message");
	assert_null(json_object_get(m, "contextId"));
	assert_int_equal(json_integer_value(json_object_get(
				 json_object_get(json_array_get(json_object_get(m, "parts"), 0), "data"), "k")),
			 2);
	json_decref(j);
	assert_int_equal(a2aj_from_fipa("[1]", 3, &out), -EBADMSG);
	buf_free(&out);
}

struct answer_case {
	const char *body;
	int kind;
	int transient;
};

static const struct answer_case answer_cases[] = {
	{"{\"jsonrpc\":\"2.0\",\"id\":\"m\",\"result\":{\"task\":{\"id\":\"t\",\"status\":{\"state\":"
	 "\"TASK_STATE_COMPLETED\"}}}}",
	 A2AJ_ANS_DONE, 0},
	{"{\"jsonrpc\":\"2.0\",\"id\":\"m\",\"result\":{\"message\":{\"messageId\":\"r1\",\"role\":"
	 "\"ROLE_AGENT\",\"parts\":[{\"text\":\"yes\"}]}}}",
	 A2AJ_ANS_REPLY, 0},
	{"{\"jsonrpc\":\"2.0\",\"id\":\"m\",\"result\":{\"kind\":\"message\",\"messageId\":\"r2\",\"role\":"
	 "\"agent\",\"parts\":[{\"kind\":\"text\",\"text\":\"yes\"}]}}",
	 A2AJ_ANS_REPLY, 0},
	{"{\"jsonrpc\":\"2.0\",\"id\":\"m\",\"result\":{\"message\":{\"role\":\"ROLE_AGENT\"}}}", A2AJ_ANS_INVALID, 0},
	{"{\"jsonrpc\":\"2.0\",\"id\":\"m\",\"error\":{\"code\":-32603,\"message\":\"boom\"}}", A2AJ_ANS_ERROR, 1},
	{"{\"jsonrpc\":\"2.0\",\"id\":\"m\",\"error\":{\"code\":-32602,\"message\":\"bad\"}}", A2AJ_ANS_ERROR, 0},
	{"{\"jsonrpc\":\"2.0\",\"id\":\"m\",\"error\":{\"code\":-32001,\"message\":\"nf\"}}", A2AJ_ANS_ERROR, 0},
	{"{\"jsonrpc\":\"2.0\",\"id\":\"m\",\"error\":{\"code\":-32050,\"message\":\"busy\"}}", A2AJ_ANS_ERROR, 1},
	{"<html>", A2AJ_ANS_INVALID, 0},
	{"{\"jsonrpc\":\"2.0\",\"id\":\"m\"}", A2AJ_ANS_INVALID, 0},
};

static void test_answers_of_a2a_agents(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(answer_cases) / sizeof(answer_cases[0]); i++) {
		const struct answer_case *c = &answer_cases[i];
		struct a2aj_answer a;

		assert_int_equal(a2aj_read_answer(c->body, strlen(c->body), &a), 0);
		if (a.kind != c->kind || a.transient != c->transient)
			fail_msg("case %zu (%s): kind %d transient %d", i, c->body, a.kind, a.transient);
		if (a.kind == A2AJ_ANS_REPLY)
			assert_string_equal(
				json_string_value(json_object_get(json_array_get(a.reply.parts, 0), "text")), "yes");
		if (a.kind == A2AJ_ANS_ERROR || a.kind == A2AJ_ANS_INVALID)
			assert_true(a.detail[0] != '\0');
		a2aj_answer_free(&a);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_table),
		cmocka_unit_test(test_send_params_table),
		cmocka_unit_test(test_mapping_to_fipa),
		cmocka_unit_test(test_tasks_in_both_versions),
		cmocka_unit_test(test_failed_task_says_the_detail),
		cmocka_unit_test(test_errors_echo_the_id_and_name_the_field),
		cmocka_unit_test(test_cut_text_stays_utf8),
		cmocka_unit_test(test_delivery_request_from_fipa),
		cmocka_unit_test(test_answers_of_a2a_agents),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
