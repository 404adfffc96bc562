/*
 * rec_status: conditions, status writes and Events for the reconcilers
 * (see rec_status.h).  A status is written only when it changed, so an
 * idempotent reconcile writes nothing; Events are logged as well as posted,
 * so a failure to post one still leaves a trace.
 */
#include "rec_status.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "switchboard/log.h"
#include "switchboard/util.h"

void rs_cond_set(struct rs_cond *c, const char *type, const char *status, const char *reason, const char *fmt, ...)
{
	va_list ap;

	c->type = type;
	c->status = status;
	snprintf(c->reason, sizeof(c->reason), "%s", reason);
	va_start(ap, fmt);
	vsnprintf(c->message, sizeof(c->message), fmt, ap);
	va_end(ap);
}

void rs_now_rfc3339(char out[32])
{
	int64_t ms = util_now_ms();

	util_fmt_rfc3339(ms - ms % 1000, out);
	/* metav1.Time has second precision: drop the milliseconds */
	memmove(out + 19, out + 23, strlen(out + 23) + 1);
}

json_t *rs_conditions_json(const json_t *old, const struct rs_cond *c, size_t n, json_int_t gen)
{
	json_t *arr = json_array();
	char now[32];

	rs_now_rfc3339(now);
	for (size_t i = 0; arr && i < n; i++) {
		const char *ltt = now;
		size_t j;
		json_t *o;

		json_array_foreach (json_object_get(old, "conditions"), j, o) {
			const char *t = json_string_value(json_object_get(o, "type"));
			const char *s = json_string_value(json_object_get(o, "status"));
			const char *l = json_string_value(json_object_get(o, "lastTransitionTime"));

			if (t && s && l && strcmp(t, c[i].type) == 0 && strcmp(s, c[i].status) == 0)
				ltt = l;
		}
		if (json_array_append_new(arr, json_pack("{s:s,s:s,s:s,s:s,s:I,s:s}", "type", c[i].type, "status",
							 c[i].status, "reason", c[i].reason, "message", c[i].message,
							 "observedGeneration", gen, "lastTransitionTime", ltt))) {
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

int rs_write_status(struct op *op, const char *resource, const char *kind, const json_t *obj, json_t *status)
{
	const json_t *old = json_object_get(obj, "status");
	char path[700];
	struct kc_status st;
	json_t *body;
	int rc;

	if (!status)
		return -ENOMEM;
	if (old && json_equal(old, status)) {
		json_decref(status);
		return 0;
	}
	snprintf(path, sizeof(path), OP_GROUP_PATH "/namespaces/%s/%s/%s/status", kc_meta_str(obj, "namespace"),
		 resource, kc_meta_str(obj, "name"));
	body = json_pack("{s:s,s:s,s:{s:s,s:s},s:o}", "apiVersion", "switchboard.dev/v1alpha1", "kind", kind,
			 "metadata", "name", kc_meta_str(obj, "name"), "namespace", kc_meta_str(obj, "namespace"),
			 "status", status);
	if (!body)
		return -ENOMEM;
	rc = kc_apply(op->k, path, body, NULL, &st);
	json_decref(body);
	if (rc && rc != -ENOENT)
		log_warn("cannot write status", "kind", kind, "name", kc_meta_str(obj, "name"), "detail", st.message);
	return rc == -ENOENT ? 0 : rc;
}

/* The Event of rs_event() and rs_note(), with the message's arguments in
 * `ap`.  Returns 0 or an API error; both are logged. */
static int vevent(struct op *op, const json_t *obj, const char *type, const char *reason, const char *fmt, va_list ap)
	SB_PRINTF(5, 0);

static int vevent(struct op *op, const json_t *obj, const char *type, const char *reason, const char *fmt, va_list ap)
{
	char msg[1024], name[400], id[33], now[32], path[400];
	struct kc_status st;
	json_t *ev;
	int rc;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	util_random_id(id);
	id[16] = '\0';
	snprintf(name, sizeof(name), "%.230s.%s", kc_meta_str(obj, "name"), id);
	rs_now_rfc3339(now);
	ev = json_pack("{s:s,s:s,s:{s:s,s:s},s:{s:s,s:s,s:s,s:s,s:s},s:s,s:s,s:s,s:{s:s},s:s,s:s,s:s,s:i,s:s}",
		       "apiVersion", "v1", "kind", "Event", "metadata", "name", name, "namespace",
		       kc_meta_str(obj, "namespace"), "involvedObject", "apiVersion",
		       json_string_value(json_object_get(obj, "apiVersion")), "kind",
		       json_string_value(json_object_get(obj, "kind")), "name", kc_meta_str(obj, "name"), "namespace",
		       kc_meta_str(obj, "namespace"), "uid", kc_meta_str(obj, "uid") ? kc_meta_str(obj, "uid") : "",
		       "type", type, "reason", reason, "message", msg, "source", "component", "switchboard-operator",
		       "firstTimestamp", now, "lastTimestamp", now, "reportingComponent", "switchboard-operator",
		       "count", 1, "reportingInstance", op->identity);
	if (!ev)
		return -ENOMEM;
	snprintf(path, sizeof(path), "/api/v1/namespaces/%s/events", kc_meta_str(obj, "namespace"));
	rc = kc_create(op->k, path, ev, NULL, &st);
	json_decref(ev);
	log_emit(strcmp(type, "Warning") == 0 ? LOG_WARN : LOG_INFO, "event", "object", kc_meta_str(obj, "name"),
		 "namespace", kc_meta_str(obj, "namespace"), "reason", reason, "message", msg, "error",
		 rc ? st.message : NULL, (const char *)0);
	return rc;
}

int rs_event(struct op *op, const json_t *obj, const char *type, const char *reason, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = vevent(op, obj, type, reason, fmt, ap);
	va_end(ap);
	return rc;
}

void rs_note(struct op *op, const json_t *obj, const char *type, const char *reason, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (vevent(op, obj, type, reason, fmt, ap))
		log_debug("event not recorded", "reason", reason);
	va_end(ap);
}

const json_t *rs_find_cond(const json_t *obj, const char *type)
{
	size_t i;
	json_t *c;

	json_array_foreach (json_object_get(json_object_get(obj, "status"), "conditions"), i, c) {
		const char *t = json_string_value(json_object_get(c, "type"));

		if (t && strcmp(t, type) == 0)
			return c;
	}
	return NULL;
}

void rs_report_message(const struct cfg_report *r, char *out, size_t outlen)
{
	size_t off = 0, shown = 0;

	out[0] = '\0';
	for (size_t i = 0; i < r->n && off < outlen; i++) {
		if (r->items[i].severity != CFG_ERROR)
			continue;
		off += (size_t)snprintf(out + off, outlen - off, "%s%s: %s", shown ? "; " : "", r->items[i].path,
					r->items[i].msg);
		shown++;
	}
	if (r->errors > shown && off < outlen)
		snprintf(out + off, outlen - off, " (and %zu more)", r->errors - shown);
}
