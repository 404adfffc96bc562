/*
 * rec: the RouterConfig and Agent reconcilers (see rec.h and
 * docs/operator.md for the flow).
 */
#include "rec.h"

#include <errno.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rec_render.h"
#include "rec_router.h"
#include "switchboard/log.h"
#include "switchboard/util.h"

#define CONVERGE_POLL_MS 2000
#define SECRET_POLL_MS	 5000

struct cond {
	const char *type;
	const char *status;
	char reason[64];
	char message[1024];
};

static const char *md_str(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(json_object_get(obj, "metadata"), key));
}

static void cond_set(struct cond *c, const char *type, const char *status, const char *reason, const char *fmt, ...)
	SB_PRINTF(5, 6);

static void cond_set(struct cond *c, const char *type, const char *status, const char *reason, const char *fmt, ...)
{
	va_list ap;

	c->type = type;
	c->status = status;
	snprintf(c->reason, sizeof(c->reason), "%s", reason);
	va_start(ap, fmt);
	vsnprintf(c->message, sizeof(c->message), fmt, ap);
	va_end(ap);
}

static void now_rfc3339(char out[32])
{
	int64_t ms = util_now_ms();

	util_fmt_rfc3339(ms - ms % 1000, out);
	/* metav1.Time has second precision: drop the milliseconds */
	memmove(out + 19, out + 23, strlen(out + 23) + 1);
}

/* Conditions as a JSON array, keeping lastTransitionTime from `old` (the
 * current status) for conditions whose status did not change. */
static json_t *conditions_json(const json_t *old, const struct cond *c, size_t n, json_int_t gen)
{
	json_t *arr = json_array();
	char now[32];

	now_rfc3339(now);
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

/* Server-side apply `status` to the object's status subresource, unless it
 * equals the current one.  Steals `status`. */
static int write_status(struct op *op, const char *resource, const char *kind, const json_t *obj, json_t *status)
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
	snprintf(path, sizeof(path), OP_GROUP_PATH "/namespaces/%s/%s/%s/status", md_str(obj, "namespace"), resource,
		 md_str(obj, "name"));
	body = json_pack("{s:s,s:s,s:{s:s,s:s},s:o}", "apiVersion", "switchboard.dev/v1alpha1", "kind", kind,
			 "metadata", "name", md_str(obj, "name"), "namespace", md_str(obj, "namespace"), "status",
			 status);
	if (!body)
		return -ENOMEM;
	rc = kc_apply(op->k, path, body, NULL, &st);
	json_decref(body);
	if (rc && rc != -ENOENT)
		log_warn("cannot write status", "kind", kind, "name", md_str(obj, "name"), "detail", st.message);
	return rc == -ENOENT ? 0 : rc;
}

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
	snprintf(name, sizeof(name), "%.230s.%s", md_str(obj, "name"), id);
	now_rfc3339(now);
	ev = json_pack("{s:s,s:s,s:{s:s,s:s},s:{s:s,s:s,s:s,s:s,s:s},s:s,s:s,s:s,s:{s:s},s:s,s:s,s:s,s:i,s:s}",
		       "apiVersion", "v1", "kind", "Event", "metadata", "name", name, "namespace",
		       md_str(obj, "namespace"), "involvedObject", "apiVersion",
		       json_string_value(json_object_get(obj, "apiVersion")), "kind",
		       json_string_value(json_object_get(obj, "kind")), "name", md_str(obj, "name"), "namespace",
		       md_str(obj, "namespace"), "uid", md_str(obj, "uid") ? md_str(obj, "uid") : "", "type", type,
		       "reason", reason, "message", msg, "source", "component", "switchboard-operator",
		       "firstTimestamp", now, "lastTimestamp", now, "reportingComponent", "switchboard-operator",
		       "count", 1, "reportingInstance", op->identity);
	if (!ev)
		return -ENOMEM;
	snprintf(path, sizeof(path), "/api/v1/namespaces/%s/events", md_str(obj, "namespace"));
	rc = kc_create(op->k, path, ev, NULL, &st);
	json_decref(ev);
	log_emit(strcmp(type, "Warning") == 0 ? LOG_WARN : LOG_INFO, "event", "object", md_str(obj, "name"),
		 "namespace", md_str(obj, "namespace"), "reason", reason, "message", msg, "error",
		 rc ? st.message : NULL, (const char *)0);
	return rc;
}

int rec_event(struct op *op, const json_t *obj, const char *type, const char *reason, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = vevent(op, obj, type, reason, fmt, ap);
	va_end(ap);
	return rc;
}

/* An Event is best effort: a failure is logged (by vevent) and the
 * reconcile goes on. */
static void note(struct op *op, const json_t *obj, const char *type, const char *reason, const char *fmt, ...)
	SB_PRINTF(5, 6);

static void note(struct op *op, const json_t *obj, const char *type, const char *reason, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (vevent(op, obj, type, reason, fmt, ap))
		log_debug("event not recorded", "reason", reason);
	va_end(ap);
}

/* The admin token: read from the Secret, or created once. The token is a
 * secret: wiped before it is freed, never logged. */
/* 1 when the admin-token Secret `sec` still carries what the operator
 * renders around the token: every label and the ownerReference to `rc`. */
static int admin_secret_intact(const json_t *sec, const json_t *rc, const char *token)
{
	json_t *want = rr_admin_secret(rc, token);
	const json_t *have_md = json_object_get(sec, "metadata"), *wl, *v, *ref;
	const char *k, *uid = md_str(rc, "uid");
	int ok = want != NULL, owned = 0;
	size_t i;

	wl = json_object_get(json_object_get(want, "metadata"), "labels");
	json_object_foreach ((json_t *)wl, k, v) {
		if (!json_equal(v, json_object_get(json_object_get(have_md, "labels"), k)))
			ok = 0;
	}
	json_array_foreach (json_object_get(have_md, "ownerReferences"), i, ref) {
		if (uid && strcmp(json_string_value(json_object_get(ref, "uid")) ?: "", uid) == 0)
			owned = 1;
	}
	json_decref(want);
	return ok && owned;
}

