/*
 * kc: Kubernetes API client.  Settings come from a kubeconfig or the
 * in-cluster files; requests run on a per-thread curl easy handle with the
 * TLS material passed as in-memory blobs.  See kc.h for the contracts.
 */
#include "kc.h"
#include "kc_int.h"

#include <curl/curl.h>
#include <errno.h>
#include <libgen.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "switchboard/log.h"
#include "switchboard/util.h"
#include "switchboard/yjson.h"

#define SA_DIR		 "/var/run/secrets/kubernetes.io/serviceaccount"
#define KC_BODY_LIMIT	 (256u << 20) /* one reply (a page of a list) */
#define KC_ERR_LIMIT	 (64u << 10)
#define TOKEN_RECHECK_MS 10000

struct kc {
	struct kc_config c;
	pthread_mutex_t lock; /* token, token_mtime, token_checked_ms */
	char *token;
	struct timespec token_mtime;
	int64_t token_checked_ms;
};

static __thread CURL *tl_curl;

void kc_config_free(struct kc_config *c)
{
	if (!c)
		return;
	free(c->server);
	free(c->ca_pem);
	free(c->cert_pem);
	if (c->key_pem)
		sodium_memzero(c->key_pem, strlen(c->key_pem));
	free(c->key_pem);
	if (c->token)
		sodium_memzero(c->token, strlen(c->token));
	free(c->token);
	free(c->token_file);
	free(c->namespace_);
	memset(c, 0, sizeof(*c));
}

static int set_err(char *err, size_t errlen, int rc, const char *fmt, const char *a, const char *b)
{
	snprintf(err, errlen, fmt, a ? a : "", b ? b : "");
	return rc;
}

/* Read `path` (relative to `base_dir` unless absolute) into a heap string. */
static int read_rel(const char *base_dir, const char *path, char **out)
{
	char full[4096];
	size_t len;

	if (path[0] == '/' || !base_dir)
		snprintf(full, sizeof(full), "%s", path);
	else
		snprintf(full, sizeof(full), "%s/%s", base_dir, path);
	return util_read_file(full, 1u << 20, out, &len);
}

static int b64_decode(const char *in, char **out)
{
	size_t inlen = strlen(in), outlen = 0;
	char *buf = malloc(inlen + 1);

	if (!buf)
		return -ENOMEM;
	if (sodium_base642bin((unsigned char *)buf, inlen, in, inlen, " \n\r\t", &outlen, NULL,
			      sodium_base64_VARIANT_ORIGINAL)) {
		free(buf);
		return -EINVAL;
	}
	buf[outlen] = '\0';
	*out = buf;
	return 0;
}

/* `data` (base64) or `file` for one piece of material; either may be absent. */
static int material(json_t *obj, const char *data_key, const char *file_key, const char *dir, char **out, char *err,
		    size_t errlen)
{
	const char *data = json_string_value(json_object_get(obj, data_key));
	const char *file = json_string_value(json_object_get(obj, file_key));
	int rc;

	if (data) {
		rc = b64_decode(data, out);
		return rc ? set_err(err, errlen, rc, "kubeconfig: %s is not valid base64%s", data_key, NULL) : 0;
	}
	if (file) {
		rc = read_rel(dir, file, out);
		return rc ? set_err(err, errlen, rc, "kubeconfig: %s: cannot read %s", file_key, file) : 0;
	}
	return 0;
}

static json_t *named(json_t *arr, const char *name, const char *inner)
{
	size_t i;
	json_t *e;

	json_array_foreach (arr, i, e) {
		const char *n = json_string_value(json_object_get(e, "name"));

		if (n && strcmp(n, name) == 0)
			return json_object_get(e, inner);
	}
	return NULL;
}

