/*
 * Unit tests for the configuration model: profile defaults, parsing with
 * field paths in errors, unknown keys, validation rules, printing,
 * hashing and reload classification.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "switchboard/cfg.h"
#include "switchboard/gz.h"
#include "switchboard/util.h"

static int has_issue(const struct cfg_report *r, int sev, const char *path, const char *needle)
{
	for (size_t i = 0; i < r->n; i++)
		if (r->items[i].severity == sev && strcmp(r->items[i].path, path) == 0 &&
		    (!needle || strstr(r->items[i].msg, needle)))
			return 1;
	return 0;
}

static int parse(const char *yaml, struct cfg *c, struct cfg_report *r)
{
	cfg_report_init(r);
	return cfg_parse(c, yaml, strlen(yaml), r);
}

static void test_embedded_default_is_valid(void **state)
{
	struct cfg c;
	struct cfg_report r;

	(void)state;
	assert_int_equal(cfg_embedded_default(&c, NULL, NULL, NULL), 0);
	cfg_report_init(&r);
	assert_int_equal(cfg_validate(&c, 2, &r), 0);
	assert_int_equal(c.profile, CFG_PROFILE_DEVELOPMENT);
	assert_int_equal(c.nagents, 2);
	assert_string_equal(c.agents[0].id, "alice");
	assert_int_equal(c.agents[0].mode, CFG_MODE_PULL);
	assert_string_equal(c.storage.path, "./switchboard.db");
	cfg_report_free(&r);
	cfg_free(&c);
}

static void test_profiles_supply_defaults_and_fields_override(void **state)
{
	struct cfg c;
	struct cfg_report r;

	(void)state;
	assert_int_equal(parse("profile: production\nperformance:\n  batchSize: 50\n"
			       "security:\n  auth: none\n",
			       &c, &r),
			 0);
	assert_int_equal(c.perf.inbound_queue_size, 100000); /* from the profile */
	assert_int_equal(c.perf.batch_size, 50);	     /* explicit */
	assert_int_equal(c.sec.auth, CFG_AUTH_NONE);
	assert_int_equal(c.storage.sync, CFG_SYNC_FULL);
	cfg_free(&c);
	cfg_report_free(&r);
	assert_int_equal(parse("profile: highThroughput\n", &c, &r), 0);
	assert_int_equal(c.storage.sync, CFG_SYNC_NORMAL);
	assert_int_equal(c.perf.inbound_queue_size, 1000000);
	cfg_free(&c);
	cfg_report_free(&r);
}

static void test_structural_errors_name_fields(void **state)
{
	struct cfg c;
	struct cfg_report r;

	(void)state;
	assert_int_equal(parse("performance:\n  batchSize: ten\n  bogus: 1\n"
			       "storage:\n  sync: sometimes\n"
			       "agents:\n  - id: a\n    mode: teleport\n    colour: blue\n",
			       &c, &r),
			 -22);
	assert_true(has_issue(&r, CFG_ERROR, "performance.batchSize", "integer"));
	assert_true(has_issue(&r, CFG_ERROR, "performance.bogus", "unknown field"));
	assert_true(has_issue(&r, CFG_ERROR, "storage.sync", "normal, full"));
	assert_true(has_issue(&r, CFG_ERROR, "agents[0].mode", "pull, push"));
	assert_true(has_issue(&r, CFG_ERROR, "agents[0].colour", "unknown field"));
	assert_int_equal(r.errors, 5);
	cfg_report_free(&r);
	/* structural and range problems are reported together */
	assert_int_equal(parse("delivery: {maxRetries: -3, nope: 1}\n", &c, &r), -22);
	assert_true(has_issue(&r, CFG_ERROR, "delivery.nope", "unknown field"));
	assert_true(has_issue(&r, CFG_ERROR, "delivery.maxRetries", "out of range"));
	cfg_report_free(&r);
}

static void test_yaml_syntax_error_reports_line(void **state)
{
	struct cfg c;
	struct cfg_report r;

	(void)state;
	assert_int_not_equal(parse("performance:\n  batchSize: [1, 2\n", &c, &r), 0);
	assert_int_equal(r.n, 1);
	assert_string_equal(r.items[0].path, "(document)");
	assert_non_null(strstr(r.items[0].msg, "line"));
	cfg_report_free(&r);
	assert_int_not_equal(parse("a: &x 1\nb: *x\n", &c, &r), 0);
	assert_non_null(strstr(r.items[0].msg, "aliases"));
	cfg_report_free(&r);
}

