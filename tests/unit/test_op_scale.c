/*
 * Unit tests for the operator's scaling decisions (operator/rec_scale.c):
 * a table of what a reconcile saw and what it must do — which assignment
 * it renders, how many pods the StatefulSet keeps, and whether the leaving
 * pods of a scale-down may go.  Pure functions: no API server, no clock.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "rec_converge.h"
#include "rec_scale.h"

#define MIN 60000 /* one minute, in ms */

/* A leaving pod that answered with nothing left and the new assignment. */
#define EMPTY                                                                                                          \
	{                                                                                                              \
		1, 1, 1, 0, 0, 0                                                                                       \
	}

struct scale_row {
	const char *what;
	struct rsc_obs o;
	struct rsc_pod pods[4]; /* the leaving ordinals, from o.want up */
	size_t npods;
	/* want */
	json_int_t assignment, replicas;
	enum rsc_phase phase;
	size_t queued, unreachable, behind;
	int held_event;
};

static const struct scale_row rows[] = {
	{"first creation", {.want = 3, .assigned = 0, .sts = -1}, {{0}}, 0, 3, 3, RSC_STEADY, 0, 0, 0, 0},
	{"steady", {.want = 3, .assigned = 3, .sts = 3, .ready_wanted = 3}, {{0}}, 0, 3, 3, RSC_STEADY, 0, 0, 0, 0},
	{"an unreadable document counts as the wanted assignment",
	 {.want = 2, .assigned = 0, .sts = 2},
	 {{0}},
	 0,
	 2,
	 2,
	 RSC_STEADY,
	 0,
	 0,
	 0,
	 0},
	{"scale-up: pods first, the assignment waits",
	 {.want = 4, .assigned = 3, .sts = 3, .ready_wanted = 3},
	 {{0}},
	 0,
	 3,
	 4,
	 RSC_SCALING_UP,
	 0,
	 0,
	 0,
	 0},
	{"scale-up: a new pod not Ready yet",
	 {.want = 4, .assigned = 3, .sts = 4, .ready_wanted = 3},
	 {{0}},
	 0,
	 3,
	 4,
	 RSC_SCALING_UP,
	 0,
	 0,
	 0,
	 0},
	{"scale-up: every pod Ready, the assignment follows",
	 {.want = 4, .assigned = 3, .sts = 4, .ready_wanted = 4},
	 {{0}},
	 0,
	 4,
	 4,
	 RSC_STEADY,
	 0,
	 0,
	 0,
	 0},
	{"scale-down: the assignment shrinks first, the pods stay",
	 {.want = 2, .assigned = 4, .sts = 4, .ready_wanted = 2},
	 {{1, 1, 0, 30, 0, 0}, {1, 1, 0, 12, 0, 0}},
	 2,
	 2,
	 4,
	 RSC_DRAINING,
	 42,
	 0,
	 2,
	 0},
	{"scale-down: leaving pods on the new assignment, still handing off",
	 {.want = 2, .assigned = 2, .sts = 4, .ready_wanted = 2},
	 {{1, 1, 1, 7, 0, 1}, EMPTY},
	 2,
	 2,
	 4,
	 RSC_DRAINING,
	 7,
	 0,
	 0,
	 0},
	{"scale-down: a leased message keeps its pod",
	 {.want = 2, .assigned = 2, .sts = 4},
	 {EMPTY, {1, 1, 1, 0, 1, 0}},
	 2,
	 2,
	 4,
	 RSC_DRAINING,
	 0,
	 0,
	 0,
	 0},
	{"scale-down: a handoff in progress keeps its pod",
	 {.want = 2, .assigned = 2, .sts = 4},
	 {{1, 1, 1, 0, 0, 1}, EMPTY},
	 2,
	 2,
	 4,
	 RSC_DRAINING,
	 0,
	 0,
	 0,
	 0},
	{"scale-down: an unreachable pod is never assumed empty",
	 {.want = 2, .assigned = 2, .sts = 4},
	 {EMPTY, {1, 0, 0, 0, 0, 0}},
	 2,
	 2,
	 4,
	 RSC_DRAINING,
	 0,
	 1,
	 0,
	 0},
	{"scale-down: a pod that never ran (a hand scale-up left it Pending) holds nothing",
	 {.want = 2, .assigned = 2, .sts = 4},
	 {EMPTY, {0, 0, 0, 0, 0, 0}},
	 2,
	 2,
	 2,
	 RSC_SCALED_DOWN,
	 0,
	 0,
	 0,
	 0},
	{"scale-down: every leaving pod empty, the StatefulSet shrinks",
	 {.want = 2, .assigned = 2, .sts = 4},
	 {EMPTY, EMPTY},
	 2,
	 2,
	 2,
	 RSC_SCALED_DOWN,
	 0,
	 0,
	 0,
	 0},
	{"scale-down: empty but one leaving pod short of the count",
	 {.want = 2, .assigned = 2, .sts = 4},
	 {EMPTY},
	 1,
	 2,
	 4,
	 RSC_DRAINING,
	 0,
	 0,
	 0,
	 0},
	{"scale-down: past the deadline, held and reported once",
	 {.want = 2,
	  .assigned = 2,
	  .sts = 3,
	  .now_ms = 20 * MIN,
	  .draining_since_ms = 5 * MIN,
	  .deadline_ms = 10 * MIN},
	 {{1, 1, 1, 5, 0, 0}},
	 1,
	 2,
	 3,
	 RSC_HELD,
	 5,
	 0,
	 0,
	 1},
	{"scale-down: still held, no second Event",
	 {.want = 2,
	  .assigned = 2,
	  .sts = 3,
	  .now_ms = 21 * MIN,
	  .draining_since_ms = 5 * MIN,
	  .deadline_ms = 10 * MIN,
	  .was_held = 1},
	 {{1, 1, 1, 5, 0, 0}},
	 1,
	 2,
	 3,
	 RSC_HELD,
	 5,
	 0,
	 0,
	 0},
	{"scale-down: within the deadline",
	 {.want = 2,
	  .assigned = 2,
	  .sts = 3,
	  .now_ms = 14 * MIN,
	  .draining_since_ms = 5 * MIN,
	  .deadline_ms = 10 * MIN},
	 {{1, 1, 1, 5, 0, 0}},
	 1,
	 2,
	 3,
	 RSC_DRAINING,
	 5,
	 0,
	 0,
	 0},
	{"scale-down: the skip annotation lets a held pod go",
	 {.want = 2, .assigned = 2, .sts = 3, .skip_check = 1},
	 {{1, 0, 0, 0, 0, 0}},
	 1,
	 2,
	 2,
	 RSC_SCALED_DOWN,
	 0,
	 1,
	 0,
	 0},
	{"scale-up during a drain: the assignment grows, the leaving pod still drains",
	 {.want = 3, .assigned = 2, .sts = 4, .ready_wanted = 3},
	 {{1, 1, 1, 3, 0, 0}},
	 1,
	 3,
	 4,
	 RSC_DRAINING,
	 3,
	 0,
	 0,
	 0},
	{"scale to zero: no owner is left to hand to, the claims keep the messages",
	 {.want = 0, .assigned = 3, .sts = 3},
	 {{0}},
	 0,
	 3,
	 0,
	 RSC_STEADY,
	 0,
	 0,
	 0,
	 0},
	{"back from zero", {.want = 2, .assigned = 3, .sts = 0}, {{0}}, 0, 2, 2, RSC_STEADY, 0, 0, 0, 0},
};

