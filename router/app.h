/*
 * app: the router process's top-level state, shared by the data API, the
 * admin API and main.  One instance per process.
 */
#ifndef SWITCHBOARD_APP_H
#define SWITCHBOARD_APP_H

#include <stdatomic.h>
#include <stdint.h>

#include "rmet.h"
#include "rt.h"
#include "store.h"
#include "switchboard/cfg.h"
#include "switchboard/http.h"

struct app {
	struct cfg cfg; /* running config */
	char config_hash[65];
	uint64_t generation; /* bumped on every applied config */
	int64_t started_ms;
	struct store *st;
	struct rmet met;
	struct rt *rt;
	struct http_server *data;
	struct http_server *admin;
	atomic_int ready; /* storage open, config loaded, not draining */
};

/* Route tables (api.c, admin.c). */
extern const struct http_route api_routes[];
extern const struct http_route admin_routes[];

/* Largest number of messages in one POST /v1/messages. */
#define API_MAX_BATCH 10000

#endif
