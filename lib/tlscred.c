/*
 * tlscred: a reloadable TLS certificate and key for libmicrohttpd servers.
 * A loaded pair (GnuTLS pcert chain + private key) is published through an
 * atomic pointer that the certificate callback reads on every handshake;
 * a refresh loads the replaced files into a new pair and swaps the pointer.
 * GnuTLS uses the pair only while it writes the server's first flight, so a
 * retired pair is kept TLSCRED_RETIRE_MS (far longer than any handshake:
 * libmicrohttpd drops a connection idle for 120 s) and then freed.  See
 * tlscred.h for the contracts.
 */
#include "switchboard/tlscred.h"

#include <errno.h>
#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "switchboard/log.h"
#include "switchboard/util.h"

#define TLSCRED_MAX_CHAIN  8
#define TLSCRED_FILE_LIMIT (1u << 20)
#define TLSCRED_RETIRE_MS  ((int64_t)10 * 60 * 1000)

/* One certificate chain and its key, as GnuTLS presents them. */
struct pair {
	gnutls_pcert_st pcert[TLSCRED_MAX_CHAIN];
	unsigned npcert;
	gnutls_privkey_t key;
	int64_t not_after;
	char cert_sha[65], key_sha[65];
	int64_t retired_ms;
	struct pair *next; /* on the retired list */
};

/* What stat() said of a file: a change of any of it means "look again". */
struct fid {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtim;
};

struct tlscred {
	pthread_mutex_t lock; /* paths, ids, retired, counters */
	char *cert_path, *key_path;
	struct fid cert_id, key_id;
	_Atomic(struct pair *) cur;
	struct pair *retired;
	uint64_t loaded, rejected;
	pthread_t thread;
	int watching, interval_ms;
	atomic_int stop;
};

static _Atomic(struct tlscred *) active;

static void set_err(char *err, size_t errlen, const char *fmt, const char *a, const char *b)
{
	if (err && errlen)
		snprintf(err, errlen, fmt, a, b);
}

static void pair_free(struct pair *p)
{
	if (!p)
		return;
	for (unsigned i = 0; i < p->npcert; i++)
		gnutls_pcert_deinit(&p->pcert[i]);
	if (p->key)
		gnutls_privkey_deinit(p->key);
	free(p);
}

/* 1 when `key` is the private half of the certificate's public key. */
static int key_matches(const gnutls_pcert_st *leaf, gnutls_privkey_t key)
{
	gnutls_pubkey_t pub = NULL;
	gnutls_datum_t a = {0}, b = {0};
	int same = 0;

	if (gnutls_pubkey_init(&pub) < 0)
		return 0;
	if (gnutls_pubkey_import_privkey(pub, key, 0, 0) == 0 &&
	    gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_DER, &a) == 0 &&
	    gnutls_pubkey_export2(leaf->pubkey, GNUTLS_X509_FMT_DER, &b) == 0)
		same = a.size == b.size && memcmp(a.data, b.data, a.size) == 0;
	gnutls_free(a.data);
	gnutls_free(b.data);
	gnutls_pubkey_deinit(pub);
	return same;
}

static int64_t leaf_not_after(const gnutls_pcert_st *leaf)
{
	gnutls_x509_crt_t crt;
	int64_t t = 0;

	if (gnutls_x509_crt_init(&crt) < 0)
		return 0;
	if (gnutls_x509_crt_import(crt, &leaf->cert, GNUTLS_X509_FMT_DER) == 0)
		t = (int64_t)gnutls_x509_crt_get_expiration_time(crt);
	gnutls_x509_crt_deinit(crt);
	return t;
}

/* Parse PEM text into `p`.  Returns 0 or -EINVAL with a reason in `err`. */
static int pair_parse(struct pair *p, char *cert, size_t clen, char *key, size_t klen, const char *cert_path,
		      const char *key_path, char *err, size_t errlen)
{
	gnutls_datum_t cd = {(unsigned char *)cert, (unsigned)clen}, kd = {(unsigned char *)key, (unsigned)klen};
	int g;

	p->npcert = TLSCRED_MAX_CHAIN;
	g = gnutls_pcert_list_import_x509_raw(p->pcert, &p->npcert, &cd, GNUTLS_X509_FMT_PEM, 0);
	if (g < 0) {
		p->npcert = 0;
		set_err(err, errlen, "certFile %s: %s", cert_path, gnutls_strerror(g));
		return -EINVAL;
	}
	g = gnutls_privkey_init(&p->key);
	if (g == 0)
		g = gnutls_privkey_import_x509_raw(p->key, &kd, GNUTLS_X509_FMT_PEM, NULL, 0);
	if (g < 0) {
		set_err(err, errlen, "keyFile %s: %s", key_path, gnutls_strerror(g));
		return -EINVAL;
	}
	if (!key_matches(&p->pcert[0], p->key)) {
		set_err(err, errlen, "keyFile %s is not the key of certFile %s", key_path, cert_path);
		return -EINVAL;
	}
	p->not_after = leaf_not_after(&p->pcert[0]);
	return 0;
}

