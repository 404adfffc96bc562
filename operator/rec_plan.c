/*
 * rec_plan: the pure decisions of a RouterConfig reconcile (see rec_plan.h
 * and docs/operator.md).
 */
#include "rec_plan.h"

#include <string.h>

static int rp_same(const char *a, const char *b)
{
	return a && b && strcmp(a, b) == 0;
}

/* The config whose routers wait for the rollout instead of being pushed:
 * the one config-previous holds once this plan's writes are done, when its
 * restart hash differs from the rendered one.  config-previous is written
 * only by restart-class changes, so this also holds when a hot change
 * arrives during a rollout. */
static const char *rp_restart_from(const struct rp_obs *o, const struct rp_plan *p)
{
	const char *ph = p->save_previous ? o->cm_hash : o->prev_hash;
	const char *pr = p->save_previous ? o->cm_restart : o->prev_restart;

	return ph && pr && o->restart_hash && strcmp(pr, o->restart_hash) != 0 ? ph : NULL;
}

void rp_plan(const struct rp_obs *o, struct rp_plan *p)
{
	int drifted;

	memset(p, 0, sizeof(*p));
	p->stage = ROB_STAGE_NONE;
	if (!o->valid) {
		p->action = RP_HOLD;
		return;
	}
	if (rp_same(o->rejected_hash, o->hash) && o->cm_has_doc) {
		/* refused and rolled back: keep the old config until the spec or
		 * the Agents change (a new hash) */
		p->action = RP_KEEP_ROLLED_BACK;
		p->push_current = 1;
		p->push = 1;
		return;
	}
	p->action = RP_APPLY;
	p->apply_objects = 1;
	p->changed = !rp_same(o->cm_hash, o->hash);
	/* the annotation is ours, the bytes may not be: a hand edit of the
	 * document is restored, not treated as a new config */
	drifted = !p->changed && o->cm_has_doc && (!rp_same(o->cm_doc_hash, o->hash) || o->cm_unannotated);
	p->restart_change = p->changed && o->cm_has_doc && o->cm_restart_class;
	p->save_previous = p->restart_change; /* the last good document, for a rollback */
	p->write_config = p->changed || drifted;
	if (drifted)
		p->drift = RP_DRIFT_EDITED;
	else if (!o->cm_exists && o->had_config)
		p->drift = RP_DRIFT_DELETED;
	p->rolling_restart = p->restart_change;
	p->partition = rob_plan_partition(&o->canary, &p->stage);
	p->push = !p->restart_change;
	p->restart_from = rp_restart_from(o, p);
}

/* What the push says about a hot change. */
static enum rp_hot rp_hot_outcome(const struct rp_obs *o, const struct rp_plan *p, const struct rp_push *c)
{
	if (p->action != RP_APPLY || p->restart_change)
		return RP_HOT_NONE;
	if (c->rejected || c->restart)
		return o->auto_rollback && o->cm_has_doc ? RP_HOT_ROLLBACK : RP_HOT_REFUSED;
	if (p->changed && c->current == c->nready && c->nready > 0)
		return RP_HOT_RELOADED;
	return RP_HOT_NONE;
}

void rp_plan_outcome(const struct rp_obs *o, const struct rp_plan *p, const struct rp_after *a, struct rp_outcome *out)
{
	memset(out, 0, sizeof(*out));
	out->hot = rp_hot_outcome(o, p, &a->push);
	out->rolled_back = p->action == RP_KEEP_ROLLED_BACK || out->hot == RP_HOT_ROLLBACK;
	/* a hot reload or rollback writes lastReload kind Hot: no restart is
	 * waited for any more */
	out->stalled = a->stalled && out->hot != RP_HOT_RELOADED && out->hot != RP_HOT_ROLLBACK;
	out->stage = p->stage;
	if (out->rolled_back)
		return;
	if (o->auto_rollback && out->stalled && a->template_is_rendered && a->previous_restorable) {
		/* a rolling restart that cannot finish: restore the previous config */
		out->step = RP_STEP_ROLLBACK;
		out->rolled_back = 1;
	} else if (!out->stalled && p->partition > 0) {
		/* the second half of a canary rollout */
		struct rob_canary_in in = o->canary;

		in.new_rollout = 0;
		in.partition = p->partition;
		in.canary_healthy_ms = a->canary_healthy_ms;
		(void)rob_plan_partition(&in, &out->stage);
		if (out->stage == ROB_STAGE_PROMOTED)
			out->step = RP_STEP_PROMOTE;
	}
}

static enum rp_reason rp_reason_of(const struct rp_plan *p, const struct rp_outcome *out, const struct rp_push *c,
				   int applied)
{
	if (out->rolled_back)
		return RP_REASON_ROLLED_BACK;
	if (c->nready == 0)
		return RP_REASON_NO_READY;
	if (applied)
		return RP_REASON_ALL_CURRENT;
	if (p->restart_change || c->restart || c->pending)
		return RP_REASON_ROLLOUT;
	return RP_REASON_PROPAGATING;
}

void rp_report(const struct rp_obs *o, const struct rp_plan *p, const struct rp_outcome *out, const struct rp_after *a,
	       const struct rp_push *c, struct rp_report *rep)
{
	memset(rep, 0, sizeof(*rep));
	rep->applied = c->nready > 0 && c->current == c->nready;
	rep->rolled_back = out->rolled_back;
	rep->reason = rp_reason_of(p, out, c, rep->applied);
	if (out->step == RP_STEP_ROLLBACK)
		rep->target = RP_TARGET_PREVIOUS;
	else if (out->rolled_back)
		rep->target = RP_TARGET_CURRENT;
	else
		rep->target = RP_TARGET_RENDERED;
	rep->restart = out->step == RP_STEP_ROLLBACK ? RP_TARGET_PREVIOUS : RP_TARGET_RENDERED;
	rep->restart_from_template = out->rolled_back && !p->changed && a->has_template;
	rep->stalled = out->stalled && !out->rolled_back;
	rep->stage = out->rolled_back ? ROB_STAGE_NONE : out->stage;
	rep->agents_current = rep->applied && !out->rolled_back;
	rep->agents_previous =
		!rep->applied && !out->rolled_back && c->previous && c->current + c->previous == c->nready;
	if (!rep->applied)
		rep->requeue_ms = RP_CONVERGE_POLL_MS;
	else if (o->token_secret_invalid)
		rep->requeue_ms = RP_SECRET_POLL_MS;
}

const char *rp_reason_status(enum rp_reason r)
{
	return r == RP_REASON_ALL_CURRENT ? "True" : "False";
}

const char *rp_reason_name(enum rp_reason r)
{
	switch (r) {
	case RP_REASON_ROLLED_BACK:
		return "RolledBack";
	case RP_REASON_NO_READY:
		return "NoReadyRouters";
	case RP_REASON_ALL_CURRENT:
		return "AllRoutersCurrent";
	case RP_REASON_ROLLOUT:
		return "RolloutInProgress";
	case RP_REASON_PROPAGATING:
		return "Propagating";
	}
	return "Unknown";
}
