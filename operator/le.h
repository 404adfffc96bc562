/*
 * le: leader election with a coordination.k8s.io/v1 Lease, as client-go
 * does it: acquire when the Lease is free or its holder has not renewed
 * within the lease duration (measured on our own clock from when we last
 * saw the record change, so clock skew does not matter), renew every retry
 * period, and give up leadership when a renewal has not succeeded within
 * the renew deadline.  Writes use the Lease's resourceVersion, so two
 * candidates can never both win the same round.
 */
#ifndef SWITCHBOARD_LE_H
#define SWITCHBOARD_LE_H

#include "kc.h"
#include "switchboard/common.h"

struct le_opts {
	const char *ns;	      /* Lease namespace */
	const char *name;     /* Lease name */
	const char *identity; /* this candidate, e.g. hostname_pid */
	int lease_s;	      /* 15 */
	int renew_s;	      /* 10 */
	int retry_s;	      /* 2 */
	/* Called from the election thread when leadership is gained (1) or
	 * lost (0).  Borrowed context. */
	void (*on_change)(int leader, void *ctx);
	void *ctx;
};

struct le;

/* Start campaigning on a thread.  Strings are copied.  Returns 0 or
 * -errno. */
int le_start(struct kc *k, const struct le_opts *o, struct le **out) SB_MUST_CHECK;

/* 1 while this process holds the Lease.  Thread-safe. */
int le_is_leader(struct le *e);

/* Stop campaigning; when leading, release the Lease (holder cleared) so
 * another replica takes over at once.  Frees `e`. */
void le_stop(struct le *e);

#endif
