/*
 * rec_render: the router config document of a RouterConfig and its Agents
 * (see rec_render.h): label selectors, the Agents' verdicts, the token
 * lookup (the only I/O), the pure render and its validation with the
 * router's own code.  The objects that carry the document to the routers
 * are built by rec_objects.
 */
#include "rec_render.h"

#include <errno.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "switchboard/log.h"
#include "switchboard/own.h"
#include "switchboard/util.h"

/* --- label selectors ---------------------------------------------------- */

static int in_values(const json_t *values, const char *v)
{
	size_t i;
	json_t *e;

	json_array_foreach (values, i, e) {
		if (v && json_string_value(e) && strcmp(json_string_value(e), v) == 0)
			return 1;
	}
	return 0;
}

/* 1 if `labels` (an object, may be NULL) match `sel` (NULL matches all). */
static int selector_matches(const json_t *sel, const json_t *labels)
{
	const char *k;
	json_t *v, *e;
	size_t i;

	if (!json_is_object(sel))
		return 1;
	json_object_foreach ((json_t *)json_object_get(sel, "matchLabels"), k, v) {
		const char *have = json_string_value(json_object_get(labels, k));

		if (!have || !json_string_value(v) || strcmp(have, json_string_value(v)) != 0)
			return 0;
	}
	json_array_foreach (json_object_get(sel, "matchExpressions"), i, e) {
		const char *key = json_string_value(json_object_get(e, "key"));
		const char *opr = json_string_value(json_object_get(e, "operator"));
		const char *have = key ? json_string_value(json_object_get(labels, key)) : NULL;
		const json_t *vals = json_object_get(e, "values");

		if (!opr)
			return 0;
		if ((strcmp(opr, "In") == 0 && !in_values(vals, have)) ||
		    (strcmp(opr, "NotIn") == 0 && have && in_values(vals, have)) ||
		    (strcmp(opr, "Exists") == 0 && !have) || (strcmp(opr, "DoesNotExist") == 0 && have))
			return 0;
	}
	return 1;
}

/* --- agents -------------------------------------------------------------- */

static int agent_cmp(const void *a, const void *b)
{
	return strcmp(((const struct rr_agent *)a)->id, ((const struct rr_agent *)b)->id);
}

/* A referenced token Secret: from the watch cache when it carries the token
 * label, else read once and labelled, so that from then on its rotation or
 * deletion reaches the routers through the watch instead of a resync.  The
 * label is applied with the resourceVersion just read, so a Secret deleted
 * in between is not recreated.  Only Secrets an Agent references are read. */
static int secret_get(struct op *op, const char *ns, const char *name, const char *path, json_t **sec,
		      struct kc_status *st) SB_MUST_CHECK;

static int secret_get(struct op *op, const char *ns, const char *name, const char *path, json_t **sec,
		      struct kc_status *st)
{
	struct kc_informer *inf = op_informer(op, OP_SECRET, ns);
	json_t *label = NULL;
	int rc;

	memset(st, 0, sizeof(*st));
	*sec = inf && name ? kc_informer_get(inf, ns, name) : NULL;
	if (*sec)
		return 0;
	rc = kc_get(op->k, path, sec, st);
	if (rc)
		return rc;
	label = json_pack("{s:s,s:s,s:{s:s,s:s,s:O?,s:{s:s}}}", "apiVersion", "v1", "kind", "Secret", "metadata",
			  "name", name, "namespace", ns, "resourceVersion",
			  json_object_get(json_object_get(*sec, "metadata"), "resourceVersion"), "labels",
			  OP_SECRET_LABEL, OP_SECRET_AGENT_TOKEN);
	if (!label || kc_apply(op->k, path, label, NULL, st))
		log_warn("cannot label a token Secret for watching; it is read at each reconcile", "namespace", ns,
			 "secret", name, "detail", label ? st->message : "out of memory");
	json_decref(label);
	return 0;
}

