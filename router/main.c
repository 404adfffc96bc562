/*
 * switchboard-router: process entry.  Loads and validates the config (or the
 * embedded default), opens the store, recovers state, serves the data and
 * admin ports, and handles signals: SIGTERM/SIGINT drain and exit within
 * shutdown.timeoutMs.
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
#include <time.h>
#include <unistd.h>
#include <urcu-bp.h>

#include "a2a.h"
#include "app.h"
#include "handoff.h"
#include "peer.h"
#include "push.h"
#include "reload.h"
#include "switchboard/log.h"
#include "switchboard/util.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: switchboard-router [--config FILE] [--check-config FILE] [--print-config]\n"
		   "                          [--set PATH=VALUE]... [--log-level LEVEL] [--version]\n"
		   "  --config FILE        run with this YAML config (default: embedded development config)\n"
		   "  --check-config FILE  validate FILE, print the report, exit 1 on errors\n"
		   "  --print-config       print the effective config (after profile defaults) as YAML\n"
		   "  --set PATH=VALUE     override one field of every config loaded, e.g.\n"
		   "                       --set network.dataPort=9080 (instance-local settings)\n"
		   "  --log-level LEVEL    debug, info, warn or error (overrides observability.logLevel)\n");
}

/* --set assignments; built in main() before any thread starts. */
static json_t *overlay;

static int load_config(const char *path, struct cfg *c, struct cfg_report *r, char doc_hash[65])
{
	int rc = path ? cfg_load_file(c, path, overlay, doc_hash, r) : cfg_embedded_default(c, overlay, doc_hash, r);

	if (rc)
		return rc;
	if (cfg_validate(c, 0, r)) {
		cfg_free(c);
		return -EINVAL;
	}
	return 0;
}

static int check_config(const char *path)
{
	struct cfg c;
	struct cfg_report r;
	struct buf out;
	int rc;

	cfg_report_init(&r);
	buf_init(&out, 1 << 20);
	rc = load_config(path, &c, &r, NULL);
	if (cfg_report_text(&r, &out) == 0)
		fputs(buf_str(&out), stdout);
	printf("%s: %s (%zu errors, %zu warnings)\n", path, rc ? "invalid" : "ok", r.errors, r.warnings);
	if (!rc)
		cfg_free(&c);
	buf_free(&out);
	cfg_report_free(&r);
	return rc ? 1 : 0;
}

static int print_config(const char *path)
{
	struct cfg c;
	struct cfg_report r;
	struct buf out;
	int rc;

	cfg_report_init(&r);
	buf_init(&out, 64u << 20);
	rc = load_config(path, &c, &r, NULL);
	if (rc) {
		if (cfg_report_text(&r, &out) == 0)
			fputs(buf_str(&out), stderr);
		buf_free(&out);
		cfg_report_free(&r);
		return 1;
	}
	rc = cfg_to_yaml(&c, &out);
	if (!rc)
		fputs(buf_str(&out), stdout);
	cfg_free(&c);
	buf_free(&out);
	cfg_report_free(&r);
	return rc ? 1 : 0;
}

static void log_report(const struct cfg_report *r)
{
	for (size_t i = 0; i < r->n; i++)
		log_emit(r->items[i].severity == CFG_ERROR ? LOG_ERROR : LOG_WARN, "config problem", "field",
			 r->items[i].path, "detail", r->items[i].msg, (const char *)0);
}

static int64_t shutdown_deadline_ms;

static void *watchdog_main(void *arg)
{
	struct timespec ts = {.tv_sec = shutdown_deadline_ms / 1000,
			      .tv_nsec = (shutdown_deadline_ms % 1000) * 1000000L};

	(void)arg;
	nanosleep(&ts, NULL);
	log_error("shutdown did not finish within shutdown.timeoutMs; exiting now");
	_exit(2);
	return NULL;
}

/* The TLS certificate's state for /metrics: its expiry (alert before it
 * passes) and how many replaced files were loaded or refused. */
static int collect_tls_metrics(struct buf *out, void *arg)
{
	struct tlscred_stats st;
	int rc;

	tlscred_stats(arg, &st);
	rc = met_write_header(out, "switchboard_router_tls_certificate_expiry_timestamp_seconds",
			      "When the certificate the router presents expires.", "gauge");
	if (!rc)
		rc = buf_printf(out, "switchboard_router_tls_certificate_expiry_timestamp_seconds %lld\n",
				(long long)st.not_after);
	if (!rc)
		rc = met_write_header(out, "switchboard_router_tls_certificate_loads_total",
				      "Certificate and key pairs loaded (applied) or refused (rejected), the first "
				      "one included.",
				      "counter");
	if (!rc)
		rc = buf_printf(out,
				"switchboard_router_tls_certificate_loads_total{result=\"applied\"} %llu\n"
				"switchboard_router_tls_certificate_loads_total{result=\"rejected\"} %llu\n",
				(unsigned long long)st.loaded, (unsigned long long)st.rejected);
	return rc;
}

