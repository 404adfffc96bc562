/*
 * libmicrohttpd glue.  MHD calls the access handler several times per
 * request: once with headers, then with body chunks, then once more with no
 * data.  Body bytes are collected into a bounded buffer; an announced or
 * actual body over the limit is answered 413 and the connection closed.
 */
#include "switchboard/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "switchboard/log.h"
#include "switchboard/util.h"

struct http_server {
	struct MHD_Daemon *d;
	struct http_opts o;
	uint16_t port;
};

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

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
				  const char *version, const char *upload_data, size_t *upload_data_size,
				  void **con_cls)
{
	struct http_server *s = cls;
	struct http_req *req = *con_cls;

	(void)version;
	if (!req) {
		const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");

		req = calloc(1, sizeof(*req));
		if (!req)
			return MHD_NO;
		req->conn = conn;
		req->method = method;
		req->path = url;
		req->started_ns = util_mono_ns();
		buf_init(&req->body, s->o.max_body);
		*con_cls = req;
		if (cl && strtoull(cl, NULL, 10) > s->o.max_body)
			return respond_error(conn, 413, "PayloadTooLarge",
					     "request body exceeds security.maxRequestBytes");
		return MHD_YES;
	}
	if (*upload_data_size) {
		if (!req->body_too_big && buf_append(&req->body, upload_data, *upload_data_size))
			req->body_too_big = 1;
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (req->body_too_big)
		return respond_error(conn, 413, "PayloadTooLarge", "request body exceeds security.maxRequestBytes");
	return dispatch(s, req);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe)
{
	struct http_req *req = *con_cls;

	(void)cls;
	(void)conn;
	(void)toe;
	if (!req)
		return;
	buf_free(&req->body);
	free(req);
	*con_cls = NULL;
}

static void on_panic(void *cls, const char *file, unsigned line, const char *reason)
{
	(void)cls;
	log_error("libmicrohttpd panic", "file", file, "reason", reason ? reason : "");
	(void)line;
	abort();
}

int http_start(const struct http_opts *o, struct http_server **out)
{
	struct http_server *s;
	struct sockaddr_storage ss = {0};
	struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
	const char *addr = o->bind_address ? o->bind_address : "127.0.0.1";
	unsigned flags = MHD_USE_ERROR_LOG;
	const union MHD_DaemonInfo *info;
	int rc = 0;

	if (inet_pton(AF_INET, addr, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		v4->sin_port = htons(o->port);
	} else if (inet_pton(AF_INET6, addr, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons(o->port);
		flags |= MHD_USE_IPv6;
	} else {
		return -EINVAL;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->o = *o;
	flags |= o->thread_per_connection ? MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD
					  : MHD_USE_INTERNAL_POLLING_THREAD;
	flags |= MHD_USE_POLL | MHD_USE_ITC;
	if (o->tls)
		flags |= MHD_USE_TLS;
	MHD_set_panic_func(on_panic, NULL);
	{
		struct MHD_OptionItem opts[] = {
			{MHD_OPTION_SOCK_ADDR, 0, &ss},
			{MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, s},
			{MHD_OPTION_CONNECTION_LIMIT, o->max_connections ? (intptr_t)o->max_connections : 256, NULL},
			{MHD_OPTION_CONNECTION_TIMEOUT, 120, NULL},
			{MHD_OPTION_LISTENING_ADDRESS_REUSE, 1, NULL},
			{MHD_OPTION_THREAD_STACK_SIZE, (intptr_t)256 * 1024, NULL},
			/* the certificate comes from tlscred on every handshake, so a
			 * renewed one is served without a restart */
			{o->tls ? MHD_OPTION_HTTPS_CERT_CALLBACK : MHD_OPTION_END, 0, tlscred_mhd_callback()},
			{MHD_OPTION_END, 0, NULL},
		};

		s->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s, MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
	}
	if (!s->d) {
		rc = errno ? -errno : -EADDRINUSE;
		free(s);
		return rc;
	}
	info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
	s->port = info ? info->port : o->port;
	*out = s;
	return 0;
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
	if (!s)
		return;
	if (s->d)
		MHD_stop_daemon(s->d);
	free(s);
}

const char *http_query(const struct http_req *r, const char *key)
{
	return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, key);
}

const char *http_header(const struct http_req *r, const char *key)
{
	return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, key);
}
