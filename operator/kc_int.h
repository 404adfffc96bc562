/*
 * Private to operator/kc*.c (and its tests and fuzz targets): the line
 * framer of kc_stream().  A watch reply arrives in chunks cut wherever the
 * network cut them; the framer joins them into newline-terminated lines,
 * drops empty lines, bounds each line at `max_line` bytes and hands every
 * complete line to the caller's kc_line_fn.  It does no I/O, so it can be
 * tested with any chunking.
 */
#ifndef SWITCHBOARD_KC_INT_H
#define SWITCHBOARD_KC_INT_H

#include <stddef.h>

#include "kc.h"
#include "switchboard/buf.h"
#include "switchboard/common.h"

struct kc_lines {
	struct buf line; /* the incomplete line so far */
	size_t max_line;
	kc_line_fn fn;
	void *ctx;
};

/* Start framing lines of at most `max_line` bytes for `fn` (ctx borrowed).
 * Allocates nothing until the first byte. */
void kc_lines_init(struct kc_lines *l, size_t max_line, kc_line_fn fn, void *ctx);

/* Feed the next `n` bytes of the stream (borrowed).  Calls `fn` with each
 * complete non-empty line, without its newline.  Returns 0, -E2BIG when a
 * line grows past max_line, -ENOMEM, or the first non-zero return of `fn`;
 * after an error the framer must not be fed again. */
int kc_lines_feed(struct kc_lines *l, const char *p, size_t n) SB_MUST_CHECK;

/* Release the incomplete line (a stream that ends without a final newline
 * drops it, as a watch event is always newline-terminated). */
void kc_lines_free(struct kc_lines *l);

#endif
