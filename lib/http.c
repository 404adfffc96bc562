/*
 * libmicrohttpd glue.  MHD calls the access handler several times per
 * request: once with headers, then with body chunks, then once more with no
 * data.  Body bytes are collected into a bounded buffer; a body announced
 * over the limit is answered 413 from its headers, and one that grows over
 * it (chunked) cuts the connection, since MHD cannot answer mid-body.
 *
 * Limits against clients that hold connections (docs/decisions.md 54): MHD
 * bounds a request's headers (HTTP_CONN_MEMORY; beyond, its own 431), the
 * connections per client address and in total, and closes a connection
 * silent for the idle timeout.  A watcher thread closes connections that
 * have not finished a request's headers within the idle timeout of opening
 * or of their previous answer (a client trickling a byte at a time is never
 * silent).  A handler at work (a long poll waiting) is never cut: MHD counts
 * silence only while it waits on the socket.
 */
#include "switchboard/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "switchboard/log.h"
#include "switchboard/util.h"

/* A request's headers, and everything MHD keeps of a connection, fit in
 * this; more headers are MHD's 431 (a longer URL its 414). */
#define HTTP_CONN_MEMORY    (32u * 1024)
#define HTTP_IDLE_DEFAULT_S 60
#define HTTP_WATCH_MS	    250
#define HTTP_LOG_PER_SECOND 10

/* One open connection, for the header deadline. */
struct conn_track {
	struct conn_track *prev, *next;
	int fd;
	uint64_t deadline_ms; /* its next request's headers are due by then; 0: a request is at work */
};

struct http_server {
	struct MHD_Daemon *d;
	struct http_opts o;
	uint16_t port;
	unsigned idle_s;
	pthread_mutex_t lock; /* conns, the log budget, stopping */
	pthread_cond_t wake;
	pthread_t watcher;
	int watching, stopping;
	struct conn_track *conns;
	struct http_stats own, *st; /* st: the caller's (http_opts.stats) or own */
	uint64_t log_window_ms, log_dropped;
	unsigned log_lines;
};

static uint64_t now_ms(void)
{
	return util_mono_ns() / 1000000u;
}

static void count(uint64_t *counter, int64_t d)
{
	__atomic_add_fetch(counter, (uint64_t)d, __ATOMIC_RELAXED);
}

static int match(const char *pattern, const char *path, struct http_req *r)
{
	const char *p = pattern, *u = path;

	r->nparams = 0;
	while (*p && *u) {
		if (p[0] == '{' && p[1] == '}') {
			size_t n = strcspn(u, "/");

			if (n == 0 || n >= HTTP_PARAM_MAX || r->nparams >= HTTP_MAX_PARAMS)
				return 0;
			memcpy(r->params[r->nparams], u, n);
			r->params[r->nparams][n] = '\0';
			r->nparams++;
			u += n;
			p += 2;
		} else if (*p++ != *u++) {
			return 0;
		}
	}
	return *p == '\0' && *u == '\0';
}

int http_error(struct http_resp *resp, int status, const char *code, const char *message, const char *field)
{
	int rc;

	resp->status = status;
	buf_reset(&resp->body);
	rc = buf_puts(&resp->body, "{\"error\":{\"code\":");
	if (!rc)
		rc = buf_json_str(&resp->body, code);
	if (!rc)
		rc = buf_puts(&resp->body, ",\"message\":");
	if (!rc)
		rc = buf_json_str(&resp->body, message);
	if (!rc && field) {
		rc = buf_puts(&resp->body, ",\"field\":");
		if (!rc)
			rc = buf_json_str(&resp->body, field);
	}
	if (!rc)
		rc = buf_puts(&resp->body, "}}\n");
	return rc;
}

static enum MHD_Result send_resp(struct MHD_Connection *c, struct http_resp *resp)
{
	struct MHD_Response *r;
	enum MHD_Result ret;
	size_t len = resp->body.len;
	char *body = buf_steal(&resp->body);

