/*
 * rec_owned: the objects a RouterConfig owns, read, applied and deleted,
 * and the Events of their drift (see rec_owned.h).  Every write is a
 * server-side apply as field manager switchboard-operator, so a field
 * another manager set is taken back and a deleted object is recreated.
 */
#include "rec_owned.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rec_objects.h"
#include "rec_router.h"
#include "rec_status.h"
#include "switchboard/log.h"
#include "switchboard/util.h"

/* 1 when the admin-token Secret `sec` still carries what the operator
 * renders around the token: every label and the ownerReference to `rc`. */
static int admin_secret_intact(const json_t *sec, const json_t *rc, const char *token)
{
	json_t *want = rob_admin_secret(rc, token);
	const json_t *have_md = json_object_get(sec, "metadata"), *wl, *v, *ref;
	const char *k, *uid = kc_meta_str(rc, "uid");
	int ok = want != NULL, owned = 0;
	size_t i;

	wl = json_object_get(json_object_get(want, "metadata"), "labels");
	json_object_foreach ((json_t *)wl, k, v) {
		if (!json_equal(v, json_object_get(json_object_get(have_md, "labels"), k)))
			ok = 0;
	}
	json_array_foreach (json_object_get(have_md, "ownerReferences"), i, ref) {
		if (uid && strcmp(json_string_value(json_object_get(ref, "uid")) ?: "", uid) == 0)
			owned = 1;
	}
	json_decref(want);
	return ok && owned;
}

static int apply_admin_secret(struct op *op, const json_t *rc, const char *path, const char *token) SB_MUST_CHECK;

static int apply_admin_secret(struct op *op, const json_t *rc, const char *path, const char *token)
{
	struct kc_status st;
	json_t *obj = rob_admin_secret(rc, token);
	int r;

	if (!obj)
		return -ENOMEM;
	r = kc_apply(op->k, path, obj, NULL, &st);
	json_decref(obj);
	if (r)
		log_warn("cannot write the admin-token Secret", "name", kc_meta_str(rc, "name"), "detail", st.message);
	return r;
}

int ro_admin_token(struct op *op, const json_t *rc, char token[65])
{
	char path[600];
	struct kc_status st;
	json_t *sec = NULL;
	const char *b64;
	size_t len = 0;
	int r;

	snprintf(path, sizeof(path), "/api/v1/namespaces/%s/secrets/%s-admin", kc_meta_str(rc, "namespace"),
		 kc_meta_str(rc, "name"));
	r = kc_get(op->k, path, &sec, &st);
	b64 = json_string_value(json_object_get(json_object_get(sec, "data"), "token"));
	if (r == 0 && b64 &&
	    sodium_base642bin((unsigned char *)token, 64, b64, strlen(b64), NULL, &len, NULL,
			      sodium_base64_VARIANT_ORIGINAL) == 0 &&
	    len > 0) {
		token[len] = '\0';
		if (!admin_secret_intact(sec, rc, token)) {
			r = apply_admin_secret(op, rc, path, token);
			if (!r)
				rs_note(op, rc, "Warning", "DriftRepaired",
					"Secret %s-admin lost labels or its owner outside the RouterConfig: restored",
					kc_meta_str(rc, "name"));
		}
		json_decref(sec);
		return r;
	}
	json_decref(sec);
	if (r && r != -ENOENT)
		return r;
	util_random_id(token);
	util_random_id(token + 32);
	r = apply_admin_secret(op, rc, path, token);
	if (!r && json_string_value(json_object_get(json_object_get(rc, "status"), "configHash")))
		rs_note(op, rc, "Warning", "DriftRepaired",
			"Secret %s-admin was deleted or emptied outside the RouterConfig: recreated with a new "
			"admin token",
			kc_meta_str(rc, "name"));
	return r;
}

int ro_apply_obj(struct op *op, const char *path, json_t *obj)
{
	struct kc_status st;
	int rc;

	if (!obj)
		return -ENOMEM;
	rc = kc_apply(op->k, path, obj, NULL, &st);
	if (rc)
		log_warn("server-side apply failed", "path", path, "reason", st.reason, "detail", st.message);
	json_decref(obj);
	return rc;
}

