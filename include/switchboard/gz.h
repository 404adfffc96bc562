/*
 * gz: gzip compression for rendered configs.  The operator gzips a large
 * router config into a ConfigMap's binaryData (a ConfigMap holds at most
 * 1 MiB); the router inflates it again.  Both directions are bounded: an
 * input that would inflate past the caller's limit is refused, so a small
 * hostile file cannot become a large allocation.
 */
#ifndef SWITCHBOARD_GZ_H
#define SWITCHBOARD_GZ_H

#include <stddef.h>

#include "switchboard/common.h"

/* 1 if the `len` bytes at `p` start with the gzip magic number. */
int gz_is_gzip(const void *p, size_t len);

/* Gzip `len` bytes at `p` (borrowed) at the best compression level.  On
 * success stores a heap buffer the caller frees in *out and its length in
 * *outlen and returns 0; returns -ENOMEM or -EIO.  Thread-safe. */
int gz_deflate(const void *p, size_t len, char **out, size_t *outlen) SB_MUST_CHECK;

/* Inflate a gzip stream of `len` bytes at `p` (borrowed) into a
 * NUL-terminated heap buffer of at most `limit` bytes the caller frees.
 * Returns 0, -E2BIG (larger than `limit`), -EBADMSG (not valid gzip,
 * truncated, or trailing garbage) or -ENOMEM.  Thread-safe. */
int gz_inflate(const void *p, size_t len, size_t limit, char **out, size_t *outlen) SB_MUST_CHECK;

#endif
