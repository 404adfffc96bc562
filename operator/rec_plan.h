/*
 * rec_plan: the decisions of a RouterConfig reconcile, as pure functions.
 * A reconcile observes (operator/rec.c reads the RouterConfig, its
 * ConfigMaps, the StatefulSet and the router pods into a struct rp_obs of
 * plain values), plans (this module), acts (server-side apply, pushes,
 * deletes) and reports (status, Events).  Pushing to the routers happens
 * mid-reconcile and its outcome decides a rollback, so there are three
 * steps: rp_plan() before the push, rp_plan_outcome() after it, and
 * rp_report() once the routers are where they will stay.
 *
 * Every function here is pure: no I/O, no clock, no allocation; it reads
 * only its arguments and writes only its output struct.  Strings in the
 * output point into the input (borrowed).  Thread-safe.  Table-tested in
 * tests/unit/test_op.c.
 */
#ifndef SWITCHBOARD_REC_PLAN_H
#define SWITCHBOARD_REC_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "rec_objects.h"

#define RP_CONVERGE_POLL_MS 2000 /* while the routers are not all current */
#define RP_SECRET_POLL_MS   5000 /* an Agent's token Secret is missing: Secrets are not watched */

/* What a reconcile saw before it wrote anything.  Strings are borrowed
 * from the reconcile's objects; NULL means absent. */
struct rp_obs {
	int valid;		   /* the rendered document passed validation */
	int auto_rollback;	   /* spec.rollout.autoRollback (default true) */
	int token_secret_invalid;  /* an Agent was left out for its token Secret */
	const char *hash;	   /* config hash of the rendered document */
	const char *restart_hash;  /* its restart hash */
	const char *rejected_hash; /* status.rejectedConfigHash */
	int had_config;		   /* status.configHash is set: the ConfigMap was written before */
	/* ConfigMap <name>-config */
	int cm_exists;
	int cm_has_doc;		 /* it holds a document */
	const char *cm_hash;	 /* its switchboard.dev/config-hash annotation */
	const char *cm_doc_hash; /* SHA-256 of its document ("" without one) */
	int cm_unannotated;	 /* it has a document but its config-hash annotation was removed by
				    hand (cm_hash is then status.configHash, or the document's hash) */
	int cm_restart_class;	 /* going from its document to the rendered one needs a restart (an
				    unreadable document does); only known when cm_hash != hash */
	const char *cm_restart;	 /* restart hash of its document ("" when unknown or unreadable) */
	/* ConfigMap <name>-config-previous: its annotations */
	const char *prev_hash;
	const char *prev_restart;
	/* the StatefulSet, as read before this reconcile wrote it; canary.canary_healthy_ms is -1 */
	struct rob_canary_in canary;
};

enum rp_action {
	RP_HOLD,	     /* invalid spec: Valid=False, nothing else is touched */
	RP_KEEP_ROLLED_BACK, /* this very config was refused before: the routers keep the last good one */
	RP_APPLY,	     /* apply the owned objects and bring the routers to the rendered config */
};

enum rp_drift {
	RP_DRIFT_NONE,
	RP_DRIFT_EDITED,  /* the ConfigMap's document was edited by hand: restored */
	RP_DRIFT_DELETED, /* the ConfigMap was deleted: recreated */
};

/* What to do before the push. */
struct rp_plan {
	enum rp_action action;
	int changed;		  /* the rendered hash differs from the ConfigMap's annotation */
	int restart_change;	  /* ... and applying it needs a rolling restart */
	int save_previous;	  /* write <name>-config-previous from the ConfigMap's document */
	int write_config;	  /* write <name>-config with the rendered document */
	enum rp_drift drift;	  /* Warning Event DriftRepaired for the ConfigMap */
	int apply_objects;	  /* apply Services, PodDisruptionBudget, StatefulSet */
	int rolling_restart;	  /* count it, lastReload Restart/Progressing, Event RollingRestart */
	json_int_t partition;	  /* the StatefulSet's rollingUpdate.partition */
	enum rob_stage stage;	  /* where that puts the canary */
	int push_current;	  /* bring the routers to the ConfigMap's document (1) or the rendered one (0) */
	int push;		  /* push to stale routers (0: the rolling restart brings them) */
	const char *restart_from; /* routers running this config wait for the rollout; NULL: none */
};

