/*
 * reload: safe configuration reloads.  A new config (from the config file on
 * SIGHUP or when its directory changes, or from POST /admin/reload) is
 * parsed, validated and compared with the running one field by field using
 * the shared hot/restart table.  Only when every change is hot is it
 * applied, as one swap: the routing core under its lock, and an immutable
 * snapshot for the HTTP handlers published with RCU (liburcu-bp).  An
 * invalid config changes nothing; a restart-class change changes nothing and
 * is reported as restart_required.  Every outcome is reported in the reply,
 * /v1/status, the log and the metrics.
 */
#ifndef SWITCHBOARD_RELOAD_H
#define SWITCHBOARD_RELOAD_H

#include <stdint.h>

#include "switchboard/buf.h"
#include "switchboard/cfg.h"
#include "switchboard/common.h"

struct app;

enum rl_result { RL_APPLIED, RL_UNCHANGED, RL_REJECTED, RL_RESTART_REQUIRED };

/* An immutable config snapshot; read it inside rcu_read_lock(). */
struct snap {
	struct cfg cfg;
	char hash[65];
	uint64_t generation;
};

/* Publish the first snapshot (a copy of app->cfg) and remember the config
 * file (borrowed; NULL for the embedded default) and the hash of its plain
 * document (borrowed; NULL for none).  Returns 0 or -ENOMEM. */
int rl_init(struct app *app, const char *config_path, const char *doc_hash) SB_MUST_CHECK;

/* Reload from `text` (borrowed YAML/JSON) or, with `text` NULL, from the
 * config file.  `source` names the trigger in logs ("SIGHUP", "file",
 * "admin").  Writes the JSON reply into `reply` and sets *status (200
 * applied or unchanged, 409 restart required, 422 rejected).  Returns 0 or
 * -ENOMEM.  Thread-safe: reloads are serialised. */
int rl_reload(struct app *app, const char *text, size_t len, const char *source, struct buf *reply,
	      int *status) SB_MUST_CHECK;

/* Watch the config file's directory with inotify (which sees a ConfigMap
 * volume's atomic `..data` symlink swap) and reload when the file's bytes
 * change.  Returns 0 or -errno. */
int rl_watch_start(struct app *app) SB_MUST_CHECK;

/* Stop the watcher and free the current snapshot. */
void rl_stop(struct app *app);

/* Status fields ("restart_required", "last_reload", ...) appended to an
 * open JSON object in `out`, starting with a comma.  Thread-safe. */
int rl_status_json(struct app *app, struct buf *out) SB_MUST_CHECK;

/* Metrics collector: switchboard_router_config_info{hash,generation} 1. */
int rl_collect_metrics(struct buf *out, void *app) SB_MUST_CHECK;

#endif
