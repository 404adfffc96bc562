/*
 * fuzz_configmap: how the router's config travels in a ConfigMap.  The first
 * input byte picks a mode, the rest is the payload:
 *   0  gzip detection and bounded inflation (lib/gz.c): inflating succeeds
 *      only on gzip, never past the limit, and deflate/inflate round-trips;
 *   1  the payload is a ConfigMap object: rob_configmap_doc() returns 0 with
 *      a NUL-terminated document, -ENOENT, -EBADMSG or -E2BIG, nothing else;
 *   2  the payload is a rendered document: rob_configmap() (gzip into
 *      binaryData past 512 KiB, repeated up to that size with a flag bit)
 *      then rob_configmap_doc() must give back the very same bytes;
 *   3  the YAML<->JSON converter (lib/yjson.c): a tree yj_parse() accepts
 *      must survive yj_emit() and yj_parse() unchanged, and yj_json_span()
 *      stays inside the input.
 */
#include <errno.h>
#include <jansson.h>
#include <sodium.h>
#include <string.h>

#include "fuzz.h"
#include "op.h"
#include "rec_objects.h"
#include "switchboard/buf.h"
#include "switchboard/gz.h"
#include "switchboard/log.h"
#include "switchboard/util.h"
#include "switchboard/yjson.h"

#define INFLATE_LIMIT (1u << 20)

static json_t *owner;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	FZ_CHECK(util_init() == 0);
	log_set_level(LOG_ERROR);
	owner = json_pack("{s:s,s:s,s:{s:s,s:s,s:s}}", "apiVersion", "switchboard.dev/v1alpha1", "kind", "RouterConfig",
			  "metadata", "name", "fz", "namespace", "ns", "uid", "u-1");
	FZ_CHECK(owner);
	return 0;
}

static void mode_gzip(const uint8_t *p, size_t n)
{
	char *out = NULL, *gz = NULL, *back = NULL;
	size_t outlen = 0, gzlen = 0, backlen = 0;
	int rc = gz_inflate(p, n, INFLATE_LIMIT, &out, &outlen);

	FZ_CHECK(rc == 0 || rc == -E2BIG || rc == -EBADMSG || rc == -ENOMEM);
	if (rc) {
		FZ_CHECK(!out);
		return;
	}
	FZ_CHECK(gz_is_gzip(p, n));
	FZ_CHECK(out && outlen <= INFLATE_LIMIT && out[outlen] == '\0');
	if (gz_deflate(out, outlen, &gz, &gzlen) == 0) {
		FZ_CHECK(gz_is_gzip(gz, gzlen));
		FZ_CHECK(gz_inflate(gz, gzlen, INFLATE_LIMIT, &back, &backlen) == 0);
		FZ_CHECK(backlen == outlen && memcmp(back, out, outlen) == 0);
	}
	free(back);
	free(gz);
	free(out);
}

static void mode_doc(const uint8_t *p, size_t n)
{
	json_error_t je;
	json_t *cm = json_loadb((const char *)p, n, JSON_DECODE_ANY, &je);
	char *doc = NULL;
	size_t len = 0;
	int rc;

	if (!cm)
		return;
	rc = rob_configmap_doc(cm, &doc, &len);
	FZ_CHECK(rc == 0 || rc == -ENOENT || rc == -EBADMSG || rc == -E2BIG || rc == -ENOMEM);
	if (rc == 0)
		FZ_CHECK(doc && strlen(doc) <= len && len <= CFG_DOC_LIMIT);
	else
		FZ_CHECK(!doc);
	free(doc);
	json_decref(cm);
}

static void mode_roundtrip(const uint8_t *p, size_t n, int big)
{
	char hash[65], *doc, *back = NULL;
	size_t len = n, backlen = 0;
	json_t *cm;

	if (!util_utf8_valid((const char *)p, n) || memchr(p, '\0', n))
		return; /* a rendered document is UTF-8 JSON text */
	if (big && n)
		len = (OP_GZIP_OVER / n + 1) * n;
	doc = malloc(len + 1);
	if (!doc)
		return;
	for (size_t i = 0; i < len; i += n)
		memcpy(doc + i, p, n);
	doc[len] = '\0';
	util_sha256_hex(doc, len, hash);
	cm = rob_configmap(owner, "config", doc, len, hash, NULL);
	if (cm) {
		FZ_CHECK(rob_configmap_doc(cm, &back, &backlen) == 0);
		FZ_CHECK(backlen == len && memcmp(back, doc, len) == 0);
		FZ_CHECK(!json_object_get(cm, "binaryData") == (len <= OP_GZIP_OVER));
	}
	free(back);
	json_decref(cm);
	free(doc);
}

static void mode_yjson(const uint8_t *p, size_t n)
{
	json_t *tree = NULL, *back = NULL;
	char err[256];
	size_t s, e;
	struct buf y;

	if (yj_json_span((const char *)p, n, &s, &e) == 0)
		FZ_CHECK(s < e && e <= n);
	if (yj_parse((const char *)p, n, &tree, err, sizeof(err)))
		return;
	buf_init(&y, 16u << 20);
	if (yj_emit(tree, n & 1, &y) == 0) {
		int rc = yj_parse(buf_str(&y), y.len, &back, err, sizeof(err));

		if (rc || !json_equal(tree, back))
			fprintf(stderr, "fuzz_configmap: YAML does not round-trip (%s):\n%s\n", rc ? err : "differs",
				buf_str(&y));
		FZ_CHECK(rc == 0 && json_equal(tree, back));
	}
	buf_free(&y);
	json_decref(back);
	json_decref(tree);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	switch (data[0] & 3) {
	case 0:
		mode_gzip(data + 1, size - 1);
		break;
	case 1:
		mode_doc(data + 1, size - 1);
		break;
	case 2:
		mode_roundtrip(data + 1, size - 1, data[0] & 4);
		break;
	default:
		mode_yjson(data + 1, size - 1);
		break;
	}
	return 0;
}