static int apply_admin_secret(struct op *op, const json_t *rc, const char *path, const char *token)
{
	struct kc_status st;
	json_t *obj = rr_admin_secret(rc, token);
	int r;

	if (!obj)
		return -ENOMEM;
	r = kc_apply(op->k, path, obj, NULL, &st);
	json_decref(obj);
	if (r)
		log_warn("cannot write the admin-token Secret", "name", md_str(rc, "name"), "detail", st.message);
	return r;
}

/* The token the routers accept on their admin port, from the RouterConfig's
 * admin-token Secret `<name>-admin` (mounted in every router pod, read by
 * the router on each admin request).  A missing Secret is created with a
 * new random token (an Event when it was deleted by hand: the routers
 * accept the new token once the kubelet updates their files); labels or the
 * ownerReference edited away are restored.  A token changed by hand is a
 * rotation, and used from now on.  Returns 0 or -errno.  `token` is a
 * secret, never logged. */
static int admin_token(struct op *op, const json_t *rc, char token[65])
{
	char path[600];
	struct kc_status st;
	json_t *sec = NULL;
	const char *b64;
	size_t len = 0;
	int r;

	snprintf(path, sizeof(path), "/api/v1/namespaces/%s/secrets/%s-admin", md_str(rc, "namespace"),
		 md_str(rc, "name"));
	r = kc_get(op->k, path, &sec, &st);
	b64 = json_string_value(json_object_get(json_object_get(sec, "data"), "token"));
	if (r == 0 && b64 &&
	    sodium_base642bin((unsigned char *)token, 64, b64, strlen(b64), NULL, &len, NULL,
			      sodium_base64_VARIANT_ORIGINAL) == 0 &&
	    len > 0) {
		token[len] = '\0';
		if (!admin_secret_intact(sec, rc, token)) {
			r = apply_admin_secret(op, rc, path, token);
			if (!r)
				note(op, rc, "Warning", "DriftRepaired",
				     "Secret %s-admin lost labels or its owner outside the RouterConfig: restored",
				     md_str(rc, "name"));
		}
		json_decref(sec);
		return r;
	}
	json_decref(sec);
	if (r && r != -ENOENT)
		return r;
	util_random_id(token);
	util_random_id(token + 32);
	r = apply_admin_secret(op, rc, path, token);
	if (!r && json_string_value(json_object_get(json_object_get(rc, "status"), "configHash")))
		note(op, rc, "Warning", "DriftRepaired",
		     "Secret %s-admin was deleted or emptied outside the RouterConfig: recreated with a new "
		     "admin token",
		     md_str(rc, "name"));
	return r;
}

static int apply_obj(struct op *op, const char *path, json_t *obj)
{
	struct kc_status st;
	int rc;

	if (!obj)
		return -ENOMEM;
	rc = kc_apply(op->k, path, obj, NULL, &st);
	if (rc)
		log_warn("server-side apply failed", "path", path, "reason", st.reason, "detail", st.message);
	json_decref(obj);
	return rc;
}

/* Apply an owned object that should already exist (the RouterConfig was
 * reconciled before): when the apply had to create it, someone deleted it,
 * and the Event says so.  Steals `obj`. */
static int apply_owned(struct op *op, const json_t *rc, int existed_before, const char *path, const char *kind,
		       json_t *obj)
{
	struct kc_status st;
	char name[300];
	int ret;

	if (!obj)
		return -ENOMEM;
	snprintf(name, sizeof(name), "%s", md_str(obj, "name") ?: "");
	ret = kc_apply(op->k, path, obj, NULL, &st);
	json_decref(obj);
	if (ret) {
		log_warn("server-side apply failed", "path", path, "reason", st.reason, "detail", st.message);
		return ret;
	}
	if (existed_before && st.code == 201)
		note(op, rc, "Warning", "DriftRepaired", "%s %s was deleted outside the RouterConfig: recreated", kind,
		     name);
	return 0;
}

/* 1 if a field manager other than ours has set spec.<field> of `obj`. */
static int spec_field_taken(const json_t *obj, const char *field)
{
	char key[64];
	size_t i;
	json_t *mf;

	snprintf(key, sizeof(key), "f:%s", field);
	json_array_foreach (json_object_get(json_object_get(obj, "metadata"), "managedFields"), i, mf) {
		const char *m = json_string_value(json_object_get(mf, "manager"));

		if (m && strcmp(m, KC_FIELD_MANAGER) != 0 &&
		    json_object_get(json_object_get(json_object_get(mf, "fieldsV1"), "f:spec"), key))
			return 1;
	}
	return 0;
}

/* Drift of the StatefulSet's replica count (kubectl scale by someone else
 * than this operator): reported here, undone by the apply that follows. */
static void note_scale_drift(struct op *op, const json_t *rc, const json_t *sts)
{
	const json_t *want = json_object_get(json_object_get(rc, "spec"), "replicas");
	const json_t *have = json_object_get(json_object_get(sts, "spec"), "replicas");
	json_int_t w = json_is_integer(want) ? json_integer_value(want) : 1;

	if (sts && json_is_integer(have) && json_integer_value(have) != w && spec_field_taken(sts, "replicas"))
		note(op, rc, "Warning", "DriftRepaired",
		     "StatefulSet %s was scaled to %lld outside the RouterConfig: restored %lld replicas",
		     md_str(sts, "name"), (long long)json_integer_value(have), (long long)w);
}

/* GET, mapping 404 to NULL. */
static int get_opt(struct op *op, const char *path, json_t **out)
{
	struct kc_status st;
	int rc = kc_get(op->k, path, out, &st);

	if (rc == -ENOENT) {
		*out = NULL;
		return 0;
	}
	return rc;
}

/* The condition of `type` in an object's status.conditions, or NULL. */
static const json_t *find_cond(const json_t *obj, const char *type)
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

static const char *template_restart_hash(const json_t *dep)
{
	return json_string_value(json_object_get(
		json_object_get(json_object_get(json_object_get(json_object_get(dep, "spec"), "template"), "metadata"),
				"annotations"),
		"switchboard.dev/restart-hash"));
}

