/*
 * FIPA-ACL message validation and canonicalisation.  Every rule names the
 * field it checks so a client can fix its request from the error alone.
 */
#include "msg.h"

#include <errno.h>
#include <stdarg.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "switchboard/buf.h"
#include "switchboard/cfg.h"
#include "switchboard/util.h"

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

static int fail(struct msg_err *e, int status, const char *code, const char *field, const char *fmt, ...)
	SB_PRINTF(5, 6);

static int fail(struct msg_err *e, int status, const char *code, const char *field, const char *fmt, ...)
{
	va_list ap;

	e->status = status;
	e->code = code;
	snprintf(e->field, sizeof(e->field), "%s", field);
	va_start(ap, fmt);
	vsnprintf(e->message, sizeof(e->message), fmt, ap);
	va_end(ap);
	return -EINVAL;
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

static int id_chars_ok(const char *s)
{
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '-' ||
		      *s == '_' || *s == '.' || *s == ':'))
			return 0;
	return 1;
}

/* Optional string field with length bounds; copies into dst when given. */
static int opt_str(const json_t *obj, const char *key, size_t maxlen, int id_rule, char *dst, size_t dstlen,
		   struct msg_err *e, const char **out)
{
	const json_t *v = json_object_get(obj, key);
	const char *s;

	if (out)
		*out = NULL;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return fail(e, 400, "InvalidMessage", key, "%s must be a string", key);
	s = json_string_value(v);
	if (json_string_length(v) == 0 || json_string_length(v) > maxlen || strlen(s) != json_string_length(v))
		return fail(e, 400, "InvalidMessage", key, "%s must be 1 to %zu characters", key, maxlen);
	if (id_rule && !id_chars_ok(s))
		return fail(e, 400, "InvalidMessage", key, "%s may contain only letters, digits, '-', '_', '.' and ':'",
			    key);
	if (dst)
		snprintf(dst, dstlen, "%s", s);
	if (out)
		*out = s;
	return 0;
}

static const char *const known_fields[] = {
	"performative", "sender",   "receiver",	       "content",    "content_base64", "language",
	"ontology",	"protocol", "conversation_id", "reply_with", "in_reply_to",    "message_id",
	"created_at",	"delivery", "traceparent",     "tracestate",
};

static int check_delivery(const json_t *d, struct msg *m, struct msg_err *e)
{
	const char *k;
	json_t *v;

	if (!json_is_object(d))
		return fail(e, 400, "InvalidMessage", "delivery", "delivery must be an object");
	json_object_foreach ((json_t *)d, k, v) {
		if (strcmp(k, "priority") == 0) {
			int found = -1;

			for (int i = 0; json_is_string(v) && i <= MSG_PRIO_CRITICAL; i++)
				if (strcmp(json_string_value(v), prio_names[i]) == 0)
					found = i;
			if (found < 0)
				return fail(e, 400, "InvalidMessage", "delivery.priority",
					    "delivery.priority must be one of low, normal, high, critical");
			m->priority = found;
		} else if (strcmp(k, "timeout_ms") == 0) {
			if (!json_is_integer(v) || json_integer_value(v) < 100 || json_integer_value(v) > 86400000)
				return fail(e, 400, "InvalidMessage", "delivery.timeout_ms",
					    "delivery.timeout_ms must be an integer from 100 to 86400000");
			m->timeout_ms = json_integer_value(v);
		} else if (strcmp(k, "max_retries") == 0) {
			if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 100)
				return fail(e, 400, "InvalidMessage", "delivery.max_retries",
					    "delivery.max_retries must be an integer from 0 to 100");
			m->max_retries = (int)json_integer_value(v);
		} else {
			char f[64];

			snprintf(f, sizeof(f), "delivery.%.40s", k);
			return fail(e, 400, "InvalidMessage", f, "unknown field %s", f);
		}
	}
	return 0;
}