/* The routers, as one converge left them (ready ones only). */
struct rp_push {
	size_t nready, current, rejected, restart, unreachable, pending;
	size_t previous; /* of the pending: routers on the document before a restart */
};

/* What was seen after the push. */
struct rp_after {
	struct rp_push push;
	int stalled;		   /* a restart this operator started is past its progress deadline */
	int template_is_rendered;  /* the StatefulSet's template carries the rendered restart hash */
	int has_template;	   /* the StatefulSet's template carries a restart hash at all */
	int previous_restorable;   /* config-previous holds a readable document of another restart hash */
	int64_t canary_healthy_ms; /* -1: the canary is not healthy */
};

enum rp_hot {
	RP_HOT_NONE,
	RP_HOT_RELOADED, /* every ready router took the hot change: Event HotReload */
	RP_HOT_REFUSED,	 /* routers refused it; no rollback (autoRollback off, or nothing to go back to) */
	RP_HOT_ROLLBACK, /* routers refused it: restore the ConfigMap's document and push it to all */
};

enum rp_step {
	RP_STEP_NONE,
	RP_STEP_ROLLBACK, /* a stalled restart: restore config-previous, roll back, delete the bad pods */
	RP_STEP_PROMOTE,  /* the canary was healthy long enough: partition 0 */
};

/* What to do after the push. */
struct rp_outcome {
	enum rp_hot hot;      /* ConfigRejected is sent for REFUSED and ROLLBACK */
	enum rp_step step;    /* at most one of them */
	int rolled_back;      /* the routers run (or go back to) the last good config */
	int stalled;	      /* as the status reports it (a hot reload or rollback ends the restart's deadline) */
	enum rob_stage stage; /* the canary's stage after the step */
};

enum rp_reason {
	RP_REASON_ROLLED_BACK, /* ConfigApplied False RolledBack */
	RP_REASON_NO_READY,    /* False NoReadyRouters */
	RP_REASON_ALL_CURRENT, /* True AllRoutersCurrent */
	RP_REASON_ROLLOUT,     /* False RolloutInProgress */
	RP_REASON_PROPAGATING, /* False Propagating */
};

enum rp_target {
	RP_TARGET_RENDERED, /* the rendered config */
	RP_TARGET_CURRENT,  /* the ConfigMap's document as it was (cm_hash) */
	RP_TARGET_PREVIOUS, /* config-previous, restored by a stall rollback */
};

/* What the status says. */
struct rp_report {
	enum rp_reason reason;
	int applied;		   /* every ready router runs the target config */
	int rolled_back;	   /* also: write status.rejectedConfigHash (the rendered hash) */
	enum rp_target target;	   /* status.configHash */
	enum rp_target restart;	   /* status.restartHash: RENDERED or PREVIOUS... */
	int restart_from_template; /* ... or the StatefulSet template's */
	int stalled;		   /* Progressing False ProgressDeadlineExceeded */
	enum rob_stage stage;	   /* Progressing CanaryInProgress */
	int agents_current;	   /* Agents are Ready from the current config */
	int agents_previous;	   /* Agents may be Ready from config-previous (when it parses) */
	int64_t requeue_ms;	   /* look again after this long; 0: only on a change */
};

/* Before the push: fills `p` from `o`. */
void rp_plan(const struct rp_obs *o, struct rp_plan *p);

/* After the push: fills `out` from what was planned and seen. */
void rp_plan_outcome(const struct rp_obs *o, const struct rp_plan *p, const struct rp_after *a, struct rp_outcome *out);

/* The status, from the final push counts `c` (after a hot rollback: its
 * own converge). */
void rp_report(const struct rp_obs *o, const struct rp_plan *p, const struct rp_outcome *out, const struct rp_after *a,
	       const struct rp_push *c, struct rp_report *rep);

/* The reason's condition status and reason string ("True"/"False", e.g.
 * "AllRoutersCurrent"); static strings. */
const char *rp_reason_status(enum rp_reason r);
const char *rp_reason_name(enum rp_reason r);

#endif
