/*
 * FIPA-ACL message validation and canonicalisation.  Every rule names the
 * field it checks so a client can fix its request from the error alone.
 */
#include "msg.h"

#include <errno.h>
#include <stdarg.h>
#include <jansson.h>
#include <sodium.h>
#include <yajl/yajl_parse.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "switchboard/buf.h"
#include "switchboard/cfg.h"
#include "switchboard/util.h"
#include "switchboard/yjson.h"

static const char *const perf_names[PERF_COUNT] = {
	"request",	   "inform", "query-if",  "query-ref",	"propose",	  "accept-proposal",
	"reject-proposal", "agree",  "refuse",	  "failure",	"not-understood", "cfp",
	"subscribe",	   "cancel", "heartbeat", "capability",
};
static const char *const prio_names[] = {"low", "normal", "high", "critical"};

const char *msg_performative_name(int p)
{
	return p >= 0 && p < PERF_COUNT ? perf_names[p] : "?";
}

const char *msg_priority_name(int p)
{
	return p >= 0 && p <= MSG_PRIO_CRITICAL ? prio_names[p] : "?";
}

int msg_agent_id_ok(const char *s)
{
	return cfg_agent_id_ok(s);
}

static int hex_n(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

static int all_zero(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != '0')
			return 0;
	return 1;
}

int msg_traceparent_ok(const char *s, char trace_id[33])
{
	/* version "-" trace-id(32) "-" parent-id(16) "-" flags(2) */
	size_t len = strlen(s);

	if (len < 55 || s[2] != '-' || s[35] != '-' || s[52] != '-')
		return -EINVAL;
	if (!hex_n(s, 2) || !hex_n(s + 3, 32) || !hex_n(s + 36, 16) || !hex_n(s + 53, 2))
		return -EINVAL;
	if (strncmp(s, "ff", 2) == 0 || all_zero(s + 3, 32) || all_zero(s + 36, 16))
		return -EINVAL;
	if (strncmp(s, "00", 2) == 0 && len != 55)
		return -EINVAL;
	if (len > 55 && s[55] != '-')
		return -EINVAL;
	if (trace_id) {
		memcpy(trace_id, s + 3, 32);
		trace_id[32] = '\0';
	}
	return 0;
}

int msg_tracestate_ok(const char *s)
{
	size_t members = 0, len = strlen(s);
	const char *p = s;

	if (len > 512)
		return -EINVAL;
	while (*p) {
		const char *end = strchr(p, ','), *eq;
		size_t n = end ? (size_t)(end - p) : strlen(p);

		while (n && (*p == ' ' || *p == '\t')) {
			p++;
			n--;
		}
		while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
			n--;
		if (n) {
			eq = memchr(p, '=', n);
			if (!eq || eq == p || (size_t)(eq - p) > 256 || eq == p + n - 1)
				return -EINVAL;
			for (const char *k = p; k < eq; k++)
				if (!((*k >= 'a' && *k <= 'z') || (*k >= '0' && *k <= '9') || *k == '_' || *k == '-' ||
				      *k == '*' || *k == '/' || *k == '@'))
					return -EINVAL;
			for (const char *v = eq + 1; v < p + n; v++)
				if (*v < 0x20 || *v > 0x7e || *v == ',' || *v == '=')
					return -EINVAL;
			if (++members > 32)
				return -EINVAL;
		}
		if (!end)
			break;
		p = end + 1;
	}
	return 0;
}

static int id_chars_ok(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
		      s[i] == '-' || s[i] == '_' || s[i] == '.' || s[i] == ':'))
			return 0;
	return 1;
}

/* The fields of a message; F_DELIVERY opens the nested delivery object. */
enum field {
	F_PERFORMATIVE,
	F_SENDER,
	F_RECEIVER,
	F_CONTENT,
	F_CONTENT_B64,
	F_LANGUAGE,
	F_ONTOLOGY,
	F_PROTOCOL,
	F_CONVERSATION,
	F_REPLY_WITH,
	F_IN_REPLY_TO,
	F_MESSAGE_ID,
	F_CREATED_AT,
	F_DELIVERY,
	F_TRACEPARENT,
	F_TRACESTATE,
	F_PRIORITY, /* inside delivery */
	F_TIMEOUT,
	F_MAX_RETRIES,
	F_COUNT
};

