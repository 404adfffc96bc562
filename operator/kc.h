/*
 * kc: a small Kubernetes API client over libcurl and jansson.  It reads a
 * kubeconfig (with libyaml) or the in-cluster service-account files, keeps
 * every piece of TLS material in memory (CURLOPT_*_BLOB), always verifies
 * the server certificate, and re-reads a rotating service-account token.
 * Requests decode error replies into the API's Status object and retry
 * 429, 5xx and transport failures with backoff.  One curl easy handle is
 * cached per thread so connections are reused.
 */
#ifndef SWITCHBOARD_KC_H
#define SWITCHBOARD_KC_H

#include <jansson.h>
#include <stddef.h>

#include "switchboard/buf.h"
#include "switchboard/common.h"

#define KC_FIELD_MANAGER "switchboard-operator"

/* Connection settings, built by kc_config_load(). */
struct kc_config {
	char *server;	  /* https://host:port, no trailing slash */
	char *ca_pem;	  /* verified against; NULL: the system store */
	char *cert_pem;	  /* client certificate, with key_pem */
	char *key_pem;	  /* secret: never logged */
	char *token;	  /* bearer token: secret, never logged */
	char *token_file; /* re-read when it changes (rotation) */
	char *namespace_; /* the context's or service account's namespace */
};

/* An API error, decoded from a Status reply (or made up for transport
 * failures: code 0). */
struct kc_status {
	int code;	 /* HTTP status, also on success (201: created); 0 for transport errors */
	char reason[64]; /* NotFound, Conflict, AlreadyExists, Forbidden, Expired, ... */
	char message[512];
};

struct kc;

/* Load settings.  `kubeconfig` (borrowed) may be NULL: then $KUBECONFIG,
 * then in-cluster from $KUBERNETES_SERVICE_HOST/PORT and the files in
 * `sa_dir` (NULL: /var/run/secrets/kubernetes.io/serviceaccount).  On
 * failure returns -errno and writes a message naming the field into `err`.
 * The caller frees `out` with kc_config_free().  Thread-safe. */
int kc_config_load(struct kc_config *out, const char *kubeconfig, const char *sa_dir, char *err,
		   size_t errlen) SB_MUST_CHECK;
void kc_config_free(struct kc_config *c);

/* Create a client; takes ownership of `cfg`'s contents (the struct is
 * zeroed).  Returns 0 and stores the client in *out, or -ENOMEM. */
int kc_new(struct kc_config *cfg, struct kc **out) SB_MUST_CHECK;
void kc_free(struct kc *k);

/* Free the calling thread's cached curl handle; call before a thread that
 * used the client exits.  Thread-safe. */
void kc_thread_done(void);

/* Namespace of the kubeconfig context or service account ("default"). */
const char *kc_namespace(const struct kc *k);

/* metadata.<key> of the API object `obj` (borrowed, may be NULL) when it is
 * a string, else NULL.  The result is borrowed from `obj`.  Thread-safe. */
const char *kc_meta_str(const json_t *obj, const char *key);

/* One request.  `path` starts with "/" and includes the query string;
 * `body` (borrowed, may be NULL) is sent with `content_type`.  On a 2xx
 * reply stores the decoded JSON body (a new reference, or NULL for an
 * empty body) in *out when `out` is not NULL and returns 0.  Otherwise
 * fills `st` (may be NULL) and returns -ENOENT (404), -EEXIST (409
 * AlreadyExists), -EBUSY (409 Conflict), -ESTALE (410 Gone), -EACCES (401,
 * 403), -EINVAL (400, 422), -EAGAIN (429/5xx after retries), -EIO
 * (transport, after retries), or -ENOMEM.  429, 5xx and transport errors
 * are retried with exponential backoff up to `KC_RETRIES` times.
 * Thread-safe. */
#define KC_RETRIES 4
int kc_request(struct kc *k, const char *method, const char *path, const char *content_type, const char *body,
	       size_t len, json_t **out, struct kc_status *st) SB_MUST_CHECK;

/* Shorthands over kc_request().  kc_apply() is server-side apply with
 * fieldManager=switchboard-operator and force=true of `obj` (borrowed) to
 * `path` (the object's own URL, or its /status).  kc_list() follows
 * `limit`/`continue` pages and returns one array of items in *items (new
 * reference) and the list's resourceVersion in `rv` (at least 32 bytes). */
int kc_get(struct kc *k, const char *path, json_t **out, struct kc_status *st) SB_MUST_CHECK;
int kc_create(struct kc *k, const char *path, const json_t *obj, json_t **out, struct kc_status *st) SB_MUST_CHECK;
int kc_replace(struct kc *k, const char *path, const json_t *obj, json_t **out, struct kc_status *st) SB_MUST_CHECK;
int kc_apply(struct kc *k, const char *path, const json_t *obj, json_t **out, struct kc_status *st) SB_MUST_CHECK;
int kc_delete(struct kc *k, const char *path, struct kc_status *st) SB_MUST_CHECK;
int kc_list(struct kc *k, const char *path, const char *label_selector, json_t **items, char rv[64],
	    struct kc_status *st) SB_MUST_CHECK;

/* Streaming GET for watches: calls `fn` with each complete line (without
 * the newline; at most `max_line` bytes, longer lines fail the stream
 * with -E2BIG) as it arrives.  A non-zero return from `fn` stops the
 * stream and is returned.  Returns 0 when the server closes the stream,
 * or an error as kc_request() (no retries).  `stop` (may be NULL) is
 * polled about once a second; when it becomes non-zero the stream ends
 * with -ECANCELED.  Thread-safe. */
typedef int (*kc_line_fn)(const char *line, size_t len, void *ctx);
int kc_stream(struct kc *k, const char *path, size_t max_line, kc_line_fn fn, void *ctx, const volatile int *stop,
	      struct kc_status *st) SB_MUST_CHECK;

/* Append `s` percent-encoded for a query string value. */
int kc_urlenc(struct buf *b, const char *s) SB_MUST_CHECK;

#endif