static int load_kubeconfig(struct kc_config *c, const char *path, char *err, size_t errlen)
{
	char *text = NULL, *dup = NULL, perr[256];
	const char *ctxname, *cluster_name, *user_name, *s, *dir;
	json_t *root = NULL, *ctx, *cluster, *user;
	size_t len;
	int rc;

	rc = util_read_file(path, 4u << 20, &text, &len);
	if (rc)
		return set_err(err, errlen, rc, "cannot read kubeconfig %s%s", path, NULL);
	rc = yj_parse(text, len, &root, perr, sizeof(perr));
	if (rc) {
		set_err(err, errlen, rc, "kubeconfig %s: %s", path, perr);
		goto out;
	}
	dup = strdup(path);
	if (!dup) {
		rc = -ENOMEM;
		goto out;
	}
	rc = -EINVAL;
	ctxname = json_string_value(json_object_get(root, "current-context"));
	if (!ctxname) {
		set_err(err, errlen, rc, "kubeconfig: current-context is not set%s%s", NULL, NULL);
		goto out;
	}
	ctx = named(json_object_get(root, "contexts"), ctxname, "context");
	if (!ctx) {
		set_err(err, errlen, rc, "kubeconfig: contexts: no context named %s%s", ctxname, NULL);
		goto out;
	}
	cluster_name = json_string_value(json_object_get(ctx, "cluster"));
	user_name = json_string_value(json_object_get(ctx, "user"));
	cluster = cluster_name ? named(json_object_get(root, "clusters"), cluster_name, "cluster") : NULL;
	if (!cluster) {
		set_err(err, errlen, rc, "kubeconfig: clusters: no cluster named %s%s", cluster_name, NULL);
		goto out;
	}
	user = user_name ? named(json_object_get(root, "users"), user_name, "user") : NULL;
	s = json_string_value(json_object_get(cluster, "server"));
	if (!s || strncmp(s, "https://", 8) != 0) {
		set_err(err, errlen, rc, "kubeconfig: clusters[%s].cluster.server must be an https:// URL%s",
			cluster_name, NULL);
		goto out;
	}
	if (json_is_true(json_object_get(cluster, "insecure-skip-tls-verify"))) {
		set_err(err, errlen, rc,
			"kubeconfig: clusters[%s].cluster.insecure-skip-tls-verify is refused: the server "
			"certificate is always verified%s",
			cluster_name, NULL);
		goto out;
	}
	c->server = strdup(s);
	s = json_string_value(json_object_get(ctx, "namespace"));
	c->namespace_ = strdup(s ? s : "default");
	if (!c->server || !c->namespace_) {
		rc = -ENOMEM;
		goto out;
	}
	c->server[strcspn(c->server + 8, "/") + 8] = '\0';
	dir = dirname(dup);
	rc = material(cluster, "certificate-authority-data", "certificate-authority", dir, &c->ca_pem, err, errlen);
	if (!rc && user)
		rc = material(user, "client-certificate-data", "client-certificate", dir, &c->cert_pem, err, errlen);
	if (!rc && user)
		rc = material(user, "client-key-data", "client-key", dir, &c->key_pem, err, errlen);
	if (rc)
		goto out;
	if (user && (s = json_string_value(json_object_get(user, "token")))) {
		c->token = strdup(s);
		if (!c->token)
			rc = -ENOMEM;
	}
	if (!rc && user && (s = json_string_value(json_object_get(user, "tokenFile")))) {
		char full[4096];

		snprintf(full, sizeof(full), "%s%s%s", s[0] == '/' ? "" : dir, s[0] == '/' ? "" : "/", s);
		c->token_file = strdup(full);
		if (!c->token_file)
			rc = -ENOMEM;
	}
	if (!rc && !!c->cert_pem != !!c->key_pem)
		rc = set_err(err, errlen, -EINVAL,
			     "kubeconfig: users[%s].user needs both a client certificate and a client key%s", user_name,
			     NULL);
out:
	json_decref(root);
	if (text)
		sodium_memzero(text, strlen(text));
	free(text);
	free(dup);
	return rc;
}

static int load_incluster(struct kc_config *c, const char *dir, char *err, size_t errlen)
{
	const char *host = getenv("KUBERNETES_SERVICE_HOST"), *port = getenv("KUBERNETES_SERVICE_PORT");
	char url[512], path[4096];
	size_t len;
	int rc;

	if (!host || !port)
		return set_err(err, errlen, -ENOENT,
			       "no kubeconfig: pass --kubeconfig, set KUBECONFIG, or run in a cluster "
			       "(KUBERNETES_SERVICE_HOST/PORT)%s%s",
			       NULL, NULL);
	snprintf(url, sizeof(url), strchr(host, ':') ? "https://[%s]:%s" : "https://%s:%s", host, port);
	c->server = strdup(url);
	snprintf(path, sizeof(path), "%s/token", dir);
	c->token_file = strdup(path);
	if (!c->server || !c->token_file)
		return -ENOMEM;
	snprintf(path, sizeof(path), "%s/ca.crt", dir);
	rc = util_read_file(path, 1u << 20, &c->ca_pem, &len);
	if (rc)
		return set_err(err, errlen, rc, "in-cluster: cannot read %s%s", path, NULL);
	snprintf(path, sizeof(path), "%s/namespace", dir);
	if (util_read_file(path, 1024, &c->namespace_, &len) == 0)
		c->namespace_[strcspn(c->namespace_, " \r\n")] = '\0';
	else if (!(c->namespace_ = strdup("default")))
		return -ENOMEM;
	return 0;
}