static int check_content(const json_t *obj, size_t max_content, struct msg_err *e)
{
	const json_t *c = json_object_get(obj, "content"), *b = json_object_get(obj, "content_base64");

	if (c && b)
		return fail(e, 400, "InvalidMessage", "content", "send content or content_base64, not both");
	if (c) {
		if (!json_is_string(c))
			return fail(e, 400, "InvalidMessage", "content",
				    "content must be a UTF-8 string (use content_base64 for binary)");
		if (json_string_length(c) > max_content)
			return fail(e, 413, "MessageTooLarge", "content",
				    "content is %zu bytes; security.maxMessageBytes is %zu", json_string_length(c),
				    max_content);
		/* jansson has already rejected invalid UTF-8 while parsing */
	}
	if (b) {
		const char *s;
		size_t len, bin_len = 0;
		unsigned char *tmp;
		int rc;

		if (!json_is_string(b))
			return fail(e, 400, "InvalidMessage", "content_base64", "content_base64 must be a string");
		s = json_string_value(b);
		len = json_string_length(b);
		if (len / 4 * 3 > max_content + 3)
			return fail(e, 413, "MessageTooLarge", "content_base64",
				    "decoded content exceeds security.maxMessageBytes (%zu)", max_content);
		tmp = malloc(len / 4 * 3 + 4);
		if (!tmp)
			return -ENOMEM;
		rc = sodium_base642bin(tmp, len / 4 * 3 + 4, s, len, NULL, &bin_len, NULL,
				       sodium_base64_VARIANT_ORIGINAL);
		free(tmp);
		if (rc != 0)
			return fail(e, 400, "InvalidMessage", "content_base64", "content_base64 is not valid base64");
		if (bin_len > max_content)
			return fail(e, 413, "MessageTooLarge", "content_base64",
				    "decoded content is %zu bytes; security.maxMessageBytes is %zu", bin_len,
				    max_content);
	}
	return 0;
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
	if (!rc && add_id)
		rc = buf_printf(&b, ",\"message_id\":\"%s\"", m->message_id);
	if (!rc && ts)
		rc = buf_printf(&b, ",\"created_at\":\"%s\"", ts);
	if (!rc)
		rc = buf_append(&b, "}", 1);
	if (rc) {
		buf_free(&b);
		return -ENOMEM;
	}
	m->body_len = b.len;
	m->body = buf_steal(&b);
	return m->body ? 0 : -ENOMEM;
}

int msg_from_json(const json_t *obj, const char *raw, size_t raw_len, size_t max_content, struct msg *m,
		  struct msg_err *e)
{
	const char *k, *s;
	json_t *v, *canon = NULL;
	char ts[32];
	int rc;