/* What the StatefulSet's status says about its rollout. */
struct sts_state {
	json_int_t want, ready, updated;
	int rolling; /* pods still to update, or a status older than the spec */
};

static json_int_t int_at(const json_t *obj, const char *key)
{
	return json_integer_value(json_object_get(obj, key));
}

static void sts_observe(const json_t *sts, struct sts_state *s)
{
	const json_t *spec = json_object_get(sts, "spec"), *st = json_object_get(sts, "status");
	const char *cur = json_string_value(json_object_get(st, "currentRevision"));
	const char *upd = json_string_value(json_object_get(st, "updateRevision"));

	s->want = json_is_integer(json_object_get(spec, "replicas")) ? int_at(spec, "replicas") : 1;
	s->ready = int_at(st, "readyReplicas");
	s->updated = int_at(st, "updatedReplicas");
	s->rolling =
		sts && (int_at(st, "observedGeneration") < int_at(json_object_get(sts, "metadata"), "generation") ||
			s->updated < s->want || !cur || !upd || strcmp(cur, upd) != 0);
}

/* A restart this operator started (lastReload Restart/Progressing) that has
 * not completed within the rollout's progressDeadlineSeconds. */
static int rollout_stalled(const json_t *rc, const json_t *last_reload, const struct sts_state *s)
{
	const json_t *ro = json_object_get(json_object_get(rc, "spec"), "rollout");
	json_int_t deadline = json_is_integer(json_object_get(ro, "progressDeadlineSeconds"))
				      ? int_at(ro, "progressDeadlineSeconds")
				      : 600;
	const char *kind = json_string_value(json_object_get(last_reload, "kind"));
	const char *result = json_string_value(json_object_get(last_reload, "result"));
	int64_t started;

	if (!s->rolling || !kind || strcmp(kind, "Restart") != 0 || !result || strcmp(result, "Progressing") != 0 ||
	    util_parse_rfc3339(json_string_value(json_object_get(last_reload, "time")) ?: "", &started))
		return 0;
	return util_now_ms() - started > deadline * 1000;
}

/* Delete the router pods whose template carries `restart_hash`: after a
 * rollback a StatefulSet waits forever for a pod of the bad revision to
 * become Ready before it replaces it. */
static int delete_pods_with(struct op *op, const json_t *rc, const char *restart_hash)
{
	struct rr_endpoint *eps = calloc(RR_MAX_ENDPOINTS, sizeof(*eps));
	char path[700];
	struct kc_status st;
	size_t n = 0;
	int ret;

	if (!eps)
		return -ENOMEM;
	ret = rr_endpoints(op, md_str(rc, "namespace"), md_str(rc, "name"), eps, &n);
	for (size_t i = 0; !ret && i < n; i++) {
		if (strcmp(eps[i].restart_hash, restart_hash) != 0)
			continue;
		snprintf(path, sizeof(path), "/api/v1/namespaces/%s/pods/%s", md_str(rc, "namespace"), eps[i].pod);
		ret = kc_delete(op->k, path, &st);
		if (ret == -ENOENT)
			ret = 0;
	}
	free(eps);
	return ret;
}

static json_int_t rollout_int(const json_t *rc, const char *key, json_int_t dflt)
{
	const json_t *v = json_object_get(json_object_get(json_object_get(rc, "spec"), "rollout"), key);

	return json_is_integer(v) ? json_integer_value(v) : dflt;
}

/* Available and Progressing, from the StatefulSet's status. */
static void workload_conditions(const struct sts_state *s, int stalled, enum rr_stage stage, const json_t *rc,
				struct cond *avail, struct cond *prog)
{
	if (s->want == 0)
		cond_set(avail, "Available", "True", "ScaledToZero", "no router pods are wanted");
	else if (s->ready >= s->want)
		cond_set(avail, "Available", "True", "MinimumReplicasAvailable", "%lld of %lld router pods ready",
			 (long long)s->ready, (long long)s->want);
	else
		cond_set(avail, "Available", "False", "ReplicasNotReady", "%lld of %lld router pods ready",
			 (long long)s->ready, (long long)s->want);
	if (stalled)
		cond_set(prog, "Progressing", "False", "ProgressDeadlineExceeded",
			 "%lld of %lld router pods updated within spec.rollout.progressDeadlineSeconds",
			 (long long)s->updated, (long long)s->want);
	else if (s->rolling && stage == RR_STAGE_CANARY)
		cond_set(prog, "Progressing", "True", "CanaryInProgress",
			 "canary pod %s-%lld is updated first; the other pods wait until it has been healthy for %llds",
			 md_str(rc, "name"), (long long)s->want - 1, (long long)rollout_int(rc, "canarySeconds", 30));
	else if (s->rolling)
		cond_set(prog, "Progressing", "True", "RollingUpdate", "%lld of %lld router pods updated",
			 (long long)s->updated, (long long)s->want);
	else
		cond_set(prog, "Progressing", "True", "RolloutComplete", "%lld router pods run the current template",
			 (long long)s->want);
}

/* Routers ran as a Deployment before v1alpha1 moved them to a StatefulSet;
 * remove that Deployment (owned by the RouterConfig) once the StatefulSet
 * exists.  v1alpha1 was never released, so its emptyDir data is not
 * migrated (docs/operator.md). */
static int delete_legacy_deployment(struct op *op, const char *ns, const char *name)
{
	char path[700];
	struct kc_status st;
	int ret;

	snprintf(path, sizeof(path), "/apis/apps/v1/namespaces/%s/deployments/%s", ns, name);
	ret = kc_delete(op->k, path, &st);
	if (ret == 0)
		log_info("removed the router Deployment of an earlier version", "namespace", ns, "name", name);
	return ret == -ENOENT ? 0 : ret;
}

/* Whether the agent `id` is defined alike in `cur` and `prev`: then routers
 * still running `prev` during a rolling restart serve it as configured. */
