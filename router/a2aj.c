/*
 * a2aj: A2A's JSON-RPC, read and written with jansson (docs/a2a.md).  The
 * request is parsed whole (bodies are bounded by the HTTP layer); each
 * check names the field it refuses, in A2A's terms ("params.message.parts[1]
 * .text"), and every string that goes back out is valid UTF-8: jansson
 * refuses invalid input, and text cut to fit a buffer is cut on a character
 * boundary.  Both protocol versions are read into one shape (1.0's parts),
 * and answers are written in the request's version.
 */
#include "a2aj.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "switchboard/util.h"

#define A2AJ_MAX_PARTS 1000

struct method_name {
	const char *name;
	int version;
	int method;
};

static const struct method_name methods[] = {
	{"SendMessage", A2AJ_V10, A2AJ_SEND},
	{"GetTask", A2AJ_V10, A2AJ_GET},
	{"CancelTask", A2AJ_V10, A2AJ_CANCEL},
	{"SendStreamingMessage", A2AJ_V10, A2AJ_UNSERVED},
	{"SubscribeToTask", A2AJ_V10, A2AJ_UNSERVED},
	{"ListTasks", A2AJ_V10, A2AJ_UNSERVED},
	{"CreateTaskPushNotificationConfig", A2AJ_V10, A2AJ_UNSERVED},
	{"GetTaskPushNotificationConfig", A2AJ_V10, A2AJ_UNSERVED},
	{"ListTaskPushNotificationConfigs", A2AJ_V10, A2AJ_UNSERVED},
	{"DeleteTaskPushNotificationConfig", A2AJ_V10, A2AJ_UNSERVED},
	{"GetExtendedAgentCard", A2AJ_V10, A2AJ_UNSERVED},
	{"message/send", A2AJ_V03, A2AJ_SEND},
	{"tasks/get", A2AJ_V03, A2AJ_GET},
	{"tasks/cancel", A2AJ_V03, A2AJ_CANCEL},
	{"message/stream", A2AJ_V03, A2AJ_UNSERVED},
	{"tasks/resubscribe", A2AJ_V03, A2AJ_UNSERVED},
	{"tasks/pushNotificationConfig/set", A2AJ_V03, A2AJ_UNSERVED},
	{"tasks/pushNotificationConfig/get", A2AJ_V03, A2AJ_UNSERVED},
	{"tasks/pushNotificationConfig/list", A2AJ_V03, A2AJ_UNSERVED},
	{"tasks/pushNotificationConfig/delete", A2AJ_V03, A2AJ_UNSERVED},
	{"agent/getAuthenticatedExtendedCard", A2AJ_V03, A2AJ_UNSERVED},
};

/* Cut `s` after its last whole UTF-8 character (text cut by snprintf). */
static void utf8_trim(char *s)
{
	size_t n = strlen(s), i = n, lead, need;

	while (i > 0 && n - i < 4 && ((unsigned char)s[i - 1] & 0xC0) == 0x80)
		i--;
	if (i == 0)
		return;
	lead = (unsigned char)s[i - 1];
	need = lead < 0x80 ? 1 : lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
	if (n - (i - 1) < need)
		s[i - 1] = '\0';
}

/* At most `max` bytes of `s` (valid UTF-8), cut on a character boundary. */
static const char *clip(const char *s, char *out, size_t max)
{
	snprintf(out, max + 1, "%s", s);
	utf8_trim(out);
	return out;
}

/* At most `max` bytes of a header value, printable ASCII only ('?' for
 * anything else): headers are bytes, not text. */
static const char *ascii_clip(const char *s, char *out, size_t max)
{
	size_t i;

	for (i = 0; i < max && s[i]; i++)
		out[i] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
	out[i] = '\0';
	return out;
}

int a2aj_fail(struct a2aj_err *e, int code, int http_status, const char *reason, const char *field, const char *fmt,
	      ...)
{
	va_list ap;

	e->code = code;
	e->http_status = http_status;
	e->reason = reason;
	snprintf(e->field, sizeof(e->field), "%s", field ? field : "");
	utf8_trim(e->field);
	va_start(ap, fmt);
	vsnprintf(e->message, sizeof(e->message), fmt, ap);
	va_end(ap);
	utf8_trim(e->message);
	return -EINVAL;
}

