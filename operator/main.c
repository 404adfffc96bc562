/*
 * switchboard-operator: the control plane.  main() parses flags, connects
 * to the API server, starts an informer per kind and namespace, the leader
 * election, the reconcile worker and the /healthz, /readyz and /metrics
 * server, then waits for SIGTERM: the reconcile in flight finishes, the
 * Lease is released, and the process exits 0.
 */
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uthash.h>

#include "op.h"
#include "rec.h"
#include "rec_agent.h"
#include "rec_objects.h"
#include "switchboard/http.h"
#include "switchboard/log.h"
#include "switchboard/util.h"

static const char *const kind_names[OP_NKINDS] = {
	"routerconfigs", "agents", "statefulsets", "configmaps", "services", "poddisruptionbudgets", "secrets"};

/* --- events -> queue ---------------------------------------------------- */

static json_int_t generation(const json_t *o)
{
	return json_integer_value(json_object_get(json_object_get(o, "metadata"), "generation"));
}

static const char *md(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(json_object_get(o, "metadata"), k));
}

/* Queue a reconcile: at once, or (debounce != 0) after the burst quiets.
 * `why` names the cause in the debug log. */
static void enqueue(struct op *op, const char *kind, const char *ns, const char *name, int debounce, const char *why)
{
	char key[WQ_KEY_MAX];
	int rc;

	if (!ns || !name)
		return;
	snprintf(key, sizeof(key), "%s/%.250s/%.250s", kind, ns, name);
	rc = debounce && op->debounce_ms > 0 ? wq_debounce(op->q, key, op->debounce_ms, op->debounce_max_ms)
					     : wq_add(op->q, key, 0);
	if (rc)
		log_error("cannot queue a reconcile", "key", key);
	else
		log_debug("reconcile queued", "key", key, "cause", why);
}

/* Spec changes only: our own status writes come back as events too. */
static int spec_changed(int type, const json_t *old, const json_t *nw)
{
	const json_t *lo, *ln;

	if (type != KC_MODIFIED || !old)
		return 1;
	lo = json_object_get(json_object_get(old, "metadata"), "labels");
	ln = json_object_get(json_object_get(nw, "metadata"), "labels");
	return generation(old) != generation(nw) || (lo || ln ? !json_equal(lo, ln) : 0) || /* NULL != NULL */
	       (md(nw, "deletionTimestamp") && !md(old, "deletionTimestamp"));
}

static void on_rc(int type, const json_t *old, const json_t *nw, void *ctx)
{
	struct op *op = ctx;

	if (spec_changed(type, old, nw))
		enqueue(op, "rc", md(nw, "namespace"), md(nw, "name"), 0, "RouterConfig changed");
	if (type == KC_ADDED || type == KC_DELETED) {
		/* Agents waiting for this router (or losing it) */
		struct kc_informer *ai = op_informer(op, OP_AGENT, md(nw, "namespace"));
		json_t *all = ai ? kc_informer_list(ai) : NULL, *a;
		size_t i;

		json_array_foreach (all, i, a) {
			const char *ref = json_string_value(
				json_object_get(json_object_get(json_object_get(a, "spec"), "routerRef"), "name"));

			if (ref && md(nw, "name") && strcmp(ref, md(nw, "name")) == 0 &&
			    strcmp(md(a, "namespace") ?: "", md(nw, "namespace") ?: "") == 0)
				enqueue(op, "agent", md(a, "namespace"), md(a, "name"), 1, "its router came or went");
		}
		json_decref(all);
	}
}

static const char *router_ref(const json_t *a)
{
	return json_string_value(json_object_get(json_object_get(json_object_get(a, "spec"), "routerRef"), "name"));
}

static void on_agent(int type, const json_t *old, const json_t *nw, void *ctx)
{
	struct op *op = ctx;

	if (!spec_changed(type, old, nw))
		return;
	/* debounced: a burst of Agent edits becomes one render and one push */
	enqueue(op, "rc", md(nw, "namespace"), router_ref(nw), 1, "Agent changed");
	if (old && router_ref(old) && router_ref(nw) && strcmp(router_ref(old), router_ref(nw)) != 0)
		enqueue(op, "rc", md(old, "namespace"), router_ref(old), 1, "Agent moved away");
	if (type != KC_DELETED)
		enqueue(op, "agent", md(nw, "namespace"), md(nw, "name"), 1, "Agent changed");
}

