/*
 * fwd: the request path of a router that is one of several replicas acting
 * as one (docs/cluster.md).  A submission is split by the owner of each
 * item's receiver: this router's items go to the routing core; the others
 * have their sender checked here (only this router saw the caller's token)
 * and go to their owner, one request per owner, and each gets its owner's
 * answer, or 503 with Retry-After when the owner cannot be reached, so no
 * item is ever answered 202 that its owner did not commit.  Pulls, acks and
 * nacks for an agent owned elsewhere are proxied to the owner.  On the peer
 * port fwd_peer_admit() is the gate (the peer secret and the same epoch),
 * and fwd_owned_here() the fence: no router commits a message for an agent
 * it does not own in its own epoch.
 */
#ifndef SWITCHBOARD_FWD_H
#define SWITCHBOARD_FWD_H

#include <stdint.h>

#include "app.h"
#include "rt.h"
#include "switchboard/common.h"
#include "switchboard/http.h"

/* Submit `items` (borrowed; results written into them): this router's
 * through rt_submit(), the others forwarded.  Returns 0 or -ENOMEM.
 * Thread-safe. */
int fwd_submit(struct app *app, struct rt_item *items, size_t n) SB_MUST_CHECK;

/* 1 with *owner set when another replica owns `agent`, 0 when this router
 * does (or runs alone).  Thread-safe. */
int fwd_elsewhere(struct app *app, const char *agent, uint32_t *owner);

/* 1 when this router owns `agent` in its own epoch.  Thread-safe. */
int fwd_owned_here(struct app *app, const char *agent);

/* Send `method` `path` (with its query; `body` borrowed, may be NULL) to
 * ordinal `owner` and answer `resp` with the owner's status, body and
 * Retry-After, or 503 OwnerUnavailable.  `extra_ms` is added to
 * cluster.forwardTimeoutMs (a long poll's wait).  Returns 0 or -ENOMEM.
 * Thread-safe. */
int fwd_proxy(struct app *app, uint32_t owner, const char *method, const char *path, const struct buf *body,
	      int64_t extra_ms, struct http_resp *resp) SB_MUST_CHECK;

struct peer_req;
struct peer_resp;

/* Send `rq` (borrowed; its token is filled in here, and its timeout is
 * cluster.forwardTimeoutMs when 0) to ordinal `owner` with the current
 * peer settings.  Returns 0 (the outcome is in `out`) or -ENOMEM.
 * Thread-safe. */
int fwd_call(struct app *app, uint32_t owner, struct peer_req *rq, struct peer_resp *out) SB_MUST_CHECK;

/* The peer port's gate: 0 when `req` carries the admin token (the peers'
 * shared secret; anything goes with security.auth none) and this router's
 * epoch; otherwise 1 after answering 401 or 503 EpochMismatch, or -ENOMEM.
 * Thread-safe. */
int fwd_peer_admit(struct app *app, struct http_req *req, struct http_resp *resp) SB_MUST_CHECK;

#endif
