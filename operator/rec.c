/*
 * rec: the RouterConfig reconcile (see rec.h and docs/operator.md for the
 * flow): observe -> plan -> act -> report.  The decisions are rec_plan's
 * pure functions; this file reads what they take, carries out what they
 * decide and reports it.  The document is rendered by rec_render, the
 * objects it writes are built by rec_objects and written by rec_owned,
 * routers are asked and pushed to through rec_router, statuses and Events
 * go through rec_status, and the Agents' statuses through rec_agent.
 */
#include "rec.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rec_agent.h"
#include "rec_converge.h"
#include "rec_objects.h"
#include "rec_owned.h"
#include "rec_plan.h"
#include "rec_render.h"
#include "rec_router.h"
#include "rec_scale.h"
#include "rec_status.h"
#include "switchboard/own.h"
#include "switchboard/log.h"
#include "switchboard/util.h"

#define NCOND 6 /* Valid, ConfigApplied, Available, Progressing, Scaled, HandoffsInOrder */

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

static json_int_t rollout_int(const json_t *rc, const char *key, json_int_t dflt)
{
	const json_t *v = json_object_get(json_object_get(json_object_get(rc, "spec"), "rollout"), key);

	return json_is_integer(v) ? json_integer_value(v) : dflt;
}

/* Available and Progressing, from the StatefulSet's status. */
static void workload_conditions(const struct sts_state *s, int stalled, enum rob_stage stage, const json_t *rc,
				struct rs_cond *avail, struct rs_cond *prog)
{
	if (s->want == 0)
		rs_cond_set(avail, "Available", "True", "ScaledToZero", "no router pods are wanted");
	else if (s->ready >= s->want)
		rs_cond_set(avail, "Available", "True", "MinimumReplicasAvailable", "%lld of %lld router pods ready",
			    (long long)s->ready, (long long)s->want);
	else
		rs_cond_set(avail, "Available", "False", "ReplicasNotReady", "%lld of %lld router pods ready",
			    (long long)s->ready, (long long)s->want);
	if (stalled)
		rs_cond_set(prog, "Progressing", "False", "ProgressDeadlineExceeded",
			    "%lld of %lld router pods updated within spec.rollout.progressDeadlineSeconds",
			    (long long)s->updated, (long long)s->want);
	else if (s->rolling && stage == ROB_STAGE_CANARY)
		rs_cond_set(
			prog, "Progressing", "True", "CanaryInProgress",
			"canary pod %s-%lld is updated first; the other pods wait until it has been healthy for %llds",
			kc_meta_str(rc, "name"), (long long)s->want - 1,
			(long long)rollout_int(rc, "canarySeconds", 30));
	else if (s->rolling)
		rs_cond_set(prog, "Progressing", "True", "RollingUpdate", "%lld of %lld router pods updated",
			    (long long)s->updated, (long long)s->want);
	else
		rs_cond_set(prog, "Progressing", "True", "RolloutComplete", "%lld router pods run the current template",
			    (long long)s->want);
}

/* The canary plan's input from the StatefulSet as read (`sts`, NULL before
 * it exists) and the pods it will have (`replicas`); canary_healthy_ms is
 * -1 (the routers were not asked yet).  Borrows everything.  Thread-safe. */
static void canary_observe(const json_t *rc, const json_t *sts, json_int_t replicas, const char *restart_hash,
			   struct rob_canary_in *in)
{
	const json_t *ru =
		json_object_get(json_object_get(json_object_get(sts, "spec"), "updateStrategy"), "rollingUpdate");
	const char *tmpl = ro_template_restart_hash(sts);

	memset(in, 0, sizeof(*in));
	in->replicas = replicas;
	in->new_rollout = sts && tmpl && strcmp(tmpl, restart_hash) != 0;
	in->partition = int_at(ru, "partition");
	in->canary_seconds = rollout_int(rc, "canarySeconds", 30);
	in->canary_healthy_ms = -1;
}

/* A spec that fails validation: only the Valid condition changes (the
 * other conditions still describe the last good config, which keeps
 * running); the Warning Event is sent once per distinct problem.  Borrows
 * everything.  Returns 0 or -errno. */
static int invalid_status(struct op *op, const json_t *rc, const struct rr_render *r, json_int_t gen) SB_MUST_CHECK;

static int invalid_status(struct op *op, const json_t *rc, const struct rr_render *r, json_int_t gen)
{
	const json_t *old_status = json_object_get(rc, "status"), *ov = rs_find_cond(rc, "Valid");
	json_t *status = NULL, *conds = NULL, *valid = NULL, *oc;
	char msg[1024];
	struct rs_cond c;
	size_t i;
	int ret = -ENOMEM;

	rs_report_message(&r->report, msg, sizeof(msg));
	rs_cond_set(&c, "Valid", "False", "InvalidConfig", "%s", msg);
	if (!ov || strcmp(json_string_value(json_object_get(ov, "status")) ?: "", "False") != 0 ||
	    strcmp(json_string_value(json_object_get(ov, "message")) ?: "", msg) != 0 ||
	    json_integer_value(json_object_get(ov, "observedGeneration")) != gen) {
		met_inc(op->m.rejections);
		rs_note(op, rc, "Warning", "InvalidConfig", "config rejected, %zu errors: %s", r->report.errors, msg);
	}
	valid = rs_conditions_json(old_status, &c, 1, gen);
	status = old_status ? json_deep_copy(old_status) : json_object();
	conds = json_array();
	if (!valid || !status || !conds || json_array_append(conds, json_array_get(valid, 0)))
		goto out;
	json_array_foreach (json_object_get(old_status, "conditions"), i, oc) {
		const char *t = json_string_value(json_object_get(oc, "type"));

		if ((!t || strcmp(t, "Valid") != 0) && json_array_append(conds, oc))
			goto out;
	}
	if (json_object_set(status, "conditions", conds) ||
	    json_object_set_new(status, "observedGeneration", json_integer(gen)))
		goto out;
	ret = rs_write_status(op, "routerconfigs", "RouterConfig", rc, status);
	status = NULL; /* stolen */
out:
	json_decref(valid);
	json_decref(status);
	json_decref(conds);
	return ret;
}