static void on_owned(int type, const json_t *old, const json_t *nw, void *ctx)
{
	struct op *op = ctx;
	const json_t *labels = json_object_get(json_object_get(nw, "metadata"), "labels");

	(void)type, (void)old;
	enqueue(op, "rc", md(nw, "namespace"), json_string_value(json_object_get(labels, "app.kubernetes.io/instance")),
		0, "owned object changed");
}

/* A ConfigMap whose document hashes to its own config-hash annotation is as
 * this operator wrote it: its events (our own writes) need no reconcile,
 * which would otherwise cut an Agent burst's debounce short.  Deletions and
 * hand edits do. */
static int configmap_as_written(const json_t *cm)
{
	const char *want = json_string_value(json_object_get(
		json_object_get(json_object_get(cm, "metadata"), "annotations"), "switchboard.dev/config-hash"));
	char *doc = NULL, have[65];
	size_t len = 0;
	int same = 0;

	if (want && rob_configmap_doc(cm, &doc, &len) == 0) {
		util_sha256_hex(doc, len, have);
		same = strcmp(have, want) == 0;
	}
	free(doc);
	return same;
}

static void on_configmap(int type, const json_t *old, const json_t *nw, void *ctx)
{
	if (type != KC_DELETED && configmap_as_written(nw))
		return;
	on_owned(type, old, nw, ctx);
}

/* A token Secret changed or went away: every RouterConfig of its namespace
 * renders again (debounced like Agents), so a rotated or revoked token is in
 * effect on the routers within a second or two.  An admin-token Secret
 * changed by hand or deleted: its RouterConfig reconciles at once. */
static void on_secret(int type, const json_t *old, const json_t *nw, void *ctx)
{
	struct op *op = ctx;
	const char *ns = md(nw, "namespace");
	struct kc_informer *inf;
	json_t *all, *o;
	size_t i;

	if (!ns)
		return;
	if (strcmp(json_string_value(
			   json_object_get(json_object_get(json_object_get(nw, "metadata"), "labels"), OP_SECRET_LABEL))
			   ?: "",
		   OP_SECRET_ADMIN_TOKEN) == 0) {
		on_owned(type, old, nw, ctx); /* an admin-token Secret: its RouterConfig repairs it */
		return;
	}
	inf = op_informer(op, OP_RC, ns);
	all = inf ? kc_informer_list(inf) : NULL;
	json_array_foreach (all, i, o) {
		if (md(o, "namespace") && strcmp(md(o, "namespace"), ns) == 0)
			enqueue(op, "rc", ns, md(o, "name"), 1, "token Secret changed");
	}
	json_decref(all);
}

static void resync(struct op *op)
{
	for (size_t i = 0; i < op->ninf; i++) {
		json_t *all = kc_informer_list(op->inf[OP_RC][i]), *o;
		size_t j;

		json_array_foreach (all, j, o) {
			enqueue(op, "rc", md(o, "namespace"), md(o, "name"), 0, "resync");
		}
		json_decref(all);
		all = kc_informer_list(op->inf[OP_AGENT][i]);
		json_array_foreach (all, j, o) {
			enqueue(op, "agent", md(o, "namespace"), md(o, "name"), 0, "resync");
		}
		json_decref(all);
	}
}

static void on_leader(int leader, void *ctx)
{
	struct op *op = ctx;

	atomic_store(&op->leader, leader);
	met_gauge_set(op->m.leader, leader);
	if (leader)
		resync(op); /* everything, once: idempotent reconciles write nothing new */
}

/* --- worker --------------------------------------------------------------- */

