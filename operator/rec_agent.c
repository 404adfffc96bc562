/*
 * rec_agent: the status of Agents (see rec_agent.h).  Accepted says
 * whether the render put the agent into its router's config, Ready whether
 * the routers run that config; the RouterConfig reconcile decides which
 * config counts and passes it in.
 */
#include "rec_agent.h"

#include <errno.h>

#include "rec_objects.h"
#include "rec_status.h"
#include "switchboard/own.h"

/* Whether the agent `id` is defined alike in `cur` and `prev`: then routers
 * still running `prev` during a rolling restart serve it as configured. */
static int same_in_previous(const struct cfg *cur, const struct cfg *prev, const char *id)
{
	const struct cfg_agent *a = cfg_find_agent(cur, id), *b = cfg_find_agent(prev, id);

	return a && b && cfg_agent_equal(a, b);
}

/* status.ownerPod: <rc>-<ordinal> of the pod that owns agent `id` under the
 * rendered assignment.  Returns 0 or -ENOMEM. */
static int set_owner_pod(json_t *st, const json_t *rc, const struct rr_render *r, const char *id)
{
	char pod[300];

	snprintf(pod, sizeof(pod), "%s-%u", kc_meta_str(rc, "name"),
		 own_owner(id, r->valid ? (uint32_t)r->cfg.cluster.replicas : 1));
	return json_object_set_new(st, "ownerPod", json_string(pod)) ? -ENOMEM : 0;
}

/* status.a2aUrl: where A2A clients reach agent `id` through the router's
 * Service (rob_a2a_url()).  Returns 0 or -ENOMEM; an agent of a render
 * that is not valid has no URL (there is no document to take the port
 * from). */
static int set_a2a_url(json_t *st, const json_t *rc, const struct rr_render *r, const char *id)
{
	char url[ROB_A2A_URL_MAX];

	if (!r->valid || rob_a2a_url(rc, &r->cfg, id, url, sizeof(url)))
		return 0;
	return json_object_set_new(st, "a2aUrl", json_string(url)) ? -ENOMEM : 0;
}

/* Accepted and Ready of agent `a` into `c`. */
static void agent_conditions(const struct rr_render *r, const struct rr_agent *a, int applied, const struct cfg *prev,
			     struct rs_cond c[2])
{
	rs_cond_set(&c[0], "Accepted", a->accepted ? "True" : "False", a->reason, "%s", a->message);
	if (!a->accepted)
		rs_cond_set(&c[1], "Ready", "False", "NotAccepted", "the agent is not in the router's config");
	else if (applied)
		rs_cond_set(&c[1], "Ready", "True", "ConfigApplied", "every ready router runs a config with agent %s",
			    a->id);
	else if (prev && same_in_previous(&r->cfg, prev, a->id))
		rs_cond_set(&c[1], "Ready", "True", "RolloutInProgress",
			    "every ready router runs a config with agent %s; a rolling restart is in progress", a->id);
	else
		rs_cond_set(&c[1], "Ready", "False", "Pending", "waiting for the routers to apply the config");
}

json_t *rec_agent_status_json(const json_t *rc, const struct rr_render *r, const struct rr_agent *a,
			      const json_t *agent, int applied, const struct cfg *prev)
{
	struct rs_cond c[2];
	json_t *st;

	agent_conditions(r, a, applied, prev, c);
	st = json_pack("{s:I,s:o,s:s}", "observedGeneration", a->generation, "conditions",
		       rs_conditions_json(json_object_get(agent, "status"), c, 2, a->generation), "router",
		       kc_meta_str(rc, "name"));
	if (st && a->accepted && (set_owner_pod(st, rc, r, a->id) || set_a2a_url(st, rc, r, a->id))) {
		json_decref(st);
		st = NULL; /* never write a status that is silently incomplete */
	}
	return st;
}

int rec_agent_statuses(struct op *op, const json_t *rc, const struct rr_render *r, int applied, const struct cfg *prev)
{
	const char *ns = kc_meta_str(rc, "namespace");
	struct kc_informer *inf = op_informer(op, OP_AGENT, ns);
	int ret = 0;

	for (size_t i = 0; inf && i < r->nagents; i++) {
		const struct rr_agent *a = &r->agents[i];

		if (op->stop)
			return -ECANCELED; /* shutting down: the next leader writes the rest */
		json_t *agent = kc_informer_get(inf, ns, a->name);

		if (!agent)
			continue;
		if (rs_write_status(op, "agents", "Agent", agent,
				    rec_agent_status_json(rc, r, a, agent, applied, prev)))
			ret = -EAGAIN;
		json_decref(agent);
	}
	return ret;
}

int rec_agent(struct op *op, const char *ns, const char *name)
{
	struct kc_informer *ainf = op_informer(op, OP_AGENT, ns), *rinf = op_informer(op, OP_RC, ns);
	json_t *agent = ainf ? kc_informer_get(ainf, ns, name) : NULL, *router = NULL, *st;
	const char *ref;
	json_int_t gen;
	struct rs_cond c[2];
	int ret = 0;

	if (!agent)
		return 0;
	ref = json_string_value(json_object_get(json_object_get(json_object_get(agent, "spec"), "routerRef"), "name"));
	router = ref && rinf ? kc_informer_get(rinf, ns, ref) : NULL;
	if (!router) {
		gen = json_integer_value(json_object_get(json_object_get(agent, "metadata"), "generation"));
		rs_cond_set(&c[0], "Accepted", "False", "RouterNotFound", "no RouterConfig named %s in namespace %s",
			    ref ? ref : "", ns);
		rs_cond_set(&c[1], "Ready", "False", "NotAccepted", "the agent is not in any router's config");
		st = json_pack("{s:I,s:o,s:s}", "observedGeneration", gen, "conditions",
			       rs_conditions_json(json_object_get(agent, "status"), c, 2, gen), "router", "");
		ret = rs_write_status(op, "agents", "Agent", agent, st);
	}
	json_decref(router);
	json_decref(agent);
	return ret;
}