#define CHECK(got, want)                                                                                               \
	do {                                                                                                           \
		if ((long long)(got) != (long long)(want)) {                                                           \
			print_error("%s: %s is %lld, want %lld\n", r->what, #got, (long long)(got),                    \
				    (long long)(want));                                                                \
			bad++;                                                                                         \
		}                                                                                                      \
	} while (0)

static int check_row(const struct scale_row *r)
{
	struct rsc_plan p;
	int bad = 0;

	rsc_plan(&r->o, &p);
	rsc_plan_drain(&r->o, r->pods, r->npods, &p);
	CHECK(p.assignment, r->assignment);
	CHECK(p.replicas, r->replicas);
	CHECK(p.phase, r->phase);
	CHECK(p.queued, r->queued);
	CHECK(p.unreachable, r->unreachable);
	CHECK(p.behind, r->behind);
	CHECK(p.held_event, r->held_event);
	return bad;
}

static void test_scale_plan_table(void **state)
{
	int bad = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		bad += check_row(&rows[i]);
	assert_int_equal(bad, 0);
}

/* The "behind" row above in detail: a leaving pod not on the new
 * assignment may still take messages as an owner, so it is never let go. */
static void test_behind_pod_is_never_empty(void **state)
{
	struct rsc_obs o = {.want = 1, .assigned = 1, .sts = 2};
	struct rsc_pod pod = {1, 1, 0, 0, 0, 0};
	struct rsc_plan p;

	(void)state;
	rsc_plan(&o, &p);
	assert_int_equal(p.phase, RSC_DRAINING);
	rsc_plan_drain(&o, &pod, 1, &p);
	assert_int_equal(p.phase, RSC_DRAINING);
	assert_int_equal(p.replicas, 2);
	assert_int_equal(p.behind, 1);
	assert_string_equal(rsc_phase_reason(p.phase), "Draining");
	assert_string_equal(rsc_phase_status(p.phase), "False");
	assert_string_equal(rsc_phase_reason(RSC_SCALED_DOWN), "ReplicasMatch");
	assert_string_equal(rsc_phase_reason(RSC_HELD), "ScaleDownHeld");
	assert_string_equal(rsc_phase_reason(RSC_SCALING_UP), "ScalingUp");
}