static const char *const field_names[F_COUNT] = {
	"performative",
	"sender",
	"receiver",
	"content",
	"content_base64",
	"language",
	"ontology",
	"protocol",
	"conversation_id",
	"reply_with",
	"in_reply_to",
	"message_id",
	"created_at",
	"delivery",
	"traceparent",
	"tracestate",
	"delivery.priority",
	"delivery.timeout_ms",
	"delivery.max_retries",
};

/* Streaming-parse state: yajl calls back for each token; the first rule a
 * token breaks stops the parse with `err` filled. */
struct pstate {
	struct msg *m;
	struct msg_err *e;
	size_t max_content;
	int depth;
	int field; /* field whose value comes next, or -1 */
	unsigned seen;
	int failed;
	int has_created_at;
};

static int pfail(struct pstate *ps, int status, const char *code, const char *field, const char *fmt, ...)
	SB_PRINTF(5, 6);

static int pfail(struct pstate *ps, int status, const char *code, const char *field, const char *fmt, ...)
{
	va_list ap;

	ps->failed = 1;
	ps->e->status = status;
	ps->e->code = code;
	snprintf(ps->e->field, sizeof(ps->e->field), "%s", field);
	va_start(ap, fmt);
	vsnprintf(ps->e->message, sizeof(ps->e->message), fmt, ap);
	va_end(ap);
	return 0; /* stops yajl */
}

static int bad_type(struct pstate *ps, const char *what)
{
	const char *f;

	if (ps->field < 0 || ps->field >= F_COUNT) /* a value outside any object: `1`, `null`, `"x"` */
		return pfail(ps, 400, "InvalidMessage", "(body)", "a message must be a JSON object, got %s", what);
	f = field_names[ps->field];
	switch (ps->field) {
	case F_PERFORMATIVE:
		return pfail(ps, 400, "InvalidMessage", f,
			     "performative must be a FIPA performative such as request, inform or query-if");
	case F_SENDER:
	case F_RECEIVER:
		return pfail(ps, 400, "InvalidMessage", f,
			     "%s must be an agent id (letters, digits, '.', '_', '-'; at most 253)", f);
	case F_CONTENT:
		return pfail(ps, 400, "InvalidMessage", f,
			     "content must be a UTF-8 string (use content_base64 for binary), got %s", what);
	case F_DELIVERY:
		return pfail(ps, 400, "InvalidMessage", f, "delivery must be an object, got %s", what);
	case F_PRIORITY:
		return pfail(ps, 400, "InvalidMessage", f,
			     "delivery.priority must be one of low, normal, high, critical");
	case F_TIMEOUT:
		return pfail(ps, 400, "InvalidMessage", f,
			     "delivery.timeout_ms must be an integer from 100 to 86400000");
	case F_MAX_RETRIES:
		return pfail(ps, 400, "InvalidMessage", f, "delivery.max_retries must be an integer from 0 to 100");
	default:
		return pfail(ps, 400, "InvalidMessage", f, "%s must be a string, got %s", f, what);
	}
}

static int copy_bounded(struct pstate *ps, const char *s, size_t n, size_t maxlen, int id_rule, char *dst,
			size_t dstlen)
{
	const char *f = field_names[ps->field];

	if (n == 0 || n > maxlen || memchr(s, '\0', n)) {
		pfail(ps, 400, "InvalidMessage", f, "%s must be 1 to %zu characters", f, maxlen);
		return 0;
	}
	if (id_rule && !id_chars_ok(s, n)) {
		pfail(ps, 400, "InvalidMessage", f, "%s may contain only letters, digits, '-', '_', '.' and ':'", f);
		return 0;
	}
	if (dst) {
		memcpy(dst, s, n < dstlen - 1 ? n : dstlen - 1);
		dst[n < dstlen - 1 ? n : dstlen - 1] = '\0';
	}
	return 1;
}

static int check_base64(struct pstate *ps, const char *s, size_t n)
{
	size_t bin_len = 0, cap = n / 4 * 3 + 4;
	unsigned char *tmp;
	int rc;

	if (n / 4 * 3 > ps->max_content + 3)
		return pfail(ps, 413, "MessageTooLarge", "content_base64",
			     "decoded content exceeds security.maxMessageBytes (%zu)", ps->max_content);
	tmp = malloc(cap);
	if (!tmp)
		return pfail(ps, 503, "Internal", "content_base64", "out of memory");
	rc = sodium_base642bin(tmp, cap, s, n, NULL, &bin_len, NULL, sodium_base64_VARIANT_ORIGINAL);
	free(tmp);
	if (rc != 0)
		return pfail(ps, 400, "InvalidMessage", "content_base64", "content_base64 is not valid base64");
	if (bin_len > ps->max_content)
		return pfail(ps, 413, "MessageTooLarge", "content_base64",
			     "decoded content is %zu bytes; security.maxMessageBytes is %zu", bin_len, ps->max_content);
	return 1;
}

