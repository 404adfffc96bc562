/*
 * rec_converge: bringing a RouterConfig's router pods to one config
 * document.  The pods are listed once per reconcile (before the plan: the
 * scale plan counts the Ready ones), each ready router is asked once what
 * it runs (GET /v1/status) and given the peers' addresses when the operator
 * pins them (--peer-addresses pod-ip), and then the stale ones are pushed
 * the document (POST /admin/reload).  What the routers said is kept in a
 * struct rcv_routers for the plan, the status and the scale-down check.
 */
#ifndef SWITCHBOARD_REC_CONVERGE_H
#define SWITCHBOARD_REC_CONVERGE_H

#include <jansson.h>
#include <stddef.h>

#include "op.h"
#include "rec_plan.h"
#include "rec_router.h"
#include "rec_status.h"

/* A RouterConfig's router pods and what they said in this reconcile.
 * Owned by one reconcile (not shared between threads); large: allocate it. */
struct rcv_routers {
	struct rrt_endpoint eps[RRT_MAX_ENDPOINTS];
	size_t n;	  /* router pods, ready or not */
	struct rp_push c; /* the ready ones: asked and pushed to */
	char why[300];	  /* the last router that failed, and why */
	int push_peers;	  /* --peer-addresses pod-ip: give each router the pods' addresses */
	int asked;	  /* the ready routers were asked (and given their peers) */
};

/* List the router pods of `rc` (borrowed) into `p`.  Returns 0 or the API
 * error.  Thread-safe for distinct `p`. */
int rcv_list(struct op *op, const json_t *rc, struct rcv_routers *p) SB_MUST_CHECK;

/* Bring every ready router to `doc` (`len` bytes, hash `hash`): ask each
 * (once per `p`), give them their peers, and push to the stale ones when
 * `push` is set, except routers that run `restart_from` (a document whose
 * restart-class fields differ from `doc`) or already know they need a
 * restart: those wait for the rolling restart.  Counts the outcome in
 * p->c.  Borrows everything; `token` is a secret, never logged.  Returns 0
 * or -ENOMEM.  Thread-safe for distinct `p`. */
int rcv_converge(struct op *op, const json_t *rc, const char *token, const char *doc, size_t len, const char *hash,
		 int push, const char *restart_from, struct rcv_routers *p) SB_MUST_CHECK;

/* The ordinal of pod `pod` of the StatefulSet `name` ("<name>-<k>"), -1
 * when the name is not of that form.  Pure. */
long rcv_ordinal(const char *name, const char *pod);

/* How long pod `<name>-<ordinal>` has been healthy: Ready, on the template
 * with `restart_hash`, reporting `hash` without needing a restart; -1 when
 * it is not.  Reads the clock.  Thread-safe. */
int64_t rcv_healthy_ms(const struct rcv_routers *p, const char *name, long ordinal, const char *restart_hash,
		       const char *hash);

/* The HandoffsInOrder condition into `c`: False while a router reports a
 * handoff hold that ran out (cluster.handoffTimeoutMs) since it started,
 * when the agents it held were delivered before their previous owner had
 * handed everything over, so their order may have broken; cleared when
 * that pod restarts.  Pure. */
void rcv_handoff_condition(const struct rcv_routers *p, struct rs_cond *c);

/* Which pod runs which config, for status.routers (new reference, NULL on
 * ENOMEM).  A pod that is not ready, or did not answer, has no hash. */
json_t *rcv_status_json(const struct rcv_routers *p);

#endif
