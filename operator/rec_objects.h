/*
 * rec_objects: the Kubernetes objects a RouterConfig owns, for server-side
 * apply by rec_owned and rec: the ConfigMap that carries a document
 * rendered by rec_render, the router StatefulSet (with the partition of
 * a canary rollout), the client and peer Services, the
 * PodDisruptionBudget and the admin-token Secret.  Every builder borrows
 * its arguments, returns a new reference (NULL on ENOMEM) and does no I/O;
 * they only read `rc`, so they are thread-safe.  tests/unit/golden holds
 * each object as a reader sees it.
 */
#ifndef SWITCHBOARD_REC_OBJECTS_H
#define SWITCHBOARD_REC_OBJECTS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "switchboard/cfg.h"
#include "switchboard/common.h"

#define ROB_DEFAULT_VOLUME_SIZE "1Gi"

/* 1 when the RouterConfig opted into ephemeral router storage
 * (spec.volume.ephemeral: development only). */
int rob_ephemeral(const json_t *rc);

/* Owned objects for server-side apply (new references, NULL on ENOMEM).
 * Each carries the standard labels and an ownerReference to `rc`.  A
 * ConfigMap is annotated with its document's config hash and restart hash
 * (`restart_hash` may be NULL when unknown). */
json_t *rob_configmap(const json_t *rc, const char *suffix, const char *doc, size_t len, const char *hash,
		      const char *restart_hash);
/* The router workload: a StatefulSet whose pods keep their database on a
 * claim of their own (spec.volume; an emptyDir only with volume.ephemeral),
 * named through the headless Service rob_peer_service(), updated one pod at a
 * time from the highest ordinal, and only the ordinals >= `partition` (a
 * canary holds the rest back).  `replicas` is what rec_scale decided (it
 * differs from spec.replicas while leaving pods drain). */
json_t *rob_statefulset(const json_t *rc, const struct cfg *c, const char *restart_hash, const char *image,
			json_int_t replicas, json_int_t partition);

/* The canary of a restart-class rollout: the highest ordinal is updated
 * first and the rest wait until it has been healthy for canarySeconds. */
enum rob_stage {
	ROB_STAGE_NONE,	    /* no rollout held back */
	ROB_STAGE_CANARY,   /* only the canary is (being) updated */
	ROB_STAGE_PROMOTED, /* the canary was healthy long enough: update the rest */
};

struct rob_canary_in {
	json_int_t replicas;
	int new_rollout;	   /* this reconcile starts a restart-class rollout */
	json_int_t partition;	   /* the StatefulSet's current partition */
	int64_t canary_healthy_ms; /* how long the canary has been healthy; -1: not healthy */
	int64_t canary_seconds;	   /* spec.rollout.canarySeconds */
};

/* The partition to apply, and the stage it puts the rollout in.  Pure: no
 * I/O, no clock; table-tested.  Thread-safe. */
json_int_t rob_plan_partition(const struct rob_canary_in *in, enum rob_stage *stage);
/* The client Service (a virtual IP over the ready routers). */
json_t *rob_service(const json_t *rc, const struct cfg *c);
/* The URL an A2A client reaches agent `id` at through the client Service
 * rob_service(): `http://<name>.<namespace>.svc:<dataPort>/a2a/<id>`
 * (https when the document `c` serves TLS; docs/a2a.md).  Agent ids need no
 * escaping in a path.  Writes `out` (ROB_A2A_URL_MAX is always enough).
 * Returns 0, -EINVAL when `rc` has no name or namespace, or -ENAMETOOLONG.
 * Borrows everything; pure.  Thread-safe. */
#define ROB_A2A_URL_MAX 640
int rob_a2a_url(const json_t *rc, const struct cfg *c, const char *id, char *out, size_t outlen) SB_MUST_CHECK;
/* The headless Service `<name>-peers` that gives each router pod a stable
 * DNS name, ready or not. */
json_t *rob_peer_service(const json_t *rc, const struct cfg *c);
json_t *rob_pdb(const json_t *rc);
json_t *rob_admin_secret(const json_t *rc, const char *token);

/* The document held by a rendered ConfigMap (data, or gzip in binaryData)
 * as a heap string.  Returns 0, -ENOENT when it holds none, -EBADMSG or
 * -ENOMEM. */
int rob_configmap_doc(const json_t *cm, char **doc, size_t *len) SB_MUST_CHECK;

#endif