static void *worker_main(void *arg)
{
	struct op *op = arg;
	uint64_t last_resync = util_mono_ns();
	char key[WQ_KEY_MAX];

	while (!op->stop) {
		char kind[16], ns[254], name[254];
		int64_t requeue = 0;
		uint64_t t0;
		int rc;

		if (util_mono_ns() - last_resync > (uint64_t)op->resync_ms * 1000000u) {
			last_resync = util_mono_ns();
			if (atomic_load(&op->leader))
				resync(op);
		}
		rc = wq_get(op->q, key, 1000);
		if (rc == -ECANCELED)
			break;
		if (rc)
			continue;
		if (!atomic_load(&op->leader) ||
		    sscanf(key, "%15[^/]/%253[^/]/%253s", kind, ns, name) != 3) { /* standby: the leader resyncs */
			wq_done(op->q, key, 0, 0);
			continue;
		}
		t0 = util_mono_ns();
		if (strcmp(kind, "rc") == 0)
			rc = rec_routerconfig(op, ns, name, &requeue);
		else
			rc = rec_agent(op, ns, name);
		met_observe(op->m.rec_seconds, (double)(util_mono_ns() - t0) / 1e9);
		met_inc(rc ? op->m.rec_error : requeue ? op->m.rec_requeue : op->m.rec_ok);
		wq_done(op->q, key, rc != 0, requeue);
		malloc_trim(0); /* a large render's transient memory goes back to the system */
	}
	kc_thread_done();
	return NULL;
}

/* --- HTTP ----------------------------------------------------------------- */

static int h_healthz(struct http_req *req, struct http_resp *resp, void *ctx)
{
	(void)req, (void)ctx;
	resp->status = 200;
	resp->content_type = "text/plain";
	return buf_puts(&resp->body, "ok\n");
}

static int h_readyz(struct http_req *req, struct http_resp *resp, void *ctx)
{
	struct op *op = ctx;
	int synced = 1;

	(void)req;
	for (int k = 0; k < OP_NKINDS; k++)
		for (size_t i = 0; i < op->ninf; i++)
			synced &= kc_informer_synced(op->inf[k][i]);
	resp->status = synced ? 200 : 503;
	resp->content_type = "text/plain";
	return buf_puts(&resp->body, synced ? "ok\n" : "caches not synced\n");
}

static int h_metrics(struct http_req *req, struct http_resp *resp, void *ctx)
{
	struct op *op = ctx;

	(void)req;
	resp->status = 200;
	resp->content_type = "text/plain; version=0.0.4";
	return met_render(op->met, &resp->body);
}

static const struct http_route routes[] = {
	{"GET", "/healthz", h_healthz},
	{"GET", "/readyz", h_readyz},
	{"GET", "/metrics", h_metrics},
	{NULL, NULL, NULL},
};

static int metrics_init(struct op *op)
{
	static const double secs[] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
	struct met_registry *r = met_new();
	struct op_metrics *m = &op->m;
	static const char *const restart_labels[OP_NKINDS] = {
		"resource=\"routerconfigs\"", "resource=\"agents\"",   "resource=\"statefulsets\"",
		"resource=\"configmaps\"",    "resource=\"services\"", "resource=\"poddisruptionbudgets\"",
		"resource=\"secrets\""};

	if (!r)
		return -ENOMEM;
	op->met = r;
	m->rec_ok = met_counter_add(r, "switchboard_operator_reconciles_total", "Reconciles by result.",
				    "result=\"success\"");
	m->rec_requeue = met_counter_add(r, "switchboard_operator_reconciles_total", "Reconciles by result.",
					 "result=\"requeue\"");
	m->rec_error = met_counter_add(r, "switchboard_operator_reconciles_total", "Reconciles by result.",
				       "result=\"error\"");
	m->rec_seconds = met_histogram_add(r, "switchboard_operator_reconcile_duration_seconds",
					   "Time spent in one reconcile.", NULL, secs, SB_ARRAY_SIZE(secs));
	for (int k = 0; k < OP_NKINDS; k++) {
		m->restarts[k] = met_counter_add(r, "switchboard_operator_watch_restarts_total",
						 "Watch streams (re)opened.", restart_labels[k]);
		m->relists[k] =
			met_counter_add(r, "switchboard_operator_watch_relists_total",
					"Relists after a watch expired (410 Gone) or broke.", restart_labels[k]);
	}
	m->queue_depth = met_gauge_add(r, "switchboard_operator_queue_depth", "Keys waiting in the work queue.", NULL);
	m->leader = met_gauge_add(r, "switchboard_operator_leader", "1 while this replica holds the Lease.", NULL);
	m->hot_reloads = met_counter_add(r, "switchboard_operator_hot_reloads_total",
					 "Configs pushed to every ready router in place.", NULL);
	m->rolling_restarts = met_counter_add(r, "switchboard_operator_rolling_restarts_total",
					      "Restart-class changes rolled out through the StatefulSet.", NULL);
	m->rollbacks = met_counter_add(r, "switchboard_operator_rollbacks_total",
				       "Configs restored after routers refused a new one or a rollout stalled.", NULL);
	m->rejections = met_counter_add(r, "switchboard_operator_config_rejections_total",
					"Configs rejected by validation or by the routers.", NULL);
	m->pushes_ok = met_counter_add(r, "switchboard_operator_router_pushes_total", "POST /admin/reload calls.",
				       "result=\"success\"");
	m->pushes_failed = met_counter_add(r, "switchboard_operator_router_pushes_total", "POST /admin/reload calls.",
					   "result=\"failure\"");
	if (!m->rec_ok || !m->rec_requeue || !m->rec_error || !m->rec_seconds || !m->queue_depth || !m->leader ||
	    !m->hot_reloads || !m->rolling_restarts || !m->rollbacks || !m->rejections || !m->pushes_ok ||
	    !m->pushes_failed)
		return -ENOMEM;
	return met_collector_add(r, op_collect, op);
}