/* SHA-256 of the token in the Agent's Secret.  Returns 0, -ENOENT (no
 * Secret or key) or another API error; `why` says which. */
static int token_digest(struct op *op, const char *ns, const json_t *ref, char out[65], char *why,
			size_t whylen) SB_MUST_CHECK;

static int token_digest(struct op *op, const char *ns, const json_t *ref, char out[65], char *why, size_t whylen)
{
	const char *name = json_string_value(json_object_get(ref, "name"));
	const char *key = json_string_value(json_object_get(ref, "key"));
	const char *b64;
	char path[600], *raw = NULL;
	struct kc_status st;
	json_t *sec = NULL;
	size_t len = 0, rawlen;
	int rc;

	if (!key)
		key = "token";
	snprintf(path, sizeof(path), "/api/v1/namespaces/%s/secrets/%s", ns, name ? name : "");
	rc = secret_get(op, ns, name, path, &sec, &st);
	if (rc) {
		snprintf(why, whylen, "Secret %.100s: %.180s", name ? name : "",
			 rc == -ENOENT ? "not found" : st.message);
		return rc;
	}
	b64 = json_string_value(json_object_get(json_object_get(sec, "data"), key));
	if (!b64) {
		snprintf(why, whylen, "Secret %s has no key %s", name, key);
		rc = -ENOENT;
		goto out;
	}
	rawlen = strlen(b64);
	raw = malloc(rawlen + 1);
	if (!raw) {
		rc = -ENOMEM;
		goto out;
	}
	if (sodium_base642bin((unsigned char *)raw, rawlen, b64, rawlen, NULL, &len, NULL,
			      sodium_base64_VARIANT_ORIGINAL)) {
		snprintf(why, whylen, "Secret %s key %s is not valid base64", name, key);
		rc = -EINVAL;
		goto out;
	}
	while (len && (raw[len - 1] == '\n' || raw[len - 1] == '\r'))
		len--; /* a token written from a file keeps its newline */
	if (len == 0) {
		snprintf(why, whylen, "Secret %s key %s is empty", name, key);
		rc = -EINVAL;
		goto out;
	}
	util_sha256_hex(raw, len, out);
out:
	if (raw)
		sodium_memzero(raw, rawlen);
	free(raw);
	json_decref(sec);
	return rc;
}

/* The router's view of one Agent (new reference, NULL on ENOMEM).  Borrows
 * everything.  Thread-safe. */
static json_t *agent_doc(const json_t *agent, const char *id, const char *digest)
{
	const json_t *spec = json_object_get(agent, "spec");
	const json_t *del = json_object_get(spec, "delivery"), *rl = json_object_get(spec, "rateLimit");
	const char *mode = json_string_value(json_object_get(del, "mode"));
	const char *state = json_string_value(json_object_get(spec, "state"));
	json_t *a =
		json_pack("{s:s,s:s,s:s}", "id", id, "mode", mode ? mode : "pull", "state", state ? state : "Running");
	json_t *v;
	int err = !a;

	if (!err && (v = json_object_get(del, "endpoint")))
		err = json_object_set(a, "endpoint", v);
	/* fipa, the default, is left out: the documents of FIPA agents stay
	 * byte for byte what they were before the field (decision 54) */
	if (!err && (v = json_object_get(del, "protocol")) &&
	    !(json_is_string(v) && strcmp(json_string_value(v), "fipa") == 0))
		err = json_object_set(a, "protocol", v);
	if (!err && (v = json_object_get(del, "timeoutMs")))
		err = json_object_set(a, "timeoutMs", v);
	if (!err && (v = json_object_get(del, "maxInFlight")))
		err = json_object_set(a, "maxInFlight", v);
	if (!err && json_is_object(rl) && json_object_size(rl))
		err = json_object_set(a, "rateLimit", (json_t *)rl);
	if (!err && (v = json_object_get(spec, "capabilities")) && json_array_size(v))
		err = json_object_set(a, "capabilities", v);
	if (!err && digest)
		err = json_object_set_new(a, "tokenSha256", json_string(digest));
	if (err) {
		json_decref(a);
		return NULL;
	}
	return a;
}