static int same_in_previous(const struct cfg *cur, const struct cfg *prev, const char *id)
{
	const struct cfg_agent *a = cfg_find_agent(cur, id), *b = cfg_find_agent(prev, id);

	return a && b && cfg_agent_equal(a, b);
}

/* Write each Agent's status: Accepted, Ready, router.  Ready is True when
 * every ready router runs a config with the agent as it is now defined:
 * the current config (`applied`), or, during a rolling restart, the
 * previous one (`prev`, NULL unless every router runs one of the two). */
static int agent_statuses(struct op *op, const json_t *rc, const struct rr_render *r, int applied,
			  const struct cfg *prev)
{
	const char *ns = md_str(rc, "namespace");
	struct kc_informer *inf = op_informer(op, OP_AGENT, ns);
	int ret = 0;

	for (size_t i = 0; inf && i < r->nagents; i++) {
		const struct rr_agent *a = &r->agents[i];

		if (op->stop)
			return -ECANCELED; /* shutting down: the next leader writes the rest */
		json_t *agent = kc_informer_get(inf, ns, a->name), *st;
		struct cond c[2];

		if (!agent)
			continue;
		cond_set(&c[0], "Accepted", a->accepted ? "True" : "False", a->reason, "%s", a->message);
		if (!a->accepted)
			cond_set(&c[1], "Ready", "False", "NotAccepted", "the agent is not in the router's config");
		else if (applied)
			cond_set(&c[1], "Ready", "True", "ConfigApplied",
				 "every ready router runs a config with agent %s", a->id);
		else if (prev && same_in_previous(&r->cfg, prev, a->id))
			cond_set(&c[1], "Ready", "True", "RolloutInProgress",
				 "every ready router runs a config with agent %s; a rolling restart is in progress",
				 a->id);
		else
			cond_set(&c[1], "Ready", "False", "Pending", "waiting for the routers to apply the config");
		st = json_pack("{s:I,s:o,s:s}", "observedGeneration", a->generation, "conditions",
			       conditions_json(json_object_get(agent, "status"), c, 2, a->generation), "router",
			       md_str(rc, "name"));
		if (write_status(op, "agents", "Agent", agent, st))
			ret = -EAGAIN;
		json_decref(agent);
	}
	return ret;
}

/* A short list of the report's errors for a condition message. */
static void report_message(const struct cfg_report *r, char *out, size_t outlen)
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

struct pushres {
	struct rr_endpoint eps[RR_MAX_ENDPOINTS];
	size_t n;      /* router pods, ready or not */
	size_t nready; /* of them, ready: the ones asked and pushed to */
	size_t current, rejected, restart, unreachable, pending;
	size_t previous; /* of the pending: routers on the document before a restart */
	char why[300];
};

/* Bring every ready router to `doc`: ask each, push to the stale ones when
 * `push` is set, except routers that run `restart_from` (a document whose
 * restart-class fields differ from `doc`) or already know they need a
 * restart: those wait for the rolling restart.  Counts the outcome in `p`. */
static int converge(struct op *op, const json_t *rc, const char *token, const char *doc, size_t len, const char *hash,
		    int push, const char *restart_from, struct pushres *p)
{
	int r = rr_endpoints(op, md_str(rc, "namespace"), md_str(rc, "name"), p->eps, &p->n);

	if (r)
		return r;
	p->nready = p->current = p->rejected = p->restart = p->unreachable = p->pending = p->previous = 0;
	for (size_t i = 0; i < p->n; i++) {
		struct rr_endpoint *ep = &p->eps[i];

		if (!ep->ready)
			continue;
		p->nready++;
		if (rr_status(ep, token)) {
			p->unreachable++;
			snprintf(p->why, sizeof(p->why), "%.100s: %.190s", ep->url, ep->detail);
			continue;
		}
		if (strcmp(ep->doc_hash, hash) == 0) {
			p->current++;
			continue;
		}
		if (restart_from && strcmp(ep->doc_hash, restart_from) == 0) {
			p->pending++;
			p->previous++;
			continue;
		}
		if (!push || ep->restart_required) {
			p->pending++;
			continue;
		}
		r = rr_push(ep, token, doc, len);
		if (r == 0) {
			met_inc(op->m.pushes_ok);
			p->current++;
		} else {
			met_inc(op->m.pushes_failed);
			if (r == -EINVAL)
				p->rejected++;
			else if (r == -EAGAIN)
				p->restart++;
			else
				p->unreachable++;
			snprintf(p->why, sizeof(p->why), "%.100s: %.190s", ep->url, ep->detail);
		}
	}
	return 0;
}

/* The canary plan's input from what was observed: the StatefulSet (NULL
 * before it exists) and, once known, the router pods (`p`, NULL before the
 * routers were asked).  The canary is the highest ordinal; it is healthy
 * when it is Ready, runs the new template and reports `hash` without
 * needing a restart. */
static void canary_observe(const json_t *rc, const json_t *sts, const char *restart_hash, const struct pushres *p,
			   const char *hash, struct rr_canary_in *in)
{
	const json_t *ru =
		json_object_get(json_object_get(json_object_get(sts, "spec"), "updateStrategy"), "rollingUpdate");
	const char *tmpl = template_restart_hash(sts);
	char canary[300];

	memset(in, 0, sizeof(*in));
	in->replicas = json_is_integer(json_object_get(json_object_get(rc, "spec"), "replicas"))
			       ? json_integer_value(json_object_get(json_object_get(rc, "spec"), "replicas"))
			       : 1;
	in->new_rollout = sts && tmpl && strcmp(tmpl, restart_hash) != 0;
	in->partition = int_at(ru, "partition");
	in->canary_seconds = rollout_int(rc, "canarySeconds", 30);
	in->canary_healthy_ms = -1;
	snprintf(canary, sizeof(canary), "%s-%lld", md_str(rc, "name"), (long long)in->replicas - 1);
	for (size_t i = 0; p && i < p->n; i++) {
		const struct rr_endpoint *ep = &p->eps[i];

		if (strcmp(ep->pod, canary) == 0 && ep->ready && ep->reachable && !ep->restart_required &&
		    strcmp(ep->restart_hash, restart_hash) == 0 && strcmp(ep->doc_hash, hash) == 0)
			in->canary_healthy_ms = ep->ready_since_ms ? util_now_ms() - ep->ready_since_ms : 0;
	}
}

