/*
 * rec_converge: the router pods of a RouterConfig brought to one document
 * (see rec_converge.h).
 */
#include "rec_converge.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "switchboard/log.h"
#include "switchboard/util.h"

int rcv_list(struct op *op, const json_t *rc, struct rcv_routers *p)
{
	p->asked = 0;
	return rrt_endpoints(op, kc_meta_str(rc, "namespace"), kc_meta_str(rc, "name"), p->eps, &p->n);
}

/* With --peer-addresses pod-ip, give every reachable router that lacks them
 * the addresses of the current pods (membership, kept out of the config
 * document: a pod that moves changes no config hash).  A failure is only
 * logged; the next reconcile tries again.  Returns 0 or -ENOMEM. */
static int push_peers(const json_t *rc, const char *token, struct rcv_routers *p) SB_MUST_CHECK;

static int push_peers(const json_t *rc, const char *token, struct rcv_routers *p)
{
	char *peers = NULL, hash[65];
	int r;

	if (!p->push_peers)
		return 0;
	r = rrt_peers_of(rc, p->eps, p->n, &peers);
	if (r)
		return r;
	util_sha256_hex(peers, strlen(peers), hash);
	for (size_t i = 0; i < p->n; i++) {
		struct rrt_endpoint *ep = &p->eps[i];

		if (ep->ready && ep->reachable && strcmp(ep->peers_hash, hash) != 0 &&
		    rrt_push_peers(ep, token, peers) == 0)
			snprintf(ep->peers_hash, sizeof(ep->peers_hash), "%s", hash);
		else if (ep->ready && ep->reachable && strcmp(ep->peers_hash, hash) != 0)
			log_warn("cannot give a router its peers' addresses", "pod", ep->pod, "detail", ep->detail);
	}
	free(peers);
	return 0;
}

/* Ask every ready router what it runs, then give them their peers (before
 * any document: an assignment that grows must find the new pods). */
static int ask_all(const json_t *rc, const char *token, struct rcv_routers *p) SB_MUST_CHECK;

static int ask_all(const json_t *rc, const char *token, struct rcv_routers *p)
{
	for (size_t i = 0; i < p->n; i++) {
		struct rrt_endpoint *ep = &p->eps[i];

		if (ep->ready && rrt_status(ep, token))
			snprintf(p->why, sizeof(p->why), "%.100s: %.190s", ep->url, ep->detail);
	}
	p->asked = 1;
	return push_peers(rc, token, p);
}

/* Push `doc` to one stale router and count the outcome. */
static void push_one(struct op *op, struct rrt_endpoint *ep, const char *token, const char *doc, size_t len,
		     struct rcv_routers *p)
{
	struct rp_push *c = &p->c;
	int r = rrt_push(ep, token, doc, len);

	if (r == 0) {
		met_inc(op->m.pushes_ok);
		c->current++;
		return;
	}
	met_inc(op->m.pushes_failed);
	if (r == -EINVAL)
		c->rejected++;
	else if (r == -EAGAIN)
		c->restart++;
	else
		c->unreachable++;
	snprintf(p->why, sizeof(p->why), "%.100s: %.190s", ep->url, ep->detail);
}

int rcv_converge(struct op *op, const json_t *rc, const char *token, const char *doc, size_t len, const char *hash,
		 int push, const char *restart_from, struct rcv_routers *p)
{
	struct rp_push *c = &p->c;
	int r = p->asked ? 0 : ask_all(rc, token, p);

	if (r)
		return r;
	memset(c, 0, sizeof(*c));
	for (size_t i = 0; i < p->n; i++) {
		struct rrt_endpoint *ep = &p->eps[i];

		if (!ep->ready)
			continue;
		c->nready++;
		if (!ep->reachable) {
			c->unreachable++;
			continue;
		}
		if (strcmp(ep->doc_hash, hash) == 0) {
			c->current++;
		} else if (restart_from && strcmp(ep->doc_hash, restart_from) == 0) {
			c->pending++;
			c->previous++;
		} else if (!push || ep->restart_required) {
			c->pending++;
		} else {
			push_one(op, ep, token, doc, len, p);
		}
	}
	return 0;
}

long rcv_ordinal(const char *name, const char *pod)
{
	size_t n = strlen(name);
	char *end;
	long k;

	if (strncmp(pod, name, n) != 0 || pod[n] != '-' || pod[n + 1] < '0' || pod[n + 1] > '9')
		return -1;
	k = strtol(pod + n + 1, &end, 10);
	return *end == '\0' && k >= 0 && k < 100000 ? k : -1;
}

int64_t rcv_healthy_ms(const struct rcv_routers *p, const char *name, long ordinal, const char *restart_hash,
		       const char *hash)
{
	int64_t ms = -1;

	for (size_t i = 0; i < p->n; i++) {
		const struct rrt_endpoint *ep = &p->eps[i];

		if (rcv_ordinal(name, ep->pod) == ordinal && ep->ready && ep->reachable && !ep->restart_required &&
		    strcmp(ep->restart_hash, restart_hash) == 0 && strcmp(ep->doc_hash, hash) == 0)
			ms = ep->ready_since_ms ? util_now_ms() - ep->ready_since_ms : 0;
	}
	return ms;
}

json_t *rcv_status_json(const struct rcv_routers *p)
{
	json_t *arr = json_array();

	for (size_t i = 0; arr && i < p->n; i++) {
		const struct rrt_endpoint *ep = &p->eps[i];
		json_t *o = json_pack("{s:s,s:b}", "pod", ep->pod, "ready", ep->ready);

		if (!o ||
		    (ep->ready && ep->doc_hash[0] && json_object_set_new(o, "configHash", json_string(ep->doc_hash))) ||
		    (ep->ready && ep->epoch[0] && json_object_set_new(o, "epoch", json_string(ep->epoch))) ||
		    json_array_append_new(arr, o)) {
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

void rcv_handoff_condition(const struct rcv_routers *p, struct rs_cond *c)
{
	size_t total = 0, pods = 0;
	const char *first = NULL;

	for (size_t i = 0; i < p->n; i++) {
		const struct rrt_endpoint *ep = &p->eps[i];

		if (ep->reachable && ep->handoff_timeouts) {
			total += ep->handoff_timeouts;
			pods++;
			first = first ? first : ep->pod;
		}
	}
	if (!total)
		rs_cond_set(c, "HandoffsInOrder", "True", "InOrder",
			    "every handoff finished before its new owner delivered");
	else
		rs_cond_set(c, "HandoffsInOrder", "False", "HandoffTimedOut",
			    "%zu handoff holds ran out on %zu router pods (first: %s) since they started: order may "
			    "have broken for those agents (switchboard_router_handoff_timeouts_total)",
			    total, pods, first);
}
