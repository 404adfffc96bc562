/*
 * rtfx: the routing core over a real store in a temporary directory, for
 * the unit tests of router/rt*.c (test_rt.c, test_task.c).  fx_alloc()
 * parses a config into a new fixture; fx_start() opens the store and starts
 * the core, fx_stop() stops it (start it again over the same database to
 * test recovery); fx_free_dir() removes the directory and frees the fixture.
 * Each test file includes it once; failures end the test (cmocka asserts).
 */
#ifndef SWITCHBOARD_TESTS_RTFX_H
#define SWITCHBOARD_TESTS_RTFX_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt.h"

struct fx {
	char dir[64];
	char db[128];
	struct cfg cfg;
	struct rmet met;
	struct store *st;
	struct rt *rt;
};

static inline void fx_start(struct fx *f)
{
	assert_int_equal(rmet_init(&f->met), 0);
	assert_int_equal(store_open(f->db, 1, 1000, &f->st), 0);
	assert_int_equal(rt_new(&f->cfg, f->st, &f->met, &f->rt), 0);
	assert_int_equal(rt_start(f->rt), 0);
}

static inline void fx_stop(struct fx *f)
{
	rt_stop(f->rt);
	store_close(f->st);
	rt_free(f->rt);
	rmet_free(&f->met);
}

/* A fixture for the config `yaml` (borrowed) in a new directory
 * /tmp/<tag>.XXXXXX, database r.db; not started. */
static inline struct fx *fx_alloc(const char *yaml, const char *tag)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct cfg_report r;

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/%s.XXXXXX", tag);
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->db, sizeof(f->db), "%s/r.db", f->dir);
	cfg_report_init(&r);
	assert_int_equal(cfg_parse(&f->cfg, yaml, strlen(yaml), &r), 0);
	cfg_report_free(&r);
	return f;
}

/* Submit one message from "a" to `to` with id `id`, conversation `conv`
 * (NULL: none) and the members of its delivery object `delivery` (NULL:
 * none).  Returns the item status; *dup (may be NULL) says whether it was a
 * duplicate. */
static inline int fx_send(struct fx *f, const char *to, const char *id, const char *conv, const char *delivery,
			  int *dup)
{
	char json[512];
	struct rt_item it = {0};
	struct msg_err e;
	int rc;

	snprintf(json, sizeof(json),
		 "{\"performative\":\"inform\",\"sender\":\"a\",\"receiver\":\"%s\",\"content\":\"x\","
		 "\"message_id\":\"%s\"%s%s%s,\"delivery\":{%s}}",
		 to, id, conv ? ",\"conversation_id\":\"" : "", conv ? conv : "", conv ? "\"" : "",
		 delivery ? delivery : "");
	assert_int_equal(msg_parse(json, strlen(json), 1024, &it.m, &e), 0);
	assert_int_equal(rt_submit(f->rt, &it, 1), 0);
	rc = it.status;
	if (dup)
		*dup = it.duplicate;
	msg_free(&it.m);
	return rc;
}

/* Free a stopped fixture: its config, its directory, itself. */
static inline void fx_free_dir(struct fx *f)
{
	char cmd[128];

	cfg_free(&f->cfg);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
}

#endif