int ro_apply_owned(struct op *op, const json_t *rc, int existed_before, const char *path, const char *kind, json_t *obj)
{
	struct kc_status st;
	char name[300];
	int ret;

	if (!obj)
		return -ENOMEM;
	snprintf(name, sizeof(name), "%s", kc_meta_str(obj, "name") ?: "");
	ret = kc_apply(op->k, path, obj, NULL, &st);
	json_decref(obj);
	if (ret) {
		log_warn("server-side apply failed", "path", path, "reason", st.reason, "detail", st.message);
		return ret;
	}
	if (existed_before && st.code == 201)
		rs_note(op, rc, "Warning", "DriftRepaired", "%s %s was deleted outside the RouterConfig: recreated",
			kind, name);
	return 0;
}

/* 1 if a field manager other than ours has set spec.<field> of `obj`. */
static int spec_field_taken(const json_t *obj, const char *field)
{
	char key[64];
	size_t i;
	json_t *mf;

	snprintf(key, sizeof(key), "f:%s", field);
	json_array_foreach (json_object_get(json_object_get(obj, "metadata"), "managedFields"), i, mf) {
		const char *m = json_string_value(json_object_get(mf, "manager"));

		if (m && strcmp(m, KC_FIELD_MANAGER) != 0 &&
		    json_object_get(json_object_get(json_object_get(mf, "fieldsV1"), "f:spec"), key))
			return 1;
	}
	return 0;
}

void ro_note_scale_drift(struct op *op, const json_t *rc, const json_t *sts, json_int_t w)
{
	const json_t *have = json_object_get(json_object_get(sts, "spec"), "replicas");

	if (sts && json_is_integer(have) && json_integer_value(have) != w && spec_field_taken(sts, "replicas"))
		rs_note(op, rc, "Warning", "DriftRepaired",
			"StatefulSet %s was scaled to %lld outside the RouterConfig: restored %lld replicas",
			kc_meta_str(sts, "name"), (long long)json_integer_value(have), (long long)w);
}

int ro_get_opt(struct op *op, const char *path, json_t **out)
{
	struct kc_status st;
	int rc = kc_get(op->k, path, out, &st);

	if (rc == -ENOENT) {
		*out = NULL;
		return 0;
	}
	return rc;
}

const char *ro_template_restart_hash(const json_t *obj)
{
	return json_string_value(json_object_get(
		json_object_get(json_object_get(json_object_get(json_object_get(obj, "spec"), "template"), "metadata"),
				"annotations"),
		"switchboard.dev/restart-hash"));
}

int ro_delete_pods_with(struct op *op, const json_t *rc, const char *restart_hash)
{
	struct rrt_endpoint *eps = calloc(RRT_MAX_ENDPOINTS, sizeof(*eps));
	char path[700];
	struct kc_status st;
	size_t n = 0;
	int ret;

	if (!eps)
		return -ENOMEM;
	ret = rrt_endpoints(op, kc_meta_str(rc, "namespace"), kc_meta_str(rc, "name"), eps, &n);
	for (size_t i = 0; !ret && i < n; i++) {
		if (strcmp(eps[i].restart_hash, restart_hash) != 0)
			continue;
		snprintf(path, sizeof(path), "/api/v1/namespaces/%s/pods/%s", kc_meta_str(rc, "namespace"), eps[i].pod);
		ret = kc_delete(op->k, path, &st);
		if (ret == -ENOENT)
			ret = 0;
	}
	free(eps);
	return ret;
}

int ro_delete_legacy_deployment(struct op *op, const char *ns, const char *name)
{
	char path[700];
	struct kc_status st;
	int ret;

	snprintf(path, sizeof(path), "/apis/apps/v1/namespaces/%s/deployments/%s", ns, name);
	ret = kc_delete(op->k, path, &st);
	if (ret == 0)
		log_info("removed the router Deployment of an earlier version", "namespace", ns, "name", name);
	return ret == -ENOENT ? 0 : ret;
}
