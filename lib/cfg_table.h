/*
 * Private to lib/cfg*.c: the schema field table shared by parsing,
 * validation, printing and diffing.  Not installed for other modules.
 */
#ifndef SWITCHBOARD_CFG_TABLE_H
#define SWITCHBOARD_CFG_TABLE_H

#include <stddef.h>

#include "switchboard/cfg.h"

enum cfg_ftype { F_INT, F_BYTES, F_DOUBLE, F_BOOL, F_STR, F_ENUM };

struct cfg_field {
	const char *path;
	size_t off;
	double min, max;
	const char *const *enums; /* F_ENUM: NULL-terminated names */
	int type;		  /* enum cfg_ftype */
	int reload;		  /* enum cfg_reload */
};

extern const struct cfg_field cfg_fields[];
extern const size_t cfg_nfields;
extern const struct cfg_field cfg_agent_fields[];
extern const size_t cfg_agent_nfields;

/* Field access helpers. */
#define CFG_I64(base, f) (*(int64_t *)(void *)((char *)(base) + (f)->off))
#define CFG_DBL(base, f) (*(double *)(void *)((char *)(base) + (f)->off))
#define CFG_INT(base, f) (*(int *)(void *)((char *)(base) + (f)->off))
#define CFG_STR(base, f) (*(char **)(void *)((char *)(base) + (f)->off))

/* Range-check every field of `tab` on `base`, reporting under `prefix`. */
void cfg_check_ranges(const struct cfg_field *tab, size_t n, const void *base, const char *prefix,
		      struct cfg_report *r);

#endif
