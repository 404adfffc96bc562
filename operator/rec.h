/*
 * rec: reconciling a RouterConfig.  One call brings one RouterConfig's
 * world in line with its spec: validate, render, apply the owned objects
 * with server-side apply, hot-reload routers by pushing the new document
 * or roll the StatefulSet when a restart-class field changed, roll back a
 * config the routers refuse, and write the truth to status and Events.
 * Calls are idempotent: with nothing changed they write nothing.  Agents
 * without a router are reconciled by rec_agent (rec_agent.h).
 */
#ifndef SWITCHBOARD_REC_H
#define SWITCHBOARD_REC_H

#include <stdint.h>

#include "op.h"

/* Reconcile RouterConfig `ns`/`name`.  Returns 0 (with *requeue_ms > 0
 * when it should be looked at again soon, e.g. while routers converge) or
 * -errno to retry with backoff.  Runs on the worker thread. */
int rec_routerconfig(struct op *op, const char *ns, const char *name, int64_t *requeue_ms) SB_MUST_CHECK;

#endif
