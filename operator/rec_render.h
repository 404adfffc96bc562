/*
 * rec_render: turns a RouterConfig and the Agents it selects into the
 * router's config document (the objects that carry it to the routers are
 * built by rec_objects.h).  The document is
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

/* The replica count the agents are assigned over (cluster.replicas in the
 * document): spec.replicas, at least 1.  Pure. */
json_int_t rr_assignment_replicas(const json_t *rc);

/* spec.tls.secretName: the TLS Secret (type kubernetes.io/tls) the routers
 * serve their data port with, named in the document and mounted at
 * OP_TLS_DIR by rec_objects; NULL without TLS from a Secret.  The string is
 * borrowed from `rc`.  Pure; thread-safe. */
const char *rr_tls_secret(const json_t *rc);

#endif
