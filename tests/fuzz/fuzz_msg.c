/*
 * fuzz_msg: hostile request bodies against message validation (router/msg.c).
 * The first input byte picks the framing POST /v1/messages applies: one JSON
 * message, a {"messages":[...]} batch cut into element spans with
 * yj_json_span() (the split router/api.c does; its splitter is static), or
 * NDJSON lines; the second byte picks security.maxMessageBytes.  Every span
 * goes through msg_parse().  A refusal must carry a 400/413 status, a known
 * code and a field name; an accepted message must have valid ids and a body
 * that is valid UTF-8 JSON saying the same sender, receiver, message_id,
 * conversation and performative as the parsed struct (what is stored is
 * what consumers read).
 */
#include <errno.h>
#include <jansson.h>
#include <string.h>

#include "fuzz.h"
#include "msg.h"
#include "switchboard/util.h"
#include "switchboard/yjson.h"

#define MAX_SPANS 64

struct span {
	const char *p;
	size_t len;
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	FZ_CHECK(util_init() == 0);
	return 0;
}

static int is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* The element spans of `{"messages":[...]}`; 0 when the body is not a
 * batch (then it is one message), -1 when the batch is malformed. */
static int split_batch(const char *p, size_t n, struct span *sp, size_t *nsp)
{
	static const char key[] = "{\"messages\":[";
	size_t i = sizeof(key) - 1, s, e;

	*nsp = 0;
	if (n < i || memcmp(p, key, i) != 0)
		return 0;
	while (*nsp < MAX_SPANS && i < n && p[i] != ']') {
		if (yj_json_span(p + i, n - i, &s, &e))
			return -1;
		FZ_CHECK(s <= e && e <= n - i);
		sp[*nsp].p = p + i + s;
		sp[(*nsp)++].len = e - s;
		i += e;
		while (i < n && (is_ws(p[i]) || p[i] == ','))
			i++;
	}
	return 1;
}

static size_t split_ndjson(const char *p, size_t n, struct span *sp)
{
	const char *end = p + n;
	size_t k = 0;

	while (p < end && k < MAX_SPANS) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);

		if (len && p[len - 1] == '\r')
			len--;
		if (len) {
			sp[k].p = p;
			sp[k++].len = len;
		}
		p = nl ? nl + 1 : end;
	}
	return k;
}

static void check_refusal(int rc, const struct msg_err *e)
{
	FZ_CHECK(rc == -EBADMSG || rc == -EINVAL);
	FZ_CHECK(e->status == 400 || e->status == 413);
	FZ_CHECK(e->code && (strcmp(e->code, "InvalidMessage") == 0 || strcmp(e->code, "MessageTooLarge") == 0));
	FZ_CHECK(memchr(e->field, '\0', sizeof(e->field)) && e->field[0]);
	FZ_CHECK(memchr(e->message, '\0', sizeof(e->message)) && e->message[0]);
}

static int body_str_is(const json_t *body, const char *key, const char *want)
{
	const char *got = json_string_value(json_object_get(body, key));

	return got && strcmp(got, want) == 0;
}

static void check_accepted(const struct msg *m)
{
	json_error_t je;
	json_t *body;
	const char *conv;

	FZ_CHECK(m->body && m->body_len == strlen(m->body));
	FZ_CHECK(msg_agent_id_ok(m->sender) && msg_agent_id_ok(m->receiver));
	FZ_CHECK(m->performative >= 0 && m->performative < PERF_COUNT);
	FZ_CHECK(m->priority >= MSG_PRIO_LOW && m->priority <= MSG_PRIO_CRITICAL);
	FZ_CHECK(m->message_id[0]);
	FZ_CHECK(util_utf8_valid(m->body, m->body_len));
	body = json_loadb(m->body, m->body_len, 0, &je);
	FZ_CHECK(json_is_object(body));
	FZ_CHECK(body_str_is(body, "sender", m->sender));
	FZ_CHECK(body_str_is(body, "receiver", m->receiver));
	FZ_CHECK(body_str_is(body, "message_id", m->message_id));
	FZ_CHECK(body_str_is(body, "performative", msg_performative_name(m->performative)));
	conv = json_string_value(json_object_get(body, "conversation_id"));
	FZ_CHECK(strcmp(conv ? conv : "", m->conversation_id) == 0);
	json_decref(body);
}

static void parse_one(const struct span *sp, size_t max_content)
{
	struct msg m;
	struct msg_err e;
	int rc;

	memset(&e, 0, sizeof(e));
	rc = msg_parse(sp->p, sp->len, max_content, &m, &e);
	if (rc == -ENOMEM)
		return;
	if (rc == 0)
		check_accepted(&m);
	else
		check_refusal(rc, &e);
	msg_free(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t limits[] = {16, 1024, 1u << 20, 64};
	struct span sp[MAX_SPANS];
	size_t nsp = 0, max_content;
	const char *body;
	int mode;

	if (size < 2)
		return 0;
	mode = data[0] % 3;
	max_content = limits[data[1] % 4];
	body = (const char *)data + 2;
	size -= 2;
	if (mode == 2) {
		nsp = split_ndjson(body, size, sp);
	} else if (mode == 1 && split_batch(body, size, sp, &nsp) == 0) {
		sp[0].p = body;
		sp[0].len = size;
		nsp = 1;
	} else if (mode == 0 && size) {
		sp[0].p = body;
		sp[0].len = size;
		nsp = 1;
	}
	for (size_t i = 0; i < nsp; i++)
		parse_one(&sp[i], max_content);
	return 0;
}