static int name_cmp(const void *a, const void *b)
{
	const char *x = kc_meta_str(*(json_t *const *)a, "name"), *y = kc_meta_str(*(json_t *const *)b, "name");

	return strcmp(x ? x : "", y ? y : "");
}

/* The Agents of `all` (borrowed) in name order, so which of two Agents
 * claiming one agent id wins (the first by name) does not depend on cache
 * order or replica.  *sorted is a new array of borrowed pointers (free()
 * it).  Returns 0 or -ENOMEM. */
static int sort_agents(const json_t *all, json_t ***sorted, size_t *n) SB_MUST_CHECK;

static int sort_agents(const json_t *all, json_t ***sorted, size_t *n)
{
	*n = json_array_size(all);
	*sorted = all ? calloc(*n + 1, sizeof(json_t *)) : NULL;
	if (!*sorted)
		return -ENOMEM;
	for (size_t i = 0; i < *n; i++)
		(*sorted)[i] = json_array_get(all, i);
	qsort(*sorted, *n, sizeof(json_t *), name_cmp); /* NOLINT(bugprone-sizeof-expression): array of pointers */
	return 0;
}

enum agent_verdict {
	AV_SKIP,   /* not this router's, or being deleted: not listed */
	AV_REJECT, /* listed, not accepted (a->reason says why) */
	AV_TOKEN,  /* accepted if its token Secret is valid */
	AV_ACCEPT, /* accepted */
};

/* Which way one Agent goes, as far as it is known without its token:
 * fills `a` unless AV_SKIP.  `byid` maps the agent ids accepted so far to
 * Agent names.  Pure; borrows everything.  Thread-safe. */
static enum agent_verdict agent_verdict(const json_t *rc, const json_t *agent, const json_t *byid, struct rr_agent *a)
{
	const char *ns = kc_meta_str(rc, "namespace"), *name = kc_meta_str(rc, "name");
	const json_t *spec = json_object_get(agent, "spec");
	const char *ans = kc_meta_str(agent, "namespace"), *aname = kc_meta_str(agent, "name");
	const char *ref = json_string_value(json_object_get(json_object_get(spec, "routerRef"), "name"));
	const char *id = json_string_value(json_object_get(spec, "agentId"));

	if (!ans || strcmp(ans, ns) != 0 || !ref || strcmp(ref, name) != 0 || !aname)
		return AV_SKIP;
	if (kc_meta_str(agent, "deletionTimestamp"))
		return AV_SKIP; /* being deleted: drop it from the config now */
	memset(a, 0, sizeof(*a));
	snprintf(a->name, sizeof(a->name), "%s", aname);
	snprintf(a->id, sizeof(a->id), "%s", id ? id : aname);
	a->generation = json_integer_value(json_object_get(json_object_get(agent, "metadata"), "generation"));
	if (!selector_matches(json_object_get(json_object_get(rc, "spec"), "agentSelector"),
			      json_object_get(json_object_get(agent, "metadata"), "labels"))) {
		snprintf(a->reason, sizeof(a->reason), "NotSelected");
		snprintf(a->message, sizeof(a->message),
			 "RouterConfig %s's agentSelector does not match this Agent's labels", name);
		return AV_REJECT;
	}
	if (json_object_get(byid, a->id)) {
		snprintf(a->reason, sizeof(a->reason), "DuplicateAgentId");
		snprintf(a->message, sizeof(a->message), "agent id %s is already used by Agent %s", a->id,
			 json_string_value(json_object_get(byid, a->id)));
		return AV_REJECT;
	}
	return json_is_object(json_object_get(spec, "tokenSecretRef")) ? AV_TOKEN : AV_ACCEPT;
}