static int on_string(void *ctx, const unsigned char *v, size_t n)
{
	struct pstate *ps = ctx;
	const char *s = (const char *)v;
	char tmp[600];
	struct msg *m = ps->m;

	if (ps->field < 0)
		return bad_type(ps, "string");
	if (!util_utf8_valid(s, n)) /* yajl lets overlong forms, surrogates and values past U+10FFFF through */
		return pfail(ps, 400, "InvalidMessage", field_names[ps->field], "%s must be valid UTF-8",
			     field_names[ps->field]);
	if (memchr(s, '\0', n)) /* a \u0000: many JSON readers refuse it, C strings cut it */
		return pfail(ps, 400, "InvalidMessage", field_names[ps->field],
			     "%s must not contain NUL (send binary as content_base64)", field_names[ps->field]);
	switch (ps->field) {
	case F_PERFORMATIVE:
		for (int i = 0; i < PERF_COUNT; i++)
			if (strlen(perf_names[i]) == n && memcmp(perf_names[i], s, n) == 0)
				m->performative = i;
		return m->performative >= 0 ? 1 : bad_type(ps, "string");
	case F_SENDER:
	case F_RECEIVER: {
		char *dst = ps->field == F_SENDER ? m->sender : m->receiver;

		if (n > MSG_AGENT_ID_MAX || memchr(s, '\0', n))
			return bad_type(ps, "string");
		memcpy(dst, s, n);
		dst[n] = '\0';
		return msg_agent_id_ok(dst) ? 1 : bad_type(ps, "string");
	}
	case F_CONTENT:
		if (n > ps->max_content)
			return pfail(ps, 413, "MessageTooLarge", "content",
				     "content is %zu bytes; security.maxMessageBytes is %zu", n, ps->max_content);
		return 1; /* valid UTF-8, checked above */
	case F_CONTENT_B64:
		return check_base64(ps, s, n);
	case F_LANGUAGE:
		return copy_bounded(ps, s, n, 50, 0, NULL, 0);
	case F_ONTOLOGY:
		return copy_bounded(ps, s, n, 100, 0, NULL, 0);
	case F_PROTOCOL:
		return copy_bounded(ps, s, n, 100, 0, m->protocol, sizeof(m->protocol));
	case F_CONVERSATION:
		return copy_bounded(ps, s, n, MSG_ID_MAX, 1, m->conversation_id, sizeof(m->conversation_id));
	case F_REPLY_WITH:
	case F_IN_REPLY_TO:
		return copy_bounded(ps, s, n, MSG_ID_MAX, 1, NULL, 0);
	case F_MESSAGE_ID:
		return copy_bounded(ps, s, n, MSG_ID_MAX, 1, m->message_id, sizeof(m->message_id));
	case F_CREATED_AT:
		if (!copy_bounded(ps, s, n, 64, 0, tmp, sizeof(tmp)))
			return 0;
		ps->has_created_at = 1;
		if (util_parse_rfc3339(tmp, &m->created_ms))
			return pfail(ps, 400, "InvalidMessage", "created_at",
				     "created_at must be an RFC 3339 timestamp");
		return 1;
	case F_TRACEPARENT:
		if (!copy_bounded(ps, s, n, 55 + 256, 0, tmp, sizeof(tmp)))
			return 0;
		if (msg_traceparent_ok(tmp, m->trace_id))
			return pfail(ps, 400, "InvalidMessage", "traceparent",
				     "traceparent must follow W3C Trace Context: 00-<32 hex>-<16 hex>-<2 hex>, ids not "
				     "all zero");
		return 1;
	case F_TRACESTATE:
		if (!copy_bounded(ps, s, n, 512, 0, tmp, sizeof(tmp)))
			return 0;
		if (msg_tracestate_ok(tmp))
			return pfail(
				ps, 400, "InvalidMessage", "tracestate",
				"tracestate must be a comma-separated list of key=value members (W3C Trace Context)");
		return 1;
	case F_PRIORITY:
		for (int i = 0; i <= MSG_PRIO_CRITICAL; i++) {
			if (strlen(prio_names[i]) == n && memcmp(prio_names[i], s, n) == 0) {
				m->priority = i;
				return 1;
			}
		}
		return bad_type(ps, "string");
	default:
		return bad_type(ps, "string");
	}
}

