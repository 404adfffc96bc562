/*
 * Configuration reloads.  rl_reload() runs the pipeline under rl.lock:
 * parse, validate (a bad config never replaces a good one), diff against the
 * current snapshot with the shared table, then either report
 * restart_required or apply: the routing core first (rt_reconfigure, one
 * swap under its lock), then the new snapshot is published with
 * rcu_assign_pointer and the old one freed after synchronize_rcu().
 */
#include "reload.h"

#include <errno.h>
#include <libgen.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>
#include <urcu-bp.h>

#include "app.h"
#include "handoff.h"
#include "switchboard/log.h"
#include "switchboard/util.h"

static const char *const result_names[] = {"applied", "unchanged", "rejected", "restart_required"};

static struct snap *snap_new(const struct cfg *c, uint64_t generation)
{
	struct snap *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	if (cfg_copy(&s->cfg, c) || cfg_hash(&s->cfg, s->hash)) {
		cfg_free(&s->cfg);
		free(s);
		return NULL;
	}
	s->generation = generation;
	return s;
}

static void snap_free(struct snap *s)
{
	if (!s)
		return;
	cfg_free(&s->cfg);
	free(s);
}

int rl_init(struct app *app, const char *config_path, const char *doc_hash)
{
	struct snap *s = snap_new(&app->cfg, 1);
	char *text = NULL;
	size_t len = 0;

	if (!s)
		return -ENOMEM;
	pthread_mutex_init(&app->rl.lock, NULL);
	app->rl.last_result = "none";
	snprintf(app->rl.doc_hash, sizeof(app->rl.doc_hash), "%s", doc_hash ? doc_hash : "");
	if (config_path) {
		app->rl.path = strdup(config_path);
		if (!app->rl.path) {
			snap_free(s);
			return -ENOMEM;
		}
		if (util_read_file(config_path, 64u << 20, &text, &len) == 0)
			util_sha256_hex(text, len, app->rl.file_hash);
		free(text);
	}
	rcu_assign_pointer(app->snap, s);
	return 0;
}

static int reply_report(struct buf *reply, const struct cfg_report *r)
{
	json_t *arr = cfg_report_json(r);
	char *s = arr ? json_dumps(arr, JSON_COMPACT) : NULL;
	int rc;

	json_decref(arr);
	if (!s)
		return -ENOMEM;
	rc = buf_puts(reply, s);
	free(s);
	return rc;
}

static int reply_changes(struct buf *reply, const struct cfg_diff *d, int restart_only)
{
	static const char *const cls[] = {"hot", "hot_if_fits", "restart"};
	int rc = buf_puts(reply, "["), first = 1;

	for (size_t i = 0; !rc && i < d->n; i++) {
		if (restart_only && d->items[i].reload != CFG_RELOAD_RESTART)
			continue;
		rc = buf_puts(reply, first ? "{\"field\":" : ",{\"field\":");
		first = 0;
		if (!rc)
			rc = buf_json_str(reply, d->items[i].path);
		if (!rc)
			rc = buf_printf(reply, ",\"reload\":\"%s\"}", cls[d->items[i].reload]);
	}
	return rc ? rc : buf_puts(reply, "]");
}

/* Record the outcome in the state, the metrics and the log.  rl.lock held. */
static void record(struct app *app, int result, const char *source, const char *detail, const struct snap *cur)
{
	int64_t now = util_now_ms();
	char gen[24];

	app->rl.last_result = result_names[result];
	app->rl.last_time_ms = now;
	snprintf(app->rl.last_detail, sizeof(app->rl.last_detail), "%s", detail ? detail : "");
	met_inc(app->met.reloads[result]);
	met_gauge_set(app->met.reload_ok, result == RL_APPLIED || result == RL_UNCHANGED);
	if (result == RL_APPLIED || result == RL_UNCHANGED) {
		app->rl.last_success_ms = now;
		met_gauge_set(app->met.reload_ok_time, (double)now / 1000.0);
	}
	met_gauge_set(app->met.restart_required, app->rl.restart_required);
	snprintf(gen, sizeof(gen), "%llu", (unsigned long long)cur->generation);
	log_emit(result == RL_REJECTED ? LOG_WARN : LOG_INFO, "config reload", "result", result_names[result], "source",
		 source, "n:generation", gen, "config_hash", cur->hash, "detail", detail && *detail ? detail : NULL,
		 (const char *)0);
}

/* Answer 422 with every problem in `r`, and record the rejection.  rl.lock held. */
static int reply_rejected(struct app *app, const struct cfg_report *r, const char *source, const struct snap *cur,
			  struct buf *reply, int *status)
{
	char why[256];
	int rc;