void rr_tokens_free(struct rr_tokens *t)
{
	if (t->v)
		sodium_memzero(t->v, t->n * sizeof(*t->v));
	free(t->v);
	memset(t, 0, sizeof(*t));
}

/* Look up one Agent's token into the next entry of `out`.  Returns the
 * lookup's result (0 or -errno; -ENOMEM is fatal, the rest make the Agent
 * TokenSecretInvalid). */
static int lookup_token(struct op *op, const json_t *rc, const json_t *agent, const struct rr_agent *a,
			struct rr_tokens *out) SB_MUST_CHECK;

static int lookup_token(struct op *op, const json_t *rc, const json_t *agent, const struct rr_agent *a,
			struct rr_tokens *out)
{
	const json_t *tref = json_object_get(json_object_get(agent, "spec"), "tokenSecretRef");
	struct rr_token *t = &out->v[out->n++];

	snprintf(t->agent, sizeof(t->agent), "%s", a->name);
	t->err = token_digest(op, kc_meta_str(rc, "namespace"), tref, t->digest, t->why, sizeof(t->why));
	return t->err;
}

int rr_lookup_tokens(struct op *op, const json_t *rc, const json_t *all, struct rr_tokens *out)
{
	json_t **sorted = NULL, *byid = json_object();
	struct rr_agent a;
	size_t n = 0;
	int ret = -ENOMEM;

	memset(out, 0, sizeof(*out));
	if (!byid || sort_agents(all, &sorted, &n))
		goto out;
	out->v = calloc(n + 1, sizeof(*out->v));
	if (!out->v)
		goto out;
	ret = 0;
	for (size_t k = 0; k < n && !ret; k++) {
		enum agent_verdict v = agent_verdict(rc, sorted[k], byid, &a);

		if (v == AV_SKIP || v == AV_REJECT)
			continue;
		if (v == AV_TOKEN) {
			int r = lookup_token(op, rc, sorted[k], &a, out);

			if (r == -ENOMEM)
				ret = r;
			if (r)
				continue;
		}
		if (json_object_set_new(byid, a.id, json_string(a.name)))
			ret = -ENOMEM;
	}
out:
	free(sorted);
	json_decref(byid);
	if (ret)
		rr_tokens_free(out);
	return ret;
}

static int token_cmp(const void *key, const void *t)
{
	return strcmp(key, ((const struct rr_token *)t)->agent);
}

/* Accept one Agent: its id is taken, its view goes into `docs`.  Returns
 * 0 or -ENOMEM. */
static int accept_agent(const json_t *rc, const json_t *agent, const char *digest, json_t *byid, json_t *docs,
			struct rr_agent *a) SB_MUST_CHECK;

static int accept_agent(const json_t *rc, const json_t *agent, const char *digest, json_t *byid, json_t *docs,
			struct rr_agent *a)
{
	if (json_object_set_new(byid, a->id, json_string(a->name)) ||
	    json_array_append_new(docs, agent_doc(agent, a->id, digest)))
		return -ENOMEM;
	a->accepted = 1;
	snprintf(a->reason, sizeof(a->reason), "Accepted");
	snprintf(a->message, sizeof(a->message), "rendered into RouterConfig %s", kc_meta_str(rc, "name"));
	return 0;
}

/* Every Agent that names this router into out->agents, and the accepted
 * ones' views into `docs`, with the token digests looked up before (`tok`,
 * in name order).  No I/O.  Returns 0 or -ENOMEM. */
static int collect_agents(const json_t *rc, const json_t *all, const struct rr_tokens *tok, struct rr_render *out,
			  json_t *docs) SB_MUST_CHECK;