	if (!body)
		return MHD_NO;
	r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, "Content-Type", resp->content_type ? resp->content_type : "application/json");
	if (resp->retry_after[0])
		MHD_add_response_header(r, "Retry-After", resp->retry_after);
	ret = MHD_queue_response(c, (unsigned)resp->status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result respond_error(struct MHD_Connection *c, int status, const char *code, const char *msg)
{
	struct http_resp resp = {0};
	enum MHD_Result ret;

	buf_init(&resp.body, 4096);
	if (http_error(&resp, status, code, msg, NULL)) {
		buf_free(&resp.body);
		return MHD_NO;
	}
	ret = send_resp(c, &resp);
	buf_free(&resp.body);
	return ret;
}

static enum MHD_Result dispatch(struct http_server *s, struct http_req *req)
{
	struct http_resp resp = {0};
	const struct http_route *route = NULL;
	int path_known = 0, rc;
	enum MHD_Result ret;

	for (const struct http_route *rt = s->o.routes; rt->method; rt++) {
		if (!match(rt->pattern, req->path, req))
			continue;
		path_known = 1;
		if (strcmp(rt->method, req->method) == 0) {
			route = rt;
			break;
		}
	}
	if (!route)
		return respond_error(req->conn, path_known ? 405 : 404, path_known ? "MethodNotAllowed" : "NotFound",
				     path_known ? "method not allowed on this path" : "no such path");
	match(route->pattern, req->path, req);
	for (size_t i = 0; i < req->nparams; i++)
		if (!util_utf8_valid(req->params[i], strlen(req->params[i])))
			return respond_error(req->conn, 400, "InvalidRequest",
					     "the path is not valid UTF-8 (after percent-decoding)");
	buf_init(&resp.body, (size_t)1 << 31);
	resp.status = 200;
	rc = route->fn(req, &resp, s->o.ctx);
	req->on_done = resp.on_done; /* on_completed says whether the answer went out */
	memcpy(req->done_key, resp.done_key, sizeof(req->done_key));
	if (rc) {
		log_error("handler failed", "server", s->o.name, "path", req->path, "error", strerror(-rc));
		rc = http_error(&resp, 500, "Internal", "internal error; see the router log", NULL);
		if (rc) {
			buf_free(&resp.body);
			return MHD_NO;
		}
	}
	ret = send_resp(req->conn, &resp);
	buf_free(&resp.body);
	return ret;
}

/* The connection's deadline record (NULL if it could not be made). */
static struct conn_track *track_of(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

	return ci ? ci->socket_context : NULL;
}

/* Arm (`due` 1: the next request's headers are due within the idle
 * timeout) or clear (0: a request is at work) the connection's deadline. */
static void track_arm(struct http_server *s, struct MHD_Connection *conn, int due)
{
	struct conn_track *t = track_of(conn);

	if (!t)
		return;
	pthread_mutex_lock(&s->lock);
	t->deadline_ms = due ? now_ms() + (uint64_t)s->idle_s * 1000u : 0;
	pthread_mutex_unlock(&s->lock);
}

static enum MHD_Result too_large(struct http_server *s, struct MHD_Connection *conn)
{
	count(&s->st->too_large, 1);
	return respond_error(conn, 413, "PayloadTooLarge", "request body exceeds security.maxRequestBytes");
}

/* The first call of a request: its headers are in. */
static enum MHD_Result on_headers(struct http_server *s, struct MHD_Connection *conn, const char *url,
				  const char *method, void **con_cls)
{
	const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
	size_t max = s->o.max_body_fn ? s->o.max_body_fn(s->o.ctx) : s->o.max_body;
	struct http_req *req;

	track_arm(s, conn, 0);
	req = calloc(1, sizeof(*req));
	if (!req)
		return MHD_NO;
	req->conn = conn;
	req->method = method;
	req->path = url;
	req->started_ns = util_mono_ns();
	buf_init(&req->body, max);
	*con_cls = req;
	if (cl && strtoull(cl, NULL, 10) > max)
		return too_large(s, conn); /* before the body: MHD reads none of it */
	return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
				  const char *version, const char *upload_data, size_t *upload_data_size,
				  void **con_cls)
{
	struct http_server *s = cls;
	struct http_req *req = *con_cls;

	(void)version;
	if (!req)
		return on_headers(s, conn, url, method, con_cls);
	if (*upload_data_size) {
		if (buf_append(&req->body, upload_data, *upload_data_size)) {
			/* over the limit mid-body (chunked, or more than announced):
			 * MHD can answer only once the body is read, so the
			 * connection is cut rather than read to its end */
			count(&s->st->too_large, 1);
			log_warn("request body over the limit; connection closed", "server", s->o.name, "path", url);
			return MHD_NO;
		}
		*upload_data_size = 0;
		return MHD_YES;
	}
	return dispatch(s, req);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe)
{
	struct http_server *s = cls;
	struct http_req *req = *con_cls;

	track_arm(s, conn, 1);
	if (!req)
		return;
	if (req->on_done)
		req->on_done(s->o.ctx, req->done_key, toe == MHD_REQUEST_TERMINATED_COMPLETED_OK);
	buf_free(&req->body);
	free(req);
	*con_cls = NULL;
}

/* Connections opening and closing: keep the deadline records. */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
			  enum MHD_ConnectionNotificationCode toe)
{
	struct http_server *s = cls;
	struct conn_track *t = *socket_context;

	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);

		t = calloc(1, sizeof(*t));
		if (!t || !ci) {
			free(t);
			return; /* no deadline for this one; MHD's idle timeout still holds */
		}
		t->fd = ci->connect_fd;
		pthread_mutex_lock(&s->lock);
		t->deadline_ms = now_ms() + (uint64_t)s->idle_s * 1000u;
		t->next = s->conns;
		if (s->conns)
			s->conns->prev = t;
		s->conns = t;
		count(&s->st->open, 1);
		pthread_mutex_unlock(&s->lock);
		*socket_context = t;
		return;
	}
	if (!t)
		return;
	/* MHD closes the socket after this returns: the watcher, which works
	 * under the lock, never touches a descriptor that is no longer ours */
	pthread_mutex_lock(&s->lock);
	if (t->prev)
		t->prev->next = t->next;
	else
		s->conns = t->next;
	if (t->next)
		t->next->prev = t->prev;
	count(&s->st->open, -1);
	pthread_mutex_unlock(&s->lock);
	free(t);
	*socket_context = NULL;
}

