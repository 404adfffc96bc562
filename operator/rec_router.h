/*
 * rec_router: the operator's HTTP client for router admin ports.  It finds
 * a RouterConfig's router pods (by the workload's labels; their podIP and
 * the container port named "admin"), asks each ready one
 * router which config document it runs (GET /v1/status), and pushes a new
 * document (POST /admin/reload) with the admin token, so a hot change lands
 * in seconds instead of waiting for the kubelet to refresh the mounted
 * ConfigMap.
 */
#ifndef SWITCHBOARD_REC_ROUTER_H
#define SWITCHBOARD_REC_ROUTER_H

#include <stddef.h>
#include <stdint.h>

#include "op.h"

#define RRT_MAX_ENDPOINTS 256

struct rrt_endpoint {
	char pod[254];		 /* the pod's name */
	char restart_hash[65];	 /* its template's switchboard.dev/restart-hash */
	int ready;		 /* Ready, with an address: url is set */
	int64_t ready_since_ms;	 /* when it last became Ready (0: unknown) */
	char url[128];		 /* http://podIP:adminPort */
	char ip[64];		 /* podIP, ready or not ("" before it has one) */
	char doc_hash[65];	 /* what it reported; "" if unknown */
	char epoch[17];		 /* the assignment it runs (cluster.epoch); "" if unknown */
	char peers_hash[65];	 /* of the peer addresses it was given (cluster.peers_hash) */
	size_t queued, leased;	 /* stored messages waiting, and leased to consumers */
	size_t handoffs;	 /* agents it is handing off now (cluster.handoffs) */
	size_t handoff_timeouts; /* holds that ran out since it started (cluster.handoff_timeouts) */
	int reachable;		 /* answered /v1/status */
	int restart_required;
	char result[24]; /* of our push: applied, unchanged, rejected, restart_required, error */
	char detail[256];
};

/* The router pods of RouterConfig `name` in `ns` (selected by the labels
 * the operator renders; pods being deleted are left out), sorted by name.
 * A pod is `ready` when its Ready condition is True and it has a podIP and
 * a container port named "admin"; only ready pods get a url.  Pods, not
 * EndpointSlices: slices refuse loopback addresses and lag behind
 * readiness.  Fills up to RRT_MAX_ENDPOINTS into `eps` and their number
 * into *n.  Returns 0 or an API error.  Thread-safe. */
int rrt_endpoints(struct op *op, const char *ns, const char *name, struct rrt_endpoint *eps, size_t *n) SB_MUST_CHECK;

/* With --peer-addresses pod-ip: the entries that pin each router pod's peer
 * name (<name>-<ordinal>.<name>-peers.<ns>.svc) and peer port to its pod IP,
 * comma-separated, from the pods `eps` (n of them, borrowed), in *out (heap
 * string; "" when no pod has an IP yet).  Pure.  Returns 0 or -ENOMEM. */
int rrt_peers_of(const json_t *rc, const struct rrt_endpoint *eps, size_t n, char **out) SB_MUST_CHECK;

/* Give one router the peer addresses `peers` (from rrt_peers_of()).
 * Returns 0 or -EIO.  Thread-safe. */
int rrt_push_peers(struct rrt_endpoint *ep, const char *token, const char *peers) SB_MUST_CHECK;

/* Ask one router for its status; fills doc_hash, epoch, peers_hash, the
 * message counts, reachable and restart_required.  Returns 0 or -EIO.  `token` is a secret, never
 * logged.  Thread-safe. */
int rrt_status(struct rrt_endpoint *ep, const char *token) SB_MUST_CHECK;

/* Push `doc` to one router; fills result, detail and doc_hash.  Returns 0
 * when the router runs `doc` afterwards (applied or unchanged), -EAGAIN
 * when it needs a restart to apply it, -EINVAL when it rejected it, -EIO
 * when it could not be reached.  Thread-safe. */
int rrt_push(struct rrt_endpoint *ep, const char *token, const char *doc, size_t len) SB_MUST_CHECK;

#endif
