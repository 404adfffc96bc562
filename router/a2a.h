/*
 * a2a: every agent the router serves, reachable as an A2A agent
 * (docs/a2a.md).  On the data port: the agent card at
 * GET /a2a/{agent}/.well-known/agent-card.json and the JSON-RPC endpoint at
 * POST /a2a/{agent} (SendMessage, GetTask, CancelTask, in A2A 1.0 and 0.3).
 * A message is submitted exactly as POST /v1/messages submits it (auth,
 * limits, forwarding to its owner, the commit before the answer); a Task is
 * the message's life as the routing core reports it.  On the peer port,
 * POST /peer/a2a/{agent} answers GetTask and CancelTask that another replica
 * forwarded to the agent's owner.
 */
#ifndef SWITCHBOARD_A2A_H
#define SWITCHBOARD_A2A_H

#include "switchboard/http.h"

/* Route handlers (`ctx` is the struct app).  They return 0 after filling
 * `resp`, or -ENOMEM.  Thread-safe. */
int a2a_card(struct http_req *req, struct http_resp *resp, void *ctx);
int a2a_rpc(struct http_req *req, struct http_resp *resp, void *ctx);
int a2a_peer_rpc(struct http_req *req, struct http_resp *resp, void *ctx);

#endif