	*status = 422;
	rc = buf_printf(reply, "{\"result\":\"rejected\",\"generation\":%llu,\"config_hash\":\"%s\",\"errors\":",
			(unsigned long long)cur->generation, cur->hash);
	if (!rc)
		rc = reply_report(reply, r);
	if (!rc)
		rc = buf_puts(reply, "}\n");
	snprintf(why, sizeof(why), "%zu errors, first: %.60s: %.150s", r->errors, r->n ? r->items[0].path : "",
		 r->n ? r->items[0].msg : "");
	record(app, RL_REJECTED, source, why, cur);
	return rc;
}

/* 1 when a hot change moves the TLS certificate or key to other files (the
 * new pair is loaded before the config is applied). */
static int tls_paths_changed(const struct app *app, const struct cfg *cur, const struct cfg *next)
{
	return app->tls && next->sec.tls_enabled &&
	       (strcmp(cur->sec.tls_cert_file, next->sec.tls_cert_file) != 0 ||
		strcmp(cur->sec.tls_key_file, next->sec.tls_key_file) != 0);
}

static int do_reload(struct app *app, const char *text, size_t len, const char *source, struct buf *reply, int *status)
{
	struct cfg nc;
	struct cfg_report r;
	struct cfg_diff d = {0};
	struct snap *cur = app->snap, *next = NULL; /* writers hold rl.lock: no RCU read needed */
	char why[256] = "", doc_hash[65] = "";
	int rc, parsed;

	cfg_report_init(&r);
	parsed = cfg_parse_doc(&nc, text, len, app->overlay, doc_hash, &r) == 0;
	if (parsed && cfg_validate(&nc, 0, &r))
		cfg_free(&nc), parsed = 0;
	if (!parsed) {
		rc = reply_rejected(app, &r, source, cur, reply, status);
		cfg_report_free(&r);
		return rc;
	}
	rc = cfg_diff(&cur->cfg, &nc, &d);
	if (rc)
		goto out;
	if (d.n == 0) {
		*status = 200;
		app->rl.restart_required = 0;
		app->rl.restart_fields[0] = '\0';
		memcpy(app->rl.doc_hash, doc_hash, sizeof(doc_hash)); /* same config, maybe other bytes */
		rc = buf_printf(reply,
				"{\"result\":\"unchanged\",\"generation\":%llu,\"config_hash\":\"%s\","
				"\"document_hash\":\"%s\"}\n",
				(unsigned long long)cur->generation, cur->hash, app->rl.doc_hash);
		record(app, RL_UNCHANGED, source, NULL, cur);
		goto out;
	}
	if (d.restart) {
		size_t off = 0;

		app->rl.restart_required = 1;
		app->rl.restart_fields[0] = '\0';
		for (size_t i = 0; i < d.n; i++)
			if (d.items[i].reload == CFG_RELOAD_RESTART && off < sizeof(app->rl.restart_fields) - 1)
				off += (size_t)snprintf(app->rl.restart_fields + off,
							sizeof(app->rl.restart_fields) - off, "%s%s", off ? "," : "",
							d.items[i].path);
	} else if (tls_paths_changed(app, &cur->cfg, &nc) &&
		   tlscred_set_paths(app->tls, nc.sec.tls_cert_file, nc.sec.tls_key_file, why, sizeof(why))) {
		/* the new files do not load: the config is refused whole */
		cfg_report_add(&r, CFG_ERROR, "security.tls.certFile", "%s", why);
		rc = reply_rejected(app, &r, source, cur, reply, status);
		goto out;
	} else {
		rc = rt_reconfigure(app->rt, &nc, why, sizeof(why));
		if (rc == -EAGAIN) {
			/* a shrink that does not fit now: a restart applies it safely */
			app->rl.restart_required = 1;
			snprintf(app->rl.restart_fields, sizeof(app->rl.restart_fields), "%s", why);
			d.restart = 1;
		} else if (rc == -EIO) {
			/* the swap happened; only persisting agent states failed */
			log_error(
				"config applied, but agent states could not be stored; they are rewritten at restart");
		} else if (rc) {
			goto out;
		}
	}
	if (d.restart) {
		*status = 409;
		rc = buf_printf(
			reply,
			"{\"result\":\"restart_required\",\"generation\":%llu,\"config_hash\":\"%s\",\"reason\":",
			(unsigned long long)cur->generation, cur->hash);
		if (!rc)
			rc = buf_json_str(reply, app->rl.restart_fields);
		if (!rc)
			rc = buf_puts(reply, ",\"changes\":");
		if (!rc)
			rc = reply_changes(reply, &d, 0);
		if (!rc)
			rc = buf_puts(reply, "}\n");
		record(app, RL_RESTART_REQUIRED, source, app->rl.restart_fields, cur);
		goto out;
	}
	next = snap_new(&nc, cur->generation + 1);
	if (!next) {
		rc = -ENOMEM;
		goto out;
	}
	rcu_assign_pointer(app->snap, next);
	synchronize_rcu(); /* no handler still reads `cur` */
	if (app->ho && cur->cfg.cluster.replicas != nc.cluster.replicas &&
	    ho_reassign(app->ho, (uint32_t)cur->cfg.cluster.replicas, (uint32_t)nc.cluster.replicas))
		log_error("the new assignment's handoffs could not all be queued (out of memory); they are "
			  "queued at the next start");
	app->rl.restart_required = 0;
	app->rl.restart_fields[0] = '\0';
	memcpy(app->rl.doc_hash, doc_hash, sizeof(doc_hash));
	log_set_level((enum log_level)nc.obs.log_level);
	*status = 200;
	rc = buf_printf(reply,
			"{\"result\":\"applied\",\"generation\":%llu,\"config_hash\":\"%s\",\"document_hash\":"
			"\"%s\",\"changes\":",
			(unsigned long long)next->generation, next->hash, app->rl.doc_hash);
	if (!rc)
		rc = reply_changes(reply, &d, 0);
	if (!rc && r.warnings) {
		rc = buf_puts(reply, ",\"warnings\":");
		if (!rc)
			rc = reply_report(reply, &r);
	}
	if (!rc)
		rc = buf_puts(reply, "}\n");
	snprintf(why, sizeof(why), "%zu changes", d.n);
	record(app, RL_APPLIED, source, why, next);
	snap_free(cur);
out:
	cfg_diff_free(&d);
	cfg_free(&nc);
	cfg_report_free(&r);
	return rc;
}