static int on_integer(void *ctx, long long v)
{
	struct pstate *ps = ctx;

	if (ps->field == F_TIMEOUT && v >= 100 && v <= 86400000) {
		ps->m->timeout_ms = v;
		return 1;
	}
	if (ps->field == F_MAX_RETRIES && v >= 0 && v <= 100) {
		ps->m->max_retries = (int)v;
		return 1;
	}
	return bad_type(ps, "number");
}

static int on_double(void *ctx, double v)
{
	(void)v;
	return bad_type(ctx, "number");
}

static int on_boolean(void *ctx, int v)
{
	(void)v;
	return bad_type(ctx, "boolean");
}

static int on_null(void *ctx)
{
	struct pstate *ps = ctx;

	/* null means absent, which only optional fields may be */
	if (ps->field < 0 || ps->field == F_PERFORMATIVE || ps->field == F_SENDER || ps->field == F_RECEIVER)
		return bad_type(ps, "null");
	ps->seen &= ~(1u << ps->field);
	return 1;
}

static int on_start_map(void *ctx)
{
	struct pstate *ps = ctx;

	if (ps->depth == 0) {
		ps->depth = 1;
		return 1;
	}
	if (ps->depth == 1 && ps->field == F_DELIVERY) {
		ps->depth = 2;
		return 1;
	}
	return bad_type(ps, "object");
}

static int on_end_map(void *ctx)
{
	struct pstate *ps = ctx;

	ps->depth--;
	ps->field = ps->depth == 1 ? F_DELIVERY : -1;
	return 1;
}

static int on_start_array(void *ctx)
{
	struct pstate *ps = ctx;

	if (ps->depth == 0)
		return pfail(ps, 400, "InvalidMessage", "(body)", "a message must be a JSON object");
	return bad_type(ps, "array");
}

static int on_key(void *ctx, const unsigned char *k, size_t n)
{
	struct pstate *ps = ctx;
	int lo = ps->depth == 1 ? 0 : F_PRIORITY, hi = ps->depth == 1 ? F_PRIORITY : F_COUNT;
	size_t skip = ps->depth == 1 ? 0 : 9; /* "delivery." */

	if (n == 0 || memchr(k, '\0', n) || !util_utf8_valid((const char *)k, n))
		return pfail(ps, 400, "InvalidMessage", ps->depth == 1 ? "(key)" : "delivery.(key)",
			     "a field name must be non-empty UTF-8 text without NUL");
	for (int i = lo; i < hi; i++) {
		if (strlen(field_names[i]) - skip == n && memcmp(field_names[i] + skip, k, n) == 0) {
			if (ps->seen & (1u << i))
				return pfail(ps, 400, "InvalidMessage", field_names[i], "duplicate field %s",
					     field_names[i]);
			ps->seen |= 1u << i;
			ps->field = i;
			return 1;
		}
	}
	{
		char f[64];

		snprintf(f, sizeof(f), "%s%.*s", ps->depth == 1 ? "" : "delivery.", (int)(n > 40 ? 40 : n),
			 (const char *)k);
		return pfail(ps, 400, "InvalidMessage", f, "unknown field %s", f);
	}
}

static const yajl_callbacks msg_callbacks = {
	.yajl_null = on_null,
	.yajl_boolean = on_boolean,
	.yajl_integer = on_integer,
	.yajl_double = on_double,
	.yajl_string = on_string,
	.yajl_start_map = on_start_map,
	.yajl_map_key = on_key,
	.yajl_end_map = on_end_map,
	.yajl_start_array = on_start_array,
};

static int fail(struct msg_err *e, int status, const char *code, const char *field, const char *msg)
{
	e->status = status;
	e->code = code;
	snprintf(e->field, sizeof(e->field), "%s", field);
	snprintf(e->message, sizeof(e->message), "%s", msg);
	return -EINVAL;
}

