/*
 * app: the router process's top-level state, shared by the data API, the
 * admin API and main.  One instance per process.
 */
#ifndef SWITCHBOARD_APP_H
#define SWITCHBOARD_APP_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "rmet.h"
#include "rt.h"
#include "store.h"
#include "switchboard/cfg.h"
#include "switchboard/http.h"
#include "switchboard/tlscred.h"

struct snap;
struct peer;
struct ho;

/* Reload bookkeeping (reload.c); `lock` serialises reloads. */
struct rl_state {
	pthread_mutex_t lock;
	char *path; /* config file, NULL for the embedded default */
	char file_hash[65];
	char doc_hash[65]; /* SHA-256 of the plain document now running; "" for the default */
	int restart_required;
	char restart_fields[1024];
	const char *last_result;
	int64_t last_time_ms;
	int64_t last_success_ms;
	char last_detail[512];
	pthread_t watcher;
	int watching;
	atomic_int stop;
};

struct app {
	/* The config the process started with.  Restart-class fields (ports,
	 * storage, auth, TLS) never change in a process, so start-up code reads
	 * them here; everything else reads the current snapshot (`snap`). */
	struct cfg cfg;
	struct snap *snap; /* RCU-protected: rcu_dereference() under rcu_read_lock() */
	struct rl_state rl;
	json_t *overlay; /* --set assignments, merged into every config document */
	int64_t started_ms;
	struct store *st;
	struct rmet met;
	struct rt *rt;
	struct http_server *data;
	struct http_stats data_stats; /* the data port's connections and refusals (updated atomically) */
	struct http_server *admin;
	struct tlscred *tls;	   /* the certificate both ports present, NULL without TLS */
	struct http_server *peers; /* the peer port, when cluster.peerHost is set */
	struct peer *peer;	   /* the client for the other replicas, likewise */
	struct ho *ho;		   /* moves agents' messages when the assignment changes, likewise;
				    * set and cleared under rl.lock */
	/* Peer addresses the operator pushed (POST /admin/peers): membership,
	 * not configuration, so a pod that moves does not change the config. */
	pthread_mutex_t peers_lock;
	char *peers_resolve; /* "host:port:address,..."; NULL: none */
	char peers_hash[65]; /* SHA-256 of it; "" when none */
	atomic_int ready;    /* storage open, config loaded, not draining */
};

/* Route tables (api.c, admin.c). */
extern const struct http_route api_routes[];
extern const struct http_route admin_routes[];
extern const struct http_route api_peer_routes[]; /* the peer port (api.c) */

/* 1 when `req` carries the admin token (or security.auth is none).
 * Thread-safe; the token is never logged. */
int admin_authorized(struct app *app, struct http_req *req);

/* With security.auth token: the SHA-256 hex of the caller's
 * "Authorization: Bearer <token>" into `buf`, and *digest = buf; with auth
 * off, *digest = NULL.  Returns 0, or -EACCES when auth is on and no bearer
 * token was sent.  The token itself goes nowhere.  Thread-safe. */
int api_bearer_digest(struct app *app, struct http_req *req, char buf[65], const char **digest) SB_MUST_CHECK;

/* Largest number of messages in one POST /v1/messages. */
#define API_MAX_BATCH 10000

#endif