/*
 * One RouterConfig reconcile: observe -> plan -> act -> report.  The
 * decisions are rp_plan(), rp_plan_outcome() and rp_report() (rec_plan.c,
 * pure); the functions below read (observe_*), write (act_*) and report
 * (report_*) what they decide.  Each takes the reconcile's `struct obs`
 * (owned by rec_routerconfig(), which frees it), borrows the plan structs,
 * and is called by the one reconcile worker: thread-safe across
 * reconciles, never for one `obs` from two threads.
 */

/* Everything one reconcile reads and owns until obs_free(), and the facts
 * rp_plan() takes (`f`, borrowing strings from here).  Owned by the one
 * reconcile that fills it: not shared between threads. */
struct obs {
	const char *ns, *name;
	json_t *rc, *cm, *prev_cm, *sts;
	json_int_t gen;
	struct rr_render r;
	char *cur_doc; /* the document <name>-config holds, NULL when none */
	size_t cur_len;
	struct cfg cur_cfg; /* cur_doc parsed, when cur_cfg_ok */
	int cur_cfg_ok;
	char cur_doc_hash[65], cur_restart[65];
	char token[65];	     /* the admin token: a secret, wiped by obs_free() */
	json_t *last_reload; /* status.lastReload, as this reconcile rewrites it */
	char when[32];
	struct rcv_routers *p; /* the router pods, listed before the plan */
	struct sts_state ss;
	struct rsc_obs sc_obs; /* the scale plan's facts ... */
	struct rsc_plan sc;    /* ... and its decisions */
	json_int_t partition;  /* the StatefulSet's partition as this reconcile leaves it */
	/* config-previous as it is after this reconcile's writes, loaded by
	 * load_previous() */
	int prev_err; /* 1: not loaded yet; else what load_previous() returns */
	char *prev_owned;
	const char *prev_doc;
	size_t prev_len;
	char prev_hash[65], prev_restart[65];
	int prev_restart_ok;
	struct cfg prev_cfg;
	struct rp_obs f;
};

/* Release everything `o` owns (the admin token is wiped); `o` may be
 * partly filled. */
static void obs_free(struct obs *o)
{
	sodium_memzero(o->token, sizeof(o->token));
	json_decref(o->last_reload);
	json_decref(o->rc);
	json_decref(o->cm);
	json_decref(o->prev_cm);
	json_decref(o->sts);
	free(o->cur_doc);
	free(o->prev_owned);
	free(o->p);
	if (o->cur_cfg_ok)
		cfg_free(&o->cur_cfg);
	if (o->prev_err == 0)
		cfg_free(&o->prev_cfg);
	rr_free(&o->r);
}

/* Read the RouterConfig itself, not the cache: decisions below depend on
 * the status this operator wrote a moment ago (rejectedConfigHash), which
 * the watch may not have delivered yet.  o->rc stays NULL when it is gone
 * or being deleted.  Returns 0 or the API error. */
static int observe_routerconfig(struct op *op, struct obs *o) SB_MUST_CHECK;

static int observe_routerconfig(struct op *op, struct obs *o)
{
	char path[700];
	int ret;

	snprintf(path, sizeof(path), OP_GROUP_PATH "/namespaces/%s/routerconfigs/%s", o->ns, o->name);
	ret = op_informer(op, OP_RC, o->ns) ? ro_get_opt(op, path, &o->rc) : 0;
	if (ret) {
		log_warn("cannot read the RouterConfig", "namespace", o->ns, "name", o->name, "error", strerror(-ret));
		return ret;
	}
	if (o->rc && kc_meta_str(o->rc, "deletionTimestamp")) {
		json_decref(o->rc);
		o->rc = NULL;
	}
	return 0;
}

/* The facts about the change from the ConfigMap's document to the rendered
 * one: its hash, and (when the annotation differs) whether the change is
 * restart-class and the document's restart hash.  An unreadable document
 * takes a restart, the safe path. */
static void observe_cm_change(struct obs *o)
{
	struct cfg_diff d = {0};

	o->f.cm_restart = o->cur_restart;
	if (o->f.cm_hash && strcmp(o->f.cm_hash, o->r.hash) == 0)
		return;
	if (!o->cur_cfg_ok) {
		o->f.cm_restart_class = 1;
		return;
	}
	if (cfg_diff(&o->cur_cfg, &o->r.cfg, &d) == 0)
		o->f.cm_restart_class = d.restart;
	if (cfg_restart_hash(&o->cur_cfg, o->cur_restart))
		o->cur_restart[0] = '\0';
	cfg_diff_free(&d);
}

/* What runs now, read before anything is planned: <name>-config and its
 * document (parsed once), the StatefulSet and the router pods.  Returns 0
 * or -errno. */
static int observe_current(struct op *op, struct obs *o) SB_MUST_CHECK;