/* What the conditions say: the counts a held scale-down waits for, and the
 * pods whose handoff hold ran out. */
static void test_conditions_name_what_they_wait_for(void **state)
{
	struct rsc_obs o = {.want = 2, .assigned = 2, .sts = 4};
	struct rsc_pod pods[2] = {{1, 1, 1, 7, 2, 1}, {1, 0, 0, 0, 0, 0}};
	struct rcv_routers *p = calloc(1, sizeof(*p));
	struct rsc_plan plan;
	struct rs_cond c;

	(void)state;
	assert_non_null(p);
	rsc_plan(&o, &plan);
	rsc_plan_drain(&o, pods, 2, &plan);
	rsc_condition(&o, &plan, "r1", &c);
	assert_string_equal(c.type, "Scaled");
	assert_string_equal(c.status, "False");
	assert_string_equal(c.reason, "Draining");
	assert_non_null(strstr(c.message, "r1-2 to r1-3 leave once empty: 7 queued, 2 leased, 1 handoffs"));
	assert_non_null(strstr(c.message, "1 unreachable"));
	p->n = 2;
	strcpy(p->eps[0].pod, "r1-0");
	strcpy(p->eps[1].pod, "r1-1");
	p->eps[0].reachable = p->eps[1].reachable = 1;
	rcv_handoff_condition(p, &c);
	assert_string_equal(c.status, "True");
	p->eps[1].handoff_timeouts = 3;
	rcv_handoff_condition(p, &c);
	assert_string_equal(c.status, "False");
	assert_string_equal(c.reason, "HandoffTimedOut");
	assert_non_null(strstr(c.message, "3 handoff holds ran out on 1 router pods (first: r1-1)"));
	free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scale_plan_table),
		cmocka_unit_test(test_behind_pod_is_never_empty),
		cmocka_unit_test(test_conditions_name_what_they_wait_for),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
