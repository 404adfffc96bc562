/*
 * Unit tests for the routing core against a real SQLite file: delivery
 * order (priority, FIFO, per-conversation order across nacks), back
 * pressure, deduplication, leases, durability of acks, recovery after a
 * restart, conversations and draining.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rt.h"
#include "rtfx.h"
#include "switchboard/log.h"
#include "switchboard/util.h"

static int setup(void **state)
{
	const char *yaml = "delivery: {leaseTimeoutMs: 200}\nconversation: {timeoutMs: 1000}\n"
			   "performance: {messageTimeoutMs: 1000, processingTimeoutMs: 500}\n"
			   "agents:\n  - {id: a}\n  - {id: b, queueSize: 5}\n  - {id: d, state: Draining}\n";

	*state = fx_alloc(yaml, "sbtest");
	fx_start(*state);
	return 0;
}

static int teardown(void **state)
{
	fx_stop(*state);
	fx_free_dir(*state);
	return 0;
}

/* Submit one message with priority `prio` (NULL: normal); returns the item
 * status. */
static int send_msg(struct fx *f, const char *to, const char *id, const char *conv, const char *prio)
{
	char delivery[64];

	snprintf(delivery, sizeof(delivery), "\"priority\":\"%s\"", prio ? prio : "normal");
	return fx_send(f, to, id, conv, delivery, NULL);
}

/* Pull; returns the message ids, comma-joined, into out. */
static void pull(struct fx *f, const char *agent, size_t max, char *out, size_t outlen)
{
	struct buf b;
	struct rt_err e = {0};
	json_t *o, *msgs, *v;
	size_t i;

	char lease[33];

	buf_init(&b, 1 << 20);
	assert_int_equal(rt_pull(f->rt, agent, NULL, max, 0, NULL, lease, &b, &e), 0);
	o = json_loads(buf_str(&b), 0, NULL);
	assert_non_null(o);
	msgs = json_object_get(o, "messages");
	out[0] = '\0';
	json_array_foreach (msgs, i, v) {
		if (i)
			strncat(out, ",", outlen - strlen(out) - 1);
		strncat(out, json_string_value(json_object_get(v, "message_id")), outlen - strlen(out) - 1);
	}
	json_decref(o);
	buf_free(&b);
}

