/*
 * fuzz_cfg: hostile router config documents (lib/cfg*.c, lib/yjson.c).  The
 * input is a YAML or JSON document (or gzip of one), then optionally a NUL
 * byte and newline-separated `--set key=value` assignments that become the
 * overlay.  The document goes through cfg_parse_doc() -> cfg_validate() ->
 * cfg_diff() against its profile's defaults -> cfg_restart_hash().  Checks:
 * a refusal is always reported; the document hash is the SHA-256 of the
 * bytes; validate's count matches its report; a config does not differ from
 * itself or its copy; the diff's restart flag agrees with the restart hash;
 * and the effective config printed as JSON and as YAML parses back to the
 * same config (what --print-config shows can be loaded again).
 */
#include <errno.h>
#include <jansson.h>
#include <string.h>

#include "fuzz.h"
#include "switchboard/buf.h"
#include "switchboard/cfg.h"
#include "switchboard/gz.h"
#include "switchboard/log.h"
#include "switchboard/util.h"

#define MAX_SETS 16

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	FZ_CHECK(util_init() == 0);
	log_set_level(LOG_ERROR);
	return 0;
}

/* The overlay of the `\n`-separated assignments in `sets` (modified). */
static json_t *overlay_from(char *sets)
{
	json_t *ov = json_object();
	char *save = NULL;
	int n = 0;

	if (!ov)
		return NULL;
	for (char *a = strtok_r(sets, "\n", &save); a && n < MAX_SETS; a = strtok_r(NULL, "\n", &save), n++) {
		int rc = cfg_overlay_set(ov, a);

		FZ_CHECK(rc == 0 || rc == -EINVAL || rc == -ENOMEM);
		FZ_CHECK(json_is_object(ov));
	}
	return ov;
}

static void hash_of(const struct cfg *c, char h[65], char rh[65])
{
	FZ_CHECK(cfg_hash(c, h) == 0);
	FZ_CHECK(cfg_restart_hash(c, rh) == 0);
	FZ_CHECK(strlen(h) == 64 && util_is_lower_hex(h, 64));
}

/* `text` must parse back to a config with hashes `h` and `rh`. */
static void check_reparse(const char *what, const char *text, size_t len, const char h[65], const char rh[65])
{
	struct cfg_report r;
	struct cfg back;
	char h2[65], rh2[65];
	int rc;

	cfg_report_init(&r);
	rc = cfg_parse(&back, text, len, &r);
	if (rc) {
		struct buf t;

		buf_init(&t, 1u << 20);
		if (cfg_report_text(&r, &t) == 0)
			fprintf(stderr, "fuzz_cfg: the %s form does not parse:\n%s\n%s\n", what, text, buf_str(&t));
		buf_free(&t);
	}
	FZ_CHECK(rc == 0);
	hash_of(&back, h2, rh2);
	FZ_CHECK(strcmp(h, h2) == 0);
	FZ_CHECK(strcmp(rh, rh2) == 0);
	cfg_free(&back);
	cfg_report_free(&r);
}

static void check_self(const struct cfg *c, const char h[65], const char rh[65])
{
	struct cfg copy;
	struct cfg_diff d;
	json_t *j;
	char *js;
	struct buf y;

	FZ_CHECK(cfg_diff(c, c, &d) == 0);
	FZ_CHECK(d.n == 0 && !d.restart);
	cfg_diff_free(&d);
	if (cfg_copy(&copy, c) == 0) {
		char h2[65], rh2[65];

		hash_of(&copy, h2, rh2);
		FZ_CHECK(strcmp(h, h2) == 0 && strcmp(rh, rh2) == 0);
		FZ_CHECK(cfg_diff(c, &copy, &d) == 0);
		FZ_CHECK(d.n == 0);
		cfg_diff_free(&d);
		cfg_free(&copy);
	}
	j = cfg_to_json(c);
	js = j ? json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(17)) : NULL;
	json_decref(j);
	if (js)
		check_reparse("JSON", js, strlen(js), h, rh);
	free(js);
	buf_init(&y, 64u << 20);
	if (cfg_to_yaml(c, &y) == 0)
		check_reparse("YAML", buf_str(&y), y.len, h, rh);
	buf_free(&y);
}

/* Diff against the profile's defaults; the restart flag must agree with
 * the restart hashes. */
static void check_against_default(const struct cfg *c, const char rh[65])
{
	struct cfg def;
	struct cfg_diff d;
	char dh[65], drh[65];
	int any_restart = 0;

	if (cfg_defaults(&def, c->profile))
		return;
	hash_of(&def, dh, drh);
	FZ_CHECK(cfg_diff(&def, c, &d) == 0);
	for (size_t i = 0; i < d.n; i++) {
		FZ_CHECK(d.items[i].path[0]);
		FZ_CHECK(strncmp(d.items[i].path, "agents[", 7) == 0 ||
			 cfg_reload_class(d.items[i].path) == d.items[i].reload);
		any_restart |= d.items[i].reload == CFG_RELOAD_RESTART;
	}
	FZ_CHECK(d.restart == any_restart);
	FZ_CHECK(d.restart == (strcmp(drh, rh) != 0));
	cfg_diff_free(&d);
	cfg_free(&def);
}

static void run(const char *doc, size_t len, const json_t *overlay)
{
	struct cfg_report r, vr;
	struct cfg c;
	char dh[65] = "", h[65], rh[65];
	size_t errs;
	int rc;

	cfg_report_init(&r);
	rc = cfg_parse_doc(&c, doc, len, overlay, dh, &r);
	if (rc) {
		FZ_CHECK(rc == -EINVAL || rc == -EBADMSG || rc == -E2BIG || rc == -ENOMEM);
		FZ_CHECK(r.errors > 0 || rc == -ENOMEM);
		cfg_report_free(&r);
		return;
	}
	if (!gz_is_gzip(doc, len)) {
		char want[65];

		util_sha256_hex(doc, len, want);
		FZ_CHECK(strcmp(want, dh) == 0);
	}
	cfg_report_init(&vr);
	errs = cfg_validate(&c, 4, &vr);
	FZ_CHECK(errs == vr.errors);
	hash_of(&c, h, rh);
	check_against_default(&c, rh);
	if (errs == 0) /* diffs are taken between valid configs only: duplicate ids match ambiguously */
		check_self(&c, h, rh);
	cfg_report_free(&vr);
	cfg_report_free(&r);
	cfg_free(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *doc, *sets;
	size_t dlen, slen;
	char *docs, *setstr;
	json_t *ov = NULL;

	if (gz_is_gzip(data, size)) { /* a gzip document holds NULs: no overlay */
		doc = data;
		dlen = size;
		sets = data + size;
		slen = 0;
	} else {
		fz_split(data, size, 0, &doc, &dlen, &sets, &slen);
	}
	docs = fz_cstr(doc, dlen);
	setstr = fz_cstr(sets, slen);
	if (docs && setstr) {
		if (slen)
			ov = overlay_from(setstr);
		run(docs, dlen, ov);
	}
	json_decref(ov);
	free(docs);
	free(setstr);
	return 0;
}