static int bad_params(struct a2aj_err *e, const char *field, const char *what)
{
	return a2aj_fail(e, A2AJ_INVALID_PARAMS, 200, "InvalidParams", field, "%s %s", field, what);
}

/* "1.0", "1.0.3" and "1" are 1.0; "0.3" and "0.3.x" are 0.3; -1 otherwise. */
static int version_of(const char *h)
{
	if (strcmp(h, "1") == 0 || strcmp(h, "1.0") == 0 || strncmp(h, "1.0.", 4) == 0)
		return A2AJ_V10;
	if (strcmp(h, "0.3") == 0 || strncmp(h, "0.3.", 4) == 0)
		return A2AJ_V03;
	return -1;
}

static const struct method_name *method_find(const char *name)
{
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
		if (strcmp(methods[i].name, name) == 0)
			return &methods[i];
	return NULL;
}

/* The envelope: an object with jsonrpc "2.0", an id, a method, params. */
static int read_envelope(struct a2aj_req *rq, struct a2aj_err *e)
{
	const json_t *id = json_object_get(rq->root, "id"), *v = json_object_get(rq->root, "jsonrpc");
	const json_t *m = json_object_get(rq->root, "method");

	if (json_is_array(rq->root))
		return a2aj_fail(e, A2AJ_INVALID_REQUEST, 200, "InvalidRequest", NULL,
				 "JSON-RPC batches are not served; send one request at a time");
	if (!json_is_object(rq->root))
		return a2aj_fail(e, A2AJ_INVALID_REQUEST, 200, "InvalidRequest", NULL,
				 "a JSON-RPC request is an object");
	if (json_is_string(id) || json_is_integer(id))
		rq->id = id;
	if (!json_is_string(v) || strcmp(json_string_value(v), "2.0") != 0)
		return a2aj_fail(e, A2AJ_INVALID_REQUEST, 200, "InvalidRequest", "jsonrpc", "jsonrpc must be \"2.0\"");
	if (!rq->id)
		return a2aj_fail(e, A2AJ_INVALID_REQUEST, 200, "InvalidRequest", "id",
				 id && !json_is_null(id) ? "id must be a string or an integer"
							 : "id is required (notifications are not served)");
	if (!json_is_string(m))
		return a2aj_fail(e, A2AJ_INVALID_REQUEST, 200, "InvalidRequest", "method", "method must be a string");
	rq->method_name = json_string_value(m);
	rq->params = json_object_get(rq->root, "params");
	if (rq->params && !json_is_object(rq->params))
		return bad_params(e, "params", "must be an object");
	return 0;
}

/* The version from the header and the method's spelling. */
static int resolve_version(struct a2aj_req *rq, const char *version_hdr, struct a2aj_err *e)
{
	const struct method_name *mn = method_find(rq->method_name);
	int hv = version_hdr ? version_of(version_hdr) : -1;
	char name[72];

	if (version_hdr && hv < 0)
		return a2aj_fail(e, A2AJ_VERSION_NOT_SUPPORTED, 200, "VERSION_NOT_SUPPORTED", "A2A-Version",
				 "A2A-Version \"%s\" is not served; this router serves 1.0 and 0.3",
				 ascii_clip(version_hdr, name, 32));
	rq->version = hv >= 0 ? hv : mn ? mn->version : A2AJ_V10;
	rq->method = mn ? mn->method : A2AJ_UNKNOWN;
	if (mn && hv >= 0 && hv != mn->version)
		return a2aj_fail(e, A2AJ_METHOD_NOT_FOUND, 200, "MethodNotFound", "method",
				 "%s is an A2A %s method; the request says A2A-Version %s", mn->name,
				 mn->version == A2AJ_V10 ? "1.0" : "0.3", hv == A2AJ_V10 ? "1.0" : "0.3");
	if (rq->method == A2AJ_UNKNOWN || rq->method == A2AJ_UNSERVED)
		return a2aj_fail(e, A2AJ_METHOD_NOT_FOUND, 200, "MethodNotFound", "method",
				 "method \"%s\" is not served here (served: SendMessage, GetTask, CancelTask and "
				 "their 0.3 spellings)",
				 clip(rq->method_name, name, 64));
	return 0;
}