static void test_validation_relationships(void **state)
{
	struct cfg c;
	struct cfg_report r;

	(void)state;
	assert_int_equal(parse("performance:\n  inboundQueueSize: 10\n  batchSize: 10\n"
			       "  processingTimeoutMs: 40000\n  workerThreads: 64\n"
			       "  memoryLimitBytes: 20Mi\n"
			       "delivery:\n  baseRetryDelayMs: 5000\n  retryMaxDelayMs: 1000\n"
			       "  connectionTimeoutMs: 9000\n"
			       "network:\n  dataPort: 9000\n  adminPort: 9000\n",
			       &c, &r),
			 0);
	assert_true(cfg_validate(&c, 2, &r) >= 6);
	assert_true(has_issue(&r, CFG_ERROR, "performance.inboundQueueSize", "2x"));
	assert_true(has_issue(&r, CFG_WARNING, "performance.workerThreads", "cores"));
	assert_true(has_issue(&r, CFG_ERROR, "performance.processingTimeoutMs", "messageTimeoutMs"));
	assert_true(has_issue(&r, CFG_ERROR, "delivery.retryMaxDelayMs", "baseRetryDelayMs"));
	assert_true(has_issue(&r, CFG_ERROR, "delivery.connectionTimeoutMs", "requestTimeoutMs"));
	assert_true(has_issue(&r, CFG_ERROR, "network.adminPort", "dataPort"));
	assert_true(has_issue(&r, CFG_ERROR, "performance.memoryLimitBytes", "estimated"));
	cfg_report_free(&r);
	cfg_free(&c);
}

static void test_range_checks(void **state)
{
	struct cfg c;
	struct cfg_report r;

	(void)state;
	assert_int_equal(parse("delivery:\n  retryBackoffFactor: 0.5\n  maxRetries: -1\n"
			       "observability:\n  logSampleRate: 2\n"
			       "network:\n  dataPort: 70000\n",
			       &c, &r),
			 0);
	cfg_validate(&c, 2, &r);
	assert_true(has_issue(&r, CFG_ERROR, "delivery.retryBackoffFactor", "out of range"));
	assert_true(has_issue(&r, CFG_ERROR, "delivery.maxRetries", "out of range"));
	assert_true(has_issue(&r, CFG_ERROR, "observability.logSampleRate", "out of range"));
	assert_true(has_issue(&r, CFG_ERROR, "network.dataPort", "out of range"));
	cfg_report_free(&r);
	cfg_free(&c);
}

static void test_agent_rules(void **state)
{
	struct cfg c;
	struct cfg_report r;

	(void)state;
	assert_int_equal(parse("security:\n  auth: token\n  adminTokenFile: /x\n"
			       "agents:\n"
			       "  - {id: a, mode: push}\n"
			       "  - {id: b, mode: pull, endpoint: 'http://x'}\n"
			       "  - {id: a, tokenSha256: 'XYZ'}\n"
			       "  - {id: '-bad'}\n",
			       &c, &r),
			 0);
	cfg_validate(&c, 2, &r);
	assert_true(has_issue(&r, CFG_ERROR, "agents[0].endpoint", "push mode"));
	assert_true(has_issue(&r, CFG_ERROR, "agents[1].endpoint", "pull mode"));
	assert_true(has_issue(&r, CFG_ERROR, "agents[2].id", "duplicate"));
	assert_true(has_issue(&r, CFG_ERROR, "agents[2].tokenSha256", "64 lowercase hex"));
	assert_true(has_issue(&r, CFG_ERROR, "agents[0].tokenSha256", "token digest"));
	assert_true(has_issue(&r, CFG_ERROR, "agents[3].id", "agent id"));
	cfg_report_free(&r);
	cfg_free(&c);
}

/* agents[].protocol: fipa by default, a2a for push agents only, printed,
 * and a change of it is a hot agent change (no restart). */