/* Close connections whose request headers are overdue: shutdown() wakes the
 * connection's thread, which sees the end of the stream and closes it. */
static void *watch_headers(void *arg)
{
	struct http_server *s = arg;

	pthread_mutex_lock(&s->lock);
	while (!s->stopping) {
		struct timespec ts = util_deadline(CLOCK_MONOTONIC, HTTP_WATCH_MS);
		uint64_t now = now_ms();

		for (struct conn_track *t = s->conns; t; t = t->next) {
			if (!t->deadline_ms || now < t->deadline_ms)
				continue;
			t->deadline_ms = 0;
			count(&s->st->header_timeouts, 1);
			(void)shutdown(t->fd, SHUT_RDWR);
		}
		(void)pthread_cond_timedwait(&s->wake, &s->lock, &ts);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

/* MHD's messages as JSON lines, at most HTTP_LOG_PER_SECOND a second per
 * server (a flood of refused connections is one line a refusal); the next
 * line written says how many were left out. */
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	struct http_server *s = cls;
	char line[256], dropped[24] = "";
	uint64_t now = now_ms();
	size_t n;
	int emit;

	(void)vsnprintf(line, sizeof(line), fmt, ap);
	n = strlen(line);
	while (n && (line[n - 1] == '\n' || line[n - 1] == ' '))
		line[--n] = '\0';
	if (strstr(line, "reached connection limit"))
		count(&s->st->refused, 1);
	pthread_mutex_lock(&s->lock);
	if (now - s->log_window_ms >= 1000) {
		if (s->log_dropped)
			snprintf(dropped, sizeof(dropped), "%llu", (unsigned long long)s->log_dropped);
		s->log_window_ms = now;
		s->log_dropped = 0;
		s->log_lines = 0;
	}
	emit = s->log_lines < HTTP_LOG_PER_SECOND;
	if (emit)
		s->log_lines++;
	else
		s->log_dropped++;
	pthread_mutex_unlock(&s->lock);
	if (emit)
		log_warn("libmicrohttpd", "server", s->o.name, "detail", line, "n:left_out",
			 dropped[0] ? dropped : NULL);
}

static void on_panic(void *cls, const char *file, unsigned line, const char *reason)
{
	(void)cls;
	log_error("libmicrohttpd panic", "file", file, "reason", reason ? reason : "");
	(void)line;
	abort();
}

/* Fill `ss` from the bind address and port; sets MHD_USE_IPv6 in *flags. */
static int sock_addr(const struct http_opts *o, struct sockaddr_storage *ss, unsigned *flags)
{
	struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
	const char *addr = o->bind_address ? o->bind_address : "127.0.0.1";

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, addr, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		v4->sin_port = htons(o->port);
	} else if (inet_pton(AF_INET6, addr, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons(o->port);
		*flags |= MHD_USE_IPv6;
	} else {
		return -EINVAL;
	}
	return 0;
}

static struct MHD_Daemon *start_daemon(struct http_server *s, unsigned flags, struct sockaddr_storage *ss)
{
	const struct http_opts *o = &s->o;
	struct MHD_OptionItem opts[] = {
		{MHD_OPTION_SOCK_ADDR, 0, ss},
		{MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, s},
		{MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)on_connection, s},
		{MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)on_mhd_log, s},
		{MHD_OPTION_CONNECTION_LIMIT, o->max_connections ? (intptr_t)o->max_connections : 256, NULL},
		{MHD_OPTION_PER_IP_CONNECTION_LIMIT, (intptr_t)o->max_per_address, NULL},
		{MHD_OPTION_CONNECTION_TIMEOUT, (intptr_t)s->idle_s, NULL},
		{MHD_OPTION_CONNECTION_MEMORY_LIMIT, (intptr_t)HTTP_CONN_MEMORY, NULL},
		{MHD_OPTION_LISTENING_ADDRESS_REUSE, 1, NULL},
		{MHD_OPTION_THREAD_STACK_SIZE, (intptr_t)256 * 1024, NULL},
		/* the certificate comes from tlscred on every handshake, so a
		 * renewed one is served without a restart */
		{o->tls ? MHD_OPTION_HTTPS_CERT_CALLBACK : MHD_OPTION_END, 0, tlscred_mhd_callback()},
		{MHD_OPTION_END, 0, NULL},
	};

	flags |= o->thread_per_connection ? MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD
					  : MHD_USE_INTERNAL_POLLING_THREAD;
	flags |= MHD_USE_POLL | MHD_USE_ITC | MHD_USE_ERROR_LOG;
	if (o->tls)
		flags |= MHD_USE_TLS;
	return MHD_start_daemon(flags, 0, NULL, NULL, on_request, s, MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
}

