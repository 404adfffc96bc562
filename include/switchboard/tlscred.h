/*
 * tlscred: the TLS certificate and key a server presents, reloadable while
 * it runs.  The credential is loaded from two PEM files (a certificate
 * chain and its private key); tlscred_refresh() notices when either file
 * was replaced (a kubelet swapping a Secret volume's symlink, cert-manager
 * renewing, an operator's `mv`) and loads the new pair, so new handshakes
 * present the new certificate while connections already open keep theirs.
 * A pair that does not load (half-written, mismatched key, not PEM) never
 * replaces a good one: the old certificate stays in service and the
 * failure is counted and logged.
 *
 * libmicrohttpd asks for the certificate through a GnuTLS callback that
 * carries no user pointer, so one credential per process is active at a
 * time (tlscred_activate()); every TLS port of the process presents it.
 */
#ifndef SWITCHBOARD_TLSCRED_H
#define SWITCHBOARD_TLSCRED_H

#include <stdint.h>

#include "switchboard/common.h"

struct tlscred;

/* What tlscred_stats() reports. */
struct tlscred_stats {
	uint64_t loaded;   /* pairs put in service, the first one included */
	uint64_t rejected; /* replaced files that did not load */
	int64_t not_after; /* the active certificate's expiry, seconds since the epoch */
	char sha256[65];   /* of the active certificate file's bytes */
};

/* Load `cert_path` and `key_path` (borrowed; copied) into a new credential
 * in *out.  Returns 0; -ENOENT/-EACCES/-EFBIG for a file that cannot be read,
 * -EINVAL for content that is not a PEM certificate and a matching key (a
 * reason in `err`, which may be NULL).  Free with tlscred_free(). */
int tlscred_new(const char *cert_path, const char *key_path, char *err, size_t errlen,
		struct tlscred **out) SB_MUST_CHECK;

/* Make `tc` (borrowed until tlscred_activate(NULL)) the credential every
 * TLS handshake of the process presents.  Thread-safe. */
void tlscred_activate(struct tlscred *tc);

/* The GnuTLS certificate-retrieve callback (gnutls_certificate_retrieve_function2)
 * that presents the active credential, for MHD_OPTION_HTTPS_CERT_CALLBACK. */
void *tlscred_mhd_callback(void);

/* Look at the files again: when either changed (inode, size or mtime) and
 * the pair loads, put it in service.  Returns 1 when a new pair is in
 * service, 0 when nothing changed, -EINVAL (or -errno) when the files
 * changed but do not load (the old pair stays; the failure is logged once
 * per distinct content).  Thread-safe. */
int tlscred_refresh(struct tlscred *tc) SB_MUST_CHECK;

/* Switch to other files now (a hot config change of the paths).  Returns
 * 0 when the new pair is in service, or an error as tlscred_new() with the
 * old pair still in service.  Thread-safe. */
int tlscred_set_paths(struct tlscred *tc, const char *cert_path, const char *key_path, char *err,
		      size_t errlen) SB_MUST_CHECK;

/* Call tlscred_refresh() every `interval_ms` on a thread of its own until
 * tlscred_free().  Returns 0 or -errno. */
int tlscred_watch(struct tlscred *tc, int interval_ms) SB_MUST_CHECK;

/* A snapshot of the counters and the active certificate.  Thread-safe. */
void tlscred_stats(struct tlscred *tc, struct tlscred_stats *out);

/* Stop the watcher and free every pair, the retired ones included.  The
 * credential must not be active (tlscred_activate(NULL) first) and no
 * server may still use it.  NULL is a no-op. */
void tlscred_free(struct tlscred *tc);

#endif