int a2aj_parse(const char *body, size_t len, const char *version_hdr, struct a2aj_req *rq, struct a2aj_err *e)
{
	json_error_t jerr;

	memset(rq, 0, sizeof(*rq));
	rq->version = A2AJ_V10;
	rq->method = A2AJ_UNKNOWN;
	rq->root = json_loadb(body ? body : "", len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (!rq->root) {
		if (json_error_code(&jerr) == json_error_out_of_memory)
			return -ENOMEM;
		return a2aj_fail(e, A2AJ_PARSE_ERROR, 200, "ParseError", NULL,
				 "the body is not valid JSON (line %d, column %d)", jerr.line, jerr.column);
	}
	if (read_envelope(rq, e))
		return -EINVAL;
	return resolve_version(rq, version_hdr, e);
}

void a2aj_req_free(struct a2aj_req *rq)
{
	json_decref(rq->root);
	memset(rq, 0, sizeof(*rq));
}

/* --- SendMessage's params ------------------------------------------------ */

/* Refuse any key of `o` not in `keys` (NULL-terminated). */
static int only_keys(const json_t *o, const char *const *keys, const char *path, struct a2aj_err *e)
{
	const char *k;
	const json_t *v;
	char f[96], kb[48];

	json_object_foreach ((json_t *)o, k, v) {
		size_t i = 0;

		while (keys[i] && strcmp(keys[i], k) != 0)
			i++;
		if (!keys[i]) {
			snprintf(f, sizeof(f), "%s.%s", path, clip(k, kb, 40));
			utf8_trim(f);
			return bad_params(e, f, "is not a field of this object");
		}
	}
	return 0;
}

/* An optional member of `o` that must be a string when present. */
static int opt_string(const json_t *o, const char *key, const char *path, const char **out, struct a2aj_err *e)
{
	const json_t *v = json_object_get(o, key);
	char f[96];

	*out = NULL;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v)) {
		snprintf(f, sizeof(f), "%s.%s", path, key);
		return bad_params(e, f, "must be a string");
	}
	*out = json_string_value(v);
	return 0;
}

static int set_str(json_t *o, const char *key, const char *v)
{
	return v ? json_object_set_new(o, key, json_string(v)) : 0;
}

/* A 1.0 part: exactly one of text, raw, url, data; metadata, filename and
 * mediaType beside.  Copied into a new object. */
static int part_v10(const json_t *p, const char *path, json_t **out, struct a2aj_err *e)
{
	static const char *const keys[] = {"text", "raw", "url", "data", "metadata", "filename", "mediaType", NULL};
	static const char *const strs[] = {"text", "raw", "url", "filename", "mediaType"};
	const char *k;
	json_t *v;
	size_t kinds = !!json_object_get(p, "text") + !!json_object_get(p, "raw") + !!json_object_get(p, "url") +
		       !!json_object_get(p, "data");
	char f[96];

	if (only_keys(p, keys, path, e))
		return -EINVAL;
	if (kinds != 1)
		return bad_params(e, path, "must hold exactly one of text, raw, url and data");
	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
		v = json_object_get(p, strs[i]);
		if (v && !json_is_string(v)) {
			snprintf(f, sizeof(f), "%s.%s", path, strs[i]);
			return bad_params(e, f, "must be a string");
		}
	}
	v = json_object_get(p, "metadata");
	if (v && !json_is_object(v)) {
		snprintf(f, sizeof(f), "%s.metadata", path);
		return bad_params(e, f, "must be an object");
	}
	*out = json_object();
	if (!*out)
		return -ENOMEM;
	json_object_foreach ((json_t *)p, k, v)
		if (json_object_set(*out, k, v))
			return -ENOMEM;
	return 0;
}

/* A 0.3 file part's "file": {uri|bytes, mimeType, name} into 1.0's keys. */
static int file_v03(const json_t *file, const char *path, json_t *out, struct a2aj_err *e)
{
	static const char *const keys[] = {"uri", "bytes", "mimeType", "name", NULL};
	const char *uri, *bytes, *mime, *name;
	char f[96];

	snprintf(f, sizeof(f), "%s.file", path);
	if (!json_is_object(file))
		return bad_params(e, f, "must be an object");
	if (only_keys(file, keys, f, e) || opt_string(file, "uri", f, &uri, e) ||
	    opt_string(file, "bytes", f, &bytes, e) || opt_string(file, "mimeType", f, &mime, e) ||
	    opt_string(file, "name", f, &name, e))
		return -EINVAL;
	if (!uri == !bytes)
		return bad_params(e, f, "must hold exactly one of uri and bytes");
	if (set_str(out, uri ? "url" : "raw", uri ? uri : bytes) || set_str(out, "mediaType", mime) ||
	    set_str(out, "filename", name))
		return -ENOMEM;
	return 0;
}

