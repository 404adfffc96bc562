/*
 * log: structured JSON-lines logging to stderr.  Each line carries a
 * timestamp, level, component and message plus caller-supplied fields such
 * as message_id, conversation_id, trace_id and agent_id.  Field values whose
 * key names a credential (token, secret, password, authorization) are
 * replaced by "[REDACTED]" so a secret can never reach a log line.
 */
#ifndef SWITCHBOARD_LOG_H
#define SWITCHBOARD_LOG_H

#include "switchboard/common.h"

enum log_level { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3 };

/* Set the component name written on every line (borrowed; must outlive the
 * process's logging).  Not thread-safe: call at start. */
void log_set_component(const char *component);

/* Set the minimum level written.  Thread-safe (atomic). */
void log_set_level(enum log_level level);

/* Parse "debug", "info", "warn" or "error".  Returns 0 or -EINVAL. */
int log_level_parse(const char *s, enum log_level *out) SB_MUST_CHECK;

/* Name of a level ("debug" ...). */
const char *log_level_name(enum log_level level);

/* 1 if `level` would be written.  Thread-safe. */
int log_enabled(enum log_level level);

/* 1 with probability `rate` (0..1); used to sample per-message logs.
 * Thread-safe (thread-local generator). */
int log_sample(double rate);

/*
 * Write one line.  After `msg` come pairs of (const char *key, const char
 * *value) ending with a NULL key.  A NULL value skips the pair.  A key that
 * starts with "n:" writes the value unquoted (it must be a JSON number or
 * boolean); the prefix is stripped.  Lines longer than 16 KiB are cut at a
 * field boundary.  Thread-safe: one write(2) per line.
 */
void log_emit(enum log_level level, const char *msg, ...);

#define log_debug(...) log_emit(LOG_DEBUG, __VA_ARGS__, (const char *)0)
#define log_info(...)  log_emit(LOG_INFO, __VA_ARGS__, (const char *)0)
#define log_warn(...)  log_emit(LOG_WARN, __VA_ARGS__, (const char *)0)
#define log_error(...) log_emit(LOG_ERROR, __VA_ARGS__, (const char *)0)

#endif
