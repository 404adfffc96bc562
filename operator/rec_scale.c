/*
 * rec_scale: the pure scaling decisions of a RouterConfig reconcile (see
 * rec_scale.h and docs/cluster.md, "Scaling").
 */
#include "rec_scale.h"

#include <string.h>

#include "switchboard/own.h"

static json_int_t rsc_clamp(json_int_t n)
{
	return n < 1 ? 1 : n > OWN_MAX_REPLICAS ? OWN_MAX_REPLICAS : n;
}

void rsc_plan(const struct rsc_obs *o, struct rsc_plan *p)
{
	json_int_t want = o->want < 0 ? 0 : o->want > OWN_MAX_REPLICAS ? OWN_MAX_REPLICAS : o->want;
	json_int_t assigned = o->assigned > 0 ? rsc_clamp(o->assigned) : rsc_clamp(want);

	memset(p, 0, sizeof(*p));
	p->phase = RSC_STEADY;
	if (want == 0) {
		/* scale to zero: nothing is left to hand off to; the retained
		 * claims keep every message until the pods come back */
		p->assignment = assigned;
		p->replicas = 0;
		return;
	}
	if (want <= assigned) {
		/* steady, or a scale-down: the assignment shrinks first */
		p->assignment = want;
	} else {
		/* a scale-up: the assignment grows once every wanted pod is Ready */
		p->assignment = o->ready_wanted >= (size_t)want ? want : assigned;
		if (p->assignment < want)
			p->phase = RSC_SCALING_UP;
	}
	/* pods above `want` stay until rsc_plan_drain() lets them go */
	p->replicas = o->sts > want ? o->sts : want;
	if (p->replicas > want)
		p->phase = RSC_DRAINING;
}

void rsc_plan_drain(const struct rsc_obs *o, const struct rsc_pod *pods, size_t n, struct rsc_plan *p)
{
	int empty = 1;

	if (p->replicas <= o->want || o->want <= 0)
		return;
	p->leaving_from = o->want;
	p->leaving_to = p->replicas;
	for (size_t i = 0; i < n; i++) {
		const struct rsc_pod *d = &pods[i];

		if (!d->present)
			continue; /* never ran: holds nothing */
		if (!d->reachable) {
			p->unreachable++;
			empty = 0;
			continue;
		}
		if (!d->on_epoch)
			p->behind++;
		p->queued += d->queued;
		p->leased += d->leased;
		p->handoffs += d->handoffs;
		if (!d->on_epoch || d->queued || d->leased || d->handoffs)
			empty = 0;
	}
	if ((empty && n == (size_t)(p->replicas - o->want)) || o->skip_check) {
		p->phase = RSC_SCALED_DOWN;
		p->replicas = o->want;
		return;
	}
	p->phase = RSC_DRAINING;
	if (o->draining_since_ms > 0 && o->now_ms - o->draining_since_ms > o->deadline_ms) {
		p->phase = RSC_HELD;
		p->held_event = !o->was_held;
	}
}

const char *rsc_phase_status(enum rsc_phase ph)
{
	return ph == RSC_STEADY || ph == RSC_SCALED_DOWN ? "True" : "False";
}

const char *rsc_phase_reason(enum rsc_phase ph)
{
	switch (ph) {
	case RSC_STEADY:
	case RSC_SCALED_DOWN:
		return "ReplicasMatch";
	case RSC_SCALING_UP:
		return "ScalingUp";
	case RSC_DRAINING:
		return "Draining";
	case RSC_HELD:
		return "ScaleDownHeld";
	}
	return "Unknown";
}

void rsc_condition(const struct rsc_obs *o, const struct rsc_plan *p, const char *name, struct rs_cond *c)
{
	const char *st = rsc_phase_status(p->phase), *why = rsc_phase_reason(p->phase);
	long long want = (long long)o->want;

	if (p->phase == RSC_SCALING_UP)
		rs_cond_set(c, "Scaled", st, why,
			    "%zu of %lld router pods Ready; the agents are assigned over %lld pods until all are",
			    o->ready_wanted, want, (long long)p->assignment);
	else if (p->phase == RSC_DRAINING || p->phase == RSC_HELD)
		rs_cond_set(c, "Scaled", st, why,
			    "%s-%lld to %s-%lld leave once empty: %zu queued, %zu leased, %zu handoffs in progress, "
			    "%zu pods not on the new assignment yet, %zu unreachable%s",
			    name, want, name, (long long)p->replicas - 1, p->queued, p->leased, p->handoffs, p->behind,
			    p->unreachable, p->phase == RSC_HELD ? " (past spec.rollout.progressDeadlineSeconds)" : "");
	else
		rs_cond_set(c, "Scaled", st, why, "%lld router pods; agents assigned over %lld", want,
			    (long long)p->assignment);
}