/* A 0.3 part ({"kind":"text"|"data"|"file",...}) in 1.0's shape. */
static int part_v03(const json_t *p, const char *path, json_t **out, struct a2aj_err *e)
{
	static const char *const keys[] = {"kind", "text", "data", "file", "metadata", NULL};
	const char *kind;
	const json_t *md = json_object_get(p, "metadata");
	char f[96];
	int rc;

	if (only_keys(p, keys, path, e) || opt_string(p, "kind", path, &kind, e))
		return -EINVAL;
	snprintf(f, sizeof(f), "%s.kind", path);
	if (!kind || (strcmp(kind, "text") != 0 && strcmp(kind, "data") != 0 && strcmp(kind, "file") != 0))
		return bad_params(e, f, "must be \"text\", \"data\" or \"file\"");
	if (md && !json_is_object(md)) {
		snprintf(f, sizeof(f), "%s.metadata", path);
		return bad_params(e, f, "must be an object");
	}
	*out = json_object();
	if (!*out || (md && json_object_set(*out, "metadata", (json_t *)md)))
		return -ENOMEM;
	snprintf(f, sizeof(f), "%s.%s", path, kind);
	if (strcmp(kind, "text") == 0) {
		const json_t *t = json_object_get(p, "text");

		if (!json_is_string(t))
			return bad_params(e, f, "must be a string");
		rc = json_object_set(*out, "text", (json_t *)t) ? -ENOMEM : 0;
	} else if (strcmp(kind, "data") == 0) {
		const json_t *d = json_object_get(p, "data");

		if (!json_is_object(d))
			return bad_params(e, f, "must be an object");
		rc = json_object_set(*out, "data", (json_t *)d) ? -ENOMEM : 0;
	} else {
		rc = file_v03(json_object_get(p, "file"), path, *out, e);
	}
	return rc;
}

static int read_parts(const json_t *arr, int version, json_t **out, struct a2aj_err *e)
{
	const json_t *p;
	size_t i;
	char path[64];

	if (!json_is_array(arr) || json_array_size(arr) == 0)
		return bad_params(e, "params.message.parts", "must be an array of at least one part");
	if (json_array_size(arr) > A2AJ_MAX_PARTS)
		return bad_params(e, "params.message.parts", "must hold at most 1000 parts");
	*out = json_array();
	if (!*out)
		return -ENOMEM;
	json_array_foreach ((json_t *)arr, i, p) {
		json_t *np = NULL;
		int rc;

		snprintf(path, sizeof(path), "params.message.parts[%zu]", i);
		if (!json_is_object(p))
			return bad_params(e, path, "must be an object");
		rc = version == A2AJ_V03 ? part_v03(p, path, &np, e) : part_v10(p, path, &np, e);
		if (np && json_array_append_new(*out, np))
			return -ENOMEM;
		if (rc)
			return rc;
	}
	return 0;
}

/* The metadata keys the router reads; others are accepted and not kept. */
static int read_metadata(const json_t *md, struct a2aj_send *s, struct a2aj_err *e)
{
	static const char path[] = "params.message.metadata";

	if (!md || json_is_null(md))
		return 0;
	if (!json_is_object(md))
		return bad_params(e, path, "must be an object");
	if (opt_string(md, "sender", path, &s->sender, e) ||
	    opt_string(md, "performative", path, &s->performative, e) ||
	    opt_string(md, "inReplyTo", path, &s->in_reply_to, e))
		return -EINVAL;
	return 0;
}