static int observe_current(struct op *op, struct obs *o)
{
	struct cfg_report rep;
	char path[700];
	int ret;

	snprintf(path, sizeof(path), "/api/v1/namespaces/%s/configmaps/%s-config", o->ns, o->name);
	ret = ro_get_opt(op, path, &o->cm);
	if (!ret && o->cm)
		ret = rob_configmap_doc(o->cm, &o->cur_doc, &o->cur_len);
	if (ret && ret != -ENOENT)
		return ret;
	if (o->cur_doc) {
		cfg_report_init(&rep);
		o->cur_cfg_ok = cfg_parse_doc(&o->cur_cfg, o->cur_doc, o->cur_len, NULL, NULL, &rep) == 0;
		cfg_report_free(&rep);
	}
	snprintf(path, sizeof(path), "/apis/apps/v1/namespaces/%s/statefulsets/%s", o->ns, o->name);
	ret = ro_get_opt(op, path, &o->sts);
	if (ret)
		return ret;
	o->p = calloc(1, sizeof(*o->p));
	if (!o->p)
		return -ENOMEM;
	o->p->push_peers = op->peer_pod_ips;
	return rcv_list(op, o->rc, o->p);
}

/* The scale plan's facts (rsc_obs) from what observe_current() read and
 * the Scaled condition.  Reads the clock. */
static void observe_scale(struct obs *o)
{
	const json_t *spec = json_object_get(o->rc, "spec"), *cond = rs_find_cond(o->rc, "Scaled");
	const char *reason = json_string_value(json_object_get(cond, "reason")) ?: "";
	const char *skip =
		json_string_value(json_object_get(json_object_get(json_object_get(o->rc, "metadata"), "annotations"),
						  "switchboard.dev/skip-scale-down-check"));
	const json_t *have = json_object_get(json_object_get(o->sts, "spec"), "replicas");
	struct rsc_obs *s = &o->sc_obs;
	int64_t since;

	memset(s, 0, sizeof(*s));
	s->want = json_is_integer(json_object_get(spec, "replicas")) ? int_at(spec, "replicas") : 1;
	s->assigned = o->cur_cfg_ok ? o->cur_cfg.cluster.replicas : 0;
	s->sts = o->sts && json_is_integer(have) ? json_integer_value(have) : -1;
	for (size_t i = 0; i < o->p->n; i++) {
		long k = rcv_ordinal(o->name, o->p->eps[i].pod);

		if (o->p->eps[i].ready && k >= 0 && k < s->want)
			s->ready_wanted++;
	}
	s->now_ms = util_now_ms();
	s->was_held = strcmp(reason, "ScaleDownHeld") == 0;
	if ((s->was_held || strcmp(reason, "Draining") == 0) &&
	    !util_parse_rfc3339(json_string_value(json_object_get(cond, "lastTransitionTime")) ?: "", &since))
		s->draining_since_ms = since;
	s->deadline_ms = rollout_int(o->rc, "progressDeadlineSeconds", 600) * 1000;
	s->skip_check = skip && strcmp(skip, "true") == 0;
}

/* Render the spec with the assignment the scale plan chose, and the facts
 * rp_plan() takes about it.  Returns 0 or -errno. */
static int observe_spec(struct op *op, struct obs *o) SB_MUST_CHECK;

static int observe_spec(struct op *op, struct obs *o)
{
	const json_t *old_status = json_object_get(o->rc, "status"), *spec = json_object_get(o->rc, "spec");
	int ret;

	o->gen = json_integer_value(json_object_get(json_object_get(o->rc, "metadata"), "generation"));
	o->last_reload = json_incref(json_object_get(old_status, "lastReload"));
	rs_now_rfc3339(o->when);
	ret = rr_render(op, o->rc, o->sc.assignment, &o->r);
	if (ret)
		return ret;
	o->f.valid = o->r.valid;
	o->f.auto_rollback = !json_is_false(json_object_get(json_object_get(spec, "rollout"), "autoRollback"));
	for (size_t i = 0; i < o->r.nagents; i++)
		if (strcmp(o->r.agents[i].reason, "TokenSecretInvalid") == 0)
			o->f.token_secret_invalid = 1;
	o->f.hash = o->r.hash;
	o->f.restart_hash = o->r.restart_hash;
	o->f.rejected_hash = json_string_value(json_object_get(old_status, "rejectedConfigHash"));
	o->f.had_config = json_string_value(json_object_get(old_status, "configHash")) != NULL;
	o->f.cm_exists = o->cm != NULL;
	o->f.cm_has_doc = o->cur_doc != NULL;
	o->f.cm_hash = json_string_value(json_object_get(
		json_object_get(json_object_get(o->cm, "metadata"), "annotations"), "switchboard.dev/config-hash"));
	o->f.cm_doc_hash = "";
	o->f.cm_restart = "";
	if (o->cur_doc) {
		util_sha256_hex(o->cur_doc, o->cur_len, o->cur_doc_hash);
		o->f.cm_doc_hash = o->cur_doc_hash;
	}
	if (o->cur_doc && !o->f.cm_hash) {
		/* the annotation was removed by hand: what this operator last wrote
		 * is in the status (the document itself may have been edited too) */
		o->f.cm_unannotated = 1;
		o->f.cm_hash = json_string_value(json_object_get(old_status, "configHash")) ?: o->cur_doc_hash;
	}
	if (o->cur_doc && o->r.valid) /* o->r.cfg exists only then */
		observe_cm_change(o);
	return 0;
}

/* The rest of the world, once the spec is valid: the admin token, the
 * annotations of <name>-config-previous, the StatefulSet's canary.
 * Returns 0 or -errno. */
static int observe_world(struct op *op, struct obs *o) SB_MUST_CHECK;

