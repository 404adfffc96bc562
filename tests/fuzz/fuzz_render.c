/*
 * fuzz_render: the operator's render from hostile RouterConfig and Agent
 * objects (rr_render_from() in operator/rec_render.c, with no token
 * digests), then the router's parse of what was rendered (cfg_parse_doc()).
 * Input: the RouterConfig as JSON, optionally a NUL byte and a JSON array of
 * Agents.  Objects the API server could not have stored (no name or
 * namespace, names that are not DNS labels/subdomains) are skipped; anything
 * else goes.  Checks: the document is NUL-terminated, hashed as it is, and
 * its Agent verdicts add up; an invalid render says why; and a render the
 * operator calls valid must be accepted by the router as is, sorted, with
 * no validation error and the same config and restart hashes.  A valid
 * render that the router refuses would roll a broken config out: abort().
 */
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <string.h>

#include "fuzz.h"
#include "rec_render.h"
#include "switchboard/buf.h"
#include "switchboard/cfg.h"
#include "switchboard/log.h"
#include "switchboard/util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	FZ_CHECK(util_init() == 0);
	log_set_level(LOG_ERROR);
	return 0;
}

/* A DNS-1123 label (dots = 0) or subdomain (dots = 1) of at most `max`. */
static int dns_ok(const char *s, size_t max, int dots)
{
	size_t n = s ? strlen(s) : 0;

	if (n == 0 || n > max || !isalnum((unsigned char)s[0]) || !isalnum((unsigned char)s[n - 1]))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '-' ||
		      (dots && s[i] == '.')))
			return 0;
	return 1;
}

static int stored_ok(const json_t *obj, size_t max, int dots)
{
	const json_t *md = json_object_get(obj, "metadata");

	return json_is_object(obj) && dns_ok(json_string_value(json_object_get(md, "name")), max, dots) &&
	       dns_ok(json_string_value(json_object_get(md, "namespace")), 63, 0);
}

static void dump_refusal(const struct rr_render *out, const struct cfg_report *r)
{
	struct buf t;

	buf_init(&t, 1u << 20);
	if (cfg_report_text(r, &t) == 0)
		fprintf(stderr, "fuzz_render: the router refuses a valid render:\n%s\n%s\n", out->doc, buf_str(&t));
	buf_free(&t);
}

/* The router's view of a render the operator calls valid. */
static void router_accepts(const struct rr_render *out)
{
	struct cfg_report r;
	struct cfg c;
	char dh[65], h[65], h2[65], rh[65];
	int rc;

	cfg_report_init(&r);
	rc = cfg_parse_doc(&c, out->doc, out->len, NULL, dh, &r);
	if (rc == 0 && cfg_validate(&c, 1, &r) != 0)
		rc = -EINVAL;
	if (rc)
		dump_refusal(out, &r);
	FZ_CHECK(rc == 0 && r.errors == 0);
	FZ_CHECK(strcmp(dh, out->hash) == 0);
	FZ_CHECK(c.agents_sorted);
	FZ_CHECK(c.nagents == out->naccepted);
	FZ_CHECK(cfg_restart_hash(&c, rh) == 0 && strcmp(rh, out->restart_hash) == 0);
	FZ_CHECK(cfg_hash(&c, h) == 0 && cfg_hash(&out->cfg, h2) == 0 && strcmp(h, h2) == 0);
	cfg_free(&c);
	cfg_report_free(&r);
}

static void render(const json_t *rc, const json_t *agents)
{
	struct rr_tokens tok = {NULL, 0};
	struct rr_render out;
	char hash[65];
	int ret = rr_render_from(rc, agents, &tok, 0, &out);

	FZ_CHECK(ret == 0 || ret == -ENOMEM);
	if (ret == 0) {
		FZ_CHECK(out.doc && out.len == strlen(out.doc));
		util_sha256_hex(out.doc, out.len, hash);
		FZ_CHECK(strcmp(hash, out.hash) == 0);
		FZ_CHECK(out.naccepted <= out.nagents && out.nagents <= json_array_size(agents));
		for (size_t i = 0; i < out.nagents; i++)
			FZ_CHECK(out.agents[i].reason[0]);
		if (out.valid)
			router_accepts(&out);
		else
			FZ_CHECK(out.report.errors > 0);
	}
	rr_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *a, *b;
	size_t alen, blen, i;
	json_error_t je;
	json_t *rc, *agents = NULL, *ag;

	fz_split(data, size, 0, &a, &alen, &b, &blen);
	rc = json_loadb((const char *)a, alen, 0, &je);
	agents = blen ? json_loadb((const char *)b, blen, JSON_DECODE_ANY, &je) : json_array();
	if (!stored_ok(rc, 63, 0) || !json_is_array(agents))
		goto out;
	json_array_foreach (agents, i, ag)
		if (!stored_ok(ag, 253, 1))
			goto out;
	render(rc, agents);
out:
	json_decref(agents);
	json_decref(rc);
	return 0;
}