static int collect_agents(const json_t *rc, const json_t *all, const struct rr_tokens *tok, struct rr_render *out,
			  json_t *docs)
{
	json_t **sorted = NULL, *byid = json_object();
	size_t n = 0;
	int ret = -ENOMEM;

	if (!byid || sort_agents(all, &sorted, &n))
		goto out;
	out->agents = calloc(n + 1, sizeof(*out->agents));
	if (!out->agents)
		goto out;
	ret = 0;
	for (size_t k = 0; k < n && !ret; k++) {
		struct rr_agent *a = &out->agents[out->nagents];
		enum agent_verdict v = agent_verdict(rc, sorted[k], byid, a);
		const struct rr_token *t = NULL;

		if (v == AV_SKIP)
			continue;
		out->nagents++;
		if (v == AV_REJECT)
			continue;
		if (v == AV_TOKEN) {
			/* bsearch's base must not be NULL, even for no entries */
			t = tok->n ? bsearch(a->name, tok->v, tok->n, sizeof(*tok->v), token_cmp) : NULL;
			if (!t || t->err) {
				snprintf(a->reason, sizeof(a->reason), "TokenSecretInvalid");
				snprintf(a->message, sizeof(a->message), "%s", t ? t->why : "token Secret not read");
				continue;
			}
		}
		ret = accept_agent(rc, sorted[k], t ? t->digest : NULL, byid, docs, a);
		out->naccepted += ret == 0;
	}
	if (!ret)
		qsort(out->agents, out->nagents, sizeof(*out->agents), agent_cmp);
out:
	free(sorted);
	json_decref(byid);
	return ret;
}

static int doc_agent_cmp(const void *a, const void *b)
{
	return strcmp(json_string_value(json_object_get(*(json_t *const *)a, "id")),
		      json_string_value(json_object_get(*(json_t *const *)b, "id")));
}

/* Sort a JSON array of agents by id, in place. */
static int sort_docs(json_t *docs) SB_MUST_CHECK;

static int sort_docs(json_t *docs)
{
	size_t n = json_array_size(docs);
	json_t **v = calloc(n + 1, sizeof(json_t *));

	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		v[i] = json_incref(json_array_get(docs, i));
	qsort(v, n, sizeof(json_t *), doc_agent_cmp); /* NOLINT(bugprone-sizeof-expression): an array of pointers */
	json_array_clear(docs);
	for (size_t i = 0; i < n; i++)
		json_array_append_new(docs, v[i]);
	free(v);
	return 0;
}

static int set_path(json_t *root, const char *a, const char *b, json_t *v) SB_MUST_CHECK;

static int set_path(json_t *root, const char *a, const char *b, json_t *v)
{
	json_t *o = json_object_get(root, a);

	if (!v)
		return -ENOMEM;
	if (!json_is_object(o)) {
		o = json_object();
		if (!o || json_object_set_new(root, a, o)) {
			json_decref(v);
			return -ENOMEM;
		}
	}
	return json_object_set_new(o, b, v) ? -ENOMEM : 0;
}

/* Cores available to a router pod: ceil(limits.cpu), 0 when unknown. */
static long pod_cores(const json_t *rc)
{
	const json_t *cpu = json_object_get(
		json_object_get(json_object_get(json_object_get(rc, "spec"), "resources"), "limits"), "cpu");
	const char *s = json_string_value(cpu);
	double v;

	if (json_is_number(cpu))
		v = json_number_value(cpu);
	else if (s && *s && s[strlen(s) - 1] == 'm')
		v = strtod(s, NULL) / 1000.0;
	else if (s)
		v = strtod(s, NULL);
	else
		return 0;
	if (!(v > 0)) /* also NaN */
		return 0;
	return v < 1 << 20 ? (long)ceil(v) : 1L << 20; /* "1e300" fits the CRD's pattern */
}