static int observe_world(struct op *op, struct obs *o)
{
	const json_t *ann;
	char path[700];
	int ret = ro_admin_token(op, o->rc, o->token);

	if (ret)
		return ret;
	snprintf(path, sizeof(path), "/api/v1/namespaces/%s/configmaps/%s-config-previous", o->ns, o->name);
	ret = ro_get_opt(op, path, &o->prev_cm);
	if (ret)
		return ret;
	ann = json_object_get(json_object_get(o->prev_cm, "metadata"), "annotations");
	o->f.prev_hash = json_string_value(json_object_get(ann, "switchboard.dev/config-hash"));
	o->f.prev_restart = json_string_value(json_object_get(ann, "switchboard.dev/restart-hash"));
	canary_observe(o->rc, o->sts, o->sc.replicas, o->r.restart_hash, &o->f.canary);
	return 0;
}

/* The document config-previous holds once this reconcile's writes are done
 * (the ConfigMap's document when the plan saves it), parsed once into
 * o->prev_cfg with its hash and restart hash.  Returns 0, -ENOENT when
 * there is none, -EBADMSG when it does not parse. */
static int load_previous(struct obs *o, const struct rp_plan *plan) SB_MUST_CHECK;

static int load_previous(struct obs *o, const struct rp_plan *plan)
{
	struct cfg_report rep;

	if (o->prev_err <= 0)
		return o->prev_err;
	o->prev_err = -ENOENT;
	if (plan->save_previous) {
		o->prev_doc = o->cur_doc;
		o->prev_len = o->cur_len;
	} else if (o->prev_cm && rob_configmap_doc(o->prev_cm, &o->prev_owned, &o->prev_len) == 0) {
		o->prev_doc = o->prev_owned;
	}
	if (!o->prev_doc)
		return o->prev_err;
	util_sha256_hex(o->prev_doc, o->prev_len, o->prev_hash);
	cfg_report_init(&rep);
	o->prev_err = cfg_parse_doc(&o->prev_cfg, o->prev_doc, o->prev_len, NULL, NULL, &rep) ? -EBADMSG : 0;
	if (!o->prev_err)
		o->prev_restart_ok = cfg_restart_hash(&o->prev_cfg, o->prev_restart) == 0;
	cfg_report_free(&rep);
	return o->prev_err;
}

/* The new lastReload (kind Hot/Restart, result), at this reconcile's
 * time.  Returns 0 or -ENOMEM. */
static int set_last_reload(struct obs *o, const char *kind, const char *result) SB_MUST_CHECK;

static int set_last_reload(struct obs *o, const char *kind, const char *result)
{
	json_t *lr = json_pack("{s:s,s:s,s:s}", "kind", kind, "time", o->when, "result", result);

	if (!lr)
		return -ENOMEM;
	json_decref(o->last_reload);
	o->last_reload = lr;
	return 0;
}

/* The ConfigMaps the plan writes, and the Event of a ConfigMap repaired.
 * Returns 0 or -errno. */
static int act_configmaps(struct op *op, struct obs *o, const struct rp_plan *plan) SB_MUST_CHECK;

static int act_configmaps(struct op *op, struct obs *o, const struct rp_plan *plan)
{
	char path[700];
	int ret;

	if (plan->save_previous) {
		snprintf(path, sizeof(path), "/api/v1/namespaces/%s/configmaps/%s-config-previous", o->ns, o->name);
		ret = ro_apply_obj(
			op, path,
			rob_configmap(o->rc, "config-previous", o->cur_doc, o->cur_len, o->f.cm_hash, o->cur_restart));
		if (ret)
			return ret;
	}
	if (plan->write_config) {
		snprintf(path, sizeof(path), "/api/v1/namespaces/%s/configmaps/%s-config", o->ns, o->name);
		ret = ro_apply_obj(op, path,
				   rob_configmap(o->rc, "config", o->r.doc, o->r.len, o->r.hash, o->r.restart_hash));
		if (ret)
			return ret;
	}
	if (plan->drift == RP_DRIFT_EDITED)
		rs_note(op, o->rc, "Warning", "DriftRepaired",
			"ConfigMap %s-config was edited outside the RouterConfig: restored config %.12s", o->name,
			o->r.hash);
	else if (plan->drift == RP_DRIFT_DELETED)
		rs_note(op, o->rc, "Warning", "DriftRepaired",
			"ConfigMap %s-config was deleted outside the RouterConfig: recreated with config %.12s",
			o->name, o->r.hash);
	return 0;
}

/* The Services, the PodDisruptionBudget and the StatefulSet (at the
 * plan's partition); the Deployment of an earlier version goes.  Returns 0
 * or -errno. */
static int act_workload(struct op *op, struct obs *o, const struct rp_plan *plan) SB_MUST_CHECK;