/* params.configuration: accepted, except a push-notification config. */
static int read_configuration(const json_t *c, struct a2aj_err *e)
{
	static const char *const push[] = {"pushNotificationConfig", "taskPushNotificationConfig"};

	if (!c || json_is_null(c))
		return 0;
	if (!json_is_object(c))
		return bad_params(e, "params.configuration", "must be an object");
	for (size_t i = 0; i < 2; i++) {
		const json_t *v = json_object_get(c, push[i]);

		if (v && !json_is_null(v))
			return a2aj_fail(e, A2AJ_PUSH_NOT_SUPPORTED, 200, "PUSH_NOTIFICATION_NOT_SUPPORTED",
					 "params.configuration", "push notifications are not served: ask with GetTask");
	}
	return 0;
}

static int read_message(const json_t *m, int version, struct a2aj_send *s, struct a2aj_err *e)
{
	static const char *const keys10[] = {"messageId", "contextId",	"taskId",	    "role", "parts",
					     "metadata",  "extensions", "referenceTaskIds", NULL};
	static const char *const keys03[] = {"kind",  "messageId", "contextId",	 "taskId",	     "role",
					     "parts", "metadata",  "extensions", "referenceTaskIds", NULL};
	static const char path[] = "params.message";
	const char *ignored;

	if (!json_is_object(m))
		return bad_params(e, path, "is required and must be an object");
	if (only_keys(m, version == A2AJ_V03 ? keys03 : keys10, path, e) ||
	    opt_string(m, "messageId", path, &s->message_id, e) ||
	    opt_string(m, "contextId", path, &s->context_id, e) || opt_string(m, "taskId", path, &ignored, e) ||
	    opt_string(m, "role", path, &ignored, e))
		return -EINVAL;
	if (!s->message_id || !*s->message_id)
		return bad_params(e, "params.message.messageId", "is required");
	if (s->context_id && !*s->context_id)
		s->context_id = NULL;
	if (read_metadata(json_object_get(m, "metadata"), s, e))
		return -EINVAL;
	return read_parts(json_object_get(m, "parts"), version, &s->parts, e);
}

int a2aj_send_read(const struct a2aj_req *rq, struct a2aj_send *s, struct a2aj_err *e)
{
	static const char *const keys[] = {"message", "configuration", "metadata", "tenant", NULL};
	const json_t *md = json_object_get(rq->params, "metadata");

	memset(s, 0, sizeof(*s));
	if (!rq->params)
		return bad_params(e, "params", "is required");
	if (only_keys(rq->params, keys, "params", e) ||
	    read_configuration(json_object_get(rq->params, "configuration"), e))
		return -EINVAL;
	if (md && !json_is_null(md) && !json_is_object(md))
		return bad_params(e, "params.metadata", "must be an object");
	return read_message(json_object_get(rq->params, "message"), rq->version, s, e);
}

void a2aj_send_free(struct a2aj_send *s)
{
	json_decref(s->parts);
	memset(s, 0, sizeof(*s));
}

/* --- the FIPA-ACL message ------------------------------------------------ */

/* One text part and nothing else beside it travels as plain content. */
static const char *plain_text(const json_t *parts)
{
	const json_t *p = json_array_get(parts, 0);

	if (json_array_size(parts) != 1 || json_object_size(p) != 1)
		return NULL;
	return json_string_value(json_object_get(p, "text"));
}

int a2aj_to_fipa(const struct a2aj_send *s, const char *receiver, const char *sender, const char *message_id,
		 const char *conversation_id, const char *traceparent, struct buf *out)
{
	const char *text = plain_text(s->parts);
	char *parts_text = NULL, *dump = NULL;
	json_t *o = json_object();
	int rc = -ENOMEM;

	if (!o)
		return -ENOMEM;
	if (!text) {
		parts_text = json_dumps(s->parts, JSON_COMPACT);
		if (!parts_text)
			goto out;
	}
	if (set_str(o, "performative", s->performative ? s->performative : "request") || set_str(o, "sender", sender) ||
	    set_str(o, "receiver", receiver) || set_str(o, "message_id", message_id) ||
	    set_str(o, "conversation_id", conversation_id) || set_str(o, "content", text ? text : parts_text) ||
	    set_str(o, "language", text ? NULL : "application/a2a-parts+json") ||
	    set_str(o, "in_reply_to", s->in_reply_to) || set_str(o, "traceparent", traceparent))
		goto out;
	dump = json_dumps(o, JSON_COMPACT);
	if (dump)
		rc = buf_puts(out, dump);
out:
	free(dump);
	free(parts_text);
	json_decref(o);
	return rc;
}