/* The data port's connections for /metrics: open now, and those it turned
 * away or closed to protect the others (docs/router.md). */
static int collect_http_metrics(struct buf *out, void *arg)
{
	struct http_stats st;
	int rc;

	http_stats_read(arg, &st);
	rc = met_write_header(out, "switchboard_router_http_open_connections", "Connections open on the data port.",
			      "gauge");
	if (!rc)
		rc = buf_printf(out, "switchboard_router_http_open_connections %llu\n", (unsigned long long)st.open);
	if (!rc)
		rc = met_write_header(
			out, "switchboard_router_http_connections_dropped_total",
			"Data connections closed by the router: at accept, over network.maxConnections or "
			"network.maxConnectionsPerAddress (connection_limit); or for not sending a "
			"request's headers within network.idleTimeoutSeconds (header_timeout).",
			"counter");
	if (!rc)
		rc = buf_printf(out,
				"switchboard_router_http_connections_dropped_total{reason=\"connection_limit\"} %llu\n"
				"switchboard_router_http_connections_dropped_total{reason=\"header_timeout\"} %llu\n",
				(unsigned long long)st.refused, (unsigned long long)st.header_timeouts);
	if (!rc)
		rc = met_write_header(out, "switchboard_router_http_bodies_too_large_total",
				      "Request bodies over security.maxRequestBytes: refused with 413 from their "
				      "Content-Length, or cut off when they grew past it.",
				      "counter");
	if (!rc)
		rc = buf_printf(out, "switchboard_router_http_bodies_too_large_total %llu\n",
				(unsigned long long)st.too_large);
	return rc;
}

/* Load the certificate and key when TLS is on, make them the ones every
 * handshake presents, and watch the files for a renewal (a kubelet updating
 * a Secret volume, cert-manager) so new connections get it within a second. */
static int start_tls(struct app *app)
{
	char err[512] = "";
	int rc;

	if (!app->cfg.sec.tls_enabled)
		return 0;
	rc = tlscred_new(app->cfg.sec.tls_cert_file, app->cfg.sec.tls_key_file, err, sizeof(err), &app->tls);
	if (rc) {
		log_error("cannot load the TLS certificate and key", "error", *err ? err : strerror(-rc));
		return rc;
	}
	tlscred_activate(app->tls);
	rc = tlscred_watch(app->tls, 1000);
	if (!rc)
		rc = met_collector_add(app->met.reg, collect_tls_metrics, app->tls);
	return rc;
}

/* With cluster.peerHost set this router is one of several replicas: serve
 * the peer port (what the others forward here) and create the client that
 * forwards to them.  `o` holds the data port's options. */
static int start_peer_port(struct app *app, struct http_opts *o)
{
	char port[16];
	int rc;

	if (!app->cfg.cluster.peer_host[0])
		return 0;
	o->port = (uint16_t)app->cfg.net.peer_port;
	o->routes = api_peer_routes;
	o->name = "peer";
	o->tls = NULL;		/* the pod network, like the admin port (docs/cluster.md) */
	o->max_per_address = 0; /* a few peers, each with up to cluster.peerConnections */
	o->stats = NULL;
	rc = http_start(o, &app->peers);
	if (rc) {
		log_error("cannot listen on the peer port", "address", app->cfg.net.bind_address, "error",
			  strerror(-rc));
		return rc;
	}
	/* hand off what this router stores for agents it does not own (after a
	 * scale, or a restart in the middle of one).  Reloads (the file watcher
	 * and the admin port already run) read app->ho and the replica count
	 * under rl.lock, so both are taken under it. */
	pthread_mutex_lock(&app->rl.lock);
	rc = ho_start(app, &app->ho);
	if (!rc)
		rc = ho_reassign(app->ho, (uint32_t)app->snap->cfg.cluster.replicas,
				 (uint32_t)app->snap->cfg.cluster.replicas);
	pthread_mutex_unlock(&app->rl.lock);
	if (rc)
		return rc;
	snprintf(port, sizeof(port), "%u", http_port(app->peers));
	log_info("listening", "server", "peer", "address", app->cfg.net.bind_address, "n:port", port);
	return 0;
}

/* security.maxRequestBytes now: a reload changes it for the next request. */
static size_t data_max_body(void *ctx)
{
	struct app *app = ctx;
	size_t v;

	rcu_read_lock();
	v = (size_t)rcu_dereference(app->snap)->cfg.sec.max_request_bytes;
	rcu_read_unlock();
	return v;
}