/* The second half of a canary rollout: once the canary (the highest
 * ordinal, updated under `partition`) has been healthy for canarySeconds,
 * apply partition 0 so the StatefulSet updates the rest.  A canary that never
 * becomes healthy is rolled back by the progress deadline instead, and the
 * pods below the partition are never restarted.  *stage says where the
 * rollout is. */
static int promote_canary(struct op *op, const json_t *rc, const struct rr_render *r, const struct pushres *p,
			  json_int_t partition, enum rr_stage *stage)
{
	struct rr_canary_in in;
	char path[700];
	int ret;

	if (partition <= 0)
		return 0;
	canary_observe(rc, NULL, r->restart_hash, p, r->hash, &in);
	in.partition = partition;
	if (rr_plan_partition(&in, stage) != 0 || *stage != RR_STAGE_PROMOTED)
		return 0;
	snprintf(path, sizeof(path), "/apis/apps/v1/namespaces/%s/statefulsets/%s", md_str(rc, "namespace"),
		 md_str(rc, "name"));
	ret = apply_obj(op, path, rr_statefulset(rc, &r->cfg, r->restart_hash, op->router_image, 0));
	if (ret == 0)
		note(op, rc, "Normal", "CanaryPromoted",
		     "canary pod %s-%lld has run config %.12s for %llds: updating the other router pods",
		     md_str(rc, "name"), (long long)in.replicas - 1, r->hash, (long long)in.canary_healthy_ms / 1000);
	return ret;
}

/* Which pod runs which config, for status.routers (new reference, NULL on
 * ENOMEM).  A pod that is not ready, or did not answer, has no hash. */
