/*
 * Registration of the router's static metrics.  Gauges that depend on live
 * state (queue depths, agents by state, database size, memory) are emitted
 * by collectors in rt_view.c at scrape time.
 */
#include "rmet.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static const char *const reasons[RM_REASON_COUNT] = {
	"invalid_message", "message_too_large", "agent_not_found",	"agent_not_accepting", "resource_exhausted",
	"storage_error",   "shutting_down",	"agent_not_responding", "network_error",       "rate_limited",
	"forbidden",	   "timeout",		"unauthorized",
};

const char *rmet_reason_name(int r)
{
	return r >= 0 && r < RM_REASON_COUNT ? reasons[r] : "unknown";
}

/* The metrics of several replicas acting as one: forwards and fencing. */
static int rmet_cluster(struct rmet *m)
{
	static const double lat[] = {0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01,
				     0.025,  0.05,    0.1,    0.25,  0.5,   1,	   2.5};
	static const char *const results[RMET_FWD_COUNT] = {"ok", "unavailable", "refused"};

	for (int i = 0; i < RMET_FWD_COUNT; i++) {
		char l[48];

		snprintf(l, sizeof(l), "result=\"%s\"", results[i]);
		m->forwards[i] =
			met_counter_add(m->reg, "switchboard_router_forwarded_requests_total",
					"Requests forwarded to the replica that owns their agent, by result.", l);
		if (!m->forwards[i])
			return -ENOMEM;
	}
	m->forward_latency =
		met_histogram_add(m->reg, "switchboard_router_forward_duration_seconds",
				  "Time a forwarded submission, ack or nack took at its owner, the network included.",
				  NULL, lat, sizeof(lat) / sizeof(lat[0]));
	m->epoch_mismatches =
		met_counter_add(m->reg, "switchboard_router_epoch_mismatches_total",
				"Peer requests refused because the sender ran another assignment (epoch).", NULL);
	m->handed_off =
		met_counter_add(m->reg, "switchboard_router_messages_handed_off_total",
				"Messages handed to their agent's new owner when the assignment changed.", NULL);
	m->handoff_timeouts =
		met_counter_add(m->reg, "switchboard_router_handoff_timeouts_total",
				"Agents whose previous owner had not finished handing them off when the hold ran out: "
				"their order may have broken.",
				NULL);
	m->handoffs = met_gauge_add(m->reg, "switchboard_router_handoffs_in_progress",
				    "Agents whose messages this router is handing off to their new owner now.", NULL);
	return m->forward_latency && m->epoch_mismatches && m->handed_off && m->handoff_timeouts && m->handoffs
		       ? 0
		       : -ENOMEM;
}

