/*
 * fuzz_watch: the operator's watch-stream line framer (kc_lines_feed() in
 * operator/kc.c, behind kc_stream()) with chunk boundaries chosen by the
 * fuzzer.  Input: one byte picks the line bound, then records of a length
 * byte and that many stream bytes, each record one network chunk.  A
 * reference model frames the concatenated stream in one go; the framer must
 * deliver exactly the model's lines, in order, whatever the chunking: no
 * newline inside a line, no empty line, none longer than the bound, -E2BIG
 * exactly when a line outgrows it, and the callback's stop code returned
 * as is.  Each line is then decoded as a watch event and keyed as the
 * informer does (kc_obj_key()).
 */
#include <errno.h>
#include <jansson.h>
#include <string.h>

#include "fuzz.h"
#include "kc_int.h"
#include "kc_watch.h"

#define STOP_RC 7

struct seen {
	const char *stream; /* the whole stream, for the model */
	size_t len, pos;    /* model position in `stream` */
	size_t max_line;
	size_t lines;
	int expect_rc; /* what the model says the framer returns */
};

/* The model's next line from st->pos: 1 with [*p, *n) set, 0 at the end of
 * the complete lines, -1 when a line outgrows the bound. */
static int model_next(struct seen *st, const char **p, size_t *n)
{
	for (;;) {
		const char *at = st->stream + st->pos;
		const char *nl = memchr(at, '\n', st->len - st->pos);
		size_t len = nl ? (size_t)(nl - at) : st->len - st->pos;

		if (len > st->max_line)
			return -1;
		if (!nl)
			return 0;
		st->pos += len + 1;
		if (len) {
			*p = at;
			*n = len;
			return 1;
		}
	}
}

static void check_event(const char *line, size_t len)
{
	json_error_t je;
	json_t *ev = json_loadb(line, len, 0, &je);
	char key[300];
	int rc;

	if (!ev)
		return;
	rc = kc_obj_key(json_object_get(ev, "object"), key, sizeof(key));
	FZ_CHECK(rc == 0 || rc == -EINVAL);
	if (rc == 0)
		FZ_CHECK(memchr(key, '\0', sizeof(key)) && strchr(key, '/'));
	json_decref(ev);
}

static int on_line(const char *line, size_t len, void *ctx)
{
	struct seen *st = ctx;
	const char *want;
	size_t wlen;

	FZ_CHECK(len > 0 && len <= st->max_line);
	FZ_CHECK(!memchr(line, '\n', len));
	FZ_CHECK(line[len] == '\0');
	FZ_CHECK(model_next(st, &want, &wlen) == 1);
	FZ_CHECK(wlen == len && memcmp(want, line, len) == 0);
	st->lines++;
	check_event(line, len);
	return len == 4 && memcmp(line, "STOP", 4) == 0 ? STOP_RC : 0;
}

/* Gather the chunked records into one stream (the model's view). */
static char *unchunk(const uint8_t *p, size_t n, size_t *len)
{
	char *s = malloc(n + 1);
	size_t i = 0;

	*len = 0;
	if (!s)
		return NULL;
	while (i < n) {
		size_t c = p[i++];

		c = c > n - i ? n - i : c;
		memcpy(s + *len, p + i, c);
		*len += c;
		i += c;
	}
	s[*len] = '\0';
	return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t bounds[] = {8, 64, 4096, 1u << 20};
	struct seen st = {0};
	struct kc_lines l;
	size_t i = 1;
	char *stream;
	int rc = 0;

	if (size < 1)
		return 0;
	st.max_line = bounds[data[0] % 4];
	stream = unchunk(data + 1, size - 1, &st.len);
	if (!stream)
		return 0;
	st.stream = stream;
	kc_lines_init(&l, st.max_line, on_line, &st);
	while (!rc && i < size) {
		size_t c = data[i++];

		c = c > size - i ? size - i : c;
		rc = kc_lines_feed(&l, (const char *)data + i, c);
		i += c;
	}
	if (rc == STOP_RC) {
		FZ_CHECK(st.lines > 0);
	} else {
		const char *p;
		size_t n;
		int m = model_next(&st, &p, &n);

		FZ_CHECK(rc == 0 || rc == -E2BIG);
		FZ_CHECK(rc == -E2BIG ? m == -1 : m == 0);
	}
	kc_lines_free(&l);
	free(stream);
	return 0;
}
