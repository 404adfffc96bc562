/*
 * yjson: YAML <-> JSON tree conversion.  YAML is read with libyaml's event
 * parser into a jansson tree using the YAML 1.2 core schema for plain
 * scalars (null, booleans, integers, floats; everything else a string).
 * Aliases, duplicate keys, non-scalar keys and nesting deeper than 64 are
 * rejected, so a hostile document cannot expand or recurse without bound.
 * The emitter writes a jansson tree back as block-style YAML.
 */
#ifndef SWITCHBOARD_YJSON_H
#define SWITCHBOARD_YJSON_H

#include <jansson.h>
#include <stddef.h>

#include "switchboard/buf.h"
#include "switchboard/common.h"

/* Parse `len` bytes of YAML (borrowed).  An empty document yields an empty
 * object.  On success stores a new reference in *out and returns 0.  On
 * failure returns -EINVAL (or -ENOMEM) and writes a message with the line
 * and column into `err` (`errlen` bytes).  Thread-safe. */
int yj_parse(const char *text, size_t len, json_t **out, char *err, size_t errlen) SB_MUST_CHECK;

/* Find the extent of the one JSON value that starts at `p` (after optional
 * white space) within `len` bytes, checking only its structure (strings,
 * escapes, bracket nesting up to 64 deep); the caller validates the value
 * itself with a real parser.  On success stores the offset of the value's
 * first byte in *start and of the byte after it in *end and returns 0;
 * returns -EINVAL when no complete value is there.  Thread-safe. */
int yj_json_span(const char *p, size_t len, size_t *start, size_t *end) SB_MUST_CHECK;

/* Append `root` (borrowed) to `out` as a YAML document.  With `sort_keys`
 * mapping keys are written in byte order, otherwise in insertion order.
 * Returns 0, -E2BIG (buffer bound), -ENOMEM or -EIO.  Thread-safe. */
int yj_emit(const json_t *root, int sort_keys, struct buf *out) SB_MUST_CHECK;

#endif
