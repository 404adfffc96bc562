/*
 * fuzz: what every libFuzzer target under tests/fuzz shares.  FZ_CHECK
 * states an invariant of the code under test: when it does not hold the
 * target prints the condition and aborts, so libFuzzer records the input
 * as a crash just as it does for a sanitizer report.  fz_cstr() copies the
 * fuzzer's bytes into a NUL-terminated heap string for APIs that take C
 * strings.
 */
#ifndef SWITCHBOARD_FUZZ_H
#define SWITCHBOARD_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FZ_CHECK(cond)                                                                                                 \
	do {                                                                                                           \
		if (!(cond)) {                                                                                         \
			fprintf(stderr, "fuzz: invariant broken: %s (%s:%d)\n", #cond, __FILE__, __LINE__);            \
			abort();                                                                                       \
		}                                                                                                      \
	} while (0)

/* The libFuzzer entry points (declared here for -Wmissing-prototypes). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* `n` bytes at `p` as a NUL-terminated heap string (embedded NULs kept),
 * or NULL when memory runs out. */
static inline char *fz_cstr(const uint8_t *p, size_t n)
{
	char *s = malloc(n + 1);

	if (!s)
		return NULL;
	if (n)
		memcpy(s, p, n);
	s[n] = '\0';
	return s;
}

/* Split the input at the first occurrence of `sep` (a byte): *a gets the
 * part before it, *b the part after it (empty without a separator). */
static inline void fz_split(const uint8_t *p, size_t n, uint8_t sep, const uint8_t **a, size_t *alen, const uint8_t **b,
			    size_t *blen)
{
	const uint8_t *at = n ? memchr(p, sep, n) : NULL;

	*a = p;
	*alen = at ? (size_t)(at - p) : n;
	*b = at ? at + 1 : p + n;
	*blen = at ? n - *alen - 1 : 0;
}

#endif
