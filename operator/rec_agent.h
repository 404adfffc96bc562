/*
 * rec_agent: the status of Agents.  An Agent is reconciled with the
 * RouterConfig its spec.routerRef names: that reconcile (rec.c) writes the
 * status of each of its Agents once it knows what the routers run, with
 * rec_agent_statuses().  An Agent whose router does not exist is
 * reconciled on its own, by rec_agent().
 */
#ifndef SWITCHBOARD_REC_AGENT_H
#define SWITCHBOARD_REC_AGENT_H

#include <jansson.h>

#include "op.h"
#include "rec_render.h"
#include "switchboard/cfg.h"
#include "switchboard/common.h"

/* Reconcile Agent `ns`/`name` (read from the informer) whose router does
 * not exist: its status says so (Accepted and Ready False).  Agents of an
 * existing router are left to rec_routerconfig().  Returns 0 or -errno.
 * Runs on the worker thread. */
int rec_agent(struct op *op, const char *ns, const char *name) SB_MUST_CHECK;

/* The status of Agent `agent` (its current status is read to keep the
 * lastTransitionTime of unchanged conditions) as the render `r` of
 * RouterConfig `rc` found it (`a`): observedGeneration, Accepted and Ready
 * (as rec_agent_statuses() says), router, and for an accepted Agent
 * ownerPod and a2aUrl (rob_a2a_url()).  New reference, NULL on ENOMEM.
 * Borrows everything; reads the clock, no I/O.  Thread-safe. */
json_t *rec_agent_status_json(const json_t *rc, const struct rr_render *r, const struct rr_agent *a,
			      const json_t *agent, int applied, const struct cfg *prev);

/* Write the status (rec_agent_status_json()) of each Agent of RouterConfig
 * `rc` that the render `r` found (the Agents are read from the informer).
 * Ready is True when every ready router runs a config with the agent as it
 * is now defined: the current config (`applied` non-zero), or, during a
 * rolling restart, the previous one (`prev`, NULL unless every router runs
 * one of the two).  Borrows everything.  Returns 0, -ECANCELED when the
 * operator is shutting down (the next leader writes the rest) or -EAGAIN
 * when a status could not be written (the others are written anyway).
 * Runs on the worker thread. */
int rec_agent_statuses(struct op *op, const json_t *rc, const struct rr_render *r, int applied,
		       const struct cfg *prev) SB_MUST_CHECK;

#endif
