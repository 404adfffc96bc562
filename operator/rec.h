/*
 * rec: reconciling RouterConfigs and Agents.  One call brings one
 * RouterConfig's world in line with its spec: validate, render, apply the
 * owned objects with server-side apply, hot-reload routers by pushing the
 * new document or roll the Deployment when a restart-class field changed,
 * roll back a config the routers refuse, and write the truth to status and
 * Events.  Calls are idempotent: with nothing changed they write nothing.
 */
#ifndef SWITCHBOARD_REC_H
#define SWITCHBOARD_REC_H

#include <stdint.h>

#include "op.h"

/* Reconcile RouterConfig `ns`/`name`.  Returns 0 (with *requeue_ms > 0
 * when it should be looked at again soon, e.g. while routers converge) or
 * -errno to retry with backoff.  Runs on the worker thread. */
int rec_routerconfig(struct op *op, const char *ns, const char *name, int64_t *requeue_ms) SB_MUST_CHECK;

/* Reconcile an Agent whose router does not exist (its status says so).
 * Agents of an existing router are handled by rec_routerconfig().  Returns
 * 0 or -errno. */
int rec_agent(struct op *op, const char *ns, const char *name) SB_MUST_CHECK;

#endif
