/*
 * rec_owned: reading, applying and deleting the objects a RouterConfig
 * owns (its ConfigMaps, Services, PodDisruptionBudget, StatefulSet, router
 * pods and admin-token Secret), and reporting their drift: an owned object
 * deleted, scaled or stripped of its labels outside the RouterConfig is
 * repaired by the apply and named in a Warning Event (DriftRepaired).  The
 * objects themselves are built by rec_objects; what to write and when is
 * decided by the RouterConfig reconcile (rec.c).
 */
#ifndef SWITCHBOARD_REC_OWNED_H
#define SWITCHBOARD_REC_OWNED_H

#include <jansson.h>

#include "op.h"
#include "switchboard/common.h"

/* GET `path`; the object (new reference) goes to *out, NULL when it does
 * not exist (404).  Returns 0 or another API error.  Thread-safe. */
int ro_get_opt(struct op *op, const char *path, json_t **out) SB_MUST_CHECK;

/* Server-side apply `obj` to `path` (the object's own URL).  Steals `obj`
 * (NULL counts as ENOMEM).  Returns 0 or -errno (logged).  Thread-safe. */
int ro_apply_obj(struct op *op, const char *path, json_t *obj) SB_MUST_CHECK;

/* ro_apply_obj() for an owned object that should already exist when
 * `existed_before` (the RouterConfig was reconciled before): when the
 * apply had to create it, someone deleted it, and a Warning Event about
 * `rc` (borrowed) names the `kind` and the name.  Steals `obj`.  Returns 0
 * or -errno.  Thread-safe. */
int ro_apply_owned(struct op *op, const json_t *rc, int existed_before, const char *path, const char *kind,
		   json_t *obj) SB_MUST_CHECK;

/* Report drift of the StatefulSet's replica count (`sts` as read, borrowed,
 * may be NULL) from `want` (what the scale plan applies) made by another
 * field manager (kubectl scale): a Warning Event about `rc`, best effort.
 * The apply that follows undoes it.  Thread-safe. */
void ro_note_scale_drift(struct op *op, const json_t *rc, const json_t *sts, json_int_t want);

/* The token the routers accept on their admin port, from the RouterConfig's
 * admin-token Secret `<name>-admin` (mounted in every router pod, read by
 * the router on each admin request), into `token` (NUL-terminated).  A
 * missing Secret is created with a new random token (an Event when it was
 * deleted by hand: the routers accept the new token once the kubelet
 * updates their files); labels or the ownerReference edited away are
 * restored.  A token changed by hand is a rotation, and used from now on.
 * Borrows `rc`.  Returns 0 or -errno.  `token` is a secret, never logged;
 * the caller wipes it.  Thread-safe. */
int ro_admin_token(struct op *op, const json_t *rc, char token[65]) SB_MUST_CHECK;

/* Delete the router pods of `rc` (borrowed) whose template carries
 * `restart_hash`: after a rollback a StatefulSet waits forever for a pod of
 * the bad revision to become Ready before it replaces it.  Pods already
 * gone are not an error.  Returns 0 or -errno.  Thread-safe. */
int ro_delete_pods_with(struct op *op, const json_t *rc, const char *restart_hash) SB_MUST_CHECK;

/* Routers ran as a Deployment before v1alpha1 moved them to a StatefulSet;
 * remove that Deployment `ns`/`name` (owned by the RouterConfig) once the
 * StatefulSet exists.  v1alpha1 was never released, so its emptyDir data
 * is not migrated (docs/operator.md).  One that does not exist is not an
 * error.  Returns 0 or -errno.  Thread-safe. */
int ro_delete_legacy_deployment(struct op *op, const char *ns, const char *name) SB_MUST_CHECK;

/* The switchboard.dev/restart-hash annotation of the pod template of a
 * workload (`obj`, borrowed, may be NULL), borrowed from it, or NULL.
 * Thread-safe. */
const char *ro_template_restart_hash(const json_t *obj);

#endif
