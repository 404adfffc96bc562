/*
 * fuzz_a2a: the A2A JSON-RPC reader and writer (router/a2aj.c) with hostile
 * requests.  The input is an optional A2A-Version header value, a NUL, and a
 * request body.  The request goes through a2aj_parse(); a SendMessage
 * through a2aj_send_read(), a2aj_to_fipa() and msg_parse(), as the router
 * takes it; GetTask and CancelTask through a2aj_task_id().  Invariants:
 * every refusal names a JSON-RPC code and a non-empty message; the FIPA
 * text a2aj writes is a JSON object that msg_parse() reads (or refuses
 * with a named field, never as broken JSON); and every answer written (a
 * Task in each state, or the error) is one valid JSON object with
 * "jsonrpc":"2.0".  Delivery to an A2A agent turns the stored message back
 * into a SendMessage (a2aj_from_fipa()): that request must read again, with
 * the same parts.  The body is also read as an A2A agent's answer
 * (a2aj_read_answer()), whose reply, when there is one, has parts.
 */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "a2aj.h"
#include "fuzz.h"
#include "msg.h"

/* `out` holds exactly one JSON-RPC response object. */
static void check_response(const struct buf *out)
{
	json_t *j = json_loadb(out->data, out->len, 0, NULL);

	FZ_CHECK(json_is_object(j));
	FZ_CHECK(json_is_string(json_object_get(j, "jsonrpc")));
	FZ_CHECK(json_object_get(j, "result") || json_object_get(j, "error"));
	json_decref(j);
}

static void check_error(const struct a2aj_req *rq, const struct a2aj_err *e)
{
	struct buf out;

	FZ_CHECK(e->code != 0 && e->message[0]);
	buf_init(&out, 1 << 20);
	FZ_CHECK(a2aj_write_error(&out, rq, e) == 0);
	check_response(&out);
	buf_free(&out);
}

/* The stored message, delivered to an A2A agent: the same parts again. */
static void check_round_trip(const struct msg *m, const struct a2aj_send *s)
{
	struct buf req;
	struct a2aj_req rq2;
	struct a2aj_send s2;
	struct a2aj_err e = {0};

	buf_init(&req, 1 << 23);
	FZ_CHECK(a2aj_from_fipa(m->body, m->body_len, &req) == 0);
	FZ_CHECK(a2aj_parse(req.data, req.len, "1.0", &rq2, &e) == 0);
	FZ_CHECK(a2aj_send_read(&rq2, &s2, &e) == 0);
	FZ_CHECK(json_equal(s2.parts, s->parts));
	a2aj_send_free(&s2);
	a2aj_req_free(&rq2);
	buf_free(&req);
}

static void check_answer(const char *body, size_t len)
{
	struct a2aj_answer a;

	FZ_CHECK(a2aj_read_answer(body, len, &a) == 0);
	FZ_CHECK(a.kind >= A2AJ_ANS_DONE && a.kind <= A2AJ_ANS_INVALID);
	if (a.kind == A2AJ_ANS_REPLY)
		FZ_CHECK(json_array_size(a.reply.parts) > 0 && a.reply.message_id);
	a2aj_answer_free(&a);
}

static void check_send(const struct a2aj_req *rq)
{
	struct a2aj_send s;
	struct a2aj_err e = {0};
	struct buf fipa;
	struct msg m;
	struct msg_err me = {0};
	int rc = a2aj_send_read(rq, &s, &e);

	if (rc) {
		FZ_CHECK(rc == -EINVAL);
		check_error(rq, &e);
		a2aj_send_free(&s);
		return;
	}
	buf_init(&fipa, 1 << 22);
	rc = a2aj_to_fipa(&s, "bob", s.sender ? s.sender : "anonymous", s.message_id, "ctx-1", NULL, &fipa);
	FZ_CHECK(rc == 0 || rc == -E2BIG);
	if (rc == 0) {
		rc = msg_parse(fipa.data, fipa.len, 1 << 20, &m, &me);
		FZ_CHECK(rc == 0 || rc == -EINVAL); /* never -EBADMSG: a2aj writes JSON */
		if (rc == 0) {
			check_round_trip(&m, &s);
			msg_free(&m);
		} else
			FZ_CHECK(me.field[0] && a2aj_field_of(me.field)[0]);
	}
	buf_free(&fipa);
	a2aj_send_free(&s);
}

static void check_tasks(const struct a2aj_req *rq)
{
	struct a2aj_err e = {0};
	const char *id = a2aj_task_id(rq, &e);

	if (!id) {
		check_error(rq, &e);
		return;
	}
	for (int st = RT_TASK_SUBMITTED; st <= RT_TASK_CANCELED; st++) {
		struct rt_task t = {.state = st, .reason = "NotResponding", .conversation_id = "c"};
		struct buf out;

		/* a failed task's detail: the id's bytes, perhaps cut inside a character */
		snprintf(t.detail, sizeof(t.detail), "%s", id);
		buf_init(&out, 1 << 20);
		FZ_CHECK(a2aj_write_task(&out, rq, id, &t, st == RT_TASK_SUBMITTED, 1) == 0);
		check_response(&out);
		buf_free(&out);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, 0, size);
	char *version = nul ? fz_cstr(data, (size_t)(nul - data)) : NULL;
	const char *body = nul ? (const char *)nul + 1 : (const char *)data;
	size_t len = nul ? size - (size_t)(nul - data) - 1 : size;
	struct a2aj_req rq;
	struct a2aj_err e = {0};
	int rc;

	if (nul && !version)
		return 0;
	rc = a2aj_parse(body, len, version, &rq, &e);
	if (rc == -EINVAL)
		check_error(&rq, &e);
	else if (rc == 0 && rq.method == A2AJ_SEND)
		check_send(&rq);
	else if (rc == 0)
		check_tasks(&rq);
	a2aj_req_free(&rq);
	check_answer(body, len);
	free(version);
	return 0;
}