#define OWNED "app.kubernetes.io/managed-by=switchboard-operator"
/* Secrets: only the ones the operator labelled (decision 38) */
static const char token_selector[] = OP_SECRET_SELECTOR;

static int start_informers(struct op *op)
{
	static const char *const prefix[OP_NKINDS] = {OP_GROUP_PATH, OP_GROUP_PATH,	"/apis/apps/v1", "/api/v1",
						      "/api/v1",     "/apis/policy/v1", "/api/v1"};
	static const char *const selector[OP_NKINDS] = {NULL, NULL, OWNED, OWNED, OWNED, OWNED, token_selector};
	static kc_event_fn const fns[OP_NKINDS] = {on_rc,    on_agent, on_owned, on_configmap,
						   on_owned, on_owned, on_secret};

	op->ninf = op->nns ? op->nns : 1;
	for (int k = 0; k < OP_NKINDS; k++) {
		for (size_t i = 0; i < op->ninf; i++) {
			struct kc_informer_opts o = {.name = kind_names[k],
						     .label_selector = selector[k],
						     .fn = fns[k],
						     .ctx = op,
						     .restarts = op->m.restarts[k],
						     .relists = op->m.relists[k]};
			char path[600];
			int rc;

			if (op->nns)
				snprintf(path, sizeof(path), "%s/namespaces/%s/%s", prefix[k], op->namespaces[i],
					 kind_names[k]);
			else
				snprintf(path, sizeof(path), "%s/%s", prefix[k], kind_names[k]);
			o.path = path;
			rc = kc_informer_start(op->k, &o, &op->inf[k][i]);
			if (rc)
				return rc;
		}
	}
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: switchboard-operator [options]\n"
		   "  --kubeconfig FILE          kubeconfig (default: $KUBECONFIG, then in-cluster)\n"
		   "  --namespace NS[,NS...]     watch these namespaces (repeatable; default: all)\n"
		   "  --metrics-addr ADDR:PORT   /healthz, /readyz and /metrics (default 127.0.0.1:8090;\n"
		   "                             0 for the port picks a free one)\n"
		   "  --leader-elect             campaign for the Lease before reconciling\n"
		   "  --leader-election-namespace NS  where the Lease lives (default: own namespace)\n"
		   "  --leader-election-id NAME  Lease name (default switchboard-operator)\n"
		   "  --router-image IMAGE       default router image for RouterConfigs without spec.image\n"
		   "  --peer-addresses dns|pod-ip  how router replicas reach each other: their names through\n"
		   "                             cluster DNS (default), or pinned to their pods' IPs (clusters\n"
		   "                             without DNS)\n"
		   "  --debounce-ms N            reconcile Agent changes once they have been quiet for\n"
		   "                             N ms (default 300; 0: at once)\n"
		   "  --debounce-max-ms N        ... but no later than N ms after the first (default 3000)\n"
		   "  --resync-seconds N         full resync period (default 300)\n"
		   "  --sa-dir DIR               in-cluster token and CA directory (for tests)\n"
		   "  --log-level LEVEL          debug, info, warn or error\n"
		   "  --version\n");
}