static int start_servers(struct app *app)
{
	struct http_opts o = {0};
	char port[16];
	int rc;

	o.tls = app->cfg.sec.tls_admin ? app->tls : NULL;
	o.bind_address = app->cfg.net.bind_address;
	o.max_connections = 64;
	o.idle_timeout_s = (unsigned)app->cfg.net.idle_timeout_s;
	o.max_body = CFG_DOC_LIMIT; /* /admin/reload carries a whole config; the port needs the admin token */
	o.routes = admin_routes;
	o.ctx = app;
	o.name = "admin";
	o.port = (uint16_t)app->cfg.net.admin_port;
	rc = http_start(&o, &app->admin);
	if (rc) {
		log_error("cannot listen on the admin port", "address", app->cfg.net.bind_address, "error",
			  strerror(-rc));
		return rc;
	}
	/* the client for the other replicas exists before the data port
	 * serves: its handlers read app->peer without a lock */
	if (app->cfg.cluster.peer_host[0]) {
		rc = peer_new(&app->peer);
		if (rc)
			return rc;
	}
	o.port = (uint16_t)app->cfg.net.data_port;
	o.thread_per_connection = 1;
	o.max_connections = (unsigned)app->cfg.net.max_connections;
	o.max_per_address = (unsigned)app->cfg.net.max_per_address;
	o.max_body = (size_t)app->cfg.sec.max_request_bytes;
	o.max_body_fn = data_max_body;
	o.stats = &app->data_stats;
	o.routes = api_routes;
	o.name = "data";
	o.tls = app->tls;
	rc = http_start(&o, &app->data);
	if (rc) {
		log_error("cannot listen on the data port", "address", app->cfg.net.bind_address, "error",
			  strerror(-rc));
		return rc;
	}
	rc = met_collector_add(app->met.reg, collect_http_metrics, &app->data_stats);
	if (!rc)
		rc = start_peer_port(app, &o);
	if (rc)
		return rc;
	snprintf(port, sizeof(port), "%u", http_port(app->data));
	log_info("listening", "server", "data", "address", app->cfg.net.bind_address, "n:port", port);
	snprintf(port, sizeof(port), "%u", http_port(app->admin));
	log_info("listening", "server", "admin", "address", app->cfg.net.bind_address, "n:port", port);
	return 0;
}

/* Stop the handoff worker.  A reload (the watcher, the admin port) or
 * GET /v1/status may be using app->ho: it is taken away under rl.lock, which
 * they hold while they use it, and freed once no one can reach it. */
static void stop_handoffs(struct app *app)
{
	struct ho *h;

	pthread_mutex_lock(&app->rl.lock);
	h = app->ho;
	app->ho = NULL;
	pthread_mutex_unlock(&app->rl.lock);
	ho_stop(h);
}

