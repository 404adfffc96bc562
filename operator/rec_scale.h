/*
 * rec_scale: the order in which a RouterConfig changes its number of router
 * pods, as pure functions (docs/cluster.md, "Scaling").  Two numbers move:
 * the StatefulSet's replicas (how many pods run) and the assignment
 * (cluster.replicas in the config document: how many ordinals own agents).
 *
 * - Scale-up: the StatefulSet grows first; the assignment follows once
 *   every wanted pod is Ready, so no agent is assigned to a pod that is
 *   not there to take it.
 * - Scale-down: the assignment shrinks first (the leaving pods hand their
 *   agents' messages to the new owners); the StatefulSet shrinks only when
 *   every leaving pod runs the new assignment and reports nothing queued,
 *   nothing leased and no handoff in progress.  Until then it holds, and
 *   past its deadline it says so (a Warning Event).
 *
 * rsc_plan() runs before the render (it decides the assignment to render
 * and the replicas to apply); rsc_plan_drain() runs after the push (it
 * decides whether the leaving pods may go).  Pure: no I/O, no clock, no
 * allocation.  Thread-safe.  Table-tested in tests/unit/test_op.c.
 */
#ifndef SWITCHBOARD_REC_SCALE_H
#define SWITCHBOARD_REC_SCALE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "rec_status.h"

enum rsc_phase {
	RSC_STEADY,	 /* pods and assignment match spec.replicas */
	RSC_SCALING_UP,	 /* more pods run; the assignment waits until they are all Ready */
	RSC_DRAINING,	 /* fewer ordinals own agents; the leaving pods hand off before they go */
	RSC_HELD,	 /* ... and that has taken longer than the deadline */
	RSC_SCALED_DOWN, /* the leaving pods are empty: the StatefulSet shrinks now */
};

/* What the reconcile saw, before it wrote anything. */
struct rsc_obs {
	json_int_t want;	   /* spec.replicas (0: scale to zero) */
	json_int_t assigned;	   /* cluster.replicas of the document in force; 0: unknown */
	json_int_t sts;		   /* the StatefulSet's spec.replicas; -1: no StatefulSet yet */
	size_t ready_wanted;	   /* Ready pods among the ordinals 0 .. want-1 */
	int64_t now_ms;		   /* the reconcile's clock */
	int64_t draining_since_ms; /* since when the Scaled condition says Draining/ScaleDownHeld; 0: not */
	int64_t deadline_ms;	   /* how long a drain may take before it is reported held */
	int was_held;		   /* the Scaled condition says ScaleDownHeld already */
	int skip_check;		   /* annotation switchboard.dev/skip-scale-down-check: "true" */
};

/* One leaving pod (an ordinal at or above spec.replicas), as it answered
 * GET /v1/status in this reconcile. */
struct rsc_pod {
	int present;   /* a pod that has an address: it was placed and started (one that never ran, such
			  as a pod a hand scale-up left Pending, holds nothing) */
	int reachable; /* Ready and answered */
	int on_epoch;  /* runs the assignment rsc_plan() chose */
	size_t queued, leased, handoffs;
};

/* The decision. */
struct rsc_plan {
	json_int_t assignment; /* cluster.replicas to render (at least 1) */
	json_int_t replicas;   /* the StatefulSet's replicas to apply */
	enum rsc_phase phase;
	/* rsc_plan_drain() only: the leaving ordinals' totals */
	json_int_t leaving_from, leaving_to;		      /* ordinals [from, to) */
	size_t queued, leased, handoffs, unreachable, behind; /* behind: not on the new assignment yet */
	int held_event; /* the drain just passed its deadline: Warning Event ScaleDownHeld */
};

/* Before the render: the assignment and the replicas, from `o`. */
void rsc_plan(const struct rsc_obs *o, struct rsc_plan *p);

/* After the push, while p->replicas is above o->want: whether the leaving
 * pods `pods` (indexed by ordinal - o->want, n = p->replicas - o->want of
 * them, borrowed) may go.  Updates p->phase (DRAINING, HELD or SCALED_DOWN),
 * p->replicas (o->want when SCALED_DOWN), the totals and held_event. */
void rsc_plan_drain(const struct rsc_obs *o, const struct rsc_pod *pods, size_t n, struct rsc_plan *p);

/* The Scaled condition's status and reason ("True"/"False",
 * "ReplicasMatch", "ScalingUp", "Draining", "ScaleDownHeld"); static
 * strings. */
const char *rsc_phase_status(enum rsc_phase ph);
const char *rsc_phase_reason(enum rsc_phase ph);

/* The Scaled condition of RouterConfig `name` from `o` and `p` (borrowed)
 * into `c`: whether the pods and the assignment match spec.replicas, and
 * what a scale waits for.  Pure. */
void rsc_condition(const struct rsc_obs *o, const struct rsc_plan *p, const char *name, struct rs_cond *c);

#endif
