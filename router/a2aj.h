/*
 * a2aj: the A2A protocol's JSON (docs/a2a.md), without I/O.  It reads a
 * JSON-RPC request (envelope, method, the A2A-Version header), turns an A2A
 * SendMessage's message into the FIPA-ACL message the router stores, and
 * writes Tasks and JSON-RPC errors in the request's protocol version (1.0 or
 * 0.3).  Everything here is pure and thread-safe; router/a2a.c puts it on
 * the HTTP server and the routing core.
 */
#ifndef SWITCHBOARD_A2AJ_H
#define SWITCHBOARD_A2AJ_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "rt.h"
#include "switchboard/buf.h"
#include "switchboard/common.h"

enum a2aj_version { A2AJ_V03, A2AJ_V10 };

enum a2aj_method {
	A2AJ_SEND,     /* SendMessage, message/send */
	A2AJ_GET,      /* GetTask, tasks/get */
	A2AJ_CANCEL,   /* CancelTask, tasks/cancel */
	A2AJ_UNSERVED, /* a known A2A method the router does not serve (streaming, push config, ...) */
	A2AJ_UNKNOWN
};

/* JSON-RPC error codes: the standard ones, A2A's, and the router's own
 * (server-defined range, docs/a2a.md). */
enum {
	A2AJ_PARSE_ERROR = -32700,
	A2AJ_INVALID_REQUEST = -32600,
	A2AJ_METHOD_NOT_FOUND = -32601,
	A2AJ_INVALID_PARAMS = -32602,
	A2AJ_INTERNAL = -32603,
	A2AJ_TASK_NOT_FOUND = -32001,
	A2AJ_TASK_NOT_CANCELABLE = -32002,
	A2AJ_PUSH_NOT_SUPPORTED = -32003,
	A2AJ_VERSION_NOT_SUPPORTED = -32009,
	A2AJ_UNAUTHORIZED = -32050,
	A2AJ_FORBIDDEN = -32051,
	A2AJ_AGENT_NOT_FOUND = -32052,
	A2AJ_TOO_LARGE = -32053,
	A2AJ_UNAVAILABLE = -32054,
};

/* A failed request: what the JSON-RPC error says and the HTTP status that
 * carries it (200 for protocol errors). */
struct a2aj_err {
	int code;	    /* JSON-RPC error code */
	int http_status;    /* 200, 401, 403, 404, 413, 429, 500, 503 */
	const char *reason; /* ErrorInfo reason: the router's error code, or A2A's */
	char field[96];	    /* the offending field ("params.message.messageId"), "" when none */
	char message[256];
};

/* A parsed request.  `root` is owned; the other pointers borrow from it. */
struct a2aj_req {
	json_t *root;
	const json_t *id; /* NULL when absent or unusable (answered as null) */
	int version;	  /* enum a2aj_version */
	int method;	  /* enum a2aj_method */
	const char *method_name;
	const json_t *params; /* an object, or NULL */
};

/* Fill `e` (the field may be NULL) and return -EINVAL. */
int a2aj_fail(struct a2aj_err *e, int code, int http_status, const char *reason, const char *field, const char *fmt,
	      ...) SB_PRINTF(6, 7);

/* Read the JSON-RPC request in `body` (`len` bytes, borrowed) with the
 * A2A-Version header `version_hdr` (NULL when absent).  Returns 0 with
 * `rq` filled (release it with a2aj_req_free()), or -EINVAL with `e` filled
 * and as much of `rq` as is known (its id, to echo), or -ENOMEM.  A method
 * the router does not know or serve is not an error here: see rq->method. */
int a2aj_parse(const char *body, size_t len, const char *version_hdr, struct a2aj_req *rq,
	       struct a2aj_err *e) SB_MUST_CHECK;
void a2aj_req_free(struct a2aj_req *rq);

/* What SendMessage's params say about the FIPA envelope, beside the parts. */
struct a2aj_send {
	const char *message_id;	  /* params.message.messageId (borrowed from the request) */
	const char *context_id;	  /* params.message.contextId, NULL when absent */
	const char *sender;	  /* params.message.metadata.sender, NULL when absent */
	const char *performative; /* metadata.performative, NULL when absent */
	const char *in_reply_to;  /* metadata.inReplyTo, NULL when absent */
	json_t *parts;		  /* the parts in 1.0's shape (owned) */
};