static void test_agent_protocol(void **state)
{
	static const char push_fipa[] = "agents: [{id: x, mode: push, endpoint: 'http://x.example/in'}]\n";
	static const char push_a2a[] = "agents: [{id: x, mode: push, endpoint: 'http://x.example/in', "
				       "protocol: a2a}]\n";
	struct cfg a, b;
	struct cfg_report r;
	struct cfg_diff d;
	char rh1[65], rh2[65];
	struct buf out;
	json_t *j;

	(void)state;
	/* default, explicit, refused */
	assert_int_equal(parse("agents: [{id: p}, {id: q, protocol: fipa}]\n", &a, &r), 0);
	assert_int_equal(a.agents[0].protocol, CFG_PROTO_FIPA);
	assert_int_equal(a.agents[1].protocol, CFG_PROTO_FIPA);
	assert_int_equal(cfg_validate(&a, 2, &r), 0);
	cfg_report_free(&r);
	cfg_free(&a);
	assert_int_equal(parse("agents: [{id: p}, {id: q, mode: push, endpoint: 'http://q', protocol: A2A}]\n", &a, &r),
			 -EINVAL);
	assert_true(has_issue(&r, CFG_ERROR, "agents[1].protocol", "fipa, a2a"));
	assert_int_equal(r.errors, 1);
	cfg_report_free(&r);
	assert_int_equal(parse("agents: [{id: p, protocol: 2}]\n", &a, &r), -EINVAL);
	assert_true(has_issue(&r, CFG_ERROR, "agents[0].protocol", "fipa, a2a"));
	cfg_report_free(&r);
	/* a2a needs push: a pull agent has no endpoint to call */
	assert_int_equal(parse("agents: [{id: p, protocol: a2a}, {id: q, mode: pull, protocol: a2a}]\n", &a, &r), 0);
	assert_int_equal(a.agents[0].protocol, CFG_PROTO_A2A);
	assert_int_equal(cfg_validate(&a, 2, &r), 2);
	assert_true(has_issue(&r, CFG_ERROR, "agents[0].protocol", "mode: push"));
	assert_true(has_issue(&r, CFG_ERROR, "agents[1].protocol", "mode: push"));
	cfg_report_free(&r);
	cfg_free(&a);
	/* printed, and read back alike */
	assert_int_equal(parse(push_a2a, &a, &r), 0);
	assert_int_equal(cfg_validate(&a, 2, &r), 0);
	cfg_report_free(&r);
	j = cfg_to_json(&a);
	assert_non_null(j);
	assert_string_equal(
		json_string_value(json_object_get(json_array_get(json_object_get(j, "agents"), 0), "protocol")), "a2a");
	json_decref(j);
	buf_init(&out, 1 << 20);
	assert_int_equal(cfg_to_yaml(&a, &out), 0);
	assert_int_equal(parse(buf_str(&out), &b, &r), 0);
	assert_int_equal(b.agents[0].protocol, CFG_PROTO_A2A);
	assert_true(cfg_agent_equal(&a.agents[0], &b.agents[0]));
	buf_free(&out);
	cfg_report_free(&r);
	cfg_free(&b);
	assert_string_equal(cfg_protocol_name(CFG_PROTO_A2A), "a2a");
	assert_string_equal(cfg_protocol_name(CFG_PROTO_FIPA), "fipa");
	/* fipa -> a2a: one hot agent change, the restart hash unchanged */
	assert_int_equal(parse(push_fipa, &b, &r), 0);
	cfg_report_free(&r);
	assert_false(cfg_agent_equal(&a.agents[0], &b.agents[0]));
	assert_int_equal(cfg_diff(&b, &a, &d), 0);
	assert_int_equal(d.n, 1);
	assert_string_equal(d.items[0].path, "agents[x]");
	assert_int_equal(d.items[0].reload, CFG_RELOAD_HOT);
	assert_false(d.restart);
	cfg_diff_free(&d);
	assert_int_equal(cfg_restart_hash(&a, rh1), 0);
	assert_int_equal(cfg_restart_hash(&b, rh2), 0);
	assert_string_equal(rh1, rh2);
	cfg_free(&a);
	cfg_free(&b);
}

