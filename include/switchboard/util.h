/*
 * util: small helpers every module needs: clocks, RFC 3339 timestamps,
 * random identifiers and SHA-256 digests (both from libsodium), and UTF-8
 * validation.  All functions are thread-safe once util_init() has run.
 */
#ifndef SWITCHBOARD_UTIL_H
#define SWITCHBOARD_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "switchboard/common.h"

/* Initialise libsodium.  Call once at start, before threads.  Returns 0 or
 * -EIO. */
int util_init(void) SB_MUST_CHECK;

/* Wall-clock milliseconds since the Unix epoch. */
int64_t util_now_ms(void);

/* Monotonic nanoseconds, for durations. */
uint64_t util_mono_ns(void);

/* The time `ms` milliseconds from now on `clock` (CLOCK_REALTIME or
 * CLOCK_MONOTONIC), for pthread_cond_timedwait and friends. */
struct timespec util_deadline(int clock, int64_t ms);
/* The same, `us` microseconds from now; a negative span means now.  Thread-safe. */
struct timespec util_deadline_us(int clock, int64_t us);

/* Format `ms` (epoch milliseconds) as RFC 3339 UTC with milliseconds into
 * `out` (at least 32 bytes). */
void util_fmt_rfc3339(int64_t ms, char out[32]);

/* Parse an RFC 3339 timestamp into epoch milliseconds.  Returns 0 or
 * -EINVAL. */
int util_parse_rfc3339(const char *s, int64_t *ms) SB_MUST_CHECK;

/* Write a random 128-bit identifier as 32 lowercase hex characters plus
 * NUL into `out`. */
void util_random_id(char out[33]);

/* SHA-256 of `len` bytes at `p` as 64 lowercase hex characters plus NUL. */
void util_sha256_hex(const void *p, size_t len, char out[65]);

/* Return 1 if the `len` bytes at `s` are valid UTF-8 (no overlongs, no
 * surrogates, nothing above U+10FFFF), else 0. */
int util_utf8_valid(const char *s, size_t len);

/* The length (1 to 4) of the valid UTF-8 sequence at `p`, which has `avail`
 * bytes; 0 when it is not one (or `avail` is 0).  Pure, thread-safe. */
size_t util_utf8_next(const unsigned char *p, size_t avail);

/* Return 1 if every character of `s` is a lowercase hex digit and the
 * length is exactly `len`, else 0. */
int util_is_lower_hex(const char *s, size_t len);

/* Read a whole file (at most `limit` bytes) into a NUL-terminated heap
 * string the caller frees.  Returns 0, -E2BIG, or -errno. */
int util_read_file(const char *path, size_t limit, char **out, size_t *len) SB_MUST_CHECK;

#endif
