/*
 * rec_status: what the reconcilers tell the world.  Conditions are built
 * in a `struct rs_cond` and turned into a status.conditions array that
 * keeps each unchanged condition's lastTransitionTime; a status is written
 * with server-side apply to the status subresource only when it differs
 * from the current one; Events (core/v1) are posted about the object and
 * logged.  Used by the RouterConfig reconcile (rec.c), the Agent statuses
 * (rec_agent.c) and the drift reports of the owned objects (rec_owned.c).
 */
#ifndef SWITCHBOARD_REC_STATUS_H
#define SWITCHBOARD_REC_STATUS_H

#include <jansson.h>
#include <stddef.h>

#include "op.h"
#include "switchboard/cfg.h"
#include "switchboard/common.h"

/* One condition of a status, before it becomes JSON.  `type` and `status`
 * point at string literals. */
struct rs_cond {
	const char *type;
	const char *status;
	char reason[64];
	char message[1024];
};

/* Fill `c`: `type` and `status` are borrowed (keep them alive as long as
 * `c`, e.g. literals); `reason` and the formatted message are copied,
 * truncated to fit.  Thread-safe. */
void rs_cond_set(struct rs_cond *c, const char *type, const char *status, const char *reason, const char *fmt, ...)
	SB_PRINTF(5, 6);

/* The current time as metav1.Time (RFC 3339, UTC, whole seconds) into
 * `out`.  Reads the clock.  Thread-safe. */
void rs_now_rfc3339(char out[32]);

/* The `n` conditions `c` (borrowed) as a status.conditions array (new
 * reference, NULL on ENOMEM), each with observedGeneration `gen`; a
 * condition whose status equals the one of its type in `old` (the current
 * status, borrowed, may be NULL) keeps that lastTransitionTime, the others
 * get now.  Reads the clock.  Thread-safe. */
json_t *rs_conditions_json(const json_t *old, const struct rs_cond *c, size_t n, json_int_t gen);

/* Server-side apply `status` to the status subresource of `obj` (borrowed;
 * `resource` is the plural, `kind` the kind of switchboard.dev/v1alpha1),
 * unless it equals obj's current status.  Steals `status` (NULL counts as
 * ENOMEM).  An object that is gone is not an error.  Returns 0 or -errno
 * (logged).  Thread-safe. */
int rs_write_status(struct op *op, const char *resource, const char *kind, const json_t *obj,
		    json_t *status) SB_MUST_CHECK;

/* Post a core/v1 Event about `obj` (borrowed) and log it.  `type` is
 * "Normal" or "Warning".  Returns 0 or an API error (also logged).
 * Thread-safe. */
int rs_event(struct op *op, const json_t *obj, const char *type, const char *reason, const char *fmt, ...)
	SB_PRINTF(5, 6) SB_MUST_CHECK;

/* rs_event() as best effort: a failure is logged and otherwise ignored, so
 * the reconcile goes on.  Thread-safe. */
void rs_note(struct op *op, const json_t *obj, const char *type, const char *reason, const char *fmt, ...)
	SB_PRINTF(5, 6);

/* The condition of `type` in the status.conditions of `obj` (borrowed),
 * borrowed from `obj`, or NULL.  Thread-safe. */
const json_t *rs_find_cond(const json_t *obj, const char *type);

/* A short list of the errors in `r` (borrowed) for a condition message,
 * into `out` (always NUL-terminated, truncated to `outlen`, which must be
 * at least 1).  Thread-safe. */
void rs_report_message(const struct cfg_report *r, char *out, size_t outlen);

#endif