int kc_config_load(struct kc_config *out, const char *kubeconfig, const char *sa_dir, char *err, size_t errlen)
{
	int rc;

	memset(out, 0, sizeof(*out));
	if (!kubeconfig || !*kubeconfig)
		kubeconfig = getenv("KUBECONFIG");
	if (kubeconfig && *kubeconfig) {
		char first[4096];

		snprintf(first, sizeof(first), "%s", kubeconfig); /* first entry of a KUBECONFIG list */
		first[strcspn(first, ":")] = '\0';
		rc = load_kubeconfig(out, first, err, errlen);
	} else {
		rc = load_incluster(out, sa_dir ? sa_dir : SA_DIR, err, errlen);
	}
	if (rc)
		kc_config_free(out);
	return rc;
}

int kc_new(struct kc_config *cfg, struct kc **out)
{
	struct kc *k = calloc(1, sizeof(*k));

	if (!k)
		return -ENOMEM;
	k->c = *cfg;
	memset(cfg, 0, sizeof(*cfg));
	pthread_mutex_init(&k->lock, NULL);
	if (k->c.token) {
		k->token = strdup(k->c.token);
		if (!k->token) {
			kc_free(k);
			return -ENOMEM;
		}
	}
	*out = k;
	return 0;
}

void kc_free(struct kc *k)
{
	if (!k)
		return;
	if (k->token)
		sodium_memzero(k->token, strlen(k->token));
	free(k->token);
	kc_config_free(&k->c);
	pthread_mutex_destroy(&k->lock);
	free(k);
}

void kc_thread_done(void)
{
	if (tl_curl)
		curl_easy_cleanup(tl_curl);
	tl_curl = NULL;
}

const char *kc_namespace(const struct kc *k)
{
	return k->c.namespace_ ? k->c.namespace_ : "default";
}

const char *kc_meta_str(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(json_object_get(obj, "metadata"), key));
}

/* Re-read the token file when it changed (checked at most every 10 s, or
 * at once when `force`). */
static void token_refresh(struct kc *k, int force)
{
	struct stat st;
	char *t = NULL;
	size_t len;

	if (!k->c.token_file)
		return;
	if (!force && k->token && util_now_ms() - k->token_checked_ms < TOKEN_RECHECK_MS)
		return;
	k->token_checked_ms = util_now_ms();
	if (stat(k->c.token_file, &st) != 0) {
		log_warn("cannot stat the token file", "file", k->c.token_file, "error", strerror(errno));
		return;
	}
	if (k->token && st.st_mtim.tv_sec == k->token_mtime.tv_sec && st.st_mtim.tv_nsec == k->token_mtime.tv_nsec &&
	    !force)
		return;
	if (util_read_file(k->c.token_file, 64u << 10, &t, &len) != 0)
		return;
	t[strcspn(t, "\r\n")] = '\0';
	if (k->token) {
		if (strcmp(k->token, t) != 0)
			log_info("service-account token rotated; using the new one", "file", k->c.token_file);
		sodium_memzero(k->token, strlen(k->token));
		free(k->token);
	}
	k->token = t;
	k->token_mtime = st.st_mtim;
}

/* Build the Authorization header (a secret: freed with memzero). */
static struct curl_slist *auth_headers(struct kc *k, struct curl_slist *h, int force_token)
{
	char line[8192];

	pthread_mutex_lock(&k->lock);
	token_refresh(k, force_token);
	if (k->token) {
		snprintf(line, sizeof(line), "Authorization: Bearer %s", k->token);
		h = curl_slist_append(h, line);
		sodium_memzero(line, sizeof(line));
	}
	pthread_mutex_unlock(&k->lock);
	return h;
}

static CURL *thread_curl(void)
{
	if (!tl_curl)
		tl_curl = curl_easy_init();
	else
		curl_easy_reset(tl_curl);
	return tl_curl;
}