	memset(m, 0, sizeof(*m));
	m->priority = MSG_PRIO_NORMAL;
	m->max_retries = -1;
	m->performative = -1;
	if (!json_is_object(obj))
		return fail(e, 400, "InvalidMessage", "(body)", "a message must be a JSON object");
	json_object_foreach ((json_t *)obj, k, v) {
		size_t i;

		for (i = 0; i < SB_ARRAY_SIZE(known_fields); i++)
			if (strcmp(k, known_fields[i]) == 0)
				break;
		if (i == SB_ARRAY_SIZE(known_fields))
			return fail(e, 400, "InvalidMessage", k, "unknown field %.60s", k);
	}
	v = json_object_get(obj, "performative");
	if (!v)
		return fail(e, 400, "InvalidMessage", "performative", "performative is required");
	for (int i = 0; json_is_string(v) && i < PERF_COUNT; i++)
		if (strcmp(json_string_value(v), perf_names[i]) == 0)
			m->performative = i;
	if (m->performative < 0)
		return fail(e, 400, "InvalidMessage", "performative",
			    "performative must be a FIPA performative such as request, inform or query-if");
	for (int i = 0; i < 2; i++) {
		const char *key = i ? "receiver" : "sender";
		char *dst = i ? m->receiver : m->sender;

		v = json_object_get(obj, key);
		if (!v)
			return fail(e, 400, "InvalidMessage", key, "%s is required", key);
		if (!json_is_string(v) || !msg_agent_id_ok(json_string_value(v)))
			return fail(e, 400, "InvalidMessage", key,
				    "%s must be an agent id (letters, digits, '.', '_', '-'; at most 253)", key);
		snprintf(dst, MSG_AGENT_ID_MAX + 1, "%s", json_string_value(v));
	}
	rc = check_content(obj, max_content, e);
	if (rc)
		return rc;
	if ((rc = opt_str(obj, "language", 50, 0, NULL, 0, e, NULL)) ||
	    (rc = opt_str(obj, "ontology", 100, 0, NULL, 0, e, NULL)) ||
	    (rc = opt_str(obj, "protocol", 100, 0, m->protocol, sizeof(m->protocol), e, NULL)) ||
	    (rc = opt_str(obj, "conversation_id", MSG_ID_MAX, 1, m->conversation_id, sizeof(m->conversation_id), e,
			  NULL)) ||
	    (rc = opt_str(obj, "reply_with", MSG_ID_MAX, 1, NULL, 0, e, NULL)) ||
	    (rc = opt_str(obj, "in_reply_to", MSG_ID_MAX, 1, NULL, 0, e, NULL)) ||
	    (rc = opt_str(obj, "message_id", MSG_ID_MAX, 1, m->message_id, sizeof(m->message_id), e, NULL)))
		return rc;
	rc = opt_str(obj, "created_at", 64, 0, NULL, 0, e, &s);
	if (rc)
		return rc;
	if (s && util_parse_rfc3339(s, &m->created_ms))
		return fail(e, 400, "InvalidMessage", "created_at", "created_at must be an RFC 3339 timestamp");
	rc = opt_str(obj, "traceparent", 55 + 256, 0, NULL, 0, e, &s);
	if (rc)
		return rc;
	if (s && msg_traceparent_ok(s, m->trace_id))
		return fail(
			e, 400, "InvalidMessage", "traceparent",
			"traceparent must follow W3C Trace Context: 00-<32 hex>-<16 hex>-<2 hex>, ids not all zero");
	rc = opt_str(obj, "tracestate", 512, 0, NULL, 0, e, &s);
	if (rc)
		return rc;
	if (s && msg_tracestate_ok(s))
		return fail(e, 400, "InvalidMessage", "tracestate",
			    "tracestate must be a comma-separated list of key=value members (W3C Trace Context)");
	v = json_object_get(obj, "delivery");
	if (v && (rc = check_delivery(v, m, e)))
		return rc;

	if (raw) {
		int add_id = !m->message_id[0], add_ts = !json_object_get(obj, "created_at");

		if (add_id)
			util_random_id(m->message_id);
		if (add_ts) {
			m->created_ms = util_now_ms();
			util_fmt_rfc3339(m->created_ms, ts);
		}
		return body_from_raw(m, raw, raw_len, add_id, add_ts ? ts : NULL);
	}
	canon = json_deep_copy(obj);
	if (!canon)
		return -ENOMEM;
	if (!m->message_id[0]) {
		util_random_id(m->message_id);
		if (json_object_set_new(canon, "message_id", json_string(m->message_id)))
			goto nomem;
	}
	if (!json_object_get(obj, "created_at")) {
		m->created_ms = util_now_ms();
		util_fmt_rfc3339(m->created_ms, ts);
		if (json_object_set_new(canon, "created_at", json_string(ts)))
			goto nomem;
	}
	m->body = json_dumps(canon, JSON_COMPACT);
	if (!m->body)
		goto nomem;
	m->body_len = strlen(m->body);
	json_decref(canon);
	return 0;
nomem:
	json_decref(canon);
	return -ENOMEM;
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