const char *a2aj_field_of(const char *fipa_field)
{
	static const char *const map[][2] = {
		{"performative", "params.message.metadata.performative"},
		{"sender", "params.message.metadata.sender"},
		{"receiver", "(path)"},
		{"content", "params.message.parts"},
		{"language", "params.message.parts"},
		{"conversation_id", "params.message.contextId"},
		{"message_id", "params.message.messageId"},
		{"in_reply_to", "params.message.metadata.inReplyTo"},
		{"traceparent", "traceparent"},
	};

	for (size_t i = 0; fipa_field && i < sizeof(map) / sizeof(map[0]); i++)
		if (strcmp(map[i][0], fipa_field) == 0)
			return map[i][1];
	return "params.message";
}

const char *a2aj_task_id(const struct a2aj_req *rq, struct a2aj_err *e)
{
	static const char *const keys[] = {"id", "historyLength", "metadata", "tenant", NULL};
	const json_t *id = json_object_get(rq->params, "id"), *hl = json_object_get(rq->params, "historyLength");

	if (!rq->params) {
		bad_params(e, "params", "is required");
		return NULL;
	}
	if (only_keys(rq->params, keys, "params", e))
		return NULL;
	if (!json_is_string(id) || !*json_string_value(id)) {
		bad_params(e, "params.id", "is required and must be a non-empty string");
		return NULL;
	}
	if (hl && !json_is_null(hl) && !json_is_integer(hl)) {
		bad_params(e, "params.historyLength", "must be an integer");
		return NULL;
	}
	return json_string_value(id);
}

/* --- answers --------------------------------------------------------------- */

static const char *state_name(int version, int state)
{
	static const char *const v10[] = {"TASK_STATE_UNSPECIFIED", "TASK_STATE_SUBMITTED", "TASK_STATE_WORKING",
					  "TASK_STATE_COMPLETED",   "TASK_STATE_FAILED",    "TASK_STATE_CANCELED"};
	static const char *const v03[] = {"unknown", "submitted", "working", "completed", "failed", "canceled"};

	if (state < 0 || state > RT_TASK_CANCELED)
		state = RT_TASK_UNKNOWN;
	return version == A2AJ_V03 ? v03[state] : v10[state];
}

/* The status message of a failed task: the dead letter's reason, and its
 * detail when it has one ("dead-lettered: InvalidMessage: A2A error
 * -32602: Invalid params"); a detail that is not UTF-8 is left out. */
static json_t *status_message(int version, const char *id, const struct rt_task *t)
{
	char text[sizeof(t->reason) + sizeof(t->detail) + 24], mid[MSG_ID_MAX + 8];
	const char *detail =
		t->detail[0] && util_utf8_valid(t->detail, strnlen(t->detail, sizeof(t->detail))) ? t->detail : NULL;

	snprintf(text, sizeof(text), "dead-lettered: %s%s%.*s", t->reason[0] ? t->reason : "unknown",
		 detail ? ": " : "", (int)sizeof(t->detail), detail ? detail : "");
	utf8_trim(text);
	snprintf(mid, sizeof(mid), "%s-status", id);
	utf8_trim(mid);
	if (version == A2AJ_V03)
		return json_pack("{s:s,s:s,s:s,s:[{s:s,s:s}]}", "kind", "message", "role", "agent", "messageId", mid,
				 "parts", "kind", "text", "text", text);
	return json_pack("{s:s,s:s,s:[{s:s}]}", "messageId", mid, "role", "ROLE_AGENT", "parts", "text", text);
}

static json_t *task_json(int version, const char *id, const struct rt_task *t, int64_t now_ms)
{
	char ts[32];
	json_t *task, *status;

	util_fmt_rfc3339(t->updated_ms > 0 ? t->updated_ms : now_ms, ts);
	status = json_pack("{s:s,s:s}", "state", state_name(version, t->state), "timestamp", ts);
	task = json_pack("{s:s,s:o*}", "id", id, "status", status);
	if (!task)
		return NULL;
	if (version == A2AJ_V03 && (json_object_set_new(task, "kind", json_string("task")) ||
				    json_object_set_new(task, "contextId", json_string(t->conversation_id))))
		goto fail;
	if (version == A2AJ_V10 && t->conversation_id[0] &&
	    json_object_set_new(task, "contextId", json_string(t->conversation_id)))
		goto fail;
	if (t->state == RT_TASK_FAILED &&
	    json_object_set_new(json_object_get(task, "status"), "message", status_message(version, id, t)))
		goto fail;
	return task;
fail:
	json_decref(task);
	return NULL;
}