/* Re-home a report's paths under spec.router (agent paths name Agents). */
static void prefix_report(struct cfg_report *r)
{
	for (size_t i = 0; i < r->n; i++) {
		char tmp[sizeof(r->items[i].path)];

		if (r->items[i].path[0] == '(')
			continue;
		snprintf(tmp, sizeof(tmp), "spec.router.%.147s", r->items[i].path);
		memcpy(r->items[i].path, tmp, sizeof(tmp));
	}
}

const char *rr_tls_secret(const json_t *rc)
{
	return json_string_value(json_object_get(json_object_get(json_object_get(rc, "spec"), "tls"), "secretName"));
}

/* spec.router.security.tls, as the user wrote it. */
static const json_t *tls_spec(const json_t *rc)
{
	return json_object_get(json_object_get(json_object_get(json_object_get(rc, "spec"), "router"), "security"),
			       "tls");
}

/* The TLS settings of the document.  spec.tls.secretName turns TLS on with
 * the files the Secret is mounted as.  With TLS on, either way, the admin
 * port stays plain HTTP: the operator, the kubelet's probes and Prometheus
 * reach it on the pod network, and the operator could not verify a
 * certificate per pod (validate_root() refuses a spec asking for admin-port
 * TLS).  `root` is the document being built (its "security" object
 * exists).  Returns 0 or -ENOMEM. */
static int render_tls(const json_t *rc, json_t *root)
{
	json_t *sec = json_object_get(root, "security"), *tls = json_object_get(sec, "tls");
	int err = 0;

	if (!rr_tls_secret(rc) && !json_is_true(json_object_get(tls_spec(rc), "enabled")))
		return 0;
	if (!json_is_object(tls)) {
		tls = json_object();
		if (!tls || json_object_set_new(sec, "tls", tls))
			return -ENOMEM;
	}
	if (rr_tls_secret(rc)) {
		err = json_object_set_new(tls, "enabled", json_true());
		err = err ?: json_object_set_new(tls, "certFile", json_string(OP_TLS_DIR "/tls.crt"));
		err = err ?: json_object_set_new(tls, "keyFile", json_string(OP_TLS_DIR "/tls.key"));
	}
	err = err ?: json_object_set_new(tls, "admin", json_false());
	return err ? -ENOMEM : 0;
}

int rr_render(struct op *op, const json_t *rc, json_int_t assignment, struct rr_render *out)
{
	struct kc_informer *inf = op_informer(op, OP_AGENT, kc_meta_str(rc, "namespace"));
	json_t *all = inf ? kc_informer_list(inf) : json_array();
	int rc_;

	if (!all) {
		memset(out, 0, sizeof(*out));
		cfg_report_init(&out->report);
		return -ENOMEM;
	}
	rc_ = rr_render_agents(op, rc, all, assignment, out);
	json_decref(all);
	return rc_;
}

int rr_render_agents(struct op *op, const json_t *rc, const json_t *all, json_int_t assignment, struct rr_render *out)
{
	struct rr_tokens tok;
	int ret = rr_lookup_tokens(op, rc, all, &tok);

	if (ret) {
		memset(out, 0, sizeof(*out));
		cfg_report_init(&out->report);
		return ret;
	}
	ret = rr_render_from(rc, all, &tok, assignment, out);
	rr_tokens_free(&tok);
	return ret;
}

json_int_t rr_assignment_replicas(const json_t *rc)
{
	const json_t *n = json_object_get(json_object_get(rc, "spec"), "replicas");
	json_int_t v = json_is_integer(n) ? json_integer_value(n) : 1;

	return v < 1 ? 1 : v > OWN_MAX_REPLICAS ? OWN_MAX_REPLICAS : v;
}

/* The document's tree: spec.router, the accepted Agents sorted by id, and
 * the instance settings every router pod shares (local test routers
 * override them with --set).  *root is a new reference.  Returns 0 or
 * -ENOMEM. */
static int build_root(const json_t *rc, const json_t *all, const struct rr_tokens *tok, json_int_t assignment,
		      struct rr_render *out, json_t **root) SB_MUST_CHECK;