static int act_workload(struct op *op, struct obs *o, const struct rp_plan *plan)
{
	int had = o->cm != NULL;
	char path[700];
	int ret;

	snprintf(path, sizeof(path), "/api/v1/namespaces/%s/services/%s", o->ns, o->name);
	ret = ro_apply_owned(op, o->rc, had, path, "Service", rob_service(o->rc, &o->r.cfg));
	snprintf(path, sizeof(path), "/apis/policy/v1/namespaces/%s/poddisruptionbudgets/%s", o->ns, o->name);
	if (!ret)
		ret = ro_apply_owned(op, o->rc, had, path, "PodDisruptionBudget", rob_pdb(o->rc));
	snprintf(path, sizeof(path), "/api/v1/namespaces/%s/services/%s-peers", o->ns, o->name);
	if (!ret)
		ret = ro_apply_owned(op, o->rc, had, path, "Service", rob_peer_service(o->rc, &o->r.cfg));
	if (ret)
		return ret;
	ro_note_scale_drift(op, o->rc, o->sts, o->sc_obs.want);
	snprintf(path, sizeof(path), "/apis/apps/v1/namespaces/%s/statefulsets/%s", o->ns, o->name);
	o->partition = plan->partition;
	ret = ro_apply_owned(op, o->rc, had, path, "StatefulSet",
			     rob_statefulset(o->rc, &o->r.cfg, o->r.restart_hash, op->router_image, o->sc.replicas,
					     plan->partition));
	if (!ret && !o->sts)
		ret = ro_delete_legacy_deployment(op, o->ns, o->name);
	return ret;
}

/* Everything rp_plan() decided before the push.  Returns 0 or -errno. */
static int act_plan(struct op *op, struct obs *o, const struct rp_plan *plan) SB_MUST_CHECK;

static int act_plan(struct op *op, struct obs *o, const struct rp_plan *plan)
{
	int ret;

	if (!plan->apply_objects)
		return 0;
	ret = act_configmaps(op, o, plan);
	if (!ret)
		ret = act_workload(op, o, plan);
	if (ret || !plan->rolling_restart)
		return ret;
	met_inc(op->m.rolling_restarts);
	ret = set_last_reload(o, "Restart", "Progressing");
	if (ret)
		return ret;
	rs_note(op, o->rc, "Normal", "RollingRestart",
		"restart-class fields changed: rolling the StatefulSet to config %.12s (restart hash %.12s)", o->r.hash,
		o->r.restart_hash);
	return 0;
}

/* Ask every router and push the plan's document.  Returns 0 or -errno. */
static int act_push(struct op *op, struct obs *o, const struct rp_plan *plan) SB_MUST_CHECK;

static int act_push(struct op *op, struct obs *o, const struct rp_plan *plan)
{
	if (plan->push_current)
		return rcv_converge(op, o->rc, o->token, o->cur_doc, o->cur_len, o->f.cm_hash ?: "", plan->push,
				    plan->restart_from, o->p);
	return rcv_converge(op, o->rc, o->token, o->r.doc, o->r.len, o->r.hash, plan->push, plan->restart_from, o->p);
}

/* What rp_plan_outcome() takes, after the push: the StatefulSet (read
 * again when this reconcile created it), whether its rollout is stalled
 * (reads the clock), the canary's health and config-previous.  Returns 0
 * or -errno. */
static int observe_after(struct op *op, struct obs *o, const struct rp_plan *plan, struct rp_after *a) SB_MUST_CHECK;

static int observe_after(struct op *op, struct obs *o, const struct rp_plan *plan, struct rp_after *a)
{
	const char *tmpl;
	char path[700];
	int ret;

	memset(a, 0, sizeof(*a));
	a->push = o->p->c;
	if (plan->apply_objects && !o->sts) {
		snprintf(path, sizeof(path), "/apis/apps/v1/namespaces/%s/statefulsets/%s", o->ns, o->name);
		ret = ro_get_opt(op, path, &o->sts);
		if (ret)
			return ret;
	}
	sts_observe(o->sts, &o->ss);
	a->stalled = rollout_stalled(o->rc, o->last_reload, &o->ss);
	tmpl = ro_template_restart_hash(o->sts);
	a->has_template = tmpl != NULL;
	a->template_is_rendered = tmpl && strcmp(tmpl, o->r.restart_hash) == 0;
	a->canary_healthy_ms = rcv_healthy_ms(o->p, o->name, (long)o->sc.replicas - 1, o->r.restart_hash, o->r.hash);
	if (a->stalled && load_previous(o, plan) == 0)
		a->previous_restorable = o->prev_restart_ok && strcmp(o->prev_restart, o->r.restart_hash) != 0;
	return 0;
}

/* A hot change the routers refused: ConfigRejected, and with a rollback the
 * ConfigMap's document goes back to the ConfigMap and every router.
 * Returns 0 or -errno. */
static int act_refused(struct op *op, struct obs *o, const struct rp_outcome *out) SB_MUST_CHECK;

static int act_refused(struct op *op, struct obs *o, const struct rp_outcome *out)
{
	struct rcv_routers *p = o->p;
	char path[700];
	int ret;

	met_inc(op->m.rejections);
	rs_note(op, o->rc, "Warning", "ConfigRejected", "%zu of %zu routers refused config %.12s: %s",
		p->c.rejected + p->c.restart, p->c.nready, o->r.hash, p->why);
	if (out->hot != RP_HOT_ROLLBACK)
		return 0;
	snprintf(path, sizeof(path), "/api/v1/namespaces/%s/configmaps/%s-config", o->ns, o->name);
	ret = ro_apply_obj(op, path,
			   rob_configmap(o->rc, "config", o->cur_doc, o->cur_len, o->f.cm_hash, o->r.restart_hash));
	if (!ret)
		ret = rcv_converge(op, o->rc, o->token, o->cur_doc, o->cur_len, o->f.cm_hash, 1, NULL, p);
	if (ret)
		return ret;
	met_inc(op->m.rollbacks);
	ret = set_last_reload(o, "Hot", "RolledBack");
	if (ret)
		return ret;
	rs_note(op, o->rc, "Warning", "RolledBack", "restored the last good config %.12s", o->f.cm_hash);
	return 0;
}

/* What the push says about a hot change.  Returns 0 or -errno. */
static int act_hot(struct op *op, struct obs *o, const struct rp_outcome *out) SB_MUST_CHECK;

