/*
 * http: a small server layer over libmicrohttpd.  It owns request bodies
 * (bounded: a body over the limit is answered 413 without being buffered),
 * routes by method and path pattern ("/v1/agents/{}/messages"), and turns a
 * handler's struct http_resp into an MHD response.  Handlers run on MHD's
 * threads: thread-per-connection for the data port (so a long poll blocks
 * only its own connection), one polling thread for the admin port.
 *
 * Against clients that hold connections: at most `max_connections`, at most
 * `max_per_address` from one client address, and a connection that is
 * silent for `idle_timeout_s`, or that has not sent a whole request's
 * headers that long after it opened or after its previous answer, is
 * closed.  A request being handled (a long poll waiting) is never cut.
 */
#ifndef SWITCHBOARD_HTTP_H
#define SWITCHBOARD_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "switchboard/buf.h"
#include "switchboard/common.h"
#include "switchboard/tlscred.h"

#define HTTP_MAX_PARAMS	  4
#define HTTP_PARAM_MAX	  256
#define HTTP_DONE_KEY_MAX 64

/* Called once an answer is finished, on the connection's thread: `sent` 1
 * when it went out whole, 0 when the connection failed, timed out or the
 * server stopped first.  `ctx` is the server's http_opts.ctx; `key`
 * (borrowed) is the handler's http_resp.done_key. */
typedef void (*http_done_fn)(void *ctx, const char *key, int sent);

struct http_server;

/* What a server has turned away or closed, and holds now.  The server
 * updates it with atomic operations. */
struct http_stats {
	uint64_t open;		  /* connections open now */
	uint64_t refused;	  /* connections closed at accept: a connection limit (per address) */
	uint64_t header_timeouts; /* closed for not sending a request's headers within the idle timeout */
	uint64_t too_large;	  /* bodies over the limit: 413 from Content-Length, or cut mid-body */
};

struct http_req {
	void *conn; /* struct MHD_Connection */
	const char *method;
	const char *path;
	char params[HTTP_MAX_PARAMS][HTTP_PARAM_MAX]; /* {} captures, in order */
	size_t nparams;
	struct buf body;
	uint64_t started_ns;
	http_done_fn on_done; /* copied from the handler's http_resp */
	char done_key[HTTP_DONE_KEY_MAX];
};

struct http_resp {
	int status;
	const char *content_type; /* default application/json */
	struct buf body;
	char retry_after[16]; /* seconds, sent as Retry-After when set */
	http_done_fn on_done; /* optional: told whether the answer reached the client */
	char done_key[HTTP_DONE_KEY_MAX];
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
	unsigned max_connections; /* 0: 256 */
	unsigned max_per_address; /* connections from one client address; 0: no limit of its own */
	unsigned idle_timeout_s;  /* 0: 60 */
	size_t max_body;
	/* optional: the body limit now (a reloadable setting), asked once per
	 * request with `ctx`; thread-safe.  NULL: max_body */
	size_t (*max_body_fn)(void *ctx);
	struct http_stats *stats;	 /* optional, borrowed: outlives the server (read it after http_stop) */
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

/* Copy the counters of `st` (updated by a running server) into *out.
 * Thread-safe. */
void http_stats_read(const struct http_stats *st, struct http_stats *out);

/* 1 when the request's client has closed or reset its connection (its
 * answer could not reach it), else 0.  Does not block; call from the
 * request's handler (its connection's thread). */
int http_client_gone(const struct http_req *r);

/* Request helpers (borrowed pointers, valid during the handler). */
const char *http_query(const struct http_req *r, const char *key);
const char *http_header(const struct http_req *r, const char *key);

/* Fill `resp` with {"error":{"code","message","field"}}; field may be NULL. */
int http_error(struct http_resp *resp, int status, const char *code, const char *message,
	       const char *field) SB_MUST_CHECK;

#endif