static void settle(struct fx *f, const char *agent, const char *ids, int ack)
{
	json_t *arr = json_array();
	char tmp[512], *save = NULL, *tok;
	struct buf b;
	struct rt_err e = {0};

	snprintf(tmp, sizeof(tmp), "%s", ids);
	for (tok = strtok_r(tmp, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
		json_array_append_new(arr, json_string(tok));
	buf_init(&b, 4096);
	assert_int_equal(rt_settle(f->rt, agent, NULL, arr, ack, &b, &e), 0);
	buf_free(&b);
	json_decref(arr);
}

static void test_priority_then_fifo(void **state)
{
	struct fx *f = *state;
	char got[512];

	assert_int_equal(send_msg(f, "a", "m1", NULL, "low"), 202);
	assert_int_equal(send_msg(f, "a", "m2", NULL, "normal"), 202);
	assert_int_equal(send_msg(f, "a", "m3", NULL, "critical"), 202);
	assert_int_equal(send_msg(f, "a", "m4", NULL, "normal"), 202);
	pull(f, "a", 10, got, sizeof(got));
	assert_string_equal(got, "m3,m2,m4,m1");
	settle(f, "a", got, 1);
	pull(f, "a", 10, got, sizeof(got));
	assert_string_equal(got, "");
}

static void test_conversation_order_survives_nack(void **state)
{
	struct fx *f = *state;
	char got[512];

	assert_int_equal(send_msg(f, "a", "c1-1", "c1", "low"), 202);
	assert_int_equal(send_msg(f, "a", "c1-2", "c1", "critical"), 202);
	assert_int_equal(send_msg(f, "a", "x", NULL, "high"), 202);
	pull(f, "a", 1, got, sizeof(got));
	assert_string_equal(got, "x"); /* c1's head is low priority */
	pull(f, "a", 1, got, sizeof(got));
	assert_string_equal(got, "c1-1");
	pull(f, "a", 1, got, sizeof(got));
	assert_string_equal(got, ""); /* c1-2 waits behind the in-flight c1-1 */
	settle(f, "a", "c1-1", 0);    /* nack */
	pull(f, "a", 10, got, sizeof(got));
	assert_string_equal(got, "c1-1,c1-2"); /* same lease, in order */
	settle(f, "a", "x,c1-1,c1-2", 1);
}

static void test_back_pressure_and_unknown_and_draining_agents(void **state)
{
	struct fx *f = *state;
	char id[16];

	for (int i = 0; i < 5; i++) {
		snprintf(id, sizeof(id), "b%d", i);
		assert_int_equal(send_msg(f, "b", id, NULL, NULL), 202);
	}
	assert_int_equal(send_msg(f, "b", "b5", NULL, NULL), 429);
	assert_int_equal(send_msg(f, "nobody", "n1", NULL, NULL), 404);
	assert_int_equal(send_msg(f, "d", "d1", NULL, NULL), 409);
}

static void test_duplicate_message_id_stores_nothing_new(void **state)
{
	struct fx *f = *state;
	struct rt_stats s;
	char got[512];

	assert_int_equal(send_msg(f, "a", "dup-1", NULL, NULL), 202);
	assert_int_equal(send_msg(f, "a", "dup-1", NULL, NULL), 202);
	rt_get_stats(f->rt, &s);
	assert_int_equal(s.queued, 1);
	assert_int_equal(met_counter_get(f->met.duplicates), 1);
	pull(f, "a", 10, got, sizeof(got));
	settle(f, "a", got, 1);
	/* still a duplicate after it was consumed, within the window */
	assert_int_equal(send_msg(f, "a", "dup-1", NULL, NULL), 202);
	rt_get_stats(f->rt, &s);
	assert_int_equal(s.queued, 0);
}

static void test_expired_lease_redelivers(void **state)
{
	struct fx *f = *state;
	char got[512], lease[33];
	struct buf b;
	struct rt_err e = {0};

	assert_int_equal(send_msg(f, "a", "l1", NULL, NULL), 202);
	pull(f, "a", 10, got, sizeof(got));
	assert_string_equal(got, "l1");
	usleep(400 * 1000); /* lease is 200 ms; maintenance runs every 50 ms */
	buf_init(&b, 1 << 16);
	assert_int_equal(rt_pull(f->rt, "a", NULL, 10, 0, NULL, lease, &b, &e), 0);
	assert_non_null(strstr(buf_str(&b), "\"attempt\":2"));
	buf_free(&b);
	assert_true(met_counter_get(f->met.lease_expired) >= 1);
	settle(f, "a", "l1", 1);
}

static int gone_after(void *arg)
{
	int *calls = arg;

	return ++*calls >= 2;
}

/* A long poll whose client has gone leases nothing; a lease whose reply
 * did not reach its client is put back at once, the attempt counted. */
static void test_pull_watch_and_release(void **state)
{
	struct fx *f = *state;
	int calls = 0;
	struct rt_watch w = {gone_after, &calls};
	char lease[33], lease2[33];
	struct buf b;
	struct rt_err e = {0};
	uint64_t t0 = util_mono_ns();

	buf_init(&b, 1 << 16);
	/* nothing queued: the wait ends once the client is gone, long before 5 s */
	assert_int_equal(rt_pull(f->rt, "a", NULL, 10, 5000, &w, lease, &b, &e), 0);
	assert_true(util_mono_ns() - t0 < 3000000000ull);
	assert_string_equal(lease, "");
	assert_non_null(strstr(buf_str(&b), "\"lease_id\":null"));
	assert_int_equal(send_msg(f, "a", "r1", NULL, NULL), 202);
	calls = 5; /* gone at once: the queued message stays queued */
	buf_reset(&b);
	assert_int_equal(rt_pull(f->rt, "a", NULL, 10, 0, &w, lease, &b, &e), 0);
	assert_string_equal(lease, "");
	assert_null(strstr(buf_str(&b), "r1"));
	buf_reset(&b);
	assert_int_equal(rt_pull(f->rt, "a", NULL, 10, 0, NULL, lease, &b, &e), 0);
	assert_int_equal(strlen(lease), 32);
	assert_non_null(strstr(buf_str(&b), "\"attempt\":1"));
	assert_int_equal(rt_lease_release(f->rt, lease), 1);
	assert_int_equal(rt_lease_release(f->rt, lease), 0); /* already back */
	buf_reset(&b);
	assert_int_equal(rt_pull(f->rt, "a", NULL, 10, 0, NULL, lease2, &b, &e), 0);
	assert_non_null(strstr(buf_str(&b), "\"attempt\":2"));
	assert_int_equal(met_counter_get(f->met.lease_released), 1);
	buf_free(&b);
	settle(f, "a", "r1", 1);
}

static void test_restart_recovers_unacked_only(void **state)
{
	struct fx *f = *state;
	char got[512];
	struct buf b;
	struct rt_err e = {0};

	assert_int_equal(send_msg(f, "a", "keep-1", "conv-r", NULL), 202);
	assert_int_equal(send_msg(f, "a", "gone-1", NULL, NULL), 202);
	assert_int_equal(send_msg(f, "a", "keep-2", "conv-r", NULL), 202);
	pull(f, "a", 10, got, sizeof(got));
	settle(f, "a", "gone-1", 1);
	fx_stop(f);
	fx_start(f);
	pull(f, "a", 10, got, sizeof(got));
	assert_string_equal(got, "keep-1,keep-2");
	buf_init(&b, 4096);
	assert_int_equal(rt_conversation_json(f->rt, "conv-r", &b, &e), 0);
	assert_non_null(strstr(buf_str(&b), "\"message_count\":2"));
	assert_non_null(strstr(buf_str(&b), "\"participants\":[\"a\"]"));
	buf_free(&b);
	/* the dedup window survives the restart too */
	assert_int_equal(send_msg(f, "a", "gone-1", NULL, NULL), 202);
	assert_int_equal(met_counter_get(f->met.duplicates), 1);
	settle(f, "a", got, 1);
}

static void test_idle_conversation_expires(void **state)
{
	struct fx *f = *state;
	struct buf b;
	struct rt_err e = {0};
	char got[512];

	/* setup() uses the 1 s minimum conversation timeout */
	assert_int_equal(send_msg(f, "a", "e1", "short-lived", NULL), 202);
	buf_init(&b, 4096);
	assert_int_equal(rt_conversation_json(f->rt, "short-lived", &b, &e), 0);
	pull(f, "a", 10, got, sizeof(got));
	settle(f, "a", got, 1);
	usleep(1300 * 1000);
	buf_reset(&b);
	assert_int_equal(rt_conversation_json(f->rt, "short-lived", &b, &e), -EINVAL);
	assert_int_equal(e.status, 404);
	assert_int_equal(met_counter_get(f->met.conv_expired), 1);
	/* and it stays gone after a restart: the row was deleted */
	fx_stop(f);
	fx_start(f);
	assert_int_equal(rt_conversation_json(f->rt, "short-lived", &b, &e), -EINVAL);
	buf_free(&b);
}

static void test_dead_message_lets_its_conversation_move_on(void **state)
{
	struct fx *f = *state;
	/* sent by b: b's failure notice arrives asynchronously and must not
	 * race with what a pulls */
	const char *json = "{\"performative\":\"inform\",\"sender\":\"b\",\"receiver\":\"a\",\"content\":\"x\","
			   "\"message_id\":\"dies\",\"conversation_id\":\"cv\",\"delivery\":{\"max_retries\":0}}";
	struct rt_item it = {0};
	struct msg_err e;
	char got[512];

	assert_int_equal(msg_parse(json, strlen(json), 1024, &it.m, &e), 0);
	assert_int_equal(rt_submit(f->rt, &it, 1), 0);
	assert_int_equal(it.status, 202);
	msg_free(&it.m);
	assert_int_equal(send_msg(f, "a", "next", "cv", NULL), 202);
	pull(f, "a", 10, got, sizeof(got));
	assert_string_equal(got, "dies,next"); /* one lease, in order */
	settle(f, "a", "next", 1);
	settle(f, "a", "dies", 0); /* nack with no retries left: dead */
	pull(f, "a", 10, got, sizeof(got));
	assert_string_equal(got, "");
	assert_int_equal(send_msg(f, "a", "after", "cv", NULL), 202);
	pull(f, "a", 10, got, sizeof(got));
	assert_string_equal(got, "after"); /* the conversation is not stuck */
	settle(f, "a", "after", 1);
	for (int i = 0; i < 40 && store_dl_count(f->st) < 1; i++)
		usleep(50 * 1000);
	assert_int_equal(store_dl_count(f->st), 1);
	/* and its sender hears of it: one FIPA failure */
	got[0] = '\0';
	for (int i = 0; i < 40 && !got[0]; i++) {
		pull(f, "b", 10, got, sizeof(got));
		if (!got[0])
			usleep(50 * 1000);
	}
	assert_true(got[0] && !strchr(got, ','));
}

static void test_draining_rejects_new_messages(void **state)
{
	struct fx *f = *state;

	rt_drain(f->rt);
	assert_int_equal(send_msg(f, "a", "late", NULL, NULL), 503);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_priority_then_fifo, setup, teardown),
		cmocka_unit_test_setup_teardown(test_conversation_order_survives_nack, setup, teardown),
		cmocka_unit_test_setup_teardown(test_back_pressure_and_unknown_and_draining_agents, setup, teardown),
		cmocka_unit_test_setup_teardown(test_duplicate_message_id_stores_nothing_new, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expired_lease_redelivers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pull_watch_and_release, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restart_recovers_unacked_only, setup, teardown),
		cmocka_unit_test_setup_teardown(test_idle_conversation_expires, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dead_message_lets_its_conversation_move_on, setup, teardown),
		cmocka_unit_test_setup_teardown(test_draining_rejects_new_messages, setup, teardown),
	};

	if (util_init())
		return 1;
	log_set_level(LOG_WARN);
	return cmocka_run_group_tests_name("rt", tests, NULL, NULL);
}
