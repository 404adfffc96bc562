/*
 * msg: the FIPA-ACL message model.  A submitted JSON object is validated
 * field by field (performative, agent ids, content size and encoding, W3C
 * trace context, delivery options) and turned into a canonical compact JSON
 * body, with a router-assigned message_id and created_at when the client
 * sent none.  The body is what is stored and what consumers receive.
 */
#ifndef SWITCHBOARD_MSG_H
#define SWITCHBOARD_MSG_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "switchboard/common.h"

#define MSG_ID_MAX	 128
#define MSG_AGENT_ID_MAX 253

enum msg_priority { MSG_PRIO_LOW, MSG_PRIO_NORMAL, MSG_PRIO_HIGH, MSG_PRIO_CRITICAL };

enum msg_performative {
	PERF_REQUEST,
	PERF_INFORM,
	PERF_QUERY_IF,
	PERF_QUERY_REF,
	PERF_PROPOSE,
	PERF_ACCEPT_PROPOSAL,
	PERF_REJECT_PROPOSAL,
	PERF_AGREE,
	PERF_REFUSE,
	PERF_FAILURE,
	PERF_NOT_UNDERSTOOD,
	PERF_CFP,
	PERF_SUBSCRIBE,
	PERF_CANCEL,
	PERF_HEARTBEAT,
	PERF_CAPABILITY,
	PERF_COUNT
};

struct msg {
	char message_id[MSG_ID_MAX + 1];
	char sender[MSG_AGENT_ID_MAX + 1];
	char receiver[MSG_AGENT_ID_MAX + 1];
	char conversation_id[MSG_ID_MAX + 1]; /* "" when absent */
	char protocol[101];
	char trace_id[33]; /* "" when no traceparent */
	int performative;
	int priority;
	int64_t created_ms;
	int64_t timeout_ms; /* 0: router default */
	int max_retries;    /* -1: router default */
	char *body;	    /* canonical JSON, owned */
	size_t body_len;
};

/* A validation failure: HTTP status, error code and the offending field. */
struct msg_err {
	int status;	  /* 400 or 413 */
	const char *code; /* "InvalidMessage", "MessageTooLarge" */
	char field[64];
	char message[200];
};

/* Validate the JSON text of one message (`raw`, `len` bytes, borrowed) with
 * a streaming parser and fill `m`; the caller releases the body with
 * msg_free().  The body is the client's own bytes, with message_id and
 * created_at appended when the router assigns them, so nothing is
 * re-encoded.  `max_content` bounds the decoded content.  Returns 0,
 * -EBADMSG when the text is not JSON, -EINVAL when it breaks a message rule
 * (both with `err` filled), or -ENOMEM.  Thread-safe. */
int msg_parse(const char *raw, size_t len, size_t max_content, struct msg *m, struct msg_err *err) SB_MUST_CHECK;

/* Build a router-originated message (e.g. a failure notice) with the given
 * fields; `content` is UTF-8 text.  Returns 0 or -ENOMEM. */
int msg_make(struct msg *m, int performative, const char *sender, const char *receiver, const char *conversation_id,
	     const char *in_reply_to, const char *content) SB_MUST_CHECK;

/* Release the body. */
void msg_free(struct msg *m);

const char *msg_performative_name(int p);
const char *msg_priority_name(int p);

/* Validate an agent id (the same rule as the config). 1 if valid. */
int msg_agent_id_ok(const char *s);

/* Validate a W3C traceparent; on success copy the trace id (32 hex) into
 * `trace_id` when non-NULL.  Returns 0 or -EINVAL. */
int msg_traceparent_ok(const char *s, char trace_id[33]) SB_MUST_CHECK;

/* Validate a W3C tracestate header value. Returns 0 or -EINVAL. */
int msg_tracestate_ok(const char *s) SB_MUST_CHECK;

#endif