/* Body from the client's own bytes plus the fields the router assigned. */
static int body_from_raw(struct msg *m, const char *raw, size_t len, int add_id, const char *ts)
{
	struct buf b;
	int rc;

	while (len && (raw[len - 1] == ' ' || raw[len - 1] == '\n' || raw[len - 1] == '\r' || raw[len - 1] == '\t'))
		len--;
	while (len && (*raw == ' ' || *raw == '\n' || *raw == '\r' || *raw == '\t')) {
		raw++;
		len--;
	}
	if (len < 2 || raw[len - 1] != '}')
		return -EINVAL;
	buf_init(&b, len + 128);
	rc = buf_append(&b, raw, len - 1);
	if (!rc && add_id) /* ids are [A-Za-z0-9._:-]: nothing to escape */
		rc = buf_puts(&b, ",\"message_id\":\"");
	if (!rc && add_id)
		rc = buf_puts(&b, m->message_id);
	if (!rc && add_id)
		rc = buf_puts(&b, "\"");
	if (!rc && ts)
		rc = buf_puts(&b, ",\"created_at\":\"");
	if (!rc && ts)
		rc = buf_puts(&b, ts);
	if (!rc)
		rc = buf_append(&b, ts ? "\"}" : "}", ts ? 2 : 1);
	if (rc) {
		buf_free(&b);
		return -ENOMEM;
	}
	m->body_len = b.len;
	m->body = buf_steal(&b);
	return m->body ? 0 : -ENOMEM;
}

/* 1 when the only control characters of `raw` are JSON's whitespace: yajl
 * also skips form feeds and vertical tabs between tokens, which RFC 8259
 * (and the consumers' JSON readers) do not. */
static int json_whitespace_only(const char *raw, size_t len)
{
	const uint64_t ones = UINT64_C(0x0101010101010101), highs = UINT64_C(0x8080808080808080);
	size_t i = 0;

	for (;;) {
		/* skip eight bytes at a time while none is below 0x20 (the "has a
		 * byte less than n" bit trick: exact about whether, not which) */
		for (; len - i >= 8; i += 8) {
			uint64_t w;

			memcpy(&w, raw + i, sizeof(w));
			if ((w - ones * 0x20) & ~w & highs)
				break;
		}
		if (i == len)
			return 1;
		for (size_t end = len - i >= 8 ? i + 8 : len; i < end; i++) {
			unsigned char c = (unsigned char)raw[i];

			if (c < 0x20 && c != '\t' && c != '\n' && c != '\r')
				return 0;
		}
	}
}

/* 1 when something other than white space follows the first JSON value of
 * `raw` (0 when there is no complete value: the parser says why). */
static int trailing_text(const char *raw, size_t len)
{
	size_t start, end;

	if (yj_json_span(raw, len, &start, &end))
		return 0;
	for (; end < len; end++)
		if (raw[end] != ' ' && raw[end] != '\t' && raw[end] != '\n' && raw[end] != '\r')
			return 1;
	return 0;
}

/* The value of the 4 hex digits at `p`, -1 when they are not. */
static long hex4(const char *p)
{
	unsigned char b[2];
	size_t n = 0;

	if (sodium_hex2bin(b, sizeof(b), p, 4, NULL, &n, NULL) || n != 2)
		return -1;
	return (long)b[0] << 8 | b[1];
}

/* 1 when every \u escape of `raw` that names a UTF-16 surrogate is half of a
 * pair: yajl takes a lone one, which many JSON readers (the consumers')
 * refuse, and the body is handed on as it came. */
static int json_escapes_ok(const char *raw, size_t len)
{
	const char *p = raw, *end = raw + len;

	while ((p = memchr(p, '\\', (size_t)(end - p))) && p + 1 < end) {
		long cp = p[1] == 'u' && end - p >= 6 ? hex4(p + 2) : -1;

		if (cp >= 0xdc00 && cp <= 0xdfff)
			return 0; /* a low half first */
		if (cp >= 0xd800 && cp <= 0xdbff) {
			long lo = end - p >= 12 && p[6] == '\\' && p[7] == 'u' ? hex4(p + 8) : -1;

			if (lo < 0xdc00 || lo > 0xdfff)
				return 0;
			p += 12;
			continue;
		}
		p += 2; /* any other escape, \\ included */
	}
	return 1;
}