int rmet_init(struct rmet *m)
{
	static const double lat[] = {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01,
				     0.015,   0.025,  0.05,    0.1,    0.25,  0.5,   1,	    2.5,   5,	  10};
	static const double batch[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096};
	struct met_registry *r;

	memset(m, 0, sizeof(*m));
	r = m->reg = met_new();
	if (!r)
		return -ENOMEM;
	m->received = met_counter_add(r, "switchboard_router_messages_received_total",
				      "Messages received from senders, valid or not.", NULL);
	m->routed = met_counter_add(r, "switchboard_router_messages_routed_total",
				    "Messages committed to a receiver's durable queue and acknowledged to the sender.",
				    NULL);
	m->delivered = met_counter_add(r, "switchboard_router_messages_delivered_total",
				       "Messages whose delivery the receiver confirmed (ack or 2xx).", NULL);
	m->leased = met_counter_add(r, "switchboard_router_messages_leased_total",
				    "Messages handed to pull consumers under a lease.", NULL);
	m->redelivered = met_counter_add(r, "switchboard_router_messages_redelivered_total",
					 "Deliveries beyond a message's first attempt.", NULL);
	m->nacked = met_counter_add(r, "switchboard_router_messages_nacked_total",
				    "Messages returned to the queue by a consumer's nack.", NULL);
	m->lease_expired =
		met_counter_add(r, "switchboard_router_lease_expirations_total",
				"Leases that expired before the consumer acked; their messages were requeued.", NULL);
	m->lease_released = met_counter_add(
		r, "switchboard_router_leases_released_total",
		"Leases put back at once because their pull's reply did not reach the client (connection closed, "
		"reset or timed out); their messages were requeued.",
		NULL);
	m->duplicates =
		met_counter_add(r, "switchboard_router_duplicate_messages_total",
				"Submissions whose message_id was already accepted; nothing new was stored.", NULL);
	m->cancelled = met_counter_add(r, "switchboard_router_messages_cancelled_total",
				       "Messages cancelled while queued (A2A CancelTask): deleted undelivered.", NULL);
	m->conv_expired = met_counter_add(r, "switchboard_router_conversations_expired_total",
					  "Conversations removed after conversation.timeoutMs without activity.", NULL);
	for (int i = 0; i < RM_REASON_COUNT; i++) {
		char l[64];

		snprintf(l, sizeof(l), "reason=\"%s\"", reasons[i]);
		m->failed[i] = met_counter_add(r, "switchboard_router_messages_failed_total",
					       "Messages rejected or not delivered, by reason.", l);
		if (!m->failed[i])
			goto nomem;
	}
	for (int i = 0; i < RMET_A2A_COUNT; i++) {
		static const char *const names[] = {"AgentCard", "SendMessage", "GetTask", "CancelTask", "other"};

		for (int j = 0; j < 2; j++) {
			char l[64];

			snprintf(l, sizeof(l), "method=\"%s\",result=\"%s\"", names[i], j ? "error" : "ok");
			m->a2a[i][j] = met_counter_add(
				r, "switchboard_router_a2a_requests_total",
				"A2A requests (agent cards and JSON-RPC calls) by method and result.", l);
			if (!m->a2a[i][j])
				goto nomem;
		}
	}
	m->http_requests = met_counter_add(r, "switchboard_router_http_requests_total",
					   "HTTP requests served on the data port.", NULL);
	m->routing = met_histogram_add(r, "switchboard_router_routing_duration_seconds",
				       "Time from receiving a message to committing it to the receiver's queue.", NULL,
				       lat, sizeof(lat) / sizeof(lat[0]));
	m->deliver_latency =
		met_histogram_add(r, "switchboard_router_accept_to_deliver_seconds",
				  "Time from committing a message to handing it to its receiver (first attempt).", NULL,
				  lat, sizeof(lat) / sizeof(lat[0]));
	m->commit_batch = met_histogram_add(r, "switchboard_router_storage_commit_batch_size",
					    "Operations per storage transaction (group commit).", NULL, batch,
					    sizeof(batch) / sizeof(batch[0]));
	{
		static const char *const results[4] = {"applied", "unchanged", "rejected", "restart_required"};

		for (int i = 0; i < 4; i++) {
			char l[48];

			snprintf(l, sizeof(l), "result=\"%s\"", results[i]);
			m->reloads[i] = met_counter_add(r, "switchboard_router_config_reloads_total",
							"Configuration reload attempts, by result.", l);
			if (!m->reloads[i])
				goto nomem;
		}
	}
	{
		static const char *const deaths[5] = {"", "AgentNotResponding", "Timeout", "NetworkError",
						      "InvalidMessage"};

		for (int i = 1; i < 5; i++) {
			char l[64];

			snprintf(l, sizeof(l), "reason=\"%s\"", deaths[i]);
			m->dead_letters[i] = met_counter_add(r, "switchboard_router_dead_letters_total",
							     "Messages moved to the dead-letter queue, by reason.", l);
			if (!m->dead_letters[i])
				goto nomem;
		}
	}
	m->retries = met_counter_add(
		r, "switchboard_router_delivery_retries_total",
		"Push delivery attempts after a temporary failure (408, 429, 5xx, timeout, connection error).", NULL);
	if (!m->retries)
		goto nomem;
	m->reload_ok =
		met_gauge_add(r, "switchboard_router_config_last_reload_successful",
			      "1 if the last configuration reload was applied (or changed nothing), else 0.", NULL);
	m->reload_ok_time =
		met_gauge_add(r, "switchboard_router_config_last_reload_success_timestamp_seconds",
			      "When a configuration was last applied, in seconds since the Unix epoch.", NULL);
	m->restart_required =
		met_gauge_add(r, "switchboard_router_config_restart_required",
			      "1 while the desired configuration differs in fields that need a restart.", NULL);
	if (!m->reload_ok || !m->reload_ok_time || !m->restart_required)
		goto nomem;
	if (rmet_cluster(m))
		goto nomem;
	met_gauge_set(m->reload_ok, 1);
	if (!m->received || !m->routed || !m->delivered || !m->leased || !m->redelivered || !m->nacked ||
	    !m->lease_expired || !m->lease_released || !m->duplicates || !m->cancelled || !m->conv_expired ||
	    !m->http_requests || !m->routing || !m->deliver_latency || !m->commit_batch)
		goto nomem;
	return 0;
nomem:
	rmet_free(m);
	return -ENOMEM;
}

void rmet_free(struct rmet *m)
{
	met_free(m->reg);
	memset(m, 0, sizeof(*m));
}