static int act_hot(struct op *op, struct obs *o, const struct rp_outcome *out)
{
	int ret;

	switch (out->hot) {
	case RP_HOT_NONE:
		return 0;
	case RP_HOT_REFUSED:
	case RP_HOT_ROLLBACK:
		return act_refused(op, o, out);
	case RP_HOT_RELOADED:
		met_inc(op->m.hot_reloads);
		ret = set_last_reload(o, "Hot", "Succeeded");
		if (ret)
			return ret;
		rs_note(op, o->rc, "Normal", "HotReload", "config %.12s applied in place to %zu routers", o->r.hash,
			o->p->c.nready);
		return 0;
	}
	return 0;
}

/* A rolling restart that cannot finish: config-previous goes back to the
 * ConfigMap and the StatefulSet, and the pods of the bad revision are
 * deleted (a StatefulSet waits forever for a broken pod to become Ready
 * before it replaces it).  Returns 0 or -errno. */
static int act_restart_rollback(struct op *op, struct obs *o) SB_MUST_CHECK;

static int act_restart_rollback(struct op *op, struct obs *o)
{
	char path[700];
	int ret;

	snprintf(path, sizeof(path), "/api/v1/namespaces/%s/configmaps/%s-config", o->ns, o->name);
	ret = ro_apply_obj(op, path,
			   rob_configmap(o->rc, "config", o->prev_doc, o->prev_len, o->prev_hash, o->prev_restart));
	snprintf(path, sizeof(path), "/apis/apps/v1/namespaces/%s/statefulsets/%s", o->ns, o->name);
	if (!ret)
		ret = ro_apply_obj(
			op, path,
			rob_statefulset(o->rc, &o->prev_cfg, o->prev_restart, op->router_image, o->sc.replicas, 0));
	o->partition = 0;
	if (!ret)
		ret = ro_delete_pods_with(op, o->rc, o->r.restart_hash);
	if (ret)
		return ret;
	met_inc(op->m.rollbacks);
	ret = set_last_reload(o, "Restart", "RolledBack");
	if (ret)
		return ret;
	rs_note(op, o->rc, "Warning", "RolledBack",
		"the rollout did not become available within its deadline; restored config %.12s (restart hash %.12s)",
		o->prev_hash, o->prev_restart);
	return 0;
}

/* The second half of a canary rollout: the canary has been healthy for
 * canarySeconds, so partition 0 lets the StatefulSet update the rest.
 * Returns 0 or -errno. */
static int act_promote(struct op *op, struct obs *o, const struct rp_after *a) SB_MUST_CHECK;

static int act_promote(struct op *op, struct obs *o, const struct rp_after *a)
{
	char path[700];
	int ret;

	snprintf(path, sizeof(path), "/apis/apps/v1/namespaces/%s/statefulsets/%s", o->ns, o->name);
	ret = ro_apply_obj(op, path,
			   rob_statefulset(o->rc, &o->r.cfg, o->r.restart_hash, op->router_image, o->sc.replicas, 0));
	o->partition = 0;
	if (ret == 0)
		rs_note(op, o->rc, "Normal", "CanaryPromoted",
			"canary pod %s-%lld has run config %.12s for %llds: updating the other router pods", o->name,
			(long long)o->f.canary.replicas - 1, o->r.hash, (long long)a->canary_healthy_ms / 1000);
	return ret;
}

/* Everything rp_plan_outcome() decided.  Returns 0 or -errno. */
static int act_outcome(struct op *op, struct obs *o, const struct rp_outcome *out,
		       const struct rp_after *a) SB_MUST_CHECK;

static int act_outcome(struct op *op, struct obs *o, const struct rp_outcome *out, const struct rp_after *a)
{
	int ret = act_hot(op, o, out);

	if (ret)
		return ret;
	if (out->step == RP_STEP_ROLLBACK)
		return act_restart_rollback(op, o);
	if (out->step == RP_STEP_PROMOTE)
		return act_promote(op, o, a);
	return 0;
}

/* The leaving pods (ordinals spec.replicas and up that the StatefulSet
 * still runs), as they answered in this reconcile, for rsc_plan_drain().
 * Returns a calloc'ed array of p->replicas - want entries, or NULL on
 * ENOMEM. */
static struct rsc_pod *leaving_pods(const struct obs *o)
{
	json_int_t want = o->sc_obs.want, n = o->sc.replicas - want;
	struct rsc_pod *pods = calloc((size_t)n, sizeof(*pods));
	char epoch[17];

	if (!pods)
		return NULL;
	own_epoch((uint32_t)o->r.cfg.cluster.replicas, o->r.cfg.cluster.peer_host, epoch);
	for (size_t i = 0; i < o->p->n; i++) {
		const struct rrt_endpoint *ep = &o->p->eps[i];
		long k = rcv_ordinal(o->name, ep->pod);
		struct rsc_pod *d = k >= want && k < o->sc.replicas ? &pods[k - want] : NULL;

		if (!d)
			continue;
		d->present = ep->ip[0] != '\0'; /* it was placed and started at least once */
		d->reachable = ep->ready && ep->reachable;
		d->on_epoch = strcmp(ep->epoch, epoch) == 0;
		d->queued = ep->queued;
		d->leased = ep->leased;
		d->handoffs = ep->handoffs;
	}
	return pods;
}

/* A new assignment is announced (Event AssignmentChanged).  A scale-down's
 * second half: the StatefulSet shrinks once rsc_plan_drain()
 * finds the leaving pods empty (Event ScaledDown); a drain past its
 * deadline is reported once (Warning Event ScaleDownHeld).  Returns 0 or
 * -errno. */
