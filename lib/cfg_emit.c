/*
 * Output side of the configuration model: the effective config as a JSON
 * tree or YAML, the whole-config and restart-class hashes, and the
 * field-by-field diff that classifies a reload as hot or restart-required.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg_table.h"
#include "switchboard/cfg.h"
#include "switchboard/util.h"
#include "switchboard/yjson.h"

static json_t *field_value(const void *base, const struct cfg_field *f)
{
	switch (f->type) {
	case F_INT:
	case F_BYTES:
		return json_integer(CFG_I64(base, f));
	case F_DOUBLE:
		return json_real(CFG_DBL(base, f));
	case F_BOOL:
		return json_boolean(CFG_INT(base, f));
	case F_STR:
		return json_string(CFG_STR(base, f) ? CFG_STR(base, f) : "");
	case F_ENUM:
		return json_string(f->enums[CFG_INT(base, f)]);
	default:
		return json_null();
	}
}

/* Set `v` (stolen) at dotted `path` inside `root`, creating objects. */
static int set_path(json_t *root, const char *path, json_t *v)
{
	char tmp[160], *save = NULL, *tok, *next;
	json_t *cur = root;

	if (!v)
		return -ENOMEM;
	snprintf(tmp, sizeof(tmp), "%s", path);
	tok = strtok_r(tmp, ".", &save);
	while (tok) {
		next = strtok_r(NULL, ".", &save);
		if (!next)
			return json_object_set_new(cur, tok, v) ? -ENOMEM : 0;
		json_t *child = json_object_get(cur, tok);

		if (!child) {
			child = json_object();
			if (!child || json_object_set_new(cur, tok, child)) {
				json_decref(v);
				return -ENOMEM;
			}
		}
		cur = child;
		tok = next;
	}
	json_decref(v);
	return -EINVAL;
}

static json_t *agent_json(const struct cfg_agent *a)
{
	json_t *o = json_object(), *caps;

	if (!o)
		return NULL;
	for (size_t i = 0; i < cfg_agent_nfields; i++) {
		const struct cfg_field *f = &cfg_agent_fields[i];

		if (f->type == F_STR && !CFG_STR(a, f))
			continue;
		if (set_path(o, f->path, field_value(a, f)))
			goto fail;
	}
	caps = json_array();
	if (!caps || json_object_set_new(o, "capabilities", caps))
		goto fail;
	for (size_t i = 0; i < a->ncaps; i++) {
		json_t *c = json_pack("{s:s}", "name", a->caps[i].name);

		if (!c ||
		    (a->caps[i].description &&
		     json_object_set_new(c, "description", json_string(a->caps[i].description))) ||
		    json_array_append_new(caps, c))
			goto fail;
	}
	return o;
fail:
	json_decref(o);
	return NULL;
}

static json_t *to_json_filtered(const struct cfg *c, int restart_only)
{
	json_t *root = json_object(), *agents;

	if (!root)
		return NULL;
	for (size_t i = 0; i < cfg_nfields; i++) {
		const struct cfg_field *f = &cfg_fields[i];

		if (restart_only && f->reload != CFG_RELOAD_RESTART)
			continue;
		if (set_path(root, f->path, field_value(c, f)))
			goto fail;
	}
	if (restart_only)
		return root;
	agents = json_array();
	if (!agents || json_object_set_new(root, "agents", agents))
		goto fail;
	for (size_t i = 0; i < c->nagents; i++)
		if (json_array_append_new(agents, agent_json(&c->agents[i])))
			goto fail;
	return root;
fail:
	json_decref(root);
	return NULL;
}

json_t *cfg_to_json(const struct cfg *c)
{
	return to_json_filtered(c, 0);
}

int cfg_to_yaml(const struct cfg *c, struct buf *out)
{
	json_t *j = cfg_to_json(c);
	int rc;

	if (!j)
		return -ENOMEM;
	rc = yj_emit(j, 0, out);
	json_decref(j);
	return rc;
}

static int hash_json(json_t *j, char out[65])
{
	char *s;

	if (!j)
		return -ENOMEM;
	s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(17));
	json_decref(j);
	if (!s)
		return -ENOMEM;
	util_sha256_hex(s, strlen(s), out);
	free(s);
	return 0;
}

int cfg_hash(const struct cfg *c, char out[65])
{
	return hash_json(to_json_filtered(c, 0), out);
}

int cfg_restart_hash(const struct cfg *c, char out[65])
{
	return hash_json(to_json_filtered(c, 1), out);
}

/* --- diff --------------------------------------------------------------- */

static int field_equal(const void *a, const void *b, const struct cfg_field *f)
{
	const char *sa, *sb;

	switch (f->type) {
	case F_INT:
	case F_BYTES:
		return CFG_I64(a, f) == CFG_I64(b, f);
	case F_DOUBLE: /* NaN (refused by validation, but parsed) equals itself here */
		return CFG_DBL(a, f) == CFG_DBL(b, f) || (isnan(CFG_DBL(a, f)) && isnan(CFG_DBL(b, f)));
	case F_BOOL:
	case F_ENUM:
		return CFG_INT(a, f) == CFG_INT(b, f);
	case F_STR:
		sa = CFG_STR(a, f) ? CFG_STR(a, f) : "";
		sb = CFG_STR(b, f) ? CFG_STR(b, f) : "";
		return strcmp(sa, sb) == 0;
	default:
		return 1;
	}
}