/* Read and parse both files into a new pair (*out).  Returns 0 or -errno. */
static int pair_load(const char *cert_path, const char *key_path, char *err, size_t errlen, struct pair **out)
{
	char *cert = NULL, *key = NULL;
	size_t clen = 0, klen = 0;
	struct pair *p = NULL;
	int rc;

	*out = NULL;
	rc = util_read_file(cert_path, TLSCRED_FILE_LIMIT, &cert, &clen);
	if (rc) {
		set_err(err, errlen, "certFile %s: %s", cert_path, strerror(-rc));
		goto out;
	}
	rc = util_read_file(key_path, TLSCRED_FILE_LIMIT, &key, &klen);
	if (rc) {
		set_err(err, errlen, "keyFile %s: %s", key_path, strerror(-rc));
		goto out;
	}
	p = calloc(1, sizeof(*p));
	if (!p) {
		rc = -ENOMEM;
		goto out;
	}
	util_sha256_hex(cert, clen, p->cert_sha);
	util_sha256_hex(key, klen, p->key_sha);
	rc = pair_parse(p, cert, clen, key, klen, cert_path, key_path, err, errlen);
	if (rc)
		goto out;
	*out = p;
	p = NULL;
out:
	if (key)
		explicit_bzero(key, klen);
	free(key);
	free(cert);
	pair_free(p);
	return rc;
}

static int fid_of(const char *path, struct fid *f)
{
	struct stat st;

	memset(f, 0, sizeof(*f));
	if (stat(path, &st) != 0)
		return -errno;
	f->dev = st.st_dev;
	f->ino = st.st_ino;
	f->size = st.st_size;
	f->mtim = st.st_mtim;
	return 0;
}

static int fid_same(const struct fid *a, const struct fid *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size && a->mtim.tv_sec == b->mtim.tv_sec &&
	       a->mtim.tv_nsec == b->mtim.tv_nsec;
}

/* Put `p` in service and retire the pair it replaces; free the pairs
 * retired long enough ago.  tc->lock held. */
static void swap_in(struct tlscred *tc, struct pair *p)
{
	struct pair *old = atomic_exchange(&tc->cur, p), **pp = &tc->retired;
	int64_t now = util_now_ms();

	tc->loaded++;
	if (old) {
		old->retired_ms = now;
		old->next = tc->retired;
		tc->retired = old;
		pp = &old->next;
	}
	while (*pp) {
		struct pair *r = *pp;

		if (now - r->retired_ms >= TLSCRED_RETIRE_MS) {
			*pp = r->next;
			pair_free(r);
		} else {
			pp = &r->next;
		}
	}
}

static int dup_paths(const char *cert_path, const char *key_path, char **cert, char **key)
{
	*cert = strdup(cert_path);
	*key = strdup(key_path);
	if (*cert && *key)
		return 0;
	free(*cert);
	free(*key);
	return -ENOMEM;
}

int tlscred_new(const char *cert_path, const char *key_path, char *err, size_t errlen, struct tlscred **out)
{
	struct tlscred *tc = calloc(1, sizeof(*tc));
	struct pair *p = NULL;
	int rc;

	*out = NULL;
	if (!tc)
		return -ENOMEM;
	rc = dup_paths(cert_path, key_path, &tc->cert_path, &tc->key_path);
	if (rc) {
		free(tc);
		return rc;
	}
	pthread_mutex_init(&tc->lock, NULL);
	if (fid_of(cert_path, &tc->cert_id) || fid_of(key_path, &tc->key_id))
		memset(&tc->cert_id, 0, sizeof(tc->cert_id));
	rc = pair_load(cert_path, key_path, err, errlen, &p);
	if (rc) {
		tlscred_free(tc);
		return rc;
	}
	swap_in(tc, p);
	*out = tc;
	return 0;
}

void tlscred_activate(struct tlscred *tc)
{
	atomic_store(&active, tc);
}

static int retrieve(gnutls_session_t session, const gnutls_datum_t *req_ca_dn, int nreqs,
		    const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length, gnutls_pcert_st **pcert,
		    unsigned int *pcert_length, gnutls_privkey_t *pkey)
{
	struct tlscred *tc = atomic_load(&active);
	struct pair *p = tc ? atomic_load(&tc->cur) : NULL;

	(void)session, (void)req_ca_dn, (void)nreqs, (void)pk_algos, (void)pk_algos_length;
	if (!p)
		return -1; /* the handshake fails; there is nothing to present */
	*pcert = p->pcert;
	*pcert_length = p->npcert;
	*pkey = p->key;
	return 0;
}

