/*
 * peer: pooled keep-alive HTTP connections to the other replicas.  One pool
 * per ordinal, created on first use: idle curl easy handles (each keeps its
 * connection), a count of live ones, and a condition variable that callers
 * wait on when cluster.peerConnections are all busy.  Options are set on
 * every call from the config the caller passes, so a hot change of the
 * peer settings applies to the next request.  See peer.h for the contracts.
 */
#include "peer.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "switchboard/own.h"
#include "switchboard/util.h"

struct pool {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	CURL **idle;
	size_t nidle, nlive;
};

struct peer {
	pthread_mutex_t lock; /* pools[] */
	struct pool *pools[OWN_MAX_REPLICAS];
};

int peer_new(struct peer **out)
{
	struct peer *p = calloc(1, sizeof(*p));

	*out = NULL;
	if (!p)
		return -ENOMEM;
	pthread_mutex_init(&p->lock, NULL);
	*out = p;
	return 0;
}

static void pool_free(struct pool *pl)
{
	if (!pl)
		return;
	for (size_t i = 0; i < pl->nidle; i++)
		curl_easy_cleanup(pl->idle[i]);
	free(pl->idle);
	pthread_mutex_destroy(&pl->lock);
	pthread_cond_destroy(&pl->cond);
	free(pl);
}

void peer_free(struct peer *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < OWN_MAX_REPLICAS; i++)
		pool_free(p->pools[i]);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

void peer_epoch(const struct cfg *c, char out[17])
{
	own_epoch((uint32_t)c->cluster.replicas, c->cluster.peer_host, out);
}

int peer_conf_from(struct peer_conf *pc, const struct cfg *c, int64_t ordinal)
{
	memset(pc, 0, sizeof(*pc));
	pc->replicas = (uint32_t)c->cluster.replicas;
	pc->ordinal = (uint32_t)ordinal;
	snprintf(pc->host, sizeof(pc->host), "%s", c->cluster.peer_host);
	pc->port = c->net.peer_port;
	pc->connections = c->cluster.peer_connections;
	pc->timeout_ms = c->cluster.forward_timeout_ms;
	peer_epoch(c, pc->epoch);
	pc->resolve = strdup(c->cluster.resolve ? c->cluster.resolve : "");
	return pc->resolve ? 0 : -ENOMEM;
}

void peer_conf_free(struct peer_conf *pc)
{
	free(pc->resolve);
	pc->resolve = NULL;
}

void peer_resp_init(struct peer_resp *r)
{
	memset(r, 0, sizeof(*r));
	buf_init(&r->body, PEER_BODY_LIMIT);
}

void peer_resp_free(struct peer_resp *r)
{
	buf_free(&r->body);
}

static struct pool *pool_of(struct peer *p, uint32_t ordinal)
{
	struct pool *pl;

	pthread_mutex_lock(&p->lock);
	pl = p->pools[ordinal];
	if (!pl) {
		pl = calloc(1, sizeof(*pl));
		if (pl) {
			pthread_condattr_t ca;

			pthread_mutex_init(&pl->lock, NULL);
			pthread_condattr_init(&ca);
			pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
			pthread_cond_init(&pl->cond, &ca);
			pthread_condattr_destroy(&ca);
			p->pools[ordinal] = pl;
		}
	}
	pthread_mutex_unlock(&p->lock);
	return pl;
}

/* A handle for one request: an idle one, a new one while fewer than `limit`
 * are live, or the first to come back before `deadline_ns` (monotonic).
 * Returns NULL on timeout or ENOMEM. */
static CURL *pool_take(struct pool *pl, size_t limit, uint64_t deadline_ns)
{
	struct timespec ts = {.tv_sec = (time_t)(deadline_ns / 1000000000u),
			      .tv_nsec = (long)(deadline_ns % 1000000000u)};
	CURL *e = NULL;
	int rc = 0;

	pthread_mutex_lock(&pl->lock);
	while (!pl->nidle && pl->nlive >= limit && rc == 0)
		rc = pthread_cond_timedwait(&pl->cond, &pl->lock, &ts);
	if (pl->nidle) {
		e = pl->idle[--pl->nidle];
	} else if (pl->nlive < limit) {
		e = curl_easy_init();
		pl->nlive += e != NULL;
	}
	pthread_mutex_unlock(&pl->lock);
	return e;
}

/* Return a handle to the pool (`keep` 0: its connection is suspect, drop it). */
static void pool_give(struct pool *pl, CURL *e, int keep)
{
	CURL **grown;

	pthread_mutex_lock(&pl->lock);
	grown = keep ? realloc(pl->idle, (pl->nidle + 1) * sizeof(*pl->idle)) : NULL;
	if (grown) {
		pl->idle = grown;
		pl->idle[pl->nidle++] = e;
	} else {
		curl_easy_cleanup(e);
		pl->nlive--;
	}
	pthread_cond_signal(&pl->cond);
	pthread_mutex_unlock(&pl->lock);
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
	struct peer_resp *r = ud;

	return buf_append(&r->body, ptr, size * nmemb) ? 0 : size * nmemb;
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *ud)
{
	struct peer_resp *r = ud;
	size_t n = size * nmemb;

	if (n > 12 && strncasecmp(ptr, "Retry-After:", 12) == 0) {
		size_t i = 12, j = 0;

		while (i < n && ptr[i] == ' ')
			i++;
		while (i < n && ptr[i] >= '0' && ptr[i] <= '9' && j < sizeof(r->retry_after) - 1)
			r->retry_after[j++] = ptr[i++];
		r->retry_after[j] = '\0';
	}
	return n;
}

