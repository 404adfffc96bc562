/*
 * rec_render: turns a RouterConfig and the Agents it selects into the
 * router's config document and the objects that run it.  The document is
 * canonical JSON (sorted keys, agents sorted by id) so the same inputs
 * always give the same bytes and the same hash, whichever replica of the
 * operator renders them.  Agent tokens are read from their Secrets first
 * (rr_lookup_tokens(), the only step that does I/O) and only their SHA-256
 * is rendered (rr_render_from(), pure), then validated.
 */
#ifndef SWITCHBOARD_REC_RENDER_H
#define SWITCHBOARD_REC_RENDER_H

#include <jansson.h>

#include "op.h"
#include "switchboard/cfg.h"

/* What became of one Agent that names this router. */
struct rr_agent {
	char name[254];
	char id[254];
	json_int_t generation;
	int accepted;
	char reason[64];
	char message[300];
};

struct rr_render {
	char *doc; /* the config document (NUL-terminated) */
	size_t len;
	char hash[65];	       /* SHA-256 of doc */
	char restart_hash[65]; /* of the restart-class fields only */
	struct cfg cfg;	       /* parsed doc, when valid */
	int valid;
	struct cfg_report report; /* every problem, paths under spec.router */
	struct rr_agent *agents;  /* every Agent whose routerRef names this router */
	size_t nagents, naccepted;
};

/* The SHA-256 of one Agent's token, looked up before the render. */
struct rr_token {
	char agent[254]; /* the Agent's name */
	int err;	 /* 0: `digest` is set; else -errno and `why` says what is wrong */
	char digest[65];
	char why[300];
};

/* The token lookups of one render, in Agent name order. */
struct rr_tokens {
	struct rr_token *v;
	size_t n;
};

/* Render `rc` (borrowed): look up the tokens, render, validate.
 * `assignment` is the cluster.replicas to render (rec_scale decides it
 * while the pods change; 0: rr_assignment_replicas()).  Returns 0
 * with `out` filled (check out->valid), or -errno when the API or memory
 * failed.  Free with rr_free() either way.  Thread-safe. */
int rr_render(struct op *op, const json_t *rc, json_int_t assignment, struct rr_render *out) SB_MUST_CHECK;

/* rr_render() with the Agents given (borrowed array of Agent objects, e.g.
 * for benchmarks) instead of taken from the informer.  `op` is used only
 * for reading token Secrets. */
int rr_render_agents(struct op *op, const json_t *rc, const json_t *agents, json_int_t assignment,
		     struct rr_render *out) SB_MUST_CHECK;

/* The lookup step: the token digest of every Agent of `agents` (borrowed)
 * the render will need, read from its Secret (labelled for the watch on
 * first read; see docs/operator.md), exactly the Agents the render reaches
 * the token of.  Returns 0 with `out` filled (free with rr_tokens_free()),
 * or -ENOMEM.  A Secret that cannot be read is not an error: its entry
 * says why.  Thread-safe. */
int rr_lookup_tokens(struct op *op, const json_t *rc, const json_t *agents, struct rr_tokens *out) SB_MUST_CHECK;
void rr_tokens_free(struct rr_tokens *t);

/* The pure render: the document from `rc`, `agents` and the token digests
 * `tok` (all borrowed), then its validation.  No I/O.  Returns 0 with
 * `out` filled (check out->valid) or -ENOMEM; free with rr_free() either
 * way.  Thread-safe. */
int rr_render_from(const json_t *rc, const json_t *agents, const struct rr_tokens *tok, json_int_t assignment,
		   struct rr_render *out) SB_MUST_CHECK;
void rr_free(struct rr_render *r);

#define RR_DEFAULT_VOLUME_SIZE "1Gi"

/* The replica count the agents are assigned over (cluster.replicas in the
 * document): spec.replicas, at least 1.  Pure. */
json_int_t rr_assignment_replicas(const json_t *rc);

/* 1 when the RouterConfig opted into ephemeral router storage
 * (spec.volume.ephemeral: development only). */
int rr_ephemeral(const json_t *rc);

/* Owned objects for server-side apply (new references, NULL on ENOMEM).
 * Each carries the standard labels and an ownerReference to `rc`.  A
 * ConfigMap is annotated with its document's config hash and restart hash
 * (`restart_hash` may be NULL when unknown). */
json_t *rr_configmap(const json_t *rc, const char *suffix, const char *doc, size_t len, const char *hash,
		     const char *restart_hash);
/* The router workload: a StatefulSet whose pods keep their database on a
 * claim of their own (spec.volume; an emptyDir only with volume.ephemeral),
 * named through the headless Service rr_peer_service(), updated one pod at a
 * time from the highest ordinal, and only the ordinals >= `partition` (a
 * canary holds the rest back).  `replicas` is what rec_scale decided (it
 * differs from spec.replicas while leaving pods drain). */
json_t *rr_statefulset(const json_t *rc, const struct cfg *c, const char *restart_hash, const char *image,
		       json_int_t replicas, json_int_t partition);

/* The canary of a restart-class rollout: the highest ordinal is updated
 * first and the rest wait until it has been healthy for canarySeconds. */
enum rr_stage {
	RR_STAGE_NONE,	   /* no rollout held back */
	RR_STAGE_CANARY,   /* only the canary is (being) updated */
	RR_STAGE_PROMOTED, /* the canary was healthy long enough: update the rest */
};

struct rr_canary_in {
	json_int_t replicas;
	int new_rollout;	   /* this reconcile starts a restart-class rollout */
	json_int_t partition;	   /* the StatefulSet's current partition */
	int64_t canary_healthy_ms; /* how long the canary has been healthy; -1: not healthy */
	int64_t canary_seconds;	   /* spec.rollout.canarySeconds */
};

/* The partition to apply, and the stage it puts the rollout in.  Pure: no
 * I/O, no clock; table-tested.  Thread-safe. */
json_int_t rr_plan_partition(const struct rr_canary_in *in, enum rr_stage *stage);
/* The client Service (a virtual IP over the ready routers). */
json_t *rr_service(const json_t *rc, const struct cfg *c);
/* The URL an A2A client reaches agent `id` at through the client Service
 * rr_service(): `http://<name>.<namespace>.svc:<dataPort>/a2a/<id>`
 * (https when the document `c` serves TLS; docs/a2a.md).  Agent ids need no
 * escaping in a path.  Writes `out` (RR_A2A_URL_MAX is always enough).
 * Returns 0, -EINVAL when `rc` has no name or namespace, or -ENAMETOOLONG.
 * Borrows everything; pure.  Thread-safe. */
#define RR_A2A_URL_MAX 640
int rr_a2a_url(const json_t *rc, const struct cfg *c, const char *id, char *out, size_t outlen) SB_MUST_CHECK;
/* The headless Service `<name>-peers` that gives each router pod a stable
 * DNS name, ready or not. */
json_t *rr_peer_service(const json_t *rc, const struct cfg *c);
json_t *rr_pdb(const json_t *rc);
json_t *rr_admin_secret(const json_t *rc, const char *token);

/* The document held by a rendered ConfigMap (data, or gzip in binaryData)
 * as a heap string.  Returns 0, -ENOENT when it holds none, -EBADMSG or
 * -ENOMEM. */
int rr_configmap_doc(const json_t *cm, char **doc, size_t *len) SB_MUST_CHECK;

#endif