void *tlscred_mhd_callback(void)
{
	static gnutls_certificate_retrieve_function2 *const fn = retrieve;

	return (void *)fn;
}

/* Load the pair at the current paths when they changed; tc->lock held. */
static int refresh_locked(struct tlscred *tc, char *err, size_t errlen)
{
	struct fid c, k;
	struct pair *p, *cur;
	int rc;

	if (fid_of(tc->cert_path, &c) || fid_of(tc->key_path, &k))
		return 0; /* mid-swap, or gone: the current pair stays; look again later */
	if (fid_same(&c, &tc->cert_id) && fid_same(&k, &tc->key_id))
		return 0;
	tc->cert_id = c;
	tc->key_id = k;
	rc = pair_load(tc->cert_path, tc->key_path, err, errlen, &p);
	if (rc) {
		tc->rejected++;
		return rc;
	}
	cur = atomic_load(&tc->cur);
	if (cur && strcmp(cur->cert_sha, p->cert_sha) == 0 && strcmp(cur->key_sha, p->key_sha) == 0) {
		pair_free(p); /* touched, or rewritten with the same bytes */
		return 0;
	}
	swap_in(tc, p);
	return 1;
}

int tlscred_refresh(struct tlscred *tc)
{
	char err[512] = "";
	char na[24];
	struct pair *cur;
	int rc;

	pthread_mutex_lock(&tc->lock);
	rc = refresh_locked(tc, err, sizeof(err));
	cur = atomic_load(&tc->cur);
	snprintf(na, sizeof(na), "%lld", (long long)(cur ? cur->not_after : 0));
	if (rc == 1)
		log_info("TLS certificate reloaded", "certFile", tc->cert_path, "sha256", cur->cert_sha, "n:not_after",
			 na);
	else if (rc < 0)
		log_warn("TLS files changed but do not load; the current certificate stays in service", "error", err,
			 "sha256", cur ? cur->cert_sha : "");
	pthread_mutex_unlock(&tc->lock);
	return rc;
}

int tlscred_set_paths(struct tlscred *tc, const char *cert_path, const char *key_path, char *err, size_t errlen)
{
	char *cert = NULL, *key = NULL;
	struct pair *p = NULL;
	struct fid c, k;
	int rc;

	rc = dup_paths(cert_path, key_path, &cert, &key);
	if (rc)
		return rc;
	if (fid_of(cert_path, &c) || fid_of(key_path, &k))
		memset(&c, 0, sizeof(c));
	rc = pair_load(cert_path, key_path, err, errlen, &p);
	if (rc) {
		free(cert);
		free(key);
		return rc;
	}
	pthread_mutex_lock(&tc->lock);
	free(tc->cert_path);
	free(tc->key_path);
	tc->cert_path = cert;
	tc->key_path = key;
	tc->cert_id = c;
	tc->key_id = k;
	swap_in(tc, p);
	log_info("TLS certificate files changed by a config reload", "certFile", cert_path, "sha256", p->cert_sha);
	pthread_mutex_unlock(&tc->lock);
	return 0;
}

static void *watch_main(void *arg)
{
	struct tlscred *tc = arg;

	while (!atomic_load(&tc->stop)) {
		struct timespec ts = {.tv_sec = 0, .tv_nsec = 100 * 1000000L};

		for (int waited = 0; waited < tc->interval_ms && !atomic_load(&tc->stop); waited += 100)
			nanosleep(&ts, NULL);
		if (!atomic_load(&tc->stop) && tlscred_refresh(tc) < 0)
			continue; /* logged; the current pair stays */
	}
	return NULL;
}

int tlscred_watch(struct tlscred *tc, int interval_ms)
{
	int rc;

	tc->interval_ms = interval_ms > 0 ? interval_ms : 1000;
	rc = pthread_create(&tc->thread, NULL, watch_main, tc);
	if (rc)
		return -rc;
	tc->watching = 1;
	return 0;
}

void tlscred_stats(struct tlscred *tc, struct tlscred_stats *out)
{
	struct pair *cur;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&tc->lock);
	cur = atomic_load(&tc->cur);
	out->loaded = tc->loaded;
	out->rejected = tc->rejected;
	if (cur) {
		out->not_after = cur->not_after;
		memcpy(out->sha256, cur->cert_sha, sizeof(out->sha256));
	}
	pthread_mutex_unlock(&tc->lock);
}

void tlscred_free(struct tlscred *tc)
{
	if (!tc)
		return;
	if (tc->watching) {
		atomic_store(&tc->stop, 1);
		pthread_join(tc->thread, NULL);
	}
	pair_free(atomic_load(&tc->cur));
	while (tc->retired) {
		struct pair *r = tc->retired;

		tc->retired = r->next;
		pair_free(r);
	}
	pthread_mutex_destroy(&tc->lock);
	free(tc->cert_path);
	free(tc->key_path);
	free(tc);
}