/* "host:port:address,..." as a curl list (NULL when empty; *err on ENOMEM). */
static struct curl_slist *resolve_list(const char *spec, int *err)
{
	struct curl_slist *l = NULL, *t;
	char item[300];

	*err = 0;
	while (spec && *spec) {
		size_t n = strcspn(spec, ",");

		if (n > 0 && n < sizeof(item)) {
			memcpy(item, spec, n);
			item[n] = '\0';
			t = curl_slist_append(l, item);
			if (!t) {
				*err = -ENOMEM;
				break;
			}
			l = t;
		}
		spec += n + (spec[n] == ',');
	}
	return l;
}

/* The URL of ordinal `ordinal`'s peer port: cluster.peerHost with
 * "{ordinal}" replaced. */
static void peer_url(const struct peer_conf *pc, uint32_t ordinal, const char *path, char *url, size_t len)
{
	const char *t = pc->host, *at = strstr(t, "{ordinal}");

	if (at)
		snprintf(url, len, "http://%.*s%u%s:%lld%s", (int)(at - t), t, ordinal, at + 9, (long long)pc->port,
			 path);
	else
		snprintf(url, len, "http://%s:%lld%s", t, (long long)pc->port, path);
}

static struct curl_slist *call_headers(const struct peer_conf *pc, const struct peer_req *rq, int *err)
{
	const char *ctype = rq->ctype, *token = rq->token;
	char line[300];
	struct curl_slist *h = NULL, *t;

	*err = 0;
	snprintf(line, sizeof(line), PEER_EPOCH_HEADER ": %s", pc->epoch);
	t = curl_slist_append(h, line);
	h = t ? t : h;
	if (t && ctype) {
		snprintf(line, sizeof(line), "Content-Type: %s", ctype);
		t = curl_slist_append(h, line);
		h = t ? t : h;
	}
	if (t && token && *token) {
		snprintf(line, sizeof(line), "Authorization: Bearer %s", token);
		t = curl_slist_append(h, line);
		h = t ? t : h;
		sodium_memzero(line, sizeof(line));
	}
	if (t && rq->header) {
		t = curl_slist_append(h, rq->header);
		h = t ? t : h;
	}
	if (t)
		t = curl_slist_append(h, "Expect:");
	if (!t) {
		curl_slist_free_all(h);
		*err = -ENOMEM;
		return NULL;
	}
	return t;
}

int peer_call(struct peer *p, const struct peer_conf *pc, uint32_t ordinal, const struct peer_req *rq,
	      struct peer_resp *out)
{
	const char *method = rq->method, *body = rq->body;
	size_t len = rq->len;
	int64_t timeout_ms = rq->timeout_ms;
	struct pool *pl = ordinal < OWN_MAX_REPLICAS ? pool_of(p, ordinal) : NULL;
	struct curl_slist *hdrs = NULL, *resolve = NULL;
	char url[512];
	CURL *e = NULL;
	CURLcode cc = CURLE_FAILED_INIT;
	int err = 0;

	out->status = 0;
	if (!pl)
		return -ENOMEM;
	e = pool_take(pl, (size_t)pc->connections, util_mono_ns() + (uint64_t)timeout_ms * 1000000u);
	if (!e) {
		snprintf(out->error, sizeof(out->error), "no connection to router %u free within %lld ms", ordinal,
			 (long long)timeout_ms);
		return 0;
	}
	hdrs = call_headers(pc, rq, &err);
	resolve = err ? NULL : resolve_list(pc->resolve, &err);
	if (err)
		goto out;
	peer_url(pc, ordinal, rq->path, url, sizeof(url));
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_RESOLVE, resolve);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, NULL);
	if (strcmp(method, "GET") == 0) {
		curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
	} else {
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, body ? body : "");
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? len : 0));
		if (strcmp(method, "POST") != 0)
			curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
	}
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, out);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, out);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(timeout_ms < 1000 ? timeout_ms : 1000));
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http");
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	cc = curl_easy_perform(e);
	if (cc == CURLE_OK)
		curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &out->status);
	else
		snprintf(out->error, sizeof(out->error), "router %u: %s", ordinal, curl_easy_strerror(cc));
out:
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(e, CURLOPT_RESOLVE, NULL);
	pool_give(pl, e, err == 0 && cc == CURLE_OK);
	curl_slist_free_all(hdrs);
	curl_slist_free_all(resolve);
	return err;
}