int msg_parse(const char *raw, size_t len, size_t max_content, struct msg *m, struct msg_err *e)
{
	struct pstate ps = {.m = m, .e = e, .max_content = max_content, .field = -1};
	yajl_handle h;
	yajl_status st;
	char ts[32];
	int add_id, add_ts;

	memset(m, 0, sizeof(*m));
	m->priority = MSG_PRIO_NORMAL;
	m->max_retries = -1;
	m->performative = -1;
	if (!json_whitespace_only(raw, len)) /* the body is stored and handed on as it came */
		return fail(e, 400, "InvalidMessage", "(body)",
			    "not valid JSON: a control character other than space, tab, CR or LF");
	if (trailing_text(raw, len)) /* yajl ignores an unfinished token after a complete value */
		return fail(e, 400, "InvalidMessage", "(body)", "not valid JSON: text after the message object");
	if (!json_escapes_ok(raw, len))
		return fail(e, 400, "InvalidMessage", "(body)",
			    "not valid JSON text: a \\u escape of half a UTF-16 surrogate pair");
	h = yajl_alloc(&msg_callbacks, NULL, &ps);
	if (!h)
		return -ENOMEM;
	/* on_key and on_string check every name and value with util_utf8_valid,
	 * which is stricter than yajl's check and eight bytes a step: yajl's own
	 * byte-a-step pass was 8 % of the router at 4 KiB (docs/benchmarks.md). */
	if (!yajl_config(h, yajl_dont_validate_strings, 1)) {
		yajl_free(h);
		return -EINVAL;
	}
	st = yajl_parse(h, (const unsigned char *)raw, len);
	if (st == yajl_status_ok)
		st = yajl_complete_parse(h);
	if (st != yajl_status_ok && !ps.failed) {
		unsigned char *why = yajl_get_error(h, 0, (const unsigned char *)raw, len);
		char msg[200];

		snprintf(msg, sizeof(msg), "not valid JSON: %s", why ? (const char *)why : "syntax error");
		yajl_free_error(h, why);
		yajl_free(h);
		fail(e, 400, "InvalidMessage", "(body)", msg);
		return -EBADMSG;
	}
	yajl_free(h);
	if (ps.failed)
		return -EINVAL;
	if (ps.depth != 0 || !(ps.seen || m->performative >= 0))
		return fail(e, 400, "InvalidMessage", "(body)", "a message must be a JSON object");
	if (!(ps.seen & (1u << F_PERFORMATIVE)))
		return fail(e, 400, "InvalidMessage", "performative", "performative is required");
	if (!(ps.seen & (1u << F_SENDER)))
		return fail(e, 400, "InvalidMessage", "sender", "sender is required");
	if (!(ps.seen & (1u << F_RECEIVER)))
		return fail(e, 400, "InvalidMessage", "receiver", "receiver is required");
	if ((ps.seen & (1u << F_CONTENT)) && (ps.seen & (1u << F_CONTENT_B64)))
		return fail(e, 400, "InvalidMessage", "content", "send content or content_base64, not both");
	add_id = !m->message_id[0];
	add_ts = !ps.has_created_at;
	if (add_id)
		util_random_id(m->message_id);
	if (add_ts) {
		m->created_ms = util_now_ms();
		util_fmt_rfc3339(m->created_ms, ts);
	}
	if (body_from_raw(m, raw, len, add_id, add_ts ? ts : NULL))
		return fail(e, 400, "InvalidMessage", "(body)", "a message must be a JSON object");
	return 0;
}

int msg_make(struct msg *m, int performative, const char *sender, const char *receiver, const char *conversation_id,
	     const char *in_reply_to, const char *content)
{
	json_t *o;
	char ts[32];
	int rc = -ENOMEM;

	memset(m, 0, sizeof(*m));
	m->performative = performative;
	m->priority = MSG_PRIO_HIGH;
	m->max_retries = -1;
	m->created_ms = util_now_ms();
	util_random_id(m->message_id);
	snprintf(m->sender, sizeof(m->sender), "%s", sender);
	snprintf(m->receiver, sizeof(m->receiver), "%s", receiver);
	if (conversation_id)
		snprintf(m->conversation_id, sizeof(m->conversation_id), "%s", conversation_id);
	util_fmt_rfc3339(m->created_ms, ts);
	o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "performative", msg_performative_name(performative), "sender",
		      sender, "receiver", receiver, "content", content, "message_id", m->message_id, "created_at", ts);
	if (!o)
		return -ENOMEM;
	if (conversation_id && *conversation_id &&
	    json_object_set_new(o, "conversation_id", json_string(conversation_id)))
		goto out;
	if (in_reply_to && *in_reply_to && json_object_set_new(o, "in_reply_to", json_string(in_reply_to)))
		goto out;
	m->body = json_dumps(o, JSON_COMPACT);
	if (m->body) {
		m->body_len = strlen(m->body);
		rc = 0;
	}
out:
	json_decref(o);
	return rc;
}

void msg_free(struct msg *m)
{
	free(m->body);
	m->body = NULL;
	m->body_len = 0;
}