static int build_root(const json_t *rc, const json_t *all, const struct rr_tokens *tok, json_int_t assignment,
		      struct rr_render *out, json_t **root)
{
	const json_t *router = json_object_get(json_object_get(rc, "spec"), "router");
	json_t *docs = json_array();
	char peer_host[300];
	int ret = -ENOMEM;

	/* the peers' stable names through the headless Service */
	snprintf(peer_host, sizeof(peer_host), "%s-{ordinal}.%s-peers.%s.svc", kc_meta_str(rc, "name"),
		 kc_meta_str(rc, "name"), kc_meta_str(rc, "namespace"));
	*root = json_is_object(router) ? json_deep_copy(router) : json_object();
	if (!*root || !docs)
		goto out;
	ret = collect_agents(rc, all, tok, out, docs);
	ret = ret ?: sort_docs(docs);
	ret = ret ?: set_path(*root, "storage", "path", json_string(OP_DATA_DIR "/router.db"));
	ret = ret ?: set_path(*root, "network", "bindAddress", json_string("0.0.0.0"));
	ret = ret ?: set_path(*root, "security", "adminTokenFile", json_string(OP_ADMIN_DIR "/token"));
	ret = ret
		      ?: set_path(*root, "cluster", "replicas",
				  json_integer(assignment > 0 ? assignment : rr_assignment_replicas(rc)));
	ret = ret ?: set_path(*root, "cluster", "peerHost", json_string(peer_host));
	ret = ret ?: render_tls(rc, *root);
	if (!ret && json_object_set(*root, "agents", docs))
		ret = -ENOMEM;
out:
	json_decref(docs);
	return ret;
}

/* Validate the tree the document was printed from (the same content as
 * parsing out->doc again, without a second tree of it in memory) with the
 * router's own code: fills out->cfg, valid, restart_hash and report.
 * Returns 0 (check out->valid) or -errno. */
static int validate_root(const json_t *rc, const json_t *root, struct rr_render *out) SB_MUST_CHECK;

static int validate_root(const json_t *rc, const json_t *root, struct rr_render *out)
{
	int ret = 0;

	if (json_is_true(json_object_get(tls_spec(rc), "admin")))
		cfg_report_add(&out->report, CFG_ERROR, "security.tls.admin",
			       "must be false under the operator: it reaches the admin port over plain HTTP on the "
			       "pod network (TLS covers the data port)");
	if (cfg_from_json(&out->cfg, root, &out->report) == 0) {
		if (cfg_validate(&out->cfg, pod_cores(rc), &out->report) == 0 && out->report.errors == 0) {
			out->valid = 1;
			ret = cfg_restart_hash(&out->cfg, out->restart_hash);
		} else {
			cfg_free(&out->cfg);
		}
	}
	prefix_report(&out->report);
	return ret;
}

int rr_render_from(const json_t *rc, const json_t *all, const struct rr_tokens *tok, json_int_t assignment,
		   struct rr_render *out)
{
	json_t *root = NULL;
	int ret;

	memset(out, 0, sizeof(*out));
	cfg_report_init(&out->report);
	ret = build_root(rc, all, tok, assignment, out, &root);
	if (ret)
		goto out;
	out->doc = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
	if (!out->doc) {
		ret = -ENOMEM;
		goto out;
	}
	out->len = strlen(out->doc);
	/* what the operator renders, the router's loader must read */
	ret = cfg_json_for_yaml(&out->doc, &out->len);
	if (ret)
		goto out;
	util_sha256_hex(out->doc, out->len, out->hash);
	ret = validate_root(rc, root, out);
out:
	json_decref(root);
	return ret;
}

void rr_free(struct rr_render *r)
{
	free(r->doc);
	if (r->valid)
		cfg_free(&r->cfg);
	cfg_report_free(&r->report);
	free(r->agents);
	memset(r, 0, sizeof(*r));
}