static void set_tls(struct kc *k, CURL *c)
{
	struct curl_blob b;

	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	if (k->c.ca_pem) {
		b = (struct curl_blob){.data = k->c.ca_pem, .len = strlen(k->c.ca_pem), .flags = CURL_BLOB_COPY};
		curl_easy_setopt(c, CURLOPT_CAINFO_BLOB, &b);
	}
	if (k->c.cert_pem && k->c.key_pem) {
		b = (struct curl_blob){.data = k->c.cert_pem, .len = strlen(k->c.cert_pem), .flags = CURL_BLOB_COPY};
		curl_easy_setopt(c, CURLOPT_SSLCERT_BLOB, &b);
		curl_easy_setopt(c, CURLOPT_SSLCERTTYPE, "PEM");
		b = (struct curl_blob){.data = k->c.key_pem, .len = strlen(k->c.key_pem), .flags = CURL_BLOB_COPY};
		curl_easy_setopt(c, CURLOPT_SSLKEY_BLOB, &b);
		curl_easy_setopt(c, CURLOPT_SSLKEYTYPE, "PEM");
	}
}

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
	struct buf *b = ud;

	return buf_append(b, p, sz * n) ? 0 : sz * n;
}

static int map_status(int code, const char *reason)
{
	switch (code) {
	case 404:
		return -ENOENT;
	case 409:
		return strcmp(reason, "AlreadyExists") == 0 ? -EEXIST : -EBUSY;
	case 410:
		return -ESTALE;
	case 401:
	case 403:
		return -EACCES;
	case 400:
	case 422:
		return -EINVAL;
	case 429:
		return -EAGAIN;
	default:
		return code >= 500 ? -EAGAIN : -EPROTO;
	}
}

static void decode_status(int code, const struct buf *body, struct kc_status *st)
{
	json_t *j = body->len ? json_loadb(body->data, body->len, 0, NULL) : NULL;
	const char *reason = json_string_value(json_object_get(j, "reason"));
	const char *msg = json_string_value(json_object_get(j, "message"));

	st->code = code;
	snprintf(st->reason, sizeof(st->reason), "%s", reason ? reason : "");
	if (msg)
		snprintf(st->message, sizeof(st->message), "%s", msg);
	else
		snprintf(st->message, sizeof(st->message), "HTTP %d: %.200s", code, buf_str(body));
	json_decref(j);
}

static void backoff_sleep(int attempt)
{
	unsigned ms = 200u << attempt;

	ms += randombytes_uniform(ms / 2 + 1);
	usleep(ms * 1000);
}

int kc_request(struct kc *k, const char *method, const char *path, const char *content_type, const char *body,
	       size_t len, json_t **out, struct kc_status *st)
{
	struct kc_status dummy;
	char url[8192], ctype[128];
	struct buf resp;
	int rc = -EIO, force_token = 0;

	if (!st)
		st = &dummy;
	memset(st, 0, sizeof(*st));
	if (out)
		*out = NULL;
	if (strlen(k->c.server) + strlen(path) >= sizeof(url))
		return -E2BIG;
	snprintf(url, sizeof(url), "%.1000s%.7000s", k->c.server, path);
	buf_init(&resp, KC_BODY_LIMIT);
	for (int attempt = 0; attempt <= KC_RETRIES; attempt++) {
		CURL *c = thread_curl();
		struct curl_slist *h = NULL;
		CURLcode cc;
		long code = 0;

		if (!c) {
			rc = -ENOMEM;
			break;
		}
		buf_reset(&resp);
		h = curl_slist_append(h, "Accept: application/json");
		if (body) {
			snprintf(ctype, sizeof(ctype), "Content-Type: %s",
				 content_type ? content_type : "application/json");
			h = curl_slist_append(h, ctype);
		}
		h = auth_headers(k, h, force_token);
		curl_easy_setopt(c, CURLOPT_URL, url);
		curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
		curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
		curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 60000L);
		curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
		curl_easy_setopt(c, CURLOPT_WRITEDATA, &resp);
		curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");
		if (body) {
			curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
			curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
		} else if (strcmp(method, "GET") == 0) {
			curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
		}
		set_tls(k, c);
		cc = curl_easy_perform(c);
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
		curl_slist_free_all(h);
		if (cc != CURLE_OK) {
			st->code = 0;
			snprintf(st->reason, sizeof(st->reason), "Transport");
			snprintf(st->message, sizeof(st->message), "%s %s: %s", method, path, curl_easy_strerror(cc));
			rc = cc == CURLE_WRITE_ERROR ? -E2BIG : -EIO;
			if (rc == -E2BIG)
				break;
			if (attempt < KC_RETRIES)
				backoff_sleep(attempt);
			continue;
		}
		if (code >= 200 && code < 300) {
			rc = 0;
			st->code = (int)code; /* 201: the request created the object */
			if (out && resp.len) {
				json_error_t je;

				*out = json_loadb(resp.data, resp.len, 0, &je);
				if (!*out) {
					snprintf(st->message, sizeof(st->message), "%s %s: reply is not JSON: %s",
						 method, path, je.text);
					rc = -EBADMSG;
				}
			}
			break;
		}
		decode_status((int)code, &resp, st);
		rc = map_status((int)code, st->reason);
		if (code == 401 && !force_token && k->c.token_file) {
			force_token = 1; /* the token may have rotated under us */
			continue;
		}
		if (rc != -EAGAIN)
			break;
		if (attempt < KC_RETRIES)
			backoff_sleep(attempt);
	}
	buf_free(&resp);
	return rc;
}