static void test_print_round_trip_and_hash(void **state)
{
	struct cfg a, b;
	struct cfg_report r;
	struct buf out;
	char h1[65], h2[65], rh1[65], rh2[65];

	(void)state;
	assert_int_equal(parse("profile: production\nsecurity: {auth: none}\n"
			       "agents:\n  - {id: x, mode: push, endpoint: 'https://x.example/in', "
			       "capabilities: [{name: c1, description: 'yes: \"quoted\"'}]}\n",
			       &a, &r),
			 0);
	cfg_report_free(&r);
	buf_init(&out, 1 << 20);
	assert_int_equal(cfg_to_yaml(&a, &out), 0);
	assert_int_equal(parse(buf_str(&out), &b, &r), 0);
	assert_int_equal(cfg_hash(&a, h1), 0);
	assert_int_equal(cfg_hash(&b, h2), 0);
	assert_string_equal(h1, h2);
	assert_string_equal(b.agents[0].caps[0].description, "yes: \"quoted\"");
	/* hot changes keep the restart hash */
	assert_int_equal(cfg_restart_hash(&a, rh1), 0);
	b.delivery.max_retries = 9;
	assert_int_equal(cfg_restart_hash(&b, rh2), 0);
	assert_string_equal(rh1, rh2);
	assert_int_equal(cfg_hash(&b, h2), 0);
	assert_string_not_equal(h1, h2);
	b.storage.sync = CFG_SYNC_NORMAL;
	assert_int_equal(cfg_restart_hash(&b, rh2), 0);
	assert_string_not_equal(rh1, rh2);
	buf_free(&out);
	cfg_report_free(&r);
	cfg_free(&a);
	cfg_free(&b);
}

static void test_diff_classifies_changes(void **state)
{
	struct cfg a, b;
	struct cfg_report r;
	struct cfg_diff d;
	int saw_agent_added = 0, saw_removed = 0, saw_queue = 0;

	(void)state;
	assert_int_equal(parse("agents: [{id: x}, {id: y}]\n", &a, &r), 0);
	cfg_report_free(&r);
	assert_int_equal(parse("performance: {agentQueueSize: 50}\n"
			       "delivery: {maxRetries: 4}\nagents: [{id: x}, {id: z}]\n",
			       &b, &r),
			 0);
	assert_int_equal(cfg_diff(&a, &b, &d), 0);
	assert_false(d.restart);
	for (size_t i = 0; i < d.n; i++) {
		if (strstr(d.items[i].path, "agents[z] (added)"))
			saw_agent_added = 1;
		if (strstr(d.items[i].path, "agents[y] (removed)"))
			saw_removed = 1;
		if (strcmp(d.items[i].path, "performance.agentQueueSize") == 0) {
			saw_queue = 1;
			assert_int_equal(d.items[i].reload, CFG_RELOAD_HOT_IF_FITS);
			assert_false(d.items[i].grows);
		}
	}
	assert_true(saw_agent_added && saw_removed && saw_queue);
	cfg_diff_free(&d);
	b.net.data_port = 9999;
	assert_int_equal(cfg_diff(&a, &b, &d), 0);
	assert_true(d.restart);
	cfg_diff_free(&d);
	assert_int_equal(cfg_reload_class("storage.path"), CFG_RELOAD_RESTART);
	assert_int_equal(cfg_reload_class("security.auth"), CFG_RELOAD_RESTART);
	assert_int_equal(cfg_reload_class("delivery.circuitBreaker.threshold"), CFG_RELOAD_HOT);
	assert_int_equal(cfg_reload_class("nope"), -1);
	cfg_report_free(&r);
	cfg_free(&a);
	cfg_free(&b);
}

/* Lookups by id give the same answers whether the ids are sorted (binary
 * search) or not (a scan). */