static int act_scale(struct op *op, struct obs *o, const struct rp_plan *plan) SB_MUST_CHECK;

static int act_scale(struct op *op, struct obs *o, const struct rp_plan *plan)
{
	json_int_t from = o->sc.replicas, want = o->sc_obs.want, was = o->sc_obs.assigned;
	struct rsc_pod *pods;
	char path[700];
	int ret;

	if (plan->write_config && was > 0 && o->sc.assignment != was)
		rs_note(op, o->rc, "Normal", "AssignmentChanged",
			"agents assigned over %lld router pods (were %lld): ownership moves by handoff",
			(long long)o->sc.assignment, (long long)was);
	if (from <= want || want <= 0)
		return 0;
	pods = leaving_pods(o);
	if (!pods)
		return -ENOMEM;
	rsc_plan_drain(&o->sc_obs, pods, (size_t)(from - want), &o->sc);
	free(pods);
	if (o->sc.held_event)
		rs_note(op, o->rc, "Warning", "ScaleDownHeld",
			"router pods %s-%lld and up still hold %zu queued and %zu leased messages (%zu handoffs, %zu "
			"pods unreachable): the StatefulSet stays at %lld pods",
			o->name, (long long)want, o->sc.queued, o->sc.leased, o->sc.handoffs, o->sc.unreachable,
			(long long)from);
	if (o->sc.phase != RSC_SCALED_DOWN)
		return 0;
	snprintf(path, sizeof(path), "/apis/apps/v1/namespaces/%s/statefulsets/%s", o->ns, o->name);
	ret = ro_apply_obj(op, path,
			   rob_statefulset(o->rc, &o->r.cfg, o->r.restart_hash, op->router_image, want, o->partition));
	if (ret)
		return ret;
	if (o->sc_obs.skip_check)
		rs_note(op, o->rc, "Warning", "ScaledDown",
			"scaled from %lld to %lld router pods without the drain check (annotation "
			"switchboard.dev/skip-scale-down-check): messages left on the leaving pods stay on their "
			"claims",
			(long long)from, (long long)want);
	else
		rs_note(op, o->rc, "Normal", "ScaledDown",
			"router pods %s-%lld and up handed off every message: scaled from %lld to %lld router pods",
			o->name, (long long)want, (long long)from, (long long)want);
	return 0;
}

/* The hash rp_report() names as `t`. */
static const char *target_hash(const struct obs *o, enum rp_target t)
{
	if (t == RP_TARGET_PREVIOUS)
		return o->prev_hash;
	if (t == RP_TARGET_CURRENT)
		return o->f.cm_hash ?: "";
	return o->r.hash;
}

/* The six conditions: Valid, ConfigApplied, Available, Progressing,
 * Scaled, HandoffsInOrder. */
static void report_conditions(const struct obs *o, const struct rp_report *rep, struct rs_cond c[NCOND])
{
	const struct rp_push *n = &o->p->c;
	const char *t = target_hash(o, rep->target), *st = rp_reason_status(rep->reason),
		   *why = rp_reason_name(rep->reason);

	rs_cond_set(&c[0], "Valid", "True", "Valid", "the spec passed validation (%zu agents)", o->r.naccepted);
	if (rep->reason == RP_REASON_ROLLED_BACK)
		rs_cond_set(&c[1], "ConfigApplied", st, why,
			    "config %.12s was refused or did not roll out; the routers run the last good config %.12s",
			    o->r.hash, t);
	else if (rep->reason == RP_REASON_NO_READY)
		rs_cond_set(&c[1], "ConfigApplied", st, why, "no ready router pods yet");
	else if (rep->reason == RP_REASON_ALL_CURRENT)
		rs_cond_set(&c[1], "ConfigApplied", st, why, "%zu of %zu ready routers run config %.12s", n->current,
			    n->nready, t);
	else if (rep->reason == RP_REASON_ROLLOUT)
		rs_cond_set(&c[1], "ConfigApplied", st, why,
			    "%zu of %zu ready routers run config %.12s; the rest apply it when restarted", n->current,
			    n->nready, t);
	else
		rs_cond_set(&c[1], "ConfigApplied", st, why, "%zu of %zu ready routers run config %.12s%s%s",
			    n->current, n->nready, t, n->unreachable ? "; unreachable: " : "",
			    n->unreachable ? o->p->why : "");
	workload_conditions(&o->ss, rep->stalled, rep->stage, o->rc, &c[2], &c[3]);
	rsc_condition(&o->sc_obs, &o->sc, o->name, &c[4]);
	rcv_handoff_condition(o->p, &c[5]);
}

