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
 *
 * An agent with `protocol: a2a` gets each message alone, as an A2A
 * SendMessage call (docs/a2a.md): a JSON-RPC error is a failure, retried
 * when transient and dead-lettered otherwise, and a Message in the answer
 * is handed to the reply hook, which routes it back to the sender.
 */
#ifndef SWITCHBOARD_PUSH_H
#define SWITCHBOARD_PUSH_H

#include "rt.h"
#include "switchboard/buf.h"
#include "switchboard/common.h"

struct push;
struct a2aj_send;

/* A Message an A2A agent answered a delivery with (all borrowed). */
struct push_reply {
	const char *agent;	       /* the agent that answered: the reply's sender */
	const char *to;		       /* the delivered message's sender: the reply's receiver */
	const char *conversation;      /* the delivered message's conversation, NULL when none */
	const char *in_reply_to;       /* the delivered message's id */
	const struct a2aj_send *reply; /* the agent's Message */
};

/* Route `r` back to its receiver.  Returns 0 when it is committed or
 * refused for good (the hook logs it), -EAGAIN when it cannot be now (the
 * delivery is then tried again), or -ENOMEM.  Called on the engine thread. */
typedef int (*push_reply_fn)(void *ctx, const struct push_reply *r);

/* Start the engine for `rt` (borrowed; must outlive it); `reply` (may be
 * NULL: replies are dropped) routes A2A agents' replies, with `reply_ctx`.
 * Returns 0 or -errno. */
int push_start(struct rt *rt, push_reply_fn reply, void *reply_ctx, struct push **out) SB_MUST_CHECK;

/* Stop the engine: requests in flight are abandoned; their messages stay
 * stored and are delivered again after a restart (at-least-once). */
void push_stop(struct push *p);

/* Metrics collector: breaker state per endpoint. */
int push_collect_metrics(struct buf *out, void *p) SB_MUST_CHECK;

#endif