static int diff_push(struct cfg_diff *d, const char *path, int reload, int grows, int64_t nv)
{
	struct cfg_change *p = realloc(d->items, (d->n + 1) * sizeof(*p));

	if (!p)
		return -ENOMEM;
	d->items = p;
	snprintf(p[d->n].path, sizeof(p[d->n].path), "%s", path);
	p[d->n].reload = reload;
	p[d->n].grows = grows;
	p[d->n].new_value = nv;
	if (reload == CFG_RELOAD_RESTART)
		d->restart = 1;
	d->n++;
	return 0;
}

int cfg_agent_equal(const struct cfg_agent *a, const struct cfg_agent *b)
{
	for (size_t i = 0; i < cfg_agent_nfields; i++)
		if (!field_equal(a, b, &cfg_agent_fields[i]))
			return 0;
	if (a->ncaps != b->ncaps)
		return 0;
	for (size_t i = 0; i < a->ncaps; i++) {
		const char *da = a->caps[i].description ? a->caps[i].description : "";
		const char *db = b->caps[i].description ? b->caps[i].description : "";

		if (strcmp(a->caps[i].name, b->caps[i].name) != 0 || strcmp(da, db) != 0)
			return 0;
	}
	return 1;
}

int cfg_diff(const struct cfg *old, const struct cfg *nw, struct cfg_diff *d)
{
	int rc = 0;

	memset(d, 0, sizeof(*d));
	for (size_t i = 0; !rc && i < cfg_nfields; i++) {
		const struct cfg_field *f = &cfg_fields[i];
		int grows = 0;
		int64_t nv = 0;

		if (field_equal(old, nw, f))
			continue;
		if (f->type == F_INT || f->type == F_BYTES) {
			nv = CFG_I64(nw, f);
			grows = nv > CFG_I64(old, f);
		}
		rc = diff_push(d, f->path, f->reload, grows, nv);
	}
	for (size_t i = 0; !rc && i < nw->nagents; i++) {
		const struct cfg_agent *o = cfg_find_agent(old, nw->agents[i].id);
		char p[300];

		if (o && cfg_agent_equal(o, &nw->agents[i]))
			continue;
		snprintf(p, sizeof(p), "agents[%s]%s", nw->agents[i].id, o ? "" : " (added)");
		rc = diff_push(d, p, CFG_RELOAD_HOT, 0, 0);
	}
	for (size_t i = 0; !rc && i < old->nagents; i++) {
		char p[300];

		if (cfg_find_agent(nw, old->agents[i].id))
			continue;
		snprintf(p, sizeof(p), "agents[%s] (removed)", old->agents[i].id);
		rc = diff_push(d, p, CFG_RELOAD_HOT, 0, 0);
	}
	if (rc)
		cfg_diff_free(d);
	return rc;
}

void cfg_diff_free(struct cfg_diff *d)
{
	free(d->items);
	memset(d, 0, sizeof(*d));
}

/* The code point of the valid UTF-8 sequence of `n` bytes at `p`. */
static unsigned cp_of(const unsigned char *p, size_t n)
{
	static const unsigned char lead_mask[] = {0, 0x7f, 0x1f, 0x0f, 0x07};
	unsigned cp = p[0] & lead_mask[n];

	for (size_t i = 1; i < n; i++)
		cp = (cp << 6) | (p[i] & 0x3f);
	return cp;
}

/* 1 for a code point YAML 1.1 does not take as it is: not printable
 * (U+007F, the C1 controls, U+FFFE, U+FFFF), a line break it would fold
 * (U+0085, U+2028, U+2029), or a byte order mark. */
static int yaml_needs_escape(unsigned cp)
{
	return cp == 0x7f || (cp >= 0x80 && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029 || cp == 0xfeff ||
	       cp == 0xfffe || cp == 0xffff;
}

int cfg_json_for_yaml(char **doc, size_t *len)
{
	const unsigned char *p = (const unsigned char *)*doc, *end = p + *len;
	struct buf out;
	size_t n;
	int rc = 0, changed = 0;

	buf_init(&out, *len * 6 + 1);
	for (; !rc && p < end; p += n) {
		n = util_utf8_next(p, (size_t)(end - p));
		if (n && yaml_needs_escape(cp_of(p, n))) {
			rc = buf_printf(&out, "\\u%04x", cp_of(p, n));
			changed = 1;
			continue;
		}
		n = n ? n : 1; /* not UTF-8: left as it is, the loader says so */
		rc = buf_append(&out, p, n);
	}
	if (rc || !changed) {
		buf_free(&out);
		return rc ? -ENOMEM : 0;
	}
	free(*doc);
	*len = out.len;
	*doc = buf_steal(&out);
	return 0;
}
