/*
 * rmet: the router's metric set, registered once at start.  Every name is
 * prefixed switchboard_router_ and follows Prometheus conventions
 * (counters end in _total, durations are in seconds).
 */
#ifndef SWITCHBOARD_RMET_H
#define SWITCHBOARD_RMET_H

#include "switchboard/common.h"
#include "switchboard/met.h"

enum rmet_reason {
	RM_INVALID_MESSAGE,
	RM_MESSAGE_TOO_LARGE,
	RM_AGENT_NOT_FOUND,
	RM_AGENT_NOT_ACCEPTING,
	RM_RESOURCE_EXHAUSTED,
	RM_STORAGE_ERROR,
	RM_SHUTTING_DOWN,
	RM_AGENT_NOT_RESPONDING,
	RM_NETWORK_ERROR,
	RM_RATE_LIMITED,
	RM_FORBIDDEN,
	RM_TIMEOUT,
	RM_UNAUTHORIZED,
	RM_REASON_COUNT
};

/* How a request forwarded to another replica ended (docs/cluster.md). */
enum rmet_fwd {
	RMET_FWD_OK,	      /* the owner answered */
	RMET_FWD_UNAVAILABLE, /* it could not be reached in time: the client got 503 */
	RMET_FWD_REFUSED,     /* it refused the request whole (another epoch, the peer secret) */
	RMET_FWD_COUNT
};

/* A2A requests by method (docs/a2a.md); each counted ok or error. */
enum rmet_a2a { RMET_A2A_CARD, RMET_A2A_SEND, RMET_A2A_GET, RMET_A2A_CANCEL, RMET_A2A_OTHER, RMET_A2A_COUNT };

struct rmet {
	struct met_registry *reg;
	struct met_counter *received;
	struct met_counter *routed;
	struct met_counter *delivered;
	struct met_counter *leased;
	struct met_counter *redelivered;
	struct met_counter *nacked;
	struct met_counter *lease_expired;
	struct met_counter *lease_released; /* put back at once: the pull's reply did not reach its client */
	struct met_counter *duplicates;
	struct met_counter *cancelled; /* deleted while queued (rt_task_cancel) */
	struct met_counter *conv_expired;
	struct met_counter *failed[RM_REASON_COUNT];
	struct met_counter *http_requests;
	struct met_histogram *routing;
	struct met_histogram *deliver_latency;
	struct met_histogram *commit_batch;
	struct met_counter *reloads[4]; /* by enum rl_result */
	struct met_gauge *reload_ok;
	struct met_gauge *reload_ok_time;
	struct met_gauge *restart_required;
	struct met_counter *dead_letters[5]; /* by enum rt_death (index 0 unused) */
	struct met_counter *retries;
	struct met_counter *forwards[RMET_FWD_COUNT]; /* by enum rmet_fwd */
	struct met_histogram *forward_latency;
	struct met_counter *epoch_mismatches;
	struct met_counter *handed_off;		    /* messages handed to their agent's new owner */
	struct met_counter *handoff_timeouts;	    /* holds that ran out before the previous owner finished */
	struct met_gauge *handoffs;		    /* agents being handed off from here now */
	struct met_counter *a2a[RMET_A2A_COUNT][2]; /* [method][1: an error answered] */
};

/* Create the registry and register every metric.  Returns 0 or -ENOMEM. */
int rmet_init(struct rmet *m) SB_MUST_CHECK;
void rmet_free(struct rmet *m);

/* Label value of a reason ("invalid_message", ...). */
const char *rmet_reason_name(int reason);

#endif
