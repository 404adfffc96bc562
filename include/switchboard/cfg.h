/*
 * cfg: the router configuration model shared by switchboard-router and
 * switchboard-operator.  One schema, described by a single field table,
 * drives parsing (YAML or JSON, camelCase keys, unknown keys rejected),
 * profile defaults, range and relationship validation, printing of the
 * effective config, the config hash, and the hot/restart classification
 * used by reloads.  A `struct cfg` is immutable once built: readers may share
 * it across threads without locks.
 */
#ifndef SWITCHBOARD_CFG_H
#define SWITCHBOARD_CFG_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "switchboard/buf.h"
#include "switchboard/common.h"

enum cfg_profile { CFG_PROFILE_DEVELOPMENT, CFG_PROFILE_PRODUCTION, CFG_PROFILE_HIGH_THROUGHPUT };
enum cfg_sync { CFG_SYNC_NORMAL, CFG_SYNC_FULL };
enum cfg_auth { CFG_AUTH_NONE, CFG_AUTH_TOKEN };
enum cfg_mode { CFG_MODE_PULL, CFG_MODE_PUSH };
enum cfg_protocol { CFG_PROTO_FIPA, CFG_PROTO_A2A };
enum cfg_agent_state {
	CFG_AGENT_UNLOADED,
	CFG_AGENT_LOADED,
	CFG_AGENT_RUNNING,
	CFG_AGENT_DRAINING,
	CFG_AGENT_STOPPED,
};

/* How a change to a field can be applied to a running router. */
enum cfg_reload {
	CFG_RELOAD_HOT,		/* swap in place */
	CFG_RELOAD_HOT_IF_FITS, /* hot when growing; shrinking only if depth fits */
	CFG_RELOAD_RESTART,	/* needs a new process */
};

struct cfg_capability {
	char *name;
	char *description;
};

struct cfg_agent {
	char *id;
	int mode;  /* enum cfg_mode */
	int state; /* enum cfg_agent_state */
	char *endpoint;
	int protocol; /* enum cfg_protocol */
	int64_t timeout_ms;
	int64_t max_in_flight;
	int64_t queue_size; /* 0: performance.agentQueueSize */
	char *token_sha256;
	double rate_per_sec; /* 0: unlimited */
	int64_t rate_burst;
	int notify_on_failure;
	struct cfg_capability *caps;
	size_t ncaps;
};

struct cfg {
	int profile; /* enum cfg_profile */
	struct {
		int64_t inbound_queue_size;
		int64_t agent_queue_size;
		int64_t worker_threads;
		int64_t batch_size;
		int64_t message_timeout_ms;
		int64_t processing_timeout_ms;
		int64_t max_concurrent_messages;
		int64_t memory_limit_bytes;
		int64_t estimated_message_bytes;
	} perf;
	struct cfg_delivery {
		int64_t max_retries;
		int64_t base_retry_delay_ms;
		double retry_backoff_factor;
		int64_t retry_jitter_ms;
		int64_t retry_max_delay_ms;
		int64_t connection_pool_size;
		int64_t connection_timeout_ms;
		int64_t request_timeout_ms;
		int64_t lease_timeout_ms;
		int64_t max_pull_batch;
		int64_t max_wait_ms;
		int64_t dedup_window_ms;
		int64_t cb_threshold;
		int64_t cb_timeout_ms;
		int64_t cb_half_open_max_calls;
		int64_t dl_max_size;
		int64_t dl_retention_ms;
		int batch_enabled;
		int64_t batch_max_size;
		int64_t batch_timeout_ms;
	} delivery;
	struct {
		int64_t timeout_ms;
		int64_t max_participants;
		int64_t max_active;
	} conv;
	struct {
		int log_level; /* enum log_level */
		double log_sample_rate;
		int tracing_enabled;
		double trace_sampling_ratio;
		int metrics_enabled;
	} obs;
	struct {
		char *path;
		int sync; /* enum cfg_sync */
		int64_t commit_batch_max;
		int64_t commit_delay_us;
		int64_t busy_timeout_ms;
	} storage;
	struct {
		char *bind_address;
		int64_t data_port;
		int64_t admin_port;
		int64_t max_connections;
		int64_t max_per_address; /* data connections from one client address; 0: no limit of its own */
		int64_t idle_timeout_s;	 /* silence, or unfinished request headers, that closes a connection */
		int64_t peer_port;	 /* where the other replicas forward to */
	} net;
	struct {
		int64_t timeout_ms;
	} shutdown;
	struct {
		int64_t replicas; /* the assignment: agents are owned by ordinals 0 … replicas-1 */
		int64_t ordinal;  /* this router's (its StatefulSet pod index) */
		char *peer_host;  /* a peer's host name, "{ordinal}" standing for its ordinal */
		char *resolve;	  /* "host:port:address,..." pinned for peers (libcurl CURLOPT_RESOLVE) */
		int64_t forward_timeout_ms;
		int64_t peer_connections;   /* kept-alive connections to each peer, at most */
		int64_t handoff_timeout_ms; /* how long an agent moving in is held for its previous owner */
	} cluster;
	struct {
		int auth; /* enum cfg_auth */
		int64_t max_message_bytes;
		int64_t max_request_bytes;
		char *admin_token_file;
		int tls_enabled;
		int tls_admin; /* the admin port serves TLS too */
		char *tls_cert_file;
		char *tls_key_file;
	} sec;
	struct cfg_agent *agents;
	size_t nagents;
	int agents_sorted; /* ids strictly ascending (as the operator renders them) */
};