static int run(const char *path, const char *level_override)
{
	struct app app = {0};
	struct cfg_report r;
	sigset_t set;
	int sig, rc, exit_code = 1;
	enum log_level lvl;
	pthread_t wd;
	struct push *push = NULL;
	char doc_hash[65] = "";

	cfg_report_init(&r);
	app.overlay = overlay;
	rc = load_config(path, &app.cfg, &r, doc_hash);
	log_report(&r);
	cfg_report_free(&r);
	if (rc) {
		log_error("the configuration is invalid; not starting", "config", path ? path : "(embedded default)");
		return 1;
	}
	log_set_level((enum log_level)app.cfg.obs.log_level);
	if (level_override && log_level_parse(level_override, &lvl) == 0)
		log_set_level(lvl);
	if (app.cfg.sec.auth == CFG_AUTH_NONE)
		log_warn("security.auth is none: any client may send as any agent and read any mailbox");
	pthread_mutex_init(&app.peers_lock, NULL);
	if (rl_init(&app, path, doc_hash)) {
		cfg_free(&app.cfg);
		return 1;
	}
	app.started_ms = util_now_ms();

	/* signals are taken synchronously by this thread only */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (rmet_init(&app.met))
		goto out;
	if (store_open(app.cfg.storage.path, app.cfg.storage.sync == CFG_SYNC_FULL, app.cfg.storage.busy_timeout_ms,
		       &app.st))
		goto out;
	if (start_tls(&app))
		goto out;
	if (rt_new(&app.cfg, app.st, &app.met, &app.rt) || rt_start(app.rt))
		goto out;
	if (met_collector_add(app.met.reg, rl_collect_metrics, &app) || rl_watch_start(&app))
		goto out;
	if (push_start(app.rt, a2a_route_reply, &app, &push) ||
	    met_collector_add(app.met.reg, push_collect_metrics, push))
		goto out;
	if (start_servers(&app))
		goto out;
	atomic_store(&app.ready, 1);
	/* the servers and the file watcher run: a reload may replace (and free)
	 * the snapshot at any time, so it is read like any handler reads it */
	rcu_read_lock();
	log_info("router ready", "config_hash", rcu_dereference(app.snap)->hash, "profile",
		 cfg_profile_name(app.cfg.profile), "storage", app.cfg.storage.path, "sync",
		 app.cfg.storage.sync == CFG_SYNC_FULL ? "full" : "normal");
	rcu_read_unlock();

	for (;;) {
		if (sigwait(&set, &sig))
			continue;
		if (sig == SIGHUP) {
			struct buf reply;
			int status;

			buf_init(&reply, 1 << 20);
			if (rl_reload(&app, NULL, 0, "SIGHUP", &reply, &status))
				log_error("config reload failed", "source", "SIGHUP");
			buf_free(&reply);
			continue;
		}
		break;
	}
	log_info("draining", "signal", sig == SIGTERM ? "SIGTERM" : "SIGINT");
	shutdown_deadline_ms = app.cfg.shutdown.timeout_ms;
	if (pthread_create(&wd, NULL, watchdog_main, NULL) == 0)
		pthread_detach(wd);
	atomic_store(&app.ready, 0);
	rt_drain(app.rt);
	{
		/* keep answering 503 briefly so load balancers see readiness fail */
		int64_t grace = app.cfg.shutdown.timeout_ms / 4 < 1000 ? app.cfg.shutdown.timeout_ms / 4 : 1000;
		struct timespec g = {.tv_sec = grace / 1000, .tv_nsec = (grace % 1000) * 1000000L};

		nanosleep(&g, NULL);
	}
	stop_handoffs(&app); /* a batch in flight goes back to its queue */
	http_quiesce(app.data);
	http_quiesce(app.peers);
	http_stop(app.data); /* waits for handlers, so in-flight commits finish */
	app.data = NULL;
	http_stop(app.peers);
	app.peers = NULL;
	exit_code = 0;
out:
	stop_handoffs(&app);
	http_stop(app.data);
	http_stop(app.peers);
	peer_free(app.peer); /* no handler runs now */
	http_stop(app.admin);
	app.admin = NULL;
	rl_stop(&app);	 /* after the admin port: no reload can start now */
	push_stop(push); /* abandoned requests stay stored: delivered again after a restart */
	rt_stop(app.rt);
	store_close(app.st); /* commits what is queued, checkpoints, closes */
	rt_free(app.rt);
	free(app.peers_resolve);
	tlscred_activate(NULL); /* both servers are stopped: no handshake can ask */
	tlscred_free(app.tls);
	rmet_free(&app.met);
	if (exit_code == 0)
		log_info("stopped cleanly");
	else
		log_error("router failed to start; see the messages above");
	cfg_free(&app.cfg);
	return exit_code;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'}, {"check-config", required_argument, NULL, 'k'},
		{"print-config", no_argument, NULL, 'p'}, {"log-level", required_argument, NULL, 'l'},
		{"set", required_argument, NULL, 's'},	  {"version", no_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},	  {NULL, 0, NULL, 0},
	};
	const char *config = NULL, *check = NULL, *level = NULL;
	int print = 0, c, rc;

	log_set_component("switchboard-router");
#ifdef __GLIBC__
	/* Blocks of 128 KiB and more (a batch's item array, a pull's reply)
	 * come from mmap and go back at free.  glibc raises this threshold to
	 * the largest such block freed, and then they come from the routing
	 * threads' arenas, where they leave holes that long-lived messages
	 * pin: about 8 MiB more resident under load (docs/decisions.md, 68). */
	mallopt(M_MMAP_THRESHOLD, 128 * 1024);
#endif
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || util_init()) {
		fprintf(stderr, "switchboard-router: cannot initialise libsodium\n");
		return 1;
	}
	while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config = optarg;
			break;
		case 'k':
			check = optarg;
			break;
		case 'p':
			print = 1;
			break;
		case 'l':
			level = optarg;
			break;
		case 's':
			if (!overlay)
				overlay = json_object();
			if (!overlay || cfg_overlay_set(overlay, optarg)) {
				fprintf(stderr,
					"switchboard-router: --set %s: expected PATH=VALUE, e.g. "
					"network.dataPort=9080\n",
					optarg);
				json_decref(overlay);
				return 2;
			}
			break;
		case 'v':
			printf("switchboard-router %s\n", SB_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		usage(stderr);
		return 2;
	}
	if (check)
		rc = check_config(check);
	else if (print)
		rc = print_config(config);
	else
		rc = run(config, level);
	json_decref(overlay);
	return rc;
}
