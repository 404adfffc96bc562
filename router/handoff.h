/*
 * handoff: moving agents' messages when the assignment changes
 * (docs/cluster.md).  When cluster.replicas changes, each router works out
 * which agents it gains and which it loses.  An agent it gains is held
 * (rt_hold: new messages get 503, nothing is delivered) until its previous
 * owner says it has handed everything off, or cluster.handoffTimeoutMs runs
 * out.  An agent it loses is no longer delivered here; a worker thread
 * streams its stored messages, in queue order, to the new owner's peer port
 * (/peer/v1/handoff), deletes each batch only after the new owner committed
 * it, and then tells the new owner it is done.  At start-up a router hands
 * off whatever it stores for agents it does not own.  The new owner's dedup
 * window drops overlaps, and the epoch keeps both sides on one assignment.
 */
#ifndef SWITCHBOARD_HANDOFF_H
#define SWITCHBOARD_HANDOFF_H

#include <stdint.h>

#include "app.h"
#include "switchboard/common.h"
#include "switchboard/http.h"

struct ho;

/* Start the worker for `app` (borrowed; outlives it).  Returns 0 or
 * -errno. */
int ho_start(struct app *app, struct ho **out) SB_MUST_CHECK;

/* Stop the worker (a batch in flight is released back to its queue and
 * handed off after the next start) and free it.  NULL is a no-op. */
void ho_stop(struct ho *h);

/* The assignment changed from `old_replicas` to `new_replicas` agents-wide
 * (equal at start-up): hold what moves in, hand off what moves out.
 * Returns 0 or -ENOMEM.  Thread-safe. */
int ho_reassign(struct ho *h, uint32_t old_replicas, uint32_t new_replicas) SB_MUST_CHECK;

/* Agents being handed off from here now.  Thread-safe. */
size_t ho_in_progress(struct ho *h);

#endif
