/*
 * buf: a growable byte buffer with a hard upper bound, in the manner of
 * curl's dynbuf.  Every append either fits under the bound or fails with
 * -E2BIG and leaves the buffer unchanged, so no input can grow memory
 * without limit.  The contents are always NUL-terminated.
 */
#ifndef SWITCHBOARD_BUF_H
#define SWITCHBOARD_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "switchboard/common.h"

struct buf {
	char *data;   /* NUL-terminated; NULL until the first append */
	size_t len;   /* bytes used, excluding the terminator */
	size_t cap;   /* bytes allocated */
	size_t limit; /* largest len allowed */
};

/* Initialise an empty buffer that may hold at most `limit` bytes.
 * Allocates nothing.  Thread-safety: the buffer is not shared. */
void buf_init(struct buf *b, size_t limit);

/* Release the memory; the buffer can be reused after buf_init(). */
void buf_free(struct buf *b);

/* Drop the contents but keep the allocation. */
void buf_reset(struct buf *b);

/* Append `n` bytes from `p` (borrowed).  Returns 0, -E2BIG past the
 * limit, or -ENOMEM. */
int buf_append(struct buf *b, const void *p, size_t n) SB_MUST_CHECK;

/* Append a NUL-terminated string (borrowed). Same returns as buf_append. */
int buf_puts(struct buf *b, const char *s) SB_MUST_CHECK;

/* Append formatted text.  Same returns as buf_append, -EINVAL on a bad
 * format. */
int buf_printf(struct buf *b, const char *fmt, ...) SB_PRINTF(2, 3) SB_MUST_CHECK;

/* va_list form of buf_printf. */
int buf_vprintf(struct buf *b, const char *fmt, va_list ap) SB_MUST_CHECK;

/* Append `s` as a JSON string literal, quotes included, escaping control
 * characters, quotes and backslashes.  `s` must be valid UTF-8. */
int buf_json_str(struct buf *b, const char *s) SB_MUST_CHECK;

/* Append `v` in decimal (a hot-path replacement for buf_printf("%llu")).
 * Returns 0 or -E2BIG/-ENOMEM as buf_append(). */
int buf_put_u64(struct buf *b, uint64_t v) SB_MUST_CHECK;

/* Return the contents (never NULL: "" when empty). */
const char *buf_str(const struct buf *b);

/* Hand the allocation to the caller, who frees it with free(); the buffer
 * is left empty.  Returns NULL only on allocation failure. */
char *buf_steal(struct buf *b);

#endif