int rl_reload(struct app *app, const char *text, size_t len, const char *source, struct buf *reply, int *status)
{
	char *file = NULL;
	size_t flen = 0;
	int rc;

	pthread_mutex_lock(&app->rl.lock);
	if (!text) {
		if (!app->rl.path) {
			log_warn("config reload ignored: the router runs the embedded default, with no file to read",
				 "source", source);
			*status = 422;
			rc = buf_puts(
				reply,
				"{\"result\":\"rejected\",\"errors\":[{\"severity\":\"error\",\"field\":\"(file)\","
				"\"message\":\"the router runs the embedded default; there is no file to "
				"reload\"}]}\n");
			pthread_mutex_unlock(&app->rl.lock);
			return rc;
		}
		rc = util_read_file(app->rl.path, CFG_DOC_LIMIT, &file, &flen);
		if (rc) {
			char why[300];

			*status = 422;
			snprintf(why, sizeof(why), "cannot read %s: %s", app->rl.path, strerror(-rc));
			record(app, RL_REJECTED, source, why, app->snap);
			rc = buf_puts(
				reply,
				"{\"result\":\"rejected\",\"errors\":[{\"severity\":\"error\",\"field\":\"(file)\","
				"\"message\":");
			if (!rc)
				rc = buf_json_str(reply, why);
			if (!rc)
				rc = buf_puts(reply, "}]}\n");
			pthread_mutex_unlock(&app->rl.lock);
			return rc;
		}
		util_sha256_hex(file, flen, app->rl.file_hash);
		text = file;
		len = flen;
	}
	rc = do_reload(app, text, len, source, reply, status);
	pthread_mutex_unlock(&app->rl.lock);
	free(file);
	return rc;
}

/* Reload when the file's bytes differ from what was last loaded. */
static void reload_if_changed(struct app *app)
{
	char *text = NULL, hash[65];
	size_t len = 0;
	struct buf reply;
	int status = 0, changed;

	if (util_read_file(app->rl.path, 64u << 20, &text, &len))
		return; /* mid-swap, or removed: wait for the next event */
	util_sha256_hex(text, len, hash);
	free(text);
	pthread_mutex_lock(&app->rl.lock);
	changed = strcmp(hash, app->rl.file_hash) != 0;
	pthread_mutex_unlock(&app->rl.lock);
	if (!changed)
		return;
	buf_init(&reply, 1 << 20);
	if (rl_reload(app, NULL, 0, "file", &reply, &status))
		log_error("config reload failed", "source", "file");
	buf_free(&reply);
}