int kc_get(struct kc *k, const char *path, json_t **out, struct kc_status *st)
{
	return kc_request(k, "GET", path, NULL, NULL, 0, out, st);
}

static int send_json(struct kc *k, const char *method, const char *path, const char *ctype, const json_t *obj,
		     json_t **out, struct kc_status *st)
{
	char *body = json_dumps(obj, JSON_COMPACT);
	int rc;

	if (!body)
		return -ENOMEM;
	rc = kc_request(k, method, path, ctype, body, strlen(body), out, st);
	free(body);
	return rc;
}

int kc_create(struct kc *k, const char *path, const json_t *obj, json_t **out, struct kc_status *st)
{
	return send_json(k, "POST", path, "application/json", obj, out, st);
}

int kc_replace(struct kc *k, const char *path, const json_t *obj, json_t **out, struct kc_status *st)
{
	return send_json(k, "PUT", path, "application/json", obj, out, st);
}

int kc_apply(struct kc *k, const char *path, const json_t *obj, json_t **out, struct kc_status *st)
{
	char full[4096];

	snprintf(full, sizeof(full), "%s%cfieldManager=" KC_FIELD_MANAGER "&force=true", path,
		 strchr(path, '?') ? '&' : '?');
	/* JSON is YAML, so the apply-patch+yaml content type takes it as is */
	return send_json(k, "PATCH", full, "application/apply-patch+yaml", obj, out, st);
}

int kc_delete(struct kc *k, const char *path, struct kc_status *st)
{
	return kc_request(k, "DELETE", path, NULL, NULL, 0, NULL, st);
}

int kc_urlenc(struct buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	int rc = 0;

	for (; *s && !rc; s++) {
		unsigned char ch = (unsigned char)*s;

		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
		    strchr("-._~", ch))
			rc = buf_append(b, s, 1);
		else
			rc = buf_printf(b, "%%%c%c", hex[ch >> 4], hex[ch & 15]);
	}
	return rc;
}

int kc_list(struct kc *k, const char *path, const char *label_selector, json_t **items, char rv[64],
	    struct kc_status *st)
{
	json_t *all = json_array(), *page = NULL;
	char cont[4096] = "";
	struct buf url;
	int rc = 0;

	*items = NULL;
	rv[0] = '\0';
	if (!all)
		return -ENOMEM;
	buf_init(&url, 16384);
	do {
		const char *c, *r;

		buf_reset(&url);
		rc = buf_printf(&url, "%s%climit=500", path, strchr(path, '?') ? '&' : '?');
		if (!rc && label_selector) {
			rc = buf_puts(&url, "&labelSelector=");
			if (!rc)
				rc = kc_urlenc(&url, label_selector);
		}
		if (!rc && cont[0]) {
			rc = buf_puts(&url, "&continue=");
			if (!rc)
				rc = kc_urlenc(&url, cont);
		}
		if (!rc)
			rc = kc_get(k, buf_str(&url), &page, st);
		if (rc)
			goto out;
		if (!json_is_array(json_object_get(page, "items"))) {
			rc = -EBADMSG;
			goto out;
		}
		if (json_array_extend(all, json_object_get(page, "items"))) {
			rc = -ENOMEM;
			goto out;
		}
		c = json_string_value(json_object_get(json_object_get(page, "metadata"), "continue"));
		r = json_string_value(json_object_get(json_object_get(page, "metadata"), "resourceVersion"));
		snprintf(cont, sizeof(cont), "%s", c ? c : "");
		if (r)
			snprintf(rv, 64, "%s", r);
		json_decref(page);
		page = NULL;
	} while (cont[0]);
	*items = all;
	all = NULL;
out:
	json_decref(page);
	json_decref(all);
	buf_free(&url);
	return rc;
}