static void test_find_agent_sorted_and_unsorted(void **state)
{
	static const char *docs[] = {"agents: [{id: a}, {id: b}, {id: c}, {id: d}, {id: e}]\n",
				     "agents: [{id: d}, {id: a}, {id: e}, {id: c}, {id: b}]\n"};
	static const char *ids[] = {"a", "b", "c", "d", "e"};

	(void)state;
	for (size_t k = 0; k < 2; k++) {
		struct cfg c;
		struct cfg_report r;

		assert_int_equal(parse(docs[k], &c, &r), 0);
		assert_int_equal(c.agents_sorted, k == 0);
		for (size_t i = 0; i < 5; i++) {
			const struct cfg_agent *a = cfg_find_agent(&c, ids[i]);

			assert_non_null(a);
			assert_string_equal(a->id, ids[i]);
		}
		assert_null(cfg_find_agent(&c, "0"));
		assert_null(cfg_find_agent(&c, "bb"));
		assert_null(cfg_find_agent(&c, "z"));
		cfg_report_free(&r);
		cfg_free(&c);
	}
}

/* --set applies to the embedded default as to a file (the router's own
 * --help example once listened on 8080 anyway). */
static void test_set_applies_to_embedded_default(void **state)
{
	json_t *ov = json_object();
	struct cfg c;
	struct cfg_report r;

	(void)state;
	assert_non_null(ov);
	assert_int_equal(cfg_overlay_set(ov, "network.dataPort=9080"), 0);
	cfg_report_init(&r);
	assert_int_equal(cfg_embedded_default(&c, ov, NULL, &r), 0);
	assert_int_equal(c.net.data_port, 9080);
	cfg_free(&c);
	cfg_report_free(&r);
	assert_int_equal(cfg_overlay_set(ov, "network.dataPort=nope"), 0);
	cfg_report_init(&r);
	assert_int_not_equal(cfg_embedded_default(&c, ov, NULL, &r), 0);
	assert_true(r.errors > 0);
	cfg_report_free(&r);
	json_decref(ov);
}

/* Values far outside their ranges are refused by name, and the rules across
 * fields (2 x batchSize, 10 x leaseTimeoutMs) never compute with them (a
 * signed overflow, caught by UBSan in the san build). */
static void test_out_of_range_values_never_overflow(void **state)
{
	static const char doc[] = "performance: {batchSize: 9223372036854775807, inboundQueueSize: 1}\n"
				  "delivery: {leaseTimeoutMs: 9223372036854775807, maxWaitMs: 9223372036854775807}\n";
	struct cfg c;
	struct cfg_report r;

	(void)state;
	assert_int_equal(parse(doc, &c, &r), 0);
	assert_true(cfg_validate(&c, 9223372036854775807L, &r) > 0);
	assert_non_null(strstr(r.items[0].path, "performance.batchSize"));
	cfg_report_free(&r);
	cfg_free(&c);
}

/* An agent without a usable id before one with an id: refused by name, never
 * a strcmp on NULL (it crashed the router through every way in). */
static void test_agent_without_id_is_refused(void **state)
{
	static const char *docs[] = {"agents: [{mode: pull}, {id: a}]\n", "agents: [{id: 7}, {id: a}]\n",
				     "agents: [{id: b}, {mode: pull}, {id: a}]\n", "agents: [{id: [x]}, {id: a}]\n"};

	(void)state;
	for (size_t k = 0; k < sizeof(docs) / sizeof(docs[0]); k++) {
		struct cfg c;
		struct cfg_report r;
		int rc = parse(docs[k], &c, &r);

		assert_int_not_equal(rc, 0);
		assert_true(r.errors > 0);
		assert_non_null(strstr(r.items[0].path, "agents"));
		cfg_report_free(&r);
		if (rc == 0)
			cfg_free(&c);
	}
}

static void test_byte_quantities(void **state)
{
	struct cfg c;
	struct cfg_report r;

	(void)state;
	assert_int_equal(parse("performance: {memoryLimitBytes: 1Gi}\nsecurity: {maxMessageBytes: 2Mi}\n", &c, &r), 0);
	assert_int_equal(c.perf.memory_limit_bytes, 1073741824);
	assert_int_equal(c.sec.max_message_bytes, 2097152);
	cfg_free(&c);
	cfg_report_free(&r);
	assert_int_not_equal(parse("performance: {memoryLimitBytes: lots}\n", &c, &r), 0);
	assert_true(has_issue(&r, CFG_ERROR, "performance.memoryLimitBytes", "byte quantity"));
	cfg_report_free(&r);
}