/* The RouterConfig's status (new reference, NULL on ENOMEM). */
static json_t *report_status_json(const struct obs *o, const struct rp_report *rep, const struct rs_cond c[NCOND])
{
	const json_t *ds = json_object_get(o->sts, "status");
	const char *t = target_hash(o, rep->target);
	const char *restart = rep->restart == RP_TARGET_PREVIOUS ? o->prev_restart : o->r.restart_hash;
	char epoch[17];
	json_t *status;

	if (rep->restart_from_template)
		restart = ro_template_restart_hash(o->sts);
	status =
		json_pack("{s:I,s:o,s:s,s:s%,s:s,s:I,s:I,s:I,s:I,s:o}", "observedGeneration", o->gen, "conditions",
			  rs_conditions_json(json_object_get(o->rc, "status"), c, NCOND, o->gen), "configHash", t,
			  "configHashShort", t, (size_t)12, "restartHash", restart, "agents",
			  (json_int_t)o->r.naccepted, "replicas", json_integer_value(json_object_get(ds, "replicas")),
			  "readyReplicas", json_integer_value(json_object_get(ds, "readyReplicas")), "updatedReplicas",
			  json_integer_value(json_object_get(ds, "updatedReplicas")), "routers", rcv_status_json(o->p));
	if (!status)
		return NULL;
	own_epoch((uint32_t)o->r.cfg.cluster.replicas, o->r.cfg.cluster.peer_host, epoch);
	if (json_object_set_new(status, "volume", json_string(rob_ephemeral(o->rc) ? "Ephemeral" : "Persistent")) ||
	    json_object_set_new(status, "assignedReplicas", json_integer(o->r.cfg.cluster.replicas)) ||
	    json_object_set_new(status, "epoch", json_string(epoch)) ||
	    (o->last_reload && json_object_set(status, "lastReload", o->last_reload)) ||
	    (rep->rolled_back && json_object_set_new(status, "rejectedConfigHash", json_string(o->r.hash)))) {
		json_decref(status);
		return NULL;
	}
	return status;
}

/* Status, condition gauges, the Agents' statuses.  Returns 0 or the first
 * error (the later steps are done anyway). */
static int report_routerconfig(struct op *op, struct obs *o, const struct rp_plan *plan, const struct rp_report *rep,
			       struct rs_cond c[NCOND]) SB_MUST_CHECK;

static int report_routerconfig(struct op *op, struct obs *o, const struct rp_plan *plan, const struct rp_report *rep,
			       struct rs_cond c[NCOND])
{
	int ret;

	report_conditions(o, rep, c);
	ret = rs_write_status(op, "routerconfigs", "RouterConfig", o->rc, report_status_json(o, rep, c));
	for (size_t i = 0; i < NCOND; i++)
		if (op_cond_set(op, o->ns, o->name, c[i].type, c[i].status))
			ret = ret ? ret : -ENOMEM;
	if (rec_agent_statuses(op, o->rc, &o->r, rep->agents_current,
			       rep->agents_previous && load_previous(o, plan) == 0 ? &o->prev_cfg : NULL) &&
	    !ret)
		ret = -EAGAIN;
	return ret;
}

/* The reconcile after the spec was found valid: plan, act, push, plan
 * the outcome, act, report.  Returns 0 or -errno. */
static int reconcile_valid(struct op *op, struct obs *o, const struct rp_plan *plan, int64_t *requeue_ms) SB_MUST_CHECK;

static int reconcile_valid(struct op *op, struct obs *o, const struct rp_plan *plan, int64_t *requeue_ms)
{
	struct rp_after after;
	struct rp_outcome out;
	struct rp_report rep;
	struct rs_cond c[NCOND];
	char n[32];
	int ret = act_plan(op, o, plan);

	ret = ret ?: act_push(op, o, plan);
	ret = ret ?: observe_after(op, o, plan, &after);
	if (ret)
		return ret;
	rp_plan_outcome(&o->f, plan, &after, &out);
	ret = act_outcome(op, o, &out, &after);
	if (!ret && plan->apply_objects && out.step != RP_STEP_ROLLBACK)
		ret = act_scale(op, o, plan);
	if (ret)
		return ret;
	rp_report(&o->f, plan, &out, &after, &o->p->c, &rep);
	ret = report_routerconfig(op, o, plan, &rep, c);
	*requeue_ms = rep.requeue_ms;
	if (o->sc.phase != RSC_STEADY && o->sc.phase != RSC_SCALED_DOWN &&
	    (!*requeue_ms || *requeue_ms > RP_CONVERGE_POLL_MS))
		*requeue_ms = RP_CONVERGE_POLL_MS; /* a scale waits for pods: look again soon */
	snprintf(n, sizeof(n), "%zu", o->r.naccepted);
	log_info("reconciled", "kind", "RouterConfig", "namespace", o->ns, "name", o->name, "config_hash",
		 target_hash(o, rep.target), "config_applied", c[1].status, "n:agents", n);
	return ret;
}

int rec_routerconfig(struct op *op, const char *ns, const char *name, int64_t *requeue_ms)
{
	struct obs o;
	struct rp_plan plan;
	int ret;

	*requeue_ms = 0;
	memset(&o, 0, sizeof(o));
	o.ns = ns;
	o.name = name;
	o.prev_err = 1;
	ret = observe_routerconfig(op, &o);
	if (ret)
		return ret;
	if (!o.rc) {
		/* gone: ownerReferences let the garbage collector remove the rest */
		op_cond_forget(op, ns, name);
		return 0;
	}
	ret = observe_current(op, &o);
	if (!ret) {
		observe_scale(&o);
		rsc_plan(&o.sc_obs, &o.sc);
		ret = observe_spec(op, &o);
	}
	if (!ret && o.f.valid)
		ret = observe_world(op, &o);
	if (ret)
		goto out;
	rp_plan(&o.f, &plan);
	if (plan.action == RP_HOLD) {
		/* nothing else is touched: the last good config keeps running */
		ret = invalid_status(op, o.rc, &o.r, o.gen);
		if (op_cond_set(op, ns, name, "Valid", "False"))
			log_debug("condition gauges not updated");
		goto out;
	}
	ret = reconcile_valid(op, &o, &plan, requeue_ms);
out:
	if (ret && ret != -ENOMEM)
		log_warn("reconcile failed", "namespace", ns, "name", name, "error", strerror(-ret));
	obs_free(&o);
	return ret;
}