static int add_namespaces(struct op *op, const char *arg)
{
	char *dup = strdup(arg), *save = NULL, *t;

	if (!dup)
		return -ENOMEM;
	for (t = strtok_r(dup, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (strcmp(t, "*") == 0 || op->nns >= OP_MAX_NS)
			continue;
		op->namespaces[op->nns] = strdup(t);
		if (!op->namespaces[op->nns]) {
			free(dup);
			return -ENOMEM;
		}
		op->nns++;
	}
	free(dup);
	return 0;
}

struct flags {
	const char *kubeconfig, *metrics_addr, *le_ns, *le_id, *sa_dir, *level;
	int leader_elect;
};

static int run(struct op *op, const struct flags *f)
{
	struct kc_config kcfg;
	struct http_server *srv = NULL;
	struct http_opts ho = {0};
	pthread_t worker;
	int worker_started = 0, rc, sig, exit_code = 1;
	char err[512], addr[64] = "127.0.0.1", host[64];
	long port = 8090;
	sigset_t set;
	const char *colon = f->metrics_addr ? strrchr(f->metrics_addr, ':') : NULL;

	if (f->metrics_addr) {
		snprintf(addr, sizeof(addr), "%.*s", colon ? (int)(colon - f->metrics_addr) : 0, f->metrics_addr);
		port = strtol(colon ? colon + 1 : f->metrics_addr, NULL, 10);
		if (!addr[0] || strcmp(addr, "0.0.0.0") == 0)
			snprintf(addr, sizeof(addr), "%s", addr[0] ? "0.0.0.0" : "127.0.0.1");
	}
	rc = kc_config_load(&kcfg, f->kubeconfig, f->sa_dir, err, sizeof(err));
	if (rc) {
		log_error("cannot load the Kubernetes client configuration", "detail", err);
		return 1;
	}
	if (kc_new(&kcfg, &op->k)) {
		kc_config_free(&kcfg);
		return 1;
	}
	if (gethostname(host, sizeof(host)))
		snprintf(host, sizeof(host), "unknown");
	snprintf(op->identity, sizeof(op->identity), "%.60s_%ld", host, (long)getpid());
	if (metrics_init(op) || wq_new(&op->q)) {
		log_error("out of memory");
		goto out;
	}
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);

	ho.bind_address = addr;
	ho.port = (uint16_t)port;
	ho.max_body = 4096;
	ho.max_connections = 64;
	ho.routes = routes;
	ho.ctx = op;
	ho.name = "metrics";
	rc = http_start(&ho, &srv);
	if (rc) {
		log_error("cannot listen for metrics", "address", addr, "error", strerror(-rc));
		goto out;
	}
	snprintf(err, sizeof(err), "%u", http_port(srv));
	log_info("listening", "server", "metrics", "address", addr, "n:port", err);
	rc = start_informers(op);
	if (rc) {
		log_error("cannot start informers", "error", strerror(-rc));
		goto out;
	}
	if (f->leader_elect) {
		struct le_opts lo = {.ns = f->le_ns ? f->le_ns : kc_namespace(op->k),
				     .name = f->le_id ? f->le_id : "switchboard-operator",
				     .identity = op->identity,
				     .lease_s = 15,
				     .renew_s = 10,
				     .retry_s = 2,
				     .on_change = on_leader,
				     .ctx = op};

		rc = le_start(op->k, &lo, &op->le);
		if (rc) {
			log_error("cannot start leader election", "error", strerror(-rc));
			goto out;
		}
	}
	rc = pthread_create(&worker, NULL, worker_main, op);
	if (rc) {
		log_error("cannot start the worker", "error", strerror(rc));
		goto out;
	}
	worker_started = 1;
	if (!f->leader_elect) {
		/* wait for the caches, then lead alone */
		for (int i = 0; i < 600; i++) {
			int synced = 1;

			for (int k = 0; k < OP_NKINDS; k++)
				for (size_t j = 0; j < op->ninf; j++)
					synced &= kc_informer_synced(op->inf[k][j]);
			if (synced)
				break;
			usleep(50 * 1000);
		}
		on_leader(1, op);
	}
	log_info("started", "identity", op->identity, "leader_elect", f->leader_elect ? "true" : "false");
	sigwait(&set, &sig);
	log_info("stopping: finishing the reconcile in flight", "signal", sig == SIGTERM ? "SIGTERM" : "SIGINT");
	exit_code = 0;
out:
	op->stop = 1;
	if (op->q)
		wq_shutdown(op->q);
	if (worker_started)
		pthread_join(worker, NULL);
	le_stop(op->le); /* releases the Lease: a standby takes over at once */
	op->le = NULL;
	for (int k = 0; k < OP_NKINDS; k++)
		for (size_t i = 0; i < op->ninf; i++)
			kc_informer_stop(op->inf[k][i]);
	if (srv)
		http_stop(srv);
	if (exit_code == 0)
		log_info("stopped cleanly");
	return exit_code;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"kubeconfig", required_argument, NULL, 'k'},
		{"namespace", required_argument, NULL, 'n'},
		{"metrics-addr", required_argument, NULL, 'm'},
		{"leader-elect", no_argument, NULL, 'L'},
		{"leader-election-namespace", required_argument, NULL, 'N'},
		{"leader-election-id", required_argument, NULL, 'I'},
		{"router-image", required_argument, NULL, 'i'},
		{"peer-addresses", required_argument, NULL, 'P'},
		{"debounce-ms", required_argument, NULL, 'd'},
		{"debounce-max-ms", required_argument, NULL, 'D'},
		{"resync-seconds", required_argument, NULL, 'r'},
		{"sa-dir", required_argument, NULL, 's'},
		{"log-level", required_argument, NULL, 'l'},
		{"version", no_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	static struct op op;
	struct flags f = {0};
	enum log_level lvl;
	int c, rc;

	log_set_component("switchboard-operator");
	op.router_image = "ghcr.io/switchboard-dev/switchboard-router:" SB_VERSION;
	op.debounce_ms = 300;
	op.debounce_max_ms = 3000;
	op.resync_ms = 300000;
	pthread_mutex_init(&op.cond_lock, NULL);
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'k':
			f.kubeconfig = optarg;
			break;
		case 'n':
			if (add_namespaces(&op, optarg))
				return 1;
			break;
		case 'm':
			f.metrics_addr = optarg;
			break;
		case 'L':
			f.leader_elect = 1;
			break;
		case 'N':
			f.le_ns = optarg;
			break;
		case 'I':
			f.le_id = optarg;
			break;
		case 'i':
			op.router_image = optarg;
			break;
		case 'P':
			if (strcmp(optarg, "dns") != 0 && strcmp(optarg, "pod-ip") != 0) {
				fprintf(stderr, "switchboard-operator: --peer-addresses: expected dns or pod-ip\n");
				return 2;
			}
			op.peer_pod_ips = strcmp(optarg, "pod-ip") == 0;
			break;
		case 'd':
			op.debounce_ms = strtol(optarg, NULL, 10);
			break;
		case 'D':
			op.debounce_max_ms = strtol(optarg, NULL, 10);
			break;
		case 'r':
			op.resync_ms = strtol(optarg, NULL, 10) * 1000;
			break;
		case 's':
			f.sa_dir = optarg;
			break;
		case 'l':
			if (log_level_parse(optarg, &lvl)) {
				fprintf(stderr,
					"switchboard-operator: --log-level: expected debug, info, warn or error\n");
				return 2;
			}
			log_set_level(lvl);
			break;
		case 'v':
			printf("switchboard-operator %s\n", SB_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc || op.resync_ms <= 0 || op.debounce_ms < 0 || op.debounce_max_ms < op.debounce_ms) {
		usage(stderr);
		return 2;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || util_init()) {
		fprintf(stderr, "switchboard-operator: cannot initialise libcurl or libsodium\n");
		return 1;
	}
	rc = run(&op, &f);
	op_cond_clear(&op);
	wq_free(op.q);
	met_free(op.met);
	kc_free(op.k);
	for (size_t i = 0; i < op.nns; i++)
		free(op.namespaces[i]);
	kc_thread_done();
	curl_global_cleanup();
	return rc;
}