/* --- streaming ---------------------------------------------------------- */

void kc_lines_init(struct kc_lines *l, size_t max_line, kc_line_fn fn, void *ctx)
{
	buf_init(&l->line, max_line + 1);
	l->max_line = max_line;
	l->fn = fn;
	l->ctx = ctx;
}

int kc_lines_feed(struct kc_lines *l, const char *p, size_t n)
{
	size_t off = 0;
	int rc;

	while (off < n) {
		const char *nl = memchr(p + off, '\n', n - off);
		size_t chunk = nl ? (size_t)(nl - (p + off)) : n - off;

		if (l->line.len + chunk > l->max_line)
			return -E2BIG;
		if (buf_append(&l->line, p + off, chunk))
			return -ENOMEM;
		off += chunk;
		if (nl) {
			off++;
			if (l->line.len) {
				rc = l->fn(l->line.data, l->line.len, l->ctx);
				buf_reset(&l->line);
				if (rc)
					return rc;
			}
		}
	}
	return 0;
}

void kc_lines_free(struct kc_lines *l)
{
	buf_free(&l->line);
}

struct stream {
	CURL *c;
	struct kc_lines lines;
	struct buf err; /* body of a non-2xx reply */
	int cb_rc;
	const volatile int *stop;
};

static size_t on_stream(char *p, size_t sz, size_t n, void *ud)
{
	struct stream *s = ud;
	size_t total = sz * n;
	long code = 0;

	curl_easy_getinfo(s->c, CURLINFO_RESPONSE_CODE, &code);
	if (code < 200 || code >= 300)
		return buf_append(&s->err, p, total) ? 0 : total;
	s->cb_rc = kc_lines_feed(&s->lines, p, total);
	return s->cb_rc ? 0 : total;
}

static int on_progress(void *ud, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
	struct stream *s = ud;

	(void)a, (void)b, (void)c, (void)d;
	return s->stop && *s->stop ? 1 : 0;
}

int kc_stream(struct kc *k, const char *path, size_t max_line, kc_line_fn fn, void *ctx, const volatile int *stop,
	      struct kc_status *st)
{
	struct stream s = {.stop = stop};
	struct kc_status dummy;
	struct curl_slist *h = NULL;
	char url[8192];
	CURLcode cc;
	long code = 0;
	int rc;

	if (!st)
		st = &dummy;
	memset(st, 0, sizeof(*st));
	snprintf(url, sizeof(url), "%s%s", k->c.server, path);
	s.c = thread_curl();
	if (!s.c)
		return -ENOMEM;
	kc_lines_init(&s.lines, max_line, fn, ctx);
	buf_init(&s.err, KC_ERR_LIMIT);
	h = curl_slist_append(h, "Accept: application/json");
	h = auth_headers(k, h, 0);
	curl_easy_setopt(s.c, CURLOPT_URL, url);
	curl_easy_setopt(s.c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(s.c, CURLOPT_HTTPGET, 1L);
	curl_easy_setopt(s.c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(s.c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
	/* bookmarks arrive about once a minute: a silent stream is dead */
	curl_easy_setopt(s.c, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(s.c, CURLOPT_LOW_SPEED_TIME, 150L);
	curl_easy_setopt(s.c, CURLOPT_WRITEFUNCTION, on_stream);
	curl_easy_setopt(s.c, CURLOPT_WRITEDATA, &s);
	curl_easy_setopt(s.c, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(s.c, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(s.c, CURLOPT_XFERINFODATA, &s);
	set_tls(k, s.c);
	cc = curl_easy_perform(s.c);
	curl_easy_getinfo(s.c, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_setopt(s.c, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(h);
	if (s.cb_rc) {
		rc = s.cb_rc;
	} else if (cc == CURLE_ABORTED_BY_CALLBACK) {
		rc = -ECANCELED;
	} else if (code && (code < 200 || code >= 300)) {
		decode_status((int)code, &s.err, st);
		rc = map_status((int)code, st->reason);
	} else if (cc != CURLE_OK) {
		snprintf(st->reason, sizeof(st->reason), "Transport");
		snprintf(st->message, sizeof(st->message), "watch %s: %s", path, curl_easy_strerror(cc));
		rc = -EIO;
	} else {
		rc = 0;
	}
	kc_lines_free(&s.lines);
	buf_free(&s.err);
	return rc;
}