static json_t *routers_json(const struct pushres *p)
{
	json_t *arr = json_array();

	for (size_t i = 0; arr && i < p->n; i++) {
		const struct rr_endpoint *ep = &p->eps[i];
		json_t *o = json_pack("{s:s,s:b}", "pod", ep->pod, "ready", ep->ready);

		if (!o ||
		    (ep->ready && ep->doc_hash[0] && json_object_set_new(o, "configHash", json_string(ep->doc_hash))) ||
		    json_array_append_new(arr, o)) {
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

/* A spec that fails validation: only the Valid condition changes (the
 * other conditions still describe the last good config, which keeps
 * running); the Warning Event is sent once per distinct problem. */
static int invalid_status(struct op *op, const json_t *rc, const struct rr_render *r, json_int_t gen)
{
	const json_t *old_status = json_object_get(rc, "status"), *ov = find_cond(rc, "Valid");
	json_t *status, *conds, *valid, *oc;
	char msg[1024];
	struct cond c;
	size_t i;

	report_message(&r->report, msg, sizeof(msg));
	cond_set(&c, "Valid", "False", "InvalidConfig", "%s", msg);
	if (!ov || strcmp(json_string_value(json_object_get(ov, "status")) ?: "", "False") != 0 ||
	    strcmp(json_string_value(json_object_get(ov, "message")) ?: "", msg) != 0 ||
	    json_integer_value(json_object_get(ov, "observedGeneration")) != gen) {
		met_inc(op->m.rejections);
		note(op, rc, "Warning", "InvalidConfig", "config rejected, %zu errors: %s", r->report.errors, msg);
	}
	valid = conditions_json(old_status, &c, 1, gen);
	status = old_status ? json_deep_copy(old_status) : json_object();
	conds = json_array();
	if (!valid || !status || !conds) {
		json_decref(valid);
		json_decref(status);
		json_decref(conds);
		return -ENOMEM;
	}
	json_array_append(conds, json_array_get(valid, 0));
	json_array_foreach (json_object_get(old_status, "conditions"), i, oc) {
		const char *t = json_string_value(json_object_get(oc, "type"));

		if (!t || strcmp(t, "Valid") != 0)
			json_array_append(conds, oc);
	}
	json_decref(valid);
	json_object_set_new(status, "conditions", conds);
	json_object_set_new(status, "observedGeneration", json_integer(gen));
	return write_status(op, "routerconfigs", "RouterConfig", rc, status);
}

int rec_routerconfig(struct op *op, const char *ns, const char *name, int64_t *requeue_ms)
{
	struct kc_informer *inf = op_informer(op, OP_RC, ns);
	json_t *rc = NULL, *cm = NULL, *prev_cm = NULL, *dep = NULL;
	json_t *status = NULL, *last_reload = NULL;
	const json_t *old_status, *spec;
	struct rr_render r;
	struct pushres *p = NULL;
	struct cond conds[4];
	char path[700], token[65] = "", *cur_doc = NULL, *prev_doc = NULL, when[32], msg[1024], restored_hash[65],
			restart_from[65] = "", cur_restart[65] = "";
	const char *cur_hash = NULL, *rejected_hash, *target_hash;
	size_t cur_len = 0, prev_len = 0;
	json_int_t gen;
	int ret = 0, restart_change = 0, changed = 0, auto_rollback, rolled_back = 0, applied = 0, have_prev = 0;
	int stalled = 0, cm_drifted = 0;
	struct rr_canary_in cin;
	enum rr_stage stage = RR_STAGE_NONE;
	json_int_t partition = 0;
	struct sts_state ss;
	struct cfg prev_cfg;

	*requeue_ms = 0;
	memset(&r, 0, sizeof(r));
	/* read the RouterConfig itself, not the cache: decisions below depend on
	 * the status this operator wrote a moment ago (rejectedConfigHash), which
	 * the watch may not have delivered yet */
	snprintf(path, sizeof(path), OP_GROUP_PATH "/namespaces/%s/routerconfigs/%s", ns, name);
	ret = inf ? get_opt(op, path, &rc) : 0;
	if (ret) {
		log_warn("cannot read the RouterConfig", "namespace", ns, "name", name, "error", strerror(-ret));
		return ret;
	}
	if (!rc || md_str(rc, "deletionTimestamp")) {
		/* gone: ownerReferences let the garbage collector remove the rest */
		json_decref(rc);
		op_cond_forget(op, ns, name);
		return 0;
	}
	gen = json_integer_value(json_object_get(json_object_get(rc, "metadata"), "generation"));
	old_status = json_object_get(rc, "status");
	spec = json_object_get(rc, "spec");
	auto_rollback = !json_is_false(json_object_get(json_object_get(spec, "rollout"), "autoRollback"));
	rejected_hash = json_string_value(json_object_get(old_status, "rejectedConfigHash"));
	last_reload = json_incref(json_object_get(old_status, "lastReload"));
	now_rfc3339(when);

	ret = rr_render(op, rc, &r);
	if (ret)
		goto out;

	/* what runs now */
	snprintf(path, sizeof(path), "/api/v1/namespaces/%s/configmaps/%s-config", ns, name);
	ret = get_opt(op, path, &cm);
	if (!ret && cm)
		ret = rr_configmap_doc(cm, &cur_doc, &cur_len);
	if (ret == -ENOENT)
		ret = 0;
	if (ret)
		goto out;
	cur_hash = json_string_value(json_object_get(json_object_get(json_object_get(cm, "metadata"), "annotations"),
						     "switchboard.dev/config-hash"));

	if (!r.valid) {
		ret = invalid_status(op, rc, &r, gen);
		if (op_cond_set(op, ns, name, "Valid", "False"))
			log_debug("condition gauges not updated");
		goto out;
	}

	ret = admin_token(op, rc, token);
	if (ret)
		goto out;
	p = calloc(1, sizeof(*p));
	if (!p) {
		ret = -ENOMEM;
		goto out;
	}

	if (rejected_hash && strcmp(rejected_hash, r.hash) == 0 && cur_doc) {
		/* this exact config was refused and rolled back: keep the old one
		 * until the spec or the Agents change */
		rolled_back = 1;
	} else {
		changed = !cur_hash || strcmp(cur_hash, r.hash) != 0;
		if (!changed && cur_doc) {
			char have[65];

			/* the annotation is ours, the bytes may not be: a hand edit of the
			 * document is restored, not treated as a new config */
			util_sha256_hex(cur_doc, cur_len, have);
			cm_drifted = strcmp(have, r.hash) != 0;
		}
		if (changed && cur_doc) {
			struct cfg old;
			struct cfg_report rep;
			struct cfg_diff d = {0};

			cfg_report_init(&rep);
			if (cfg_parse_doc(&old, cur_doc, cur_len, NULL, NULL, &rep) == 0) {
				if (cfg_diff(&old, &r.cfg, &d) == 0)
					restart_change = d.restart;
				if (cfg_restart_hash(&old, cur_restart))
					cur_restart[0] = '\0';
				cfg_diff_free(&d);
				cfg_free(&old);
			} else {
				restart_change = 1; /* unreadable: a restart is the safe path */
			}
			cfg_report_free(&rep);
		}
		if (changed && restart_change) {
			/* remember the last good document for a rollback */
			snprintf(path, sizeof(path), "/api/v1/namespaces/%s/configmaps/%s-config-previous", ns, name);
			ret = apply_obj(op, path,
					rr_configmap(rc, "config-previous", cur_doc, cur_len, cur_hash, cur_restart));
			if (ret)
				goto out;
		}
		if (changed || cm_drifted) {
			snprintf(path, sizeof(path), "/api/v1/namespaces/%s/configmaps/%s-config", ns, name);
			ret = apply_obj(op, path, rr_configmap(rc, "config", r.doc, r.len, r.hash, r.restart_hash));
			if (ret)
				goto out;
		}
		if (cm_drifted)
			note(op, rc, "Warning", "DriftRepaired",
			     "ConfigMap %s-config was edited outside the RouterConfig: restored config %.12s", name,
			     r.hash);
		else if (!cm && json_string_value(json_object_get(old_status, "configHash")))
			note(op, rc, "Warning", "DriftRepaired",
			     "ConfigMap %s-config was deleted outside the RouterConfig: recreated with config %.12s",
			     name, r.hash);
		snprintf(path, sizeof(path), "/api/v1/namespaces/%s/services/%s", ns, name);
		ret = apply_owned(op, rc, cm != NULL, path, "Service", rr_service(rc, &r.cfg));
		snprintf(path, sizeof(path), "/apis/policy/v1/namespaces/%s/poddisruptionbudgets/%s", ns, name);
		if (!ret)
			ret = apply_owned(op, rc, cm != NULL, path, "PodDisruptionBudget", rr_pdb(rc));
		snprintf(path, sizeof(path), "/api/v1/namespaces/%s/services/%s-peers", ns, name);
		if (!ret)
			ret = apply_owned(op, rc, cm != NULL, path, "Service", rr_peer_service(rc, &r.cfg));
		snprintf(path, sizeof(path), "/apis/apps/v1/namespaces/%s/statefulsets/%s", ns, name);
		if (!ret)
			ret = get_opt(op, path, &dep);
		if (!ret)
			note_scale_drift(op, rc, dep);
		canary_observe(rc, dep, r.restart_hash, NULL, r.hash, &cin);
		partition = rr_plan_partition(&cin, &stage);
		if (!ret)
			ret = apply_owned(op, rc, cm != NULL, path, "StatefulSet",
					  rr_statefulset(rc, &r.cfg, r.restart_hash, op->router_image, partition));
		if (!ret && !dep)
			ret = delete_legacy_deployment(op, ns, name);
		if (ret)
			goto out;
		if (changed && restart_change) {
			met_inc(op->m.rolling_restarts);
			json_decref(last_reload);
			last_reload =
				json_pack("{s:s,s:s,s:s}", "kind", "Restart", "time", when, "result", "Progressing");
			note(op, rc, "Normal", "RollingRestart",
			     "restart-class fields changed: rolling the StatefulSet to config %.12s (restart hash "
			     "%.12s)",
			     r.hash, r.restart_hash);
		}
	}

	target_hash = rolled_back ? cur_hash : r.hash;
	if (!target_hash)
		target_hash = "";
	if (!rolled_back) {
		/* routers still on the document before a restart-class change wait
		 * for the rollout instead of being pushed, also when a hot change
		 * arrives during the rollout (the previous document is written only
		 * by restart-class changes) */
		snprintf(path, sizeof(path), "/api/v1/namespaces/%s/configmaps/%s-config-previous", ns, name);
		ret = get_opt(op, path, &prev_cm);
		if (ret)
			goto out;
		if (prev_cm) {
			const json_t *ann = json_object_get(json_object_get(prev_cm, "metadata"), "annotations");
			const char *ph = json_string_value(json_object_get(ann, "switchboard.dev/config-hash"));
			const char *pr = json_string_value(json_object_get(ann, "switchboard.dev/restart-hash"));

			if (ph && pr && strcmp(pr, r.restart_hash) != 0)
				snprintf(restart_from, sizeof(restart_from), "%s", ph);
		}
	}
	ret = converge(op, rc, token, rolled_back ? cur_doc : r.doc, rolled_back ? cur_len : r.len, target_hash,
		       !restart_change, restart_from[0] ? restart_from : NULL, p);
	if (ret)
		goto out;
	if (!rolled_back && (p->rejected || p->restart) && !restart_change) {
		met_inc(op->m.rejections);
		note(op, rc, "Warning", "ConfigRejected", "%zu of %zu routers refused config %.12s: %s",
		     p->rejected + p->restart, p->nready, r.hash, p->why);
		if (auto_rollback && cur_doc) {
			snprintf(path, sizeof(path), "/api/v1/namespaces/%s/configmaps/%s-config", ns, name);
			ret = apply_obj(op, path,
					rr_configmap(rc, "config", cur_doc, cur_len, cur_hash, r.restart_hash));
			if (ret)
				goto out;
			ret = converge(op, rc, token, cur_doc, cur_len, cur_hash, 1, NULL, p);
			if (ret)
				goto out;
			met_inc(op->m.rollbacks);
			rolled_back = 1;
			target_hash = cur_hash;
			json_decref(last_reload);
			last_reload = json_pack("{s:s,s:s,s:s}", "kind", "Hot", "time", when, "result", "RolledBack");
			note(op, rc, "Warning", "RolledBack", "restored the last good config %.12s", cur_hash);
		}
	} else if (!rolled_back && changed && !restart_change && p->current == p->nready && p->nready > 0) {
		met_inc(op->m.hot_reloads);
		json_decref(last_reload);
		last_reload = json_pack("{s:s,s:s,s:s}", "kind", "Hot", "time", when, "result", "Succeeded");
		note(op, rc, "Normal", "HotReload", "config %.12s applied in place to %zu routers", r.hash, p->nready);
	}

	/* a rolling restart that cannot finish: restore the previous config */
	if (!dep) {
		snprintf(path, sizeof(path), "/apis/apps/v1/namespaces/%s/statefulsets/%s", ns, name);
		ret = get_opt(op, path, &dep);
		if (ret)
			goto out;
	}
	sts_observe(dep, &ss);
	stalled = rollout_stalled(rc, last_reload, &ss);
	if (!rolled_back && auto_rollback && stalled && template_restart_hash(dep) &&
	    strcmp(template_restart_hash(dep), r.restart_hash) == 0) {
		snprintf(path, sizeof(path), "/api/v1/namespaces/%s/configmaps/%s-config-previous", ns, name);
		ret = prev_cm ? 0 : get_opt(op, path, &prev_cm);
		if (!ret && prev_cm && (prev_doc || rr_configmap_doc(prev_cm, &prev_doc, &prev_len) == 0)) {
			struct cfg pc;
			struct cfg_report rep;
			char prev_restart[65], prev_hash[65];

			cfg_report_init(&rep);
			util_sha256_hex(prev_doc, prev_len, prev_hash);
			if (cfg_parse_doc(&pc, prev_doc, prev_len, NULL, NULL, &rep) == 0) {
				if (cfg_restart_hash(&pc, prev_restart) == 0 &&
				    strcmp(prev_restart, r.restart_hash) != 0) {
					snprintf(path, sizeof(path), "/api/v1/namespaces/%s/configmaps/%s-config", ns,
						 name);
					ret = apply_obj(op, path,
							rr_configmap(rc, "config", prev_doc, prev_len, prev_hash,
								     prev_restart));
					snprintf(path, sizeof(path), "/apis/apps/v1/namespaces/%s/statefulsets/%s", ns,
						 name);
					if (!ret)
						ret = apply_obj(
							op, path,
							rr_statefulset(rc, &pc, prev_restart, op->router_image, 0));
					if (!ret)
						ret = delete_pods_with(op, rc, r.restart_hash);
					if (!ret) {
						met_inc(op->m.rollbacks);
						rolled_back = 1;
						json_decref(last_reload);
						last_reload = json_pack("{s:s,s:s,s:s}", "kind", "Restart", "time",
									when, "result", "RolledBack");
						note(op, rc, "Warning", "RolledBack",
						     "the rollout did not become available within its deadline; "
						     "restored config %.12s (restart hash %.12s)",
						     prev_hash, prev_restart);
						snprintf(r.restart_hash, sizeof(r.restart_hash), "%s", prev_restart);
						snprintf(restored_hash, sizeof(restored_hash), "%s", prev_hash);
						target_hash = restored_hash;
					}
				}
				cfg_free(&pc);
			}
			cfg_report_free(&rep);
		}
		if (ret)
			goto out;
	}
	if (!rolled_back && !stalled) {
		ret = promote_canary(op, rc, &r, p, partition, &stage);
		if (ret)
			goto out;
	}
	if (rolled_back && !changed && template_restart_hash(dep))
		snprintf(r.restart_hash, sizeof(r.restart_hash), "%s", template_restart_hash(dep));

	/* status */
	applied = p->nready > 0 && p->current == p->nready;
	cond_set(&conds[0], "Valid", "True", "Valid", "the spec passed validation (%zu agents)", r.naccepted);
	if (rolled_back)
		cond_set(&conds[1], "ConfigApplied", "False", "RolledBack",
			 "config %.12s was refused or did not roll out; the routers run the last good config %.12s",
			 r.hash, target_hash ? target_hash : "");
	else if (p->nready == 0)
		cond_set(&conds[1], "ConfigApplied", "False", "NoReadyRouters", "no ready router pods yet");
	else if (applied)
		cond_set(&conds[1], "ConfigApplied", "True", "AllRoutersCurrent",
			 "%zu of %zu ready routers run config %.12s", p->current, p->nready, target_hash);
	else if (restart_change || p->restart || p->pending)
		cond_set(&conds[1], "ConfigApplied", "False", "RolloutInProgress",
			 "%zu of %zu ready routers run config %.12s; the rest apply it when restarted", p->current,
			 p->nready, target_hash);
	else
		cond_set(&conds[1], "ConfigApplied", "False", "Propagating",
			 "%zu of %zu ready routers run config %.12s%s%s", p->current, p->nready, target_hash,
			 p->unreachable ? "; unreachable: " : "", p->unreachable ? p->why : "");
	workload_conditions(&ss, stalled && !rolled_back, rolled_back ? RR_STAGE_NONE : stage, rc, &conds[2],
			    &conds[3]);
	{
		const json_t *ds = json_object_get(dep, "status");

		status = json_pack(
			"{s:I,s:o,s:s,s:s%,s:s,s:I,s:I,s:I,s:I,s:o}", "observedGeneration", gen, "conditions",
			conditions_json(old_status, conds, 4, gen), "configHash", target_hash, "configHashShort",
			target_hash, (size_t)12, "restartHash", r.restart_hash, "agents", (json_int_t)r.naccepted,
			"replicas", json_integer_value(json_object_get(ds, "replicas")), "readyReplicas",
			json_integer_value(json_object_get(ds, "readyReplicas")), "updatedReplicas",
			json_integer_value(json_object_get(ds, "updatedReplicas")), "routers", routers_json(p));
	}
	if (status && json_object_set_new(status, "volume", json_string(rr_ephemeral(rc) ? "Ephemeral" : "Persistent")))
		json_decref(status), status = NULL;
	if (status && last_reload && json_object_set(status, "lastReload", last_reload))
		json_decref(status), status = NULL;
	if (status && rolled_back)
		json_object_set_new(status, "rejectedConfigHash", json_string(r.hash));
	ret = write_status(op, "routerconfigs", "RouterConfig", rc, status);
	status = NULL;
	for (size_t i = 0; i < 4; i++)
		if (op_cond_set(op, ns, name, conds[i].type, conds[i].status))
			ret = ret ? ret : -ENOMEM;
	if (!applied && !rolled_back && p->previous && p->current + p->previous == p->nready && prev_cm &&
	    (prev_doc || rr_configmap_doc(prev_cm, &prev_doc, &prev_len) == 0)) {
		struct cfg_report rep;

		cfg_report_init(&rep);
		if (cfg_parse_doc(&prev_cfg, prev_doc, prev_len, NULL, NULL, &rep) == 0)
			have_prev = 1;
		cfg_report_free(&rep);
	}
	if (agent_statuses(op, rc, &r, applied && !rolled_back, have_prev ? &prev_cfg : NULL) && !ret)
		ret = -EAGAIN;
	if (have_prev)
		cfg_free(&prev_cfg);
	if (!applied)
		*requeue_ms = CONVERGE_POLL_MS;
	for (size_t i = 0; i < r.nagents && !*requeue_ms; i++)
		if (strcmp(r.agents[i].reason, "TokenSecretInvalid") == 0)
			*requeue_ms = SECRET_POLL_MS; /* Secrets are not watched: look again for the missing one */
	snprintf(msg, sizeof(msg), "%zu", r.naccepted);
	log_info("reconciled", "kind", "RouterConfig", "namespace", ns, "name", name, "config_hash", target_hash,
		 "config_applied", conds[1].status, "n:agents", msg);
out:
	if (ret && ret != -ENOMEM)
		log_warn("reconcile failed", "namespace", ns, "name", name, "error", strerror(-ret));
	sodium_memzero(token, sizeof(token));
	json_decref(status);
	json_decref(last_reload);
	json_decref(rc);
	json_decref(cm);
	json_decref(prev_cm);
	json_decref(dep);
	free(cur_doc);
	free(prev_doc);
	free(p);
	rr_free(&r);
	return ret;
}

int rec_agent(struct op *op, const char *ns, const char *name)
{
	struct kc_informer *ainf = op_informer(op, OP_AGENT, ns), *rinf = op_informer(op, OP_RC, ns);
	json_t *agent = ainf ? kc_informer_get(ainf, ns, name) : NULL, *router = NULL, *st;
	const char *ref;
	json_int_t gen;
	struct cond c[2];
	int ret = 0;

	if (!agent)
		return 0;
	ref = json_string_value(json_object_get(json_object_get(json_object_get(agent, "spec"), "routerRef"), "name"));
	router = ref && rinf ? kc_informer_get(rinf, ns, ref) : NULL;
	if (!router) {
		gen = json_integer_value(json_object_get(json_object_get(agent, "metadata"), "generation"));
		cond_set(&c[0], "Accepted", "False", "RouterNotFound", "no RouterConfig named %s in namespace %s",
			 ref ? ref : "", ns);
		cond_set(&c[1], "Ready", "False", "NotAccepted", "the agent is not in any router's config");
		st = json_pack("{s:I,s:o,s:s}", "observedGeneration", gen, "conditions",
			       conditions_json(json_object_get(agent, "status"), c, 2, gen), "router", "");
		ret = write_status(op, "agents", "Agent", agent, st);
	}
	json_decref(router);
	json_decref(agent);
	return ret;
}
