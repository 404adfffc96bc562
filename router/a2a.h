/*
 * a2a: every agent the router serves, reachable as an A2A agent
 * (docs/a2a.md).  On the data port: the agent card at
 * GET /a2a/{agent}/.well-known/agent-card.json and the JSON-RPC endpoint at
 * POST /a2a/{agent} (SendMessage, GetTask, CancelTask, in A2A 1.0 and 0.3).
 * A message is submitted exactly as POST /v1/messages submits it (auth,
 * limits, forwarding to its owner, the commit before the answer); a Task is
 * the message's life as the routing core reports it.  On the peer port,
 * POST /peer/a2a/{agent} answers GetTask and CancelTask that another replica
 * forwarded to the agent's owner.  And the push engine's replies from A2A
 * agents come back through here as messages.
 */
#ifndef SWITCHBOARD_A2A_H
#define SWITCHBOARD_A2A_H

#include "push.h"
#include "switchboard/http.h"

/* Route handlers (`ctx` is the struct app).  They return 0 after filling
 * `resp`, or -ENOMEM.  Thread-safe. */
int a2a_card(struct http_req *req, struct http_resp *resp, void *ctx);
int a2a_rpc(struct http_req *req, struct http_resp *resp, void *ctx);
int a2a_peer_rpc(struct http_req *req, struct http_resp *resp, void *ctx);

/* The push engine's reply hook (push_reply_fn; `app` is the struct app):
 * an A2A agent's answer becomes a FIPA-ACL message from that agent to the
 * sender of what it answered, in the same conversation, with in_reply_to
 * set (performative from its metadata, inform by default), submitted as any
 * message is (to the receiver's owner, committed before this returns).
 * Returns 0 when it is committed or refused for good (logged), -EAGAIN
 * when it should be tried again (429, 503), or -ENOMEM.  Thread-safe. */
int a2a_route_reply(void *app, const struct push_reply *r);

#endif