#define CFG_DEFAULT_PEER_PORT 8082 /* network.peerPort */

/* --- validation report ----------------------------------------------- */

enum cfg_severity { CFG_WARNING, CFG_ERROR };

struct cfg_issue {
	int severity; /* enum cfg_severity */
	char path[160];
	char msg[320];
};

struct cfg_report {
	struct cfg_issue *items;
	size_t n, cap;
	size_t errors, warnings; /* counts, including any past the list bound */
};

/* Empty report.  Allocates nothing. */
void cfg_report_init(struct cfg_report *r);
void cfg_report_free(struct cfg_report *r);

/* Add an issue (formatted message).  Past 1000 entries only the counts
 * grow.  Never fails: on allocation failure the entry is counted but not
 * listed. */
void cfg_report_add(struct cfg_report *r, int severity, const char *path, const char *fmt, ...) SB_PRINTF(4, 5);

/* Render as "error: path: message" lines (text) into `out`. */
int cfg_report_text(const struct cfg_report *r, struct buf *out) SB_MUST_CHECK;

/* Render as a JSON array of {"severity","field","message"}; new reference
 * or NULL on allocation failure. */
json_t *cfg_report_json(const struct cfg_report *r);

/* --- building --------------------------------------------------------- */

/* Names used in documents. */
const char *cfg_profile_name(int profile);
const char *cfg_agent_state_name(int state);
const char *cfg_mode_name(int mode);
const char *cfg_protocol_name(int protocol); /* "fipa" or "a2a" */
int cfg_agent_state_parse(const char *s, int *out) SB_MUST_CHECK;

/* Fill `c` with the defaults of `profile` and no agents.  Returns 0 or
 * -ENOMEM (then `c` is freed).  */
int cfg_defaults(struct cfg *c, int profile) SB_MUST_CHECK;

/* The embedded default: development profile, ./switchboard.db, and two
 * pull-mode sample agents (alice, bob), with the `--set` assignments of
 * `overlay` (borrowed, may be NULL) applied as to a file.  `doc_hash` (may
 * be NULL) gets the document's hash, and `r` (may be NULL) the problems.
 * Returns 0 or -errno (then `c` is freed). */
int cfg_embedded_default(struct cfg *c, const json_t *overlay, char doc_hash[65], struct cfg_report *r) SB_MUST_CHECK;

/* Build `c` from a JSON tree (borrowed): the profile's defaults overlaid by
 * the explicit fields.  Every structural problem (unknown key, wrong type,
 * bad enum) is added to `r` with its field path, together with the range
 * and relationship problems of the fields that did parse; the function then
 * returns -EINVAL and `c` holds nothing.  On success, range and relationship
 * checks are cfg_validate()'s job.  Thread-safe. */
int cfg_from_json(struct cfg *c, const json_t *root, struct cfg_report *r) SB_MUST_CHECK;

/* Largest config document, before or after gzip inflation. */
#define CFG_DOC_LIMIT (64u << 20)

/* Parse YAML (or JSON, which is YAML) text and build `c` as above.  A
 * syntax error is reported at path "(document)". */
int cfg_parse(struct cfg *c, const char *text, size_t len, struct cfg_report *r) SB_MUST_CHECK;

/* cfg_parse() for a config document as the operator renders it: `text`
 * may be gzip (inflated first, at most CFG_DOC_LIMIT), `overlay` (borrowed,
 * may be NULL) is merged into the document before it is built (for
 * instance-local settings such as ports and paths), and when `doc_hash` is
 * not NULL it receives the SHA-256 of the plain document bytes, which is
 * the hash the operator compares.  Thread-safe. */
