/*
 * op: the operator's shared state.  One `struct op` is built by main and
 * shared by the informer callbacks, the reconcile worker, the leader
 * election and the HTTP handlers.  Metrics are atomics; the per-object
 * condition table used for alerting has its own lock.
 */
#ifndef SWITCHBOARD_OP_H
#define SWITCHBOARD_OP_H

#include <pthread.h>
#include <stdatomic.h>

#include "kc.h"
#include "kc_watch.h"
#include "le.h"
#include "switchboard/met.h"
#include "wq.h"

#define OP_GROUP_PATH "/apis/switchboard.dev/v1alpha1"
#define OP_MAX_NS     32

/* Where a router pod finds its files (rendered into every config). */
#define OP_CONFIG_KEY "router.json"
#define OP_CONFIG_DIR "/etc/switchboard/config"
#define OP_ADMIN_DIR  "/etc/switchboard/admin"
#define OP_TLS_DIR    "/etc/switchboard/tls" /* spec.tls.secretName, mounted */
#define OP_DATA_DIR   "/var/lib/switchboard"
#define OP_GZIP_OVER  (512u << 10) /* documents larger than this go gzip into binaryData */
#define OP_CM_LIMIT   (1000u << 10)

/* What the operator watches: its two resources, and the objects it owns
 * (label app.kubernetes.io/managed-by=switchboard-operator), so that a hand
 * edit or deletion of one is repaired within seconds. */
enum op_kind { OP_RC, OP_AGENT, OP_WORKLOAD, OP_CONFIGMAP, OP_SERVICE, OP_PDB, OP_SECRET, OP_NKINDS };

/* The label the operator puts on the Secrets it reads: the token Secrets
 * Agents reference and the admin-token Secret it writes.  Only Secrets with
 * it are watched (decision 38). */
#define OP_SECRET_LABEL	      "switchboard.dev/secret"
#define OP_SECRET_AGENT_TOKEN "agent-token"
#define OP_SECRET_ADMIN_TOKEN "admin-token"
#define OP_SECRET_SELECTOR    OP_SECRET_LABEL " in (" OP_SECRET_AGENT_TOKEN "," OP_SECRET_ADMIN_TOKEN ")"

struct op_metrics {
	struct met_counter *rec_ok, *rec_error, *rec_requeue;
	struct met_histogram *rec_seconds;
	struct met_counter *restarts[OP_NKINDS], *relists[OP_NKINDS];
	struct met_gauge *queue_depth, *leader;
	struct met_counter *hot_reloads, *rolling_restarts, *rollbacks, *rejections, *pushes_ok, *pushes_failed;
};

struct op {
	struct kc *k;
	struct wq *q;
	struct le *le;
	struct met_registry *met;
	struct op_metrics m;
	char *namespaces[OP_MAX_NS]; /* watched; nns 0: all namespaces */
	size_t nns;
	struct kc_informer *inf[OP_NKINDS][OP_MAX_NS];
	size_t ninf; /* informers per kind (nns, or 1 for all) */
	const char *router_image;
	int peer_pod_ips;	 /* --peer-addresses pod-ip: give the routers their pods' addresses */
	int64_t debounce_ms;	 /* quiet period before an Agent burst reconciles */
	int64_t debounce_max_ms; /* longest a burst can postpone it */
	int64_t resync_ms;
	char identity[128];
	atomic_int leader;
	volatile int stop;
	pthread_mutex_t cond_lock; /* conds */
	struct op_cond *conds;
};

/* The informer of `kind` that covers namespace `ns`, or NULL. */
struct kc_informer *op_informer(struct op *op, int kind, const char *ns);

/* Record the status ("True", "False", "Unknown") of one RouterConfig
 * condition for the alerting gauge switchboard_operator_routerconfig_condition.
 * Strings are copied.  Returns 0 or -ENOMEM.  Thread-safe. */
int op_cond_set(struct op *op, const char *ns, const char *name, const char *type, const char *status) SB_MUST_CHECK;

/* Forget every condition of a deleted RouterConfig.  Thread-safe. */
void op_cond_forget(struct op *op, const char *ns, const char *name);

/* Forget every condition (at exit).  Thread-safe. */
void op_cond_clear(struct op *op);

/* Metrics collector for the condition gauges and queue depth. */
int op_collect(struct buf *out, void *op) SB_MUST_CHECK;

#endif
