/*
 * le: Lease-based leader election (see le.h).
 */
#include "le.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "switchboard/log.h"
#include "switchboard/util.h"

struct le {
	struct kc *k;
	char *ns, *name, *id;
	int lease_s, renew_s, retry_s;
	void (*on_change)(int, void *);
	void *ctx;
	pthread_t thread;
	volatile int stop;
	atomic_int leader;
	int64_t last_renew_ms; /* monotonic, of our last successful renewal */
	char seen_record[512]; /* holder + renewTime as last observed */
	int64_t seen_at_ms;    /* monotonic time it last changed */
};

static int64_t mono_ms(void)
{
	return (int64_t)(util_mono_ns() / 1000000u);
}

/* MicroTime: RFC 3339 with exactly six fractional digits. */
static void micro_now(char out[64])
{
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	snprintf(out, 64, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
		 tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ts.tv_nsec / 1000));
}

static void set_leader(struct le *e, int v)
{
	if (atomic_exchange(&e->leader, v) != v) {
		log_info(v ? "became the leader" : "lost leadership", "lease", e->name, "identity", e->id);
		if (e->on_change)
			e->on_change(v, e->ctx);
	}
}

static json_t *lease_spec(const char *holder, int duration, json_int_t transitions, const char *acquire)
{
	char now[64];

	micro_now(now);
	return json_pack("{s:s?,s:i,s:s,s:s,s:I}", "holderIdentity", holder, "leaseDurationSeconds", duration,
			 "acquireTime", acquire ? acquire : now, "renewTime", now, "leaseTransitions", transitions);
}

/* One round: returns 1 when we hold the Lease afterwards, 0 when someone
 * else does, -errno on API trouble. */
static int try_acquire(struct le *e)
{
	char path[512], record[512], prev_holder[256];
	struct kc_status st;
	json_t *lease = NULL, *spec, *nspec = NULL, *out = NULL;
	const char *holder, *renew, *acquire;
	json_int_t transitions, dur;
	int rc, mine, expired;

	snprintf(path, sizeof(path), "/apis/coordination.k8s.io/v1/namespaces/%s/leases/%s", e->ns, e->name);
	rc = kc_get(e->k, path, &lease, &st);
	if (rc == -ENOENT) {
		json_t *obj = json_pack("{s:s,s:s,s:{s:s,s:s},s:o}", "apiVersion", "coordination.k8s.io/v1", "kind",
					"Lease", "metadata", "name", e->name, "namespace", e->ns, "spec",
					lease_spec(e->id, e->lease_s, 0, NULL));

		snprintf(path, sizeof(path), "/apis/coordination.k8s.io/v1/namespaces/%s/leases", e->ns);
		rc = obj ? kc_create(e->k, path, obj, NULL, &st) : -ENOMEM;
		json_decref(obj);
		return rc == 0 ? 1 : rc == -EEXIST ? 0 : rc;
	}
	if (rc)
		return rc;
	spec = json_object_get(lease, "spec");
	holder = json_string_value(json_object_get(spec, "holderIdentity"));
	renew = json_string_value(json_object_get(spec, "renewTime"));
	acquire = json_string_value(json_object_get(spec, "acquireTime"));
	dur = json_integer_value(json_object_get(spec, "leaseDurationSeconds"));
	transitions = json_integer_value(json_object_get(spec, "leaseTransitions"));
	snprintf(record, sizeof(record), "%s|%s", holder ? holder : "", renew ? renew : "");
	if (strcmp(record, e->seen_record) != 0) {
		snprintf(e->seen_record, sizeof(e->seen_record), "%s", record);
		e->seen_at_ms = mono_ms();
	}
	snprintf(prev_holder, sizeof(prev_holder), "%s", holder ? holder : ""); /* `spec` is replaced below */
	mine = holder && strcmp(holder, e->id) == 0;
	expired = !holder || !*holder || mono_ms() - e->seen_at_ms > (dur > 0 ? dur : e->lease_s) * 1000;
	if (!mine && !expired) {
		rc = 0;
		goto out;
	}
	nspec = lease_spec(e->id, e->lease_s, mine ? transitions : transitions + 1, mine ? acquire : NULL);
	if (!nspec || json_object_set_new(lease, "spec", nspec)) {
		rc = -ENOMEM;
		goto out;
	}
	/* PUT with the resourceVersion we read: a concurrent writer makes it 409 */
	rc = kc_replace(e->k, path, lease, &out, &st);
	if (rc == 0) {
		if (!mine)
			log_info("acquired the lease", "lease", e->name, "previous_holder", prev_holder);
		rc = 1;
	} else if (rc == -EBUSY) {
		rc = 0; /* someone else won this round */
	}
out:
	json_decref(out);
	json_decref(lease);
	return rc;
}