/*
 * Whether a batch of inotify events names the config file or the kubelet's
 * `..data` symlink (a ConfigMap update swaps it atomically).  Other files in
 * the directory (a database next to the config, editor backups) are ignored,
 * so their writes cost neither a wake-up nor a re-read.
 */
static int events_name_config(const char *ev, ssize_t len, const char *base)
{
	for (ssize_t off = 0; off + (ssize_t)sizeof(struct inotify_event) <= len;) {
		const struct inotify_event *e = (const struct inotify_event *)(const void *)(ev + off);

		if (e->mask & IN_Q_OVERFLOW)
			return 1; /* events were lost: check to be safe */
		if (e->len && (!strcmp(e->name, base) || !strcmp(e->name, "..data")))
			return 1;
		off += (ssize_t)sizeof(struct inotify_event) + e->len;
	}
	return 0;
}

static void *watch_main(void *arg)
{
	struct app *app = arg;
	char *dup = strdup(app->rl.path), *dir;
	const char *base = strrchr(app->rl.path, '/');
	int fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);

	pthread_setname_np(pthread_self(), "sb-cfgwatch");
	if (!dup || fd < 0) {
		log_error("cannot watch the config file", "error", strerror(errno));
		goto out;
	}
	dir = dirname(dup);
	base = base ? base + 1 : app->rl.path;
	/* No IN_MODIFY: a file is read once written and closed or moved into
	 * place, never half-written, and a database in the same directory does
	 * not wake the watcher on every write. */
	if (inotify_add_watch(fd, dir, IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_ATTRIB) < 0) {
		log_error("cannot watch the config directory", "directory", dir, "error", strerror(errno));
		goto out;
	}
	while (!atomic_load(&app->rl.stop)) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		char ev[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
		ssize_t n;
		int hit = 0;

		if (poll(&p, 1, 200) <= 0)
			continue;
		while ((n = read(fd, ev, sizeof(ev))) > 0)
			hit |= events_name_config(ev, n, base);
		if (!hit)
			continue;
		usleep(100 * 1000); /* let a writer or a symlink swap finish */
		while (read(fd, ev, sizeof(ev)) > 0)
			;
		reload_if_changed(app); /* the content hash decides */
	}
out:
	if (fd >= 0)
		close(fd);
	free(dup);
	return NULL;
}

int rl_watch_start(struct app *app)
{
	int rc;

	if (!app->rl.path)
		return 0;
	rc = pthread_create(&app->rl.watcher, NULL, watch_main, app);
	if (rc)
		return -rc;
	app->rl.watching = 1;
	return 0;
}

void rl_stop(struct app *app)
{
	if (app->rl.watching) {
		atomic_store(&app->rl.stop, 1);
		pthread_join(app->rl.watcher, NULL);
		app->rl.watching = 0;
	}
	snap_free(app->snap);
	app->snap = NULL;
	free(app->rl.path);
	app->rl.path = NULL;
}

int rl_status_json(struct app *app, struct buf *out)
{
	char when[32] = "";
	int rc;

	pthread_mutex_lock(&app->rl.lock);
	if (app->rl.last_time_ms)
		util_fmt_rfc3339(app->rl.last_time_ms, when);
	rc = buf_printf(out, ",\"document_hash\":\"%s\",\"restart_required\":%s,\"restart_fields\":", app->rl.doc_hash,
			app->rl.restart_required ? "true" : "false");
	if (!rc)
		rc = buf_json_str(out, app->rl.restart_fields);
	if (!rc)
		rc = buf_printf(out,
				",\"last_reload\":{\"result\":\"%s\",\"time\":\"%s\",\"detail\":", app->rl.last_result,
				when);
	if (!rc)
		rc = buf_json_str(out, app->rl.last_detail);
	if (!rc)
		rc = buf_puts(out, "}");
	pthread_mutex_unlock(&app->rl.lock);
	return rc;
}

int rl_collect_metrics(struct buf *out, void *arg)
{
	struct app *app = arg;
	const struct snap *s;
	int rc;

	rc = met_write_header(out, "switchboard_router_config_info",
			      "The running configuration's hash and generation; the value is always 1.", "gauge");
	rcu_read_lock();
	s = rcu_dereference(app->snap);
	if (!rc && s)
		rc = buf_printf(out, "switchboard_router_config_info{hash=\"%s\",generation=\"%llu\"} 1\n", s->hash,
				(unsigned long long)s->generation);
	rcu_read_unlock();
	return rc;
}
