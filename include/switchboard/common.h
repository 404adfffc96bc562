/*
 * Common macros shared by every Switchboard module: the warn_unused_result
 * marker that every fallible function carries, array sizing, and branch
 * hints.  It has no state and no dependencies beyond the C library.
 */
#ifndef SWITCHBOARD_COMMON_H
#define SWITCHBOARD_COMMON_H

#include <stddef.h>

#define SB_MUST_CHECK	 __attribute__((warn_unused_result))
#define SB_UNUSED	 __attribute__((unused))
#define SB_PRINTF(a, b)	 __attribute__((format(printf, a, b)))
#define SB_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define SB_LIKELY(x)	 __builtin_expect(!!(x), 1)
#define SB_UNLIKELY(x)	 __builtin_expect(!!(x), 0)

#ifndef SB_VERSION
#define SB_VERSION "0.1.0-dev"
#endif

#endif
