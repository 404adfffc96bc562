/*
 * peer: the router's client for the other replicas of its RouterConfig.  A
 * request for an agent owned by another ordinal (docs/cluster.md) is sent to
 * that router's peer port over a pooled keep-alive connection: at most
 * cluster.peerConnections per peer, a caller waiting for a free one no longer
 * than its timeout.  Peers are named by cluster.peerHost with the ordinal
 * filled in, and cluster.resolve can pin those names to addresses (libcurl's
 * CURLOPT_RESOLVE), so tests never touch the machine's resolver.  Every
 * request carries the admin token (the per-RouterConfig secret the peers
 * share) and the sender's epoch, which the receiving router checks.
 */
#ifndef SWITCHBOARD_PEER_H
#define SWITCHBOARD_PEER_H

#include <stddef.h>
#include <stdint.h>

#include "switchboard/buf.h"
#include "switchboard/cfg.h"
#include "switchboard/common.h"

#define PEER_EPOCH_HEADER "X-Switchboard-Epoch"
#define PEER_BODY_LIMIT	  (256u << 20) /* a peer's answer, at most */

struct peer;

/* A peer's answer.  status 0: the peer could not be reached or did not answer
 * in time (the reason is in `error`). */
struct peer_resp {
	long status;
	struct buf body;
	char retry_after[16];
	char error[160];
};

/* What a call needs of the config, copied out of a snapshot so that no RCU
 * read section spans a network call. */
struct peer_conf {
	uint32_t replicas, ordinal; /* the assignment, and this router's ordinal */
	char host[254];		    /* cluster.peerHost */
	int64_t port;		    /* network.peerPort */
	char *resolve;		    /* cluster.resolve (owned) */
	int64_t connections;	    /* cluster.peerConnections */
	int64_t timeout_ms;	    /* cluster.forwardTimeoutMs */
	char epoch[17];
};

/* Fill `pc` from config `c` (borrowed).  Returns 0 or -ENOMEM; free with
 * peer_conf_free() either way. */
int peer_conf_from(struct peer_conf *pc, const struct cfg *c, int64_t ordinal) SB_MUST_CHECK;
void peer_conf_free(struct peer_conf *pc);

/* Create the client.  Returns 0 or -ENOMEM. */
int peer_new(struct peer **out) SB_MUST_CHECK;

/* Free the client and every pooled connection.  No call may be running.
 * NULL is a no-op. */
void peer_free(struct peer *p);

/* The epoch of `c`'s assignment (own_epoch of cluster.replicas and
 * cluster.peerHost).  Pure; thread-safe. */
void peer_epoch(const struct cfg *c, char out[17]);

/* One request to a peer; every pointer is borrowed for the call. */
struct peer_req {
	const char *method, *path; /* the path with its query */
	const char *ctype;	   /* NULL: no body */
	const char *body;
	size_t len;
	const char *token;  /* authenticates this router to the peer (a secret, never logged); NULL: none */
	const char *header; /* one more "Name: value" line, or NULL */
	int64_t timeout_ms; /* for a free connection and the answer together */
};

/* Send `rq` to the router of ordinal `ordinal` with the settings `pc`
 * (borrowed for the call).  Initialise `out` with peer_resp_init() first and
 * free it with peer_resp_free().  Returns 0 (the outcome, reached or not, is
 * in `out`) or -ENOMEM.  Thread-safe. */
int peer_call(struct peer *p, const struct peer_conf *pc, uint32_t ordinal, const struct peer_req *rq,
	      struct peer_resp *out) SB_MUST_CHECK;

void peer_resp_init(struct peer_resp *r);
void peer_resp_free(struct peer_resp *r);

#endif