int cfg_parse_doc(struct cfg *c, const char *text, size_t len, const json_t *overlay, char doc_hash[65],
		  struct cfg_report *r) SB_MUST_CHECK;

/* Read a file (at most CFG_DOC_LIMIT bytes) and cfg_parse_doc() it. */
int cfg_load_file(struct cfg *c, const char *path, const json_t *overlay, char doc_hash[65],
		  struct cfg_report *r) SB_MUST_CHECK;

/* Add "a.b.c=value" to `overlay` (a JSON object, borrowed): the value is a
 * YAML scalar ("8080", "true", "0.0.0.0"; empty means ""), set at the
 * dotted path.  Returns 0, -EINVAL for a malformed assignment, or -ENOMEM. */
int cfg_overlay_set(json_t *overlay, const char *assignment) SB_MUST_CHECK;

/* Range checks on every numeric field and the relationship rules: inbound
 * queue >= 2x batch, worker threads against `cores` (0: this machine),
 * timeouts against each other, estimated memory against the limit, agent
 * rules.  Adds issues to `r`; returns the number of errors added. */
size_t cfg_validate(const struct cfg *c, long cores, struct cfg_report *r);

/* Estimated resident memory of a router running `c`, in bytes. */
int64_t cfg_estimate_memory(const struct cfg *c);

/* Release everything `c` owns. */
void cfg_free(struct cfg *c);

/* Deep copy. Returns 0 or -ENOMEM. */
int cfg_copy(struct cfg *dst, const struct cfg *src) SB_MUST_CHECK;

/* The effective config as a JSON tree (new reference, NULL on ENOMEM).
 * Keys follow the schema order; the token hashes are included (they are
 * digests, not secrets). */
json_t *cfg_to_json(const struct cfg *c);

/* Print the effective config as YAML into `out`. */
int cfg_to_yaml(const struct cfg *c, struct buf *out) SB_MUST_CHECK;

/* SHA-256 (hex) of the canonical JSON (sorted keys) of the whole config, and
 * of the restart-class fields only.  Returns 0 or -ENOMEM. */
int cfg_hash(const struct cfg *c, char out[65]) SB_MUST_CHECK;
int cfg_restart_hash(const struct cfg *c, char out[65]) SB_MUST_CHECK;

/* Make a JSON document (`*doc`, heap, `*len` bytes, valid UTF-8) readable
 * by the router's loader: libyaml refuses code points YAML does not allow
 * unescaped (U+007F, the C1 controls, U+FFFE, U+FFFF) and folds line
 * breaks (U+0085, U+2028, U+2029), so each becomes a \uXXXX escape (JSON only holds them inside strings, where the
 * escape means the same).  On success *doc may be replaced (the old one
 * freed).  Returns 0 or -ENOMEM (then *doc is unchanged).  Thread-safe. */
int cfg_json_for_yaml(char **doc, size_t *len) SB_MUST_CHECK;

/* 1 if `s` is a valid agent id: 1 to 253 letters, digits, '.', '_' or '-',
 * starting with a letter or digit.  Shared with message validation. */
int cfg_agent_id_ok(const char *s);

/* Find an agent by id; NULL when absent.  O(log n) when the ids are sorted
 * (agents_sorted: every rendered document), else O(n).  Thread-safe. */
const struct cfg_agent *cfg_find_agent(const struct cfg *c, const char *id);

/* 1 if two agents (borrowed) have the same definition: every field and
 * capability, as cfg_diff() compares them.  Thread-safe. */
int cfg_agent_equal(const struct cfg_agent *a, const struct cfg_agent *b);

/* --- reload classification ------------------------------------------- */

struct cfg_change {
	char path[160];
	int reload; /* enum cfg_reload */
	int grows;  /* for numeric fields: new > old */
	int64_t new_value;
};

struct cfg_diff {
	struct cfg_change *items;
	size_t n;
	int restart; /* any CFG_RELOAD_RESTART change */
};

/* Compare two configs field by field (agents by id) and classify each
 * change from the shared table.  Returns 0 or -ENOMEM. */
int cfg_diff(const struct cfg *old, const struct cfg *nw, struct cfg_diff *d) SB_MUST_CHECK;
void cfg_diff_free(struct cfg_diff *d);

/* Reload class of a schema path such as "storage.sync"; agents are hot.
 * Returns -1 for an unknown path. */
int cfg_reload_class(const char *path);

/* Iterate the schema table (for docs and tests): returns the path of entry
 * `i`, or NULL past the end, and its reload class in *reload. */
const char *cfg_schema_path(size_t i, int *reload);

#endif