/* Check SendMessage's params and fill `s` (release with a2aj_send_free()).
 * Returns 0, -EINVAL with `e` naming the field, or -ENOMEM. */
int a2aj_send_read(const struct a2aj_req *rq, struct a2aj_send *s, struct a2aj_err *e) SB_MUST_CHECK;
void a2aj_send_free(struct a2aj_send *s);

/* The FIPA-ACL message for `s` (borrowed), as JSON text into `out`: receiver
 * and sender as given, message_id `message_id`, conversation_id
 * `conversation_id`, content from the parts, performative from the metadata
 * (request by default), and `traceparent` when not NULL.  The text is then
 * validated by msg_parse() as any submission is.  Returns 0 or -ENOMEM. */
int a2aj_to_fipa(const struct a2aj_send *s, const char *receiver, const char *sender, const char *message_id,
		 const char *conversation_id, const char *traceparent, struct buf *out) SB_MUST_CHECK;

/* The A2A field a msg_parse() failure on `fipa_field` points at. */
const char *a2aj_field_of(const char *fipa_field);

/* params.id of GetTask or CancelTask, or NULL after filling `e`. */
const char *a2aj_task_id(const struct a2aj_req *rq, struct a2aj_err *e);

/* The JSON-RPC response carrying the Task `id` in state `t` (borrowed),
 * in the request's version; `for_send` wraps it as SendMessage's 1.0 result
 * ({"task":...}).  `now_ms` stamps a state whose time is unknown.
 * Returns 0 or -ENOMEM. */
int a2aj_write_task(struct buf *out, const struct a2aj_req *rq, const char *id, const struct rt_task *t, int for_send,
		    int64_t now_ms) SB_MUST_CHECK;

/* The JSON-RPC error response for `e`, echoing `rq`'s id (rq may be NULL).
 * Returns 0 or -ENOMEM. */
int a2aj_write_error(struct buf *out, const struct a2aj_req *rq, const struct a2aj_err *e) SB_MUST_CHECK;

/* --- delivery to A2A agents (the push engine's side) ------------------- */

/* The A2A 1.0 SendMessage request that delivers the FIPA-ACL message
 * `fipa` (`len` bytes of a stored, canonical body; borrowed) into `out`:
 * messageId the message id (so the receiver can deduplicate), contextId
 * the conversation, the parts from the content (a parts document as it
 * came, text otherwise, content_base64 as a raw part), and the sender,
 * performative and in_reply_to in the metadata.  Returns 0, -EBADMSG when
 * `fipa` is not a stored message, or -ENOMEM / -E2BIG. */
int a2aj_from_fipa(const char *fipa, size_t len, struct buf *out) SB_MUST_CHECK;

enum a2aj_answer_kind {
	A2AJ_ANS_DONE,	  /* a result without a message to pass on: delivered */
	A2AJ_ANS_REPLY,	  /* a result that is (or carries) a Message: delivered, and a reply */
	A2AJ_ANS_ERROR,	  /* a JSON-RPC error */
	A2AJ_ANS_INVALID, /* not a JSON-RPC response */
};

/* What an A2A agent answered to SendMessage. */
struct a2aj_answer {
	int kind;		/* enum a2aj_answer_kind */
	int transient;		/* ERROR: worth retrying (internal errors, the server range but A2A's codes) */
	int code;		/* ERROR: the JSON-RPC code */
	char detail[240];	/* ERROR, INVALID: for the log and the dead letter ("A2A error -32602: ...") */
	json_t *root;		/* owned: the answer, which `reply` borrows from */
	struct a2aj_send reply; /* REPLY: the Message, read as SendMessage's is */
};

/* Read the JSON-RPC answer in `body` (`len` bytes, borrowed) into `a`;
 * release it with a2aj_answer_free() whatever it returns.  Returns 0 or
 * -ENOMEM. */
int a2aj_read_answer(const char *body, size_t len, struct a2aj_answer *a) SB_MUST_CHECK;
void a2aj_answer_free(struct a2aj_answer *a);

#endif