static void server_free(struct http_server *s)
{
	if (s->watching) {
		pthread_mutex_lock(&s->lock);
		s->stopping = 1;
		pthread_cond_signal(&s->wake);
		pthread_mutex_unlock(&s->lock);
		pthread_join(s->watcher, NULL);
	}
	if (s->d)
		MHD_stop_daemon(s->d);
	pthread_cond_destroy(&s->wake);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

int http_start(const struct http_opts *o, struct http_server **out)
{
	struct http_server *s;
	struct sockaddr_storage ss;
	unsigned flags = 0;
	pthread_condattr_t ca;
	const union MHD_DaemonInfo *info;
	int rc;

	if (sock_addr(o, &ss, &flags))
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->o = *o;
	s->st = o->stats ? o->stats : &s->own;
	s->idle_s = o->idle_timeout_s ? o->idle_timeout_s : HTTP_IDLE_DEFAULT_S;
	pthread_mutex_init(&s->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->wake, &ca);
	pthread_condattr_destroy(&ca);
	MHD_set_panic_func(on_panic, NULL);
	s->d = start_daemon(s, flags, &ss);
	if (!s->d) {
		rc = errno ? -errno : -EADDRINUSE;
		goto out;
	}
	rc = -pthread_create(&s->watcher, NULL, watch_headers, s);
	if (rc)
		goto out;
	s->watching = 1;
	info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
	s->port = info ? info->port : o->port;
	*out = s;
	return 0;
out:
	server_free(s);
	return rc;
}

uint16_t http_port(const struct http_server *s)
{
	return s->port;
}

void http_quiesce(struct http_server *s)
{
	MHD_socket fd;

	if (!s || !s->d)
		return;
	fd = MHD_quiesce_daemon(s->d);
	if (fd != MHD_INVALID_SOCKET)
		close(fd);
}

void http_stop(struct http_server *s)
{
	if (s)
		server_free(s);
}

void http_stats_read(const struct http_stats *st, struct http_stats *out)
{
	out->open = __atomic_load_n(&st->open, __ATOMIC_RELAXED);
	out->refused = __atomic_load_n(&st->refused, __ATOMIC_RELAXED);
	out->header_timeouts = __atomic_load_n(&st->header_timeouts, __ATOMIC_RELAXED);
	out->too_large = __atomic_load_n(&st->too_large, __ATOMIC_RELAXED);
}

int http_client_gone(const struct http_req *r)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	struct pollfd p = {.events = POLLRDHUP};

	if (!ci)
		return 0;
	p.fd = ci->connect_fd;
	return poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

const char *http_query(const struct http_req *r, const char *key)
{
	return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, key);
}

const char *http_header(const struct http_req *r, const char *key)
{
	return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, key);
}