static void release(struct le *e)
{
	char path[512];
	struct kc_status st;
	json_t *lease = NULL, *spec;
	int rc;

	snprintf(path, sizeof(path), "/apis/coordination.k8s.io/v1/namespaces/%s/leases/%s", e->ns, e->name);
	if (kc_get(e->k, path, &lease, &st))
		return;
	spec = json_object_get(lease, "spec");
	if (json_is_object(spec) && json_string_value(json_object_get(spec, "holderIdentity")) &&
	    strcmp(json_string_value(json_object_get(spec, "holderIdentity")), e->id) == 0) {
		json_object_set_new(spec, "holderIdentity", json_string(""));
		json_object_set_new(spec, "leaseDurationSeconds", json_integer(1));
		rc = kc_replace(e->k, path, lease, NULL, &st);
		log_info(rc ? "could not release the lease" : "released the lease", "lease", e->name, "detail",
			 rc ? st.message : NULL);
	}
	json_decref(lease);
}

static void *le_main(void *arg)
{
	struct le *e = arg;

	while (!e->stop) {
		int rc = try_acquire(e);

		if (rc == 1) {
			e->last_renew_ms = mono_ms();
			set_leader(e, 1);
		} else if (rc == 0) {
			set_leader(e, 0);
		} else if (atomic_load(&e->leader) && mono_ms() - e->last_renew_ms > (int64_t)e->renew_s * 1000) {
			log_warn("could not renew the lease within the renew deadline", "lease", e->name);
			set_leader(e, 0);
		}
		for (int t = 0; t < e->retry_s * 10 && !e->stop; t++)
			usleep(100 * 1000);
	}
	if (atomic_load(&e->leader)) {
		release(e);
		atomic_store(&e->leader, 0);
	}
	kc_thread_done();
	return NULL;
}

int le_start(struct kc *k, const struct le_opts *o, struct le **out)
{
	struct le *e = calloc(1, sizeof(*e));
	int rc;

	if (!e)
		return -ENOMEM;
	e->k = k;
	e->ns = strdup(o->ns);
	e->name = strdup(o->name);
	e->id = strdup(o->identity);
	e->lease_s = o->lease_s > 0 ? o->lease_s : 15;
	e->renew_s = o->renew_s > 0 ? o->renew_s : 10;
	e->retry_s = o->retry_s > 0 ? o->retry_s : 2;
	e->on_change = o->on_change;
	e->ctx = o->ctx;
	e->seen_at_ms = mono_ms();
	if (!e->ns || !e->name || !e->id) {
		rc = -ENOMEM;
		goto fail;
	}
	rc = -pthread_create(&e->thread, NULL, le_main, e);
	if (rc)
		goto fail;
	*out = e;
	return 0;
fail:
	free(e->ns);
	free(e->name);
	free(e->id);
	free(e);
	return rc;
}

int le_is_leader(struct le *e)
{
	return e ? atomic_load(&e->leader) : 0;
}

void le_stop(struct le *e)
{
	if (!e)
		return;
	e->stop = 1;
	pthread_join(e->thread, NULL);
	free(e->ns);
	free(e->name);
	free(e->id);
	free(e);
}