/* A gzip document parses like the plain one, with the plain bytes' hash;
 * the overlay wins over the document; corrupt gzip is refused. */
static void test_document_gzip_and_overlay(void **state)
{
	const char *doc = "profile: development\nnetwork: {dataPort: 18080}\nagents: [{id: a, mode: pull}]\n";
	char *gz = NULL, h1[65], h2[65], plain_hash[65];
	size_t gzlen = 0;
	struct cfg c;
	struct cfg_report r;
	json_t *ov = json_object();

	(void)state;
	util_sha256_hex(doc, strlen(doc), plain_hash);
	assert_int_equal(gz_deflate(doc, strlen(doc), &gz, &gzlen), 0);
	assert_true(gz_is_gzip(gz, gzlen));
	assert_int_equal(cfg_overlay_set(ov, "network.dataPort=9999"), 0);
	assert_int_equal(cfg_overlay_set(ov, "storage.path=/tmp/other.db"), 0);
	assert_int_equal(cfg_overlay_set(ov, "nodots"), -EINVAL);
	assert_int_equal(cfg_overlay_set(ov, "a..b=1"), -EINVAL);

	cfg_report_init(&r);
	assert_int_equal(cfg_parse_doc(&c, gz, gzlen, ov, h1, &r), 0);
	assert_int_equal(c.net.data_port, 9999);
	assert_string_equal(c.storage.path, "/tmp/other.db");
	assert_int_equal((int)c.nagents, 1);
	assert_string_equal(h1, plain_hash);
	cfg_free(&c);
	assert_int_equal(cfg_parse_doc(&c, doc, strlen(doc), NULL, h2, &r), 0);
	assert_int_equal(c.net.data_port, 18080);
	assert_string_equal(h2, plain_hash);
	cfg_free(&c);

	gz[gzlen / 2] ^= 0x55; /* corrupt the middle */
	assert_int_not_equal(cfg_parse_doc(&c, gz, gzlen, NULL, NULL, &r), 0);
	assert_true(has_issue(&r, CFG_ERROR, "(document)", "gzip"));
	cfg_report_free(&r);
	free(gz);
	json_decref(ov);
}

/* Inflation is bounded: a stream that inflates past the limit is refused. */
static void test_gzip_bomb_bounded(void **state)
{
	size_t n = 1u << 20, olen = 0, glen = 0;
	char *zeros = calloc(1, n), *gz = NULL, *out = NULL;

	(void)state;
	assert_non_null(zeros);
	assert_int_equal(gz_deflate(zeros, n, &gz, &glen), 0);
	assert_true(glen < 4096);
	assert_int_equal(gz_inflate(gz, glen, n - 1, &out, &olen), -E2BIG);
	assert_null(out);
	assert_int_equal(gz_inflate(gz, glen, n, &out, &olen), 0);
	assert_int_equal(olen, n);
	free(out);
	assert_int_equal(gz_inflate(gz, glen - 4, n, &out, &olen) == 0, 0); /* truncated */
	assert_null(out);
	free(gz);
	free(zeros);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_embedded_default_is_valid),
		cmocka_unit_test(test_profiles_supply_defaults_and_fields_override),
		cmocka_unit_test(test_structural_errors_name_fields),
		cmocka_unit_test(test_yaml_syntax_error_reports_line),
		cmocka_unit_test(test_validation_relationships),
		cmocka_unit_test(test_range_checks),
		cmocka_unit_test(test_agent_rules),
		cmocka_unit_test(test_agent_protocol),
		cmocka_unit_test(test_print_round_trip_and_hash),
		cmocka_unit_test(test_diff_classifies_changes),
		cmocka_unit_test(test_byte_quantities),
		cmocka_unit_test(test_document_gzip_and_overlay),
		cmocka_unit_test(test_gzip_bomb_bounded),
		cmocka_unit_test(test_find_agent_sorted_and_unsorted),
		cmocka_unit_test(test_agent_without_id_is_refused),
		cmocka_unit_test(test_set_applies_to_embedded_default),
		cmocka_unit_test(test_out_of_range_values_never_overflow),
	};

	if (util_init())
		return 1;
	return cmocka_run_group_tests_name("cfg", tests, NULL, NULL);
}
