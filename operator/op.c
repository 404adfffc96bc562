/*
 * op: the operator's shared state helpers: finding the informer for a
 * namespace, and the RouterConfig condition table behind the alerting gauge
 * switchboard_operator_routerconfig_condition (see op.h).
 */
#include "op.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

struct op_cond {
	char key[600]; /* ns/name/type */
	char ns[254], name[254], type[32];
	int status; /* 1 True, 0 False, -1 Unknown */
	UT_hash_handle hh;
};

struct kc_informer *op_informer(struct op *op, int kind, const char *ns)
{
	if (op->nns == 0)
		return op->inf[kind][0];
	for (size_t i = 0; i < op->nns; i++)
		if (ns && strcmp(op->namespaces[i], ns) == 0)
			return op->inf[kind][i];
	return NULL;
}

void op_cond_forget(struct op *op, const char *ns, const char *name)
{
	struct op_cond *c, *tmp;

	pthread_mutex_lock(&op->cond_lock);
	HASH_ITER (hh, op->conds, c, tmp) {
		if (strcmp(c->ns, ns) == 0 && strcmp(c->name, name) == 0) {
			HASH_DEL(op->conds, c); /* NOLINT(clang-analyzer-unix.Malloc): uthash resets the head */
			free(c);
		}
	}
	pthread_mutex_unlock(&op->cond_lock);
}

int op_cond_set(struct op *op, const char *ns, const char *name, const char *type, const char *status)
{
	struct op_cond *c;
	char key[600];
	int rc = 0;

	pthread_mutex_lock(&op->cond_lock);
	snprintf(key, sizeof(key), "%.250s/%.250s/%.30s", ns, name, type);
	HASH_FIND_STR(op->conds, key, c);
	if (!c) {
		c = calloc(1, sizeof(*c));
		if (!c) {
			rc = -ENOMEM;
			goto out;
		}
		snprintf(c->key, sizeof(c->key), "%s", key);
		snprintf(c->ns, sizeof(c->ns), "%s", ns);
		snprintf(c->name, sizeof(c->name), "%s", name);
		snprintf(c->type, sizeof(c->type), "%s", type);
		HASH_ADD_STR(op->conds, key, c);
	}
	c->status = strcmp(status, "True") == 0 ? 1 : strcmp(status, "False") == 0 ? 0 : -1;
out:
	pthread_mutex_unlock(&op->cond_lock);
	return rc;
}

int op_collect(struct buf *out, void *arg)
{
	static const char *const st_names[] = {"Unknown", "False", "True"};
	struct op *op = arg;
	struct op_cond *c, *tmp;
	struct buf l;
	int rc;

	met_gauge_set(op->m.queue_depth, (double)wq_len(op->q));
	met_gauge_set(op->m.leader, atomic_load(&op->leader));
	rc = met_write_header(out, "switchboard_operator_routerconfig_condition",
			      "1 for the status each RouterConfig condition has now (True, False or Unknown).",
			      "gauge");
	buf_init(&l, 2048);
	pthread_mutex_lock(&op->cond_lock);
	HASH_ITER (hh, op->conds, c, tmp) {
		for (int s = 0; s < 3 && !rc; s++) {
			buf_reset(&l);
			rc = met_label(&l, "namespace", c->ns);
			if (!rc)
				rc = met_label(&l, "name", c->name);
			if (!rc)
				rc = met_label(&l, "type", c->type);
			if (!rc)
				rc = met_label(&l, "status", st_names[s]);
			if (!rc)
				rc = met_write_sample(out, "switchboard_operator_routerconfig_condition", buf_str(&l),
						      c->status + 1 == s ? 1 : 0);
		}
	}
	pthread_mutex_unlock(&op->cond_lock);
	buf_free(&l);
	return rc;
}

void op_cond_clear(struct op *op)
{
	struct op_cond *c, *tmp;

	pthread_mutex_lock(&op->cond_lock);
	HASH_ITER (hh, op->conds, c, tmp) {
		HASH_DEL(op->conds, c); /* NOLINT(clang-analyzer-unix.Malloc): uthash resets the head */
		free(c);
	}
	pthread_mutex_unlock(&op->cond_lock);
}
