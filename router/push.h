/*
 * push: delivery to push-mode agents by HTTP POST.  One thread drives a
 * libcurl multi handle with keep-alive connections (delivery.connectionPoolSize
 * per endpoint).  A request carries one message, or a {"messages":[...]}
 * batch when delivery.batch is enabled.  2xx delivers; 408, 429, 5xx, a
 * timeout or a connection error is retried after an exponential backoff with
 * jitter while the messages stay leased (so a conversation never reorders);
 * any other answer, or running out of attempts or time, dead-letters.  Each
 * endpoint has a circuit breaker; while it is open nothing is taken from
 * the agent's queue, so messages wait there, durable.
 */
#ifndef SWITCHBOARD_PUSH_H
#define SWITCHBOARD_PUSH_H

#include "rt.h"
#include "switchboard/buf.h"
#include "switchboard/common.h"

struct push;

/* Start the engine for `rt` (borrowed; must outlive it).  Returns 0 or
 * -errno. */
int push_start(struct rt *rt, struct push **out) SB_MUST_CHECK;

/* Stop the engine: requests in flight are abandoned; their messages stay
 * stored and are delivered again after a restart (at-least-once). */
void push_stop(struct push *p);

/* Metrics collector: breaker state per endpoint. */
int push_collect_metrics(struct buf *out, void *p) SB_MUST_CHECK;

#endif