/* {"jsonrpc":"2.0","id":...,<key>:<value>} into `out`; takes `value`. */
static int write_response(struct buf *out, const struct a2aj_req *rq, const char *key, json_t *value)
{
	json_t *r = json_pack("{s:s,s:O,s:o}", "jsonrpc", "2.0", "id", rq && rq->id ? (json_t *)rq->id : json_null(),
			      key, value);
	char *s = r ? json_dumps(r, JSON_COMPACT) : NULL;
	int rc = s ? buf_puts(out, s) : -ENOMEM;

	if (!rc)
		rc = buf_puts(out, "\n");
	free(s);
	json_decref(r);
	return rc;
}

int a2aj_write_task(struct buf *out, const struct a2aj_req *rq, const char *id, const struct rt_task *t, int for_send,
		    int64_t now_ms)
{
	json_t *task = task_json(rq->version, id, t, now_ms);

	if (task && for_send && rq->version == A2AJ_V10)
		task = json_pack("{s:o}", "task", task);
	return task ? write_response(out, rq, "result", task) : -ENOMEM;
}

int a2aj_write_error(struct buf *out, const struct a2aj_req *rq, const struct a2aj_err *e)
{
	int a2a = e->code <= -32001 && e->code >= -32009;
	json_t *meta = json_object(), *err;

	if (meta && e->field[0] && json_object_set_new(meta, "field", json_string(e->field))) {
		json_decref(meta);
		return -ENOMEM;
	}
	err = json_pack("{s:i,s:s,s:[{s:s,s:s,s:s,s:o}]}", "code", e->code, "message", e->message, "data", "@type",
			"type.googleapis.com/google.rpc.ErrorInfo", "reason", e->reason ? e->reason : "Internal",
			"domain", a2a ? "a2a-protocol.org" : "switchboard.dev", "metadata", meta);
	return err ? write_response(out, rq, "error", err) : -ENOMEM;
}

/* --- delivery to A2A agents ----------------------------------------------------- */

/* The parts of a stored message: a parts document as it came, the text, or
 * the bytes of content_base64 as a raw part. */
static json_t *parts_of_fipa(const json_t *f)
{
	const char *lang = json_string_value(json_object_get(f, "language"));
	const char *text = json_string_value(json_object_get(f, "content"));
	const char *b64 = json_string_value(json_object_get(f, "content_base64"));

	if (lang && text && strcmp(lang, "application/a2a-parts+json") == 0) {
		json_t *parts = json_loads(text, 0, NULL);

		if (json_is_array(parts) && json_array_size(parts) > 0)
			return parts;
		json_decref(parts);
	}
	if (b64)
		return json_pack("[{s:s}]", "raw", b64);
	return json_pack("[{s:s}]", "text", text ? text : "");
}

static json_t *metadata_of_fipa(const json_t *f)
{
	static const char *const keys[][2] = {
		{"sender", "sender"}, {"performative", "performative"}, {"in_reply_to", "inReplyTo"}};
	json_t *md = json_object();

	for (size_t i = 0; md && i < sizeof(keys) / sizeof(keys[0]); i++) {
		json_t *v = json_object_get(f, keys[i][0]);

		if (json_is_string(v) && json_object_set(md, keys[i][1], v)) {
			json_decref(md);
			return NULL;
		}
	}
	return md;
}

