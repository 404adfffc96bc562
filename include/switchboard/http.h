/*
 * http: a small server layer over libmicrohttpd.  It owns request bodies
 * (bounded: a body over the limit is answered 413 without being buffered),
 * routes by method and path pattern ("/v1/agents/{}/messages"), and turns a
 * handler's struct http_resp into an MHD response.  Handlers run on MHD's
 * threads: thread-per-connection for the data port (so a long poll blocks
 * only its own connection), one polling thread for the admin port.
 */
#ifndef SWITCHBOARD_HTTP_H
#define SWITCHBOARD_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "switchboard/buf.h"
#include "switchboard/common.h"
#include "switchboard/tlscred.h"

#define HTTP_MAX_PARAMS 4
#define HTTP_PARAM_MAX	256

struct http_server;

struct http_req {
	void *conn; /* struct MHD_Connection */
	const char *method;
	const char *path;
	char params[HTTP_MAX_PARAMS][HTTP_PARAM_MAX]; /* {} captures, in order */
	size_t nparams;
	struct buf body;
	int body_too_big;
	uint64_t started_ns;
};

struct http_resp {
	int status;
	const char *content_type; /* default application/json */
	struct buf body;
	char retry_after[16]; /* seconds, sent as Retry-After when set */
};

/* A handler fills `resp`.  Returns 0, or -errno to answer 500. */
typedef int (*http_handler_fn)(struct http_req *req, struct http_resp *resp, void *ctx);

struct http_route {
	const char *method; /* "GET", "POST", ... */
	const char *pattern;
	http_handler_fn fn;
};

struct http_opts {
	const char *bind_address; /* numeric IPv4 or IPv6; NULL: 127.0.0.1 */
	uint16_t port;		  /* 0: ephemeral, see http_port() */
	int thread_per_connection;
	unsigned max_connections;
	size_t max_body;
	struct tlscred *tls;		 /* serve TLS with the active credential (tlscred_activate); NULL: plain */
	const struct http_route *routes; /* borrowed; ends with a NULL method */
	void *ctx;			 /* passed to handlers */
	const char *name;		 /* for logs */
};

/* Start a server.  Returns 0 and stores it in *out, or -errno (-EADDRINUSE
 * when the port is taken, -EINVAL on a bad address).  */
int http_start(const struct http_opts *o, struct http_server **out) SB_MUST_CHECK;

/* The bound port (useful after binding port 0). */
uint16_t http_port(const struct http_server *s);

/* Stop accepting new connections; requests in flight continue. */
void http_quiesce(struct http_server *s);

/* Stop the server, waiting for handlers to return, and free it. */
void http_stop(struct http_server *s);

/* Request helpers (borrowed pointers, valid during the handler). */
const char *http_query(const struct http_req *r, const char *key);
const char *http_header(const struct http_req *r, const char *key);

/* Fill `resp` with {"error":{"code","message","field"}}; field may be NULL. */
int http_error(struct http_resp *resp, int status, const char *code, const char *message,
	       const char *field) SB_MUST_CHECK;

#endif