int a2aj_from_fipa(const char *fipa, size_t len, struct buf *out)
{
	json_t *f = json_loadb(fipa, len, 0, NULL), *msg = NULL, *req = NULL;
	const char *id = json_string_value(json_object_get(f, "message_id"));
	const json_t *conv = json_object_get(f, "conversation_id");
	char *text = NULL;
	int rc = -ENOMEM;

	if (!id) {
		json_decref(f);
		return -EBADMSG;
	}
	msg = json_pack("{s:s,s:s,s:o*,s:o*}", "messageId", id, "role", "ROLE_USER", "parts", parts_of_fipa(f),
			"metadata", metadata_of_fipa(f));
	if (!msg || !json_object_get(msg, "parts") || !json_object_get(msg, "metadata"))
		goto out;
	if (json_is_string(conv) && json_object_set(msg, "contextId", (json_t *)conv))
		goto out;
	req = json_pack("{s:s,s:s,s:s,s:{s:O}}", "jsonrpc", "2.0", "id", id, "method", "SendMessage", "params",
			"message", msg);
	text = req ? json_dumps(req, JSON_COMPACT) : NULL;
	if (text)
		rc = buf_puts(out, text);
out:
	free(text);
	json_decref(req);
	json_decref(msg);
	json_decref(f);
	return rc;
}

/* A JSON-RPC error worth retrying: an internal error, or one in the server
 * range that is not one of A2A's (those say the request itself is wrong). */
static int transient_code(json_int_t code)
{
	return code == A2AJ_INTERNAL || (code >= -32099 && code <= -32000 && !(code >= -32009 && code <= -32001));
}

static int answer_invalid(struct a2aj_answer *a, const char *why)
{
	a->kind = A2AJ_ANS_INVALID;
	snprintf(a->detail, sizeof(a->detail), "the A2A agent's answer is not a JSON-RPC response: %.150s", why);
	utf8_trim(a->detail);
	return 0;
}

/* Read `m`, a Message of the answer, as the reply. */
static int answer_reply(struct a2aj_answer *a, const json_t *m, int version)
{
	struct a2aj_err e = {0};
	int rc = read_message(m, version, &a->reply, &e);

	if (rc == -ENOMEM)
		return rc;
	if (rc)
		return answer_invalid(a, e.message);
	a->kind = A2AJ_ANS_REPLY;
	return 0;
}

/* A result: {"message":..} or {"task":..} (1.0), or a 0.3 Message or Task. */
static int answer_result(struct a2aj_answer *a, const json_t *res)
{
	const char *kind = json_string_value(json_object_get(res, "kind"));
	const json_t *task = json_object_get(res, "task"), *status;

	if (json_is_object(json_object_get(res, "message")))
		return answer_reply(a, json_object_get(res, "message"), A2AJ_V10);
	if (kind && strcmp(kind, "message") == 0)
		return answer_reply(a, res, A2AJ_V03);
	if (!json_is_object(task) && !(kind && strcmp(kind, "task") == 0))
		return answer_invalid(a, "a result is a Message or a Task");
	status = json_object_get(json_is_object(task) ? task : res, "status");
	if (json_is_object(json_object_get(status, "message")))
		return answer_reply(a, json_object_get(status, "message"), json_is_object(task) ? A2AJ_V10 : A2AJ_V03);
	a->kind = A2AJ_ANS_DONE;
	return 0;
}

int a2aj_read_answer(const char *body, size_t len, struct a2aj_answer *a)
{
	json_error_t jerr;
	const json_t *err, *res;
	const char *text;
	char msg[160];

	memset(a, 0, sizeof(*a));
	a->root = json_loadb(body ? body : "", len, JSON_DECODE_ANY, &jerr);
	if (!json_is_object(a->root))
		return answer_invalid(a, "not a JSON object");
	err = json_object_get(a->root, "error");
	res = json_object_get(a->root, "result");
	if (json_is_object(err)) {
		const json_t *code = json_object_get(err, "code");

		if (!json_is_integer(code))
			return answer_invalid(a, "error.code is not an integer");
		a->kind = A2AJ_ANS_ERROR;
		a->code = (int)json_integer_value(code);
		a->transient = transient_code(json_integer_value(code));
		text = json_string_value(json_object_get(err, "message"));
		snprintf(a->detail, sizeof(a->detail), "A2A error %d: %s", a->code, clip(text ? text : "", msg, 150));
		return 0;
	}
	if (json_is_object(res))
		return answer_result(a, res);
	return answer_invalid(a, "neither result nor error");
}

void a2aj_answer_free(struct a2aj_answer *a)
{
	a2aj_send_free(&a->reply);
	json_decref(a->root);
	memset(a, 0, sizeof(*a));
}
