/*
 * Unit tests for the operator's building blocks that need no API server:
 * the work queue (dedup, debounce, per-key backoff, no double hand-out),
 * kubeconfig loading (inline and file material, refusals naming the
 * field), and rendered ConfigMaps (plain and gzip round trips, stable
 * hashes).  Everything that talks to Kubernetes is tested in e2e/.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kc.h"
#include "rec_agent.h"
#include "rec_objects.h"
#include "rec_plan.h"
#include "rec_render.h"
#include "switchboard/util.h"
#include "wq.h"

static void test_wq_dedup_and_debounce(void **state)
{
	struct wq *q;
	char key[WQ_KEY_MAX];
	uint64_t t0;

	(void)state;
	assert_int_equal(wq_new(&q), 0);
	for (int i = 0; i < 10; i++)
		assert_int_equal(wq_add(q, "rc/ns/a", 150), 0);
	assert_int_equal(wq_len(q), 1);
	t0 = util_mono_ns();
	assert_int_equal(wq_get(q, key, 1000), 0);
	assert_true(util_mono_ns() - t0 >= 140u * 1000000u); /* waited for the debounce window */
	assert_string_equal(key, "rc/ns/a");
	/* added while processing: not handed out twice, comes back after done */
	assert_int_equal(wq_add(q, "rc/ns/a", 0), 0);
	assert_int_equal(wq_get(q, key, 100), -ETIMEDOUT);
	wq_done(q, "rc/ns/a", 0, 0);
	assert_int_equal(wq_get(q, key, 100), 0);
	wq_done(q, "rc/ns/a", 0, 0);
	assert_int_equal(wq_len(q), 0);
	wq_free(q);
}

/* a burst longer than the quiet period still becomes one reconcile, and a
 * stream that never quiets is cut off at the maximum wait */
static void test_wq_trailing_debounce(void **state)
{
	struct wq *q;
	char key[WQ_KEY_MAX];
	struct timespec ts = {0, 60 * 1000000L};

	(void)state;
	assert_int_equal(wq_new(&q), 0);
	for (int i = 0; i < 6; i++) { /* 6 events 60 ms apart: 360 ms, longer than the quiet period */
		assert_int_equal(wq_debounce(q, "rc/ns/a", 300, 2000), 0);
		assert_int_equal(wq_get(q, key, 0), -ETIMEDOUT);
		nanosleep(&ts, NULL);
	}
	assert_int_equal(wq_len(q), 1);
	assert_int_equal(wq_get(q, key, 50), -ETIMEDOUT); /* quiet for only ~110 ms of 300 */
	assert_int_equal(wq_get(q, key, 500), 0);
	assert_string_equal(key, "rc/ns/a");
	wq_done(q, key, 0, 0);
	/* never quiet: due at the maximum wait (400 ms) */
	for (int i = 0; i < 6; i++) {
		assert_int_equal(wq_debounce(q, "rc/ns/b", 150, 400), 0);
		nanosleep(&ts, NULL);
	}
	assert_int_equal(wq_debounce(q, "rc/ns/b", 150, 400), 0); /* at ~360 ms */
	assert_int_equal(wq_get(q, key, 100), 0);		  /* not ~510 ms */
	wq_done(q, key, 0, 0);
	/* something due sooner (a resync) is not postponed by a debounce */
	assert_int_equal(wq_add(q, "rc/ns/c", 0), 0);
	assert_int_equal(wq_debounce(q, "rc/ns/c", 5000, 10000), 0);
	assert_int_equal(wq_get(q, key, 50), 0);
	wq_done(q, key, 0, 0);
	/* something due later (a convergence poll, a retry) does not hold back a change */
	assert_int_equal(wq_add(q, "rc/ns/d", 0), 0);
	assert_int_equal(wq_get(q, key, 50), 0);
	wq_done(q, key, 0, 5000); /* poll again in 5 s */
	assert_int_equal(wq_debounce(q, "rc/ns/d", 50, 1000), 0);
	assert_int_equal(wq_get(q, key, 500), 0); /* after ~50 ms, not 5 s */
	assert_string_equal(key, "rc/ns/d");
	wq_done(q, key, 0, 0);
	assert_int_equal(wq_len(q), 0);
	wq_free(q);
}

static void test_wq_backoff_and_shutdown(void **state)
{
	struct wq *q;
	char key[WQ_KEY_MAX];
	uint64_t t0;

	(void)state;
	assert_int_equal(wq_new(&q), 0);
	assert_int_equal(wq_add(q, "k", 0), 0);
	assert_int_equal(wq_get(q, key, 100), 0);
	wq_done(q, "k", 1, 0); /* failure 1: 250 ms */
	assert_int_equal(wq_get(q, key, 100), -ETIMEDOUT);
	assert_int_equal(wq_get(q, key, 400), 0);
	t0 = util_mono_ns();
	wq_done(q, "k", 1, 0); /* failure 2: 500 ms */
	assert_int_equal(wq_get(q, key, 1000), 0);
	assert_true(util_mono_ns() - t0 >= 450u * 1000000u);
	wq_done(q, "k", 0, 0); /* success resets */
	assert_int_equal(wq_add(q, "k", 0), 0);
	assert_int_equal(wq_get(q, key, 50), 0);
	wq_done(q, "k", 0, 0);
	wq_shutdown(q);
	assert_int_equal(wq_get(q, key, 1000), -ECANCELED);
	wq_free(q);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void test_kubeconfig_inline_and_files(void **state)
{
	char dir[] = "/tmp/sb-kcXXXXXX", path[256], text[4096], err[512], b64[256];
	struct kc_config c;
	const char *ca = "-----BEGIN CERTIFICATE-----\nQ0E=\n-----END CERTIFICATE-----\n";

	(void)state;
	assert_non_null(mkdtemp(dir));
	sodium_bin2base64(b64, sizeof(b64), (const unsigned char *)ca, strlen(ca), sodium_base64_VARIANT_ORIGINAL);
	snprintf(path, sizeof(path), "%s/key.pem", dir);
	write_file(path, "KEY");
	snprintf(path, sizeof(path), "%s/cert.pem", dir);
	write_file(path, "CERT");
	snprintf(text, sizeof(text),
		 "apiVersion: v1\nkind: Config\ncurrent-context: b\n"
		 "clusters:\n- name: c1\n  cluster: {server: 'https://127.0.0.1:6443/', certificate-authority-data: "
		 "%s}\n"
		 "contexts:\n- name: a\n  context: {cluster: nope, user: u1}\n"
		 "- name: b\n  context: {cluster: c1, user: u1, namespace: team}\n"
		 "users:\n- name: u1\n  user: {client-certificate: cert.pem, client-key: key.pem}\n",
		 b64);
	snprintf(path, sizeof(path), "%s/config", dir);
	write_file(path, text);
	assert_int_equal(kc_config_load(&c, path, NULL, err, sizeof(err)), 0);
	assert_string_equal(c.server, "https://127.0.0.1:6443");
	assert_string_equal(c.ca_pem, ca);
	assert_string_equal(c.cert_pem, "CERT");
	assert_string_equal(c.key_pem, "KEY");
	assert_string_equal(c.namespace_, "team");
	kc_config_free(&c);

	/* refusals name what is wrong */
	write_file(path, "current-context: a\ncontexts:\n- name: a\n  context: {cluster: c, user: u}\n"
			 "clusters:\n- name: c\n  cluster: {server: 'https://x', insecure-skip-tls-verify: true}\n");
	assert_int_equal(kc_config_load(&c, path, NULL, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "insecure-skip-tls-verify"));
	write_file(path, "current-context: a\ncontexts:\n- name: a\n  context: {cluster: c}\n"
			 "clusters:\n- name: c\n  cluster: {server: 'http://plain'}\n");
	assert_int_equal(kc_config_load(&c, path, NULL, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "server"));
	write_file(path, "contexts: []\n");
	assert_int_equal(kc_config_load(&c, path, NULL, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "current-context"));
	snprintf(text, sizeof(text), "rm -rf %s", dir);
	assert_int_equal(system(text), 0);
}

static void test_configmap_round_trip_plain_and_gzip(void **state)
{
	json_t *rc = json_pack("{s:{s:s,s:s,s:s}}", "metadata", "name", "r1", "namespace", "ns", "uid", "u-1");
	size_t big = OP_GZIP_OVER + 4096, len = 0;
	char *doc = malloc(big + 1), *back = NULL, hash[65];
	json_t *cm;

	(void)state;
	assert_non_null(doc);
	/* small: plain data */
	strcpy(doc, "{\"agents\":[]}");
	util_sha256_hex(doc, strlen(doc), hash);
	cm = rob_configmap(rc, "config", doc, strlen(doc), hash, NULL);
	assert_non_null(json_object_get(json_object_get(cm, "data"), OP_CONFIG_KEY));
	assert_string_equal(
		json_string_value(json_object_get(json_object_get(json_object_get(cm, "metadata"), "annotations"),
						  "switchboard.dev/config-hash")),
		hash);
	assert_string_equal(
		json_string_value(json_object_get(
			json_array_get(json_object_get(json_object_get(cm, "metadata"), "ownerReferences"), 0), "uid")),
		"u-1");
	assert_int_equal(rob_configmap_doc(cm, &back, &len), 0);
	assert_string_equal(back, doc);
	free(back);
	json_decref(cm);
	/* large: gzip in binaryData, well under the 1 MiB ConfigMap limit */
	for (size_t i = 0; i < big; i++)
		doc[i] = "abcdef0123456789"[(i * 7 + i / 64) % 16];
	doc[big] = '\0';
	cm = rob_configmap(rc, "config", doc, big, hash, NULL);
	assert_null(json_object_get(cm, "data"));
	assert_non_null(json_object_get(json_object_get(cm, "binaryData"), OP_CONFIG_KEY));
	assert_true(strlen(json_string_value(json_object_get(json_object_get(cm, "binaryData"), OP_CONFIG_KEY))) <
		    OP_CM_LIMIT);
	assert_int_equal(rob_configmap_doc(cm, &back, &len), 0);
	assert_int_equal(len, big);
	assert_memory_equal(back, doc, big);
	free(back);
	json_decref(cm);
	/* neither form: ENOENT */
	cm = json_pack("{s:{}}", "data");
	assert_int_equal(rob_configmap_doc(cm, &back, &len), -ENOENT);
	json_decref(cm);
	free(doc);
	json_decref(rc);
}

/* --- golden files: the owned objects as a reader sees them ------------------
 * Each rendered object is compared with tests/unit/golden/<name>.json
 * (sorted keys, two-space indent).  SB_UPDATE_GOLDEN=1 rewrites them; the
 * diff then shows what a change did to the objects the cluster gets. */
static void golden(const char *name, json_t *obj)
{
	char path[256], *got, *want = NULL;
	FILE *f;
	long n;

	assert_non_null(obj);
	got = json_dumps(obj, JSON_INDENT(2) | JSON_SORT_KEYS);
	assert_non_null(got);
	snprintf(path, sizeof(path), "tests/unit/golden/%s.json", name);
	if (getenv("SB_UPDATE_GOLDEN")) {
		f = fopen(path, "w");
		assert_non_null(f);
		fprintf(f, "%s\n", got);
		fclose(f);
	}
	f = fopen(path, "r");
	if (!f)
		fail_msg("missing golden file %s (SB_UPDATE_GOLDEN=1 writes it)", path);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	want = calloc(1, (size_t)n + 1);
	assert_non_null(want);
	assert_int_equal(fread(want, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	if (n > 0 && want[n - 1] == '\n')
		want[n - 1] = '\0';
	if (strcmp(got, want) != 0)
		fail_msg("%s differs from the rendered object:\n%s", path, got);
	free(want);
	free(got);
	json_decref(obj);
}

static json_t *golden_rc(const char *extra_spec)
{
	char text[1024];
	json_t *rc;

	snprintf(text, sizeof(text),
		 "{\"apiVersion\":\"switchboard.dev/v1alpha1\",\"kind\":\"RouterConfig\","
		 "\"metadata\":{\"name\":\"r1\",\"namespace\":\"ns\",\"uid\":\"u-1\",\"generation\":3},"
		 "\"spec\":{\"replicas\":3%s}}",
		 extra_spec);
	rc = json_loads(text, 0, NULL);
	assert_non_null(rc);
	return rc;
}

static void golden_cfg(struct cfg *c)
{
	static const char doc[] = "{\"profile\":\"production\",\"network\":{\"dataPort\":9080,\"adminPort\":9081},"
				  "\"shutdown\":{\"timeoutMs\":20000},\"agents\":[]}";
	struct cfg_report rep;

	cfg_report_init(&rep);
	assert_int_equal(cfg_parse_doc(c, doc, strlen(doc), NULL, NULL, &rep), 0);
	cfg_report_free(&rep);
}

static void test_golden_router_objects(void **state)
{
	struct cfg c;
	json_t *plain = golden_rc(""),
	       *hostnet = golden_rc(",\"hostNetwork\":true,\"imagePullPolicy\":\"Never\","
				    "\"image\":\"example.org/router:1\","
				    "\"resources\":{\"limits\":{\"cpu\":\"2\",\"memory\":\"1Gi\"}},"
				    "\"volume\":{\"size\":\"10Gi\",\"storageClassName\":\"fast\","
				    "\"accessMode\":\"ReadWriteOncePod\"}"),
	       *ephemeral = golden_rc(",\"volume\":{\"ephemeral\":true}"),
	       *tls = golden_rc(",\"tls\":{\"secretName\":\"r1-tls\"}");

	(void)state;
	golden_cfg(&c);
	golden("statefulset",
	       rob_statefulset(plain, &c, "restarthash", "ghcr.io/switchboard-dev/switchboard-router:1", 3, 0));
	golden("statefulset-hostnetwork", rob_statefulset(hostnet, &c, "restarthash", "unused:1", 3, 2));
	golden("statefulset-ephemeral", rob_statefulset(ephemeral, &c, "restarthash", "router:1", 3, 0));
	golden("statefulset-tls", rob_statefulset(tls, &c, "restarthash", "router:1", 3, 0));
	golden("service", rob_service(plain, &c));
	golden("service-peers", rob_peer_service(plain, &c));
	golden("pdb", rob_pdb(plain));
	golden("admin-secret", rob_admin_secret(plain, "not-a-real-token"));
	golden("configmap",
	       rob_configmap(plain, "config", "{\"agents\":[]}", 13,
			     "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "restarthash"));
	cfg_free(&c);
	json_decref(plain);
	json_decref(hostnet);
	json_decref(ephemeral);
	json_decref(tls);
}

/* spec.tls.secretName turns TLS on with the mounted files and keeps the
 * admin port plain; a spec asking for admin-port TLS is refused by name. */
static void test_render_tls(void **state)
{
	json_t *agents = json_array(), *doc;
	json_t *with = golden_rc(",\"tls\":{\"secretName\":\"r1-tls\"}");
	json_t *admin = json_loads("{\"apiVersion\":\"switchboard.dev/v1alpha1\",\"kind\":\"RouterConfig\","
				   "\"metadata\":{\"name\":\"r1\",\"namespace\":\"ns\",\"uid\":\"u\"},"
				   "\"spec\":{\"router\":{\"security\":{\"tls\":{\"enabled\":true,\"admin\":true,"
				   "\"certFile\":\"/c\",\"keyFile\":\"/k\"}}}}}",
				   0, NULL);
	struct rr_render r;

	(void)state;
	assert_non_null(agents);
	assert_non_null(with);
	assert_non_null(admin);
	assert_int_equal(rr_render_agents(NULL, with, agents, 0, &r), 0);
	assert_true(r.valid);
	assert_true(r.cfg.sec.tls_enabled);
	assert_false(r.cfg.sec.tls_admin);
	assert_string_equal(r.cfg.sec.tls_cert_file, OP_TLS_DIR "/tls.crt");
	assert_string_equal(r.cfg.sec.tls_key_file, OP_TLS_DIR "/tls.key");
	doc = json_loads(r.doc, 0, NULL);
	assert_non_null(doc);
	assert_true(json_is_false(json_object_get(json_object_get(json_object_get(doc, "security"), "tls"), "admin")));
	json_decref(doc);
	rr_free(&r);

	assert_int_equal(rr_render_agents(NULL, admin, agents, 0, &r), 0);
	assert_false(r.valid);
	assert_int_equal(r.report.errors, 1);
	assert_string_equal(r.report.items[0].path, "spec.router.security.tls.admin");
	rr_free(&r);
	json_decref(with);
	json_decref(admin);
	json_decref(agents);
}

static const struct rr_agent *agent_named(const struct rr_render *r, const char *name)
{
	for (size_t i = 0; i < r->nagents; i++)
		if (strcmp(r->agents[i].name, name) == 0)
			return &r->agents[i];
	fail_msg("no agent %s in the render", name);
	return NULL;
}

/* The pure render takes the token digests looked up before it: a valid one
 * is rendered, a failed lookup makes the Agent TokenSecretInvalid with the
 * lookup's reason (and frees its agent id for the next Agent by name). */
static void test_render_from_tokens(void **state)
{
	static const char digest[] = "abababababababababababababababababababababababababababababababab";
	json_t *rc = golden_rc(",\"router\":{\"profile\":\"development\"}");
	json_t *agents = json_loads(
		"["
		"{\"metadata\":{\"name\":\"f-six\",\"namespace\":\"ns\"},\"spec\":{\"routerRef\":{\"name\":\"r1\"},"
		"\"tokenSecretRef\":{\"name\":\"s6\"}}},"
		"{\"metadata\":{\"name\":\"a-one\",\"namespace\":\"ns\"},\"spec\":{\"routerRef\":{\"name\":\"r1\"},"
		"\"agentId\":\"alpha\",\"tokenSecretRef\":{\"name\":\"s1\"}}},"
		"{\"metadata\":{\"name\":\"b-two\",\"namespace\":\"ns\"},\"spec\":{\"routerRef\":{\"name\":\"r1\"},"
		"\"agentId\":\"alpha\"}},"
		"{\"metadata\":{\"name\":\"c-three\",\"namespace\":\"ns\"},\"spec\":{\"routerRef\":{\"name\":\"r1\"},"
		"\"agentId\":\"gamma\",\"tokenSecretRef\":{\"name\":\"s3\"}}},"
		"{\"metadata\":{\"name\":\"d-four\",\"namespace\":\"ns\"},\"spec\":{\"routerRef\":{\"name\":\"r1\"},"
		"\"agentId\":\"gamma\"}},"
		"{\"metadata\":{\"name\":\"e-five\",\"namespace\":\"other\"},\"spec\":{\"routerRef\":{\"name\":\"r1\"}}"
		"}"
		"]",
		0, NULL);
	struct rr_token tv[2] = {{.agent = "a-one"}, {.agent = "c-three", .err = -ENOENT}};
	struct rr_tokens tok = {.v = tv, .n = 2}, none;
	struct rr_render r;

	(void)state;
	assert_non_null(agents);
	snprintf(tv[0].digest, sizeof(tv[0].digest), "%s", digest);
	snprintf(tv[1].why, sizeof(tv[1].why), "Secret s3: not found");
	assert_int_equal(rr_render_from(rc, agents, &tok, 0, &r), 0);
	assert_true(r.valid);
	assert_int_equal(r.nagents, 5);
	assert_int_equal(r.naccepted, 2);
	assert_string_equal(agent_named(&r, "a-one")->reason, "Accepted");
	assert_string_equal(agent_named(&r, "b-two")->reason, "DuplicateAgentId");
	assert_string_equal(agent_named(&r, "c-three")->reason, "TokenSecretInvalid");
	assert_string_equal(agent_named(&r, "c-three")->message, "Secret s3: not found");
	assert_string_equal(agent_named(&r, "d-four")->reason, "Accepted");
	assert_string_equal(agent_named(&r, "f-six")->reason, "TokenSecretInvalid");
	assert_non_null(strstr(r.doc, digest));
	rr_free(&r);
	/* no Agent with a token Secret: nothing is looked up, no API needed */
	assert_int_equal(json_array_remove(agents, 0), 0);
	assert_int_equal(json_array_remove(agents, 0), 0);
	assert_int_equal(json_array_remove(agents, 1), 0);
	assert_int_equal(rr_lookup_tokens(NULL, rc, agents, &none), 0);
	assert_int_equal(none.n, 0);
	assert_int_equal(rr_render_from(rc, agents, &none, 0, &r), 0);
	assert_int_equal(r.naccepted, 2);
	rr_free(&r);
	rr_tokens_free(&none);
	json_decref(agents);
	json_decref(rc);
}

/* What the operator renders, the router loads: U+007F and C1 controls in an
 * Agent's strings (which libyaml refuses raw) are escaped in the document. */
static void test_render_is_loadable_with_control_characters(void **state)
{
	json_t *rc = golden_rc(",\"router\":{\"profile\":\"development\"}");
	json_t *agents = json_loads("[{\"metadata\":{\"name\":\"a\",\"namespace\":\"ns\"},\"spec\":{\"routerRef\":"
				    "{\"name\":\"r1\"},\"capabilities\":[{\"name\":\"x\",\"description\":"
				    "\"del \\u007f c1 \\u0080 nel \\u0085 ls \\u2028 nonchar \\uffff ok \\u00e9\"}]}}]",
				    0, NULL);
	struct rr_tokens tok = {0};
	struct rr_render r;
	struct cfg c;
	struct cfg_report rep;

	(void)state;
	assert_non_null(agents);
	assert_int_equal(rr_render_from(rc, agents, &tok, 0, &r), 0);
	assert_true(r.valid);
	assert_null(memchr(r.doc, 0x7f, r.len));
	assert_non_null(strstr(r.doc, "\\u007f"));
	assert_non_null(strstr(r.doc, "\xc3\xa9")); /* printable text stays as it is */
	cfg_report_init(&rep);
	assert_int_equal(cfg_parse_doc(&c, r.doc, r.len, NULL, NULL, &rep), 0);
	assert_string_equal(c.agents[0].caps[0].description,
			    "del \x7f c1 \xc2\x80 nel \xc2\x85 ls \xe2\x80\xa8 nonchar \xef\xbf\xbf ok \xc3\xa9");
	cfg_free(&c);
	cfg_report_free(&rep);
	rr_free(&r);
	json_decref(agents);
	json_decref(rc);
}

/* Agents of every delivery: pull, push with FIPA (the CRD's default spelled
 * out), push with A2A. */
static const char protocol_agents[] =
	"["
	"{\"metadata\":{\"name\":\"planner\",\"namespace\":\"ns\",\"generation\":1},\"spec\":{\"routerRef\":"
	"{\"name\":\"r1\"},\"delivery\":{\"mode\":\"pull\",\"protocol\":\"fipa\"}}},"
	"{\"metadata\":{\"name\":\"searcher\",\"namespace\":\"ns\",\"generation\":1},\"spec\":{\"routerRef\":"
	"{\"name\":\"r1\"},\"delivery\":{\"mode\":\"push\",\"endpoint\":\"http://searcher:8000/inbox\","
	"\"protocol\":\"fipa\"}}},"
	"{\"metadata\":{\"name\":\"helper\",\"namespace\":\"ns\",\"generation\":4},\"spec\":{\"routerRef\":"
	"{\"name\":\"r1\"},\"capabilities\":[{\"name\":\"summarize\",\"description\":\"Summarizes documents\"}],"
	"\"delivery\":{\"mode\":\"push\",\"endpoint\":\"http://helper:9999/\",\"protocol\":\"a2a\","
	"\"timeoutMs\":3000}}}"
	"]";

/* spec.delivery.protocol: a2a is rendered as agents[].protocol; fipa, the
 * default, is left out, so FIPA agents render as they always did.  An A2A
 * pull agent (the CRD's rule refuses it; an older CRD would not) makes the
 * render invalid by name rather than reaching a router. */
static void test_render_protocol(void **state)
{
	json_t *rc = golden_rc(",\"router\":{\"profile\":\"development\",\"network\":{\"dataPort\":9080}}");
	json_t *agents = json_loads(protocol_agents, 0, NULL), *doc, *bad;
	struct rr_tokens tok = {0};
	struct rr_render r;

	(void)state;
	assert_non_null(agents);
	assert_int_equal(rr_render_from(rc, agents, &tok, 0, &r), 0);
	assert_true(r.valid);
	assert_int_equal(r.naccepted, 3);
	assert_int_equal(cfg_find_agent(&r.cfg, "helper")->protocol, CFG_PROTO_A2A);
	assert_int_equal(cfg_find_agent(&r.cfg, "searcher")->protocol, CFG_PROTO_FIPA);
	assert_int_equal(cfg_find_agent(&r.cfg, "planner")->protocol, CFG_PROTO_FIPA);
	assert_int_equal(strstr(r.doc, "fipa") == NULL, 1);
	doc = json_loads(r.doc, 0, NULL);
	golden("config-agents", doc);
	rr_free(&r);

	bad = json_loads(
		"[{\"metadata\":{\"name\":\"x\",\"namespace\":\"ns\"},\"spec\":{\"routerRef\":{\"name\":\"r1\"},"
		"\"delivery\":{\"mode\":\"pull\",\"protocol\":\"a2a\"}}}]",
		0, NULL);
	assert_non_null(bad);
	assert_int_equal(rr_render_from(rc, bad, &tok, 0, &r), 0);
	assert_false(r.valid);
	assert_int_equal(r.report.errors, 1);
	assert_string_equal(r.report.items[0].path, "spec.router.agents[0].protocol");
	rr_free(&r);
	json_decref(bad);
	json_decref(agents);
	json_decref(rc);
}

/* status.a2aUrl: the client Service's DNS name, the data port, the agent
 * id; https with TLS; only for accepted Agents. */
static void test_agent_status_a2a_url(void **state)
{
	json_t *rc = golden_rc(",\"router\":{\"profile\":\"development\",\"network\":{\"dataPort\":9080}}");
	json_t *tls = golden_rc(",\"tls\":{\"secretName\":\"r1-tls\"}");
	json_t *agents = json_loads(protocol_agents, 0, NULL), *st, *helper;
	json_t *nameless = json_loads("{\"metadata\":{\"name\":\"r1\"}}", 0, NULL);
	struct rr_tokens tok = {0};
	struct rr_render r;
	struct rr_agent rejected;
	char url[ROB_A2A_URL_MAX];

	(void)state;
	assert_non_null(agents);
	assert_non_null(nameless);
	assert_int_equal(rr_render_from(tls, agents, &tok, 0, &r), 0);
	assert_true(r.valid);
	assert_int_equal(rob_a2a_url(tls, &r.cfg, "helper", url, sizeof(url)), 0);
	assert_string_equal(url, "https://r1.ns.svc:8080/a2a/helper");
	assert_int_equal(rob_a2a_url(tls, &r.cfg, "helper", url, 20), -ENAMETOOLONG);
	assert_int_equal(rob_a2a_url(nameless, &r.cfg, "helper", url, sizeof(url)), -EINVAL);
	rr_free(&r);

	assert_int_equal(rr_render_from(rc, agents, &tok, 0, &r), 0);
	assert_true(r.valid);
	/* the status as the operator applies it, conditions unchanged since
	 * the status it read (their lastTransitionTime is kept) */
	helper = json_deep_copy(json_array_get(agents, 2));
	assert_non_null(helper);
	assert_int_equal(json_object_set_new(helper, "status",
					     json_loads("{\"conditions\":[{\"type\":\"Accepted\",\"status\":\"True\","
							"\"lastTransitionTime\":\"2026-01-02T03:04:05Z\"},"
							"{\"type\":\"Ready\",\"status\":\"True\","
							"\"lastTransitionTime\":\"2026-01-02T03:04:06Z\"}]}",
							0, NULL)),
			 0);
	golden("agent-status", rec_agent_status_json(rc, &r, agent_named(&r, "helper"), helper, 1, NULL));
	/* every accepted Agent has one, whatever its protocol; a rejected one none */
	st = rec_agent_status_json(rc, &r, agent_named(&r, "planner"), NULL, 1, NULL);
	assert_non_null(st);
	assert_string_equal(json_string_value(json_object_get(st, "a2aUrl")), "http://r1.ns.svc:9080/a2a/planner");
	json_decref(st);
	rejected = *agent_named(&r, "searcher");
	rejected.accepted = 0;
	st = rec_agent_status_json(rc, &r, &rejected, NULL, 1, NULL);
	assert_non_null(st);
	assert_null(json_object_get(st, "a2aUrl"));
	assert_null(json_object_get(st, "ownerPod"));
	json_decref(st);
	rr_free(&r);
	json_decref(helper);
	json_decref(nameless);
	json_decref(agents);
	json_decref(tls);
	json_decref(rc);
}

/* Every outcome of the canary plan. */
static void test_plan_partition_table(void **state)
{
	static const struct {
		const char *what;
		struct rob_canary_in in;
		json_int_t partition;
		enum rob_stage stage;
	} cases[] = {
		{"one replica: no canary", {1, 1, 0, -1, 30}, 0, ROB_STAGE_NONE},
		{"no replicas", {0, 1, 0, -1, 30}, 0, ROB_STAGE_NONE},
		{"a rollout starts: only the highest ordinal", {3, 1, 0, -1, 30}, 2, ROB_STAGE_CANARY},
		{"a rollout starts again during a canary", {3, 1, 2, 5000, 30}, 2, ROB_STAGE_CANARY},
		{"canary not healthy yet", {3, 0, 2, -1, 30}, 2, ROB_STAGE_CANARY},
		{"canary healthy, not long enough", {3, 0, 2, 29999, 30}, 2, ROB_STAGE_CANARY},
		{"canary healthy long enough: promote", {3, 0, 2, 30000, 30}, 0, ROB_STAGE_PROMOTED},
		{"canarySeconds 0: promote once healthy", {2, 0, 1, 0, 0}, 0, ROB_STAGE_PROMOTED},
		{"canarySeconds 0 but not healthy", {2, 0, 1, -1, 0}, 1, ROB_STAGE_CANARY},
		{"steady state", {3, 0, 0, -1, 30}, 0, ROB_STAGE_NONE},
		{"steady state, healthy", {3, 0, 0, 99999, 30}, 0, ROB_STAGE_NONE},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum rob_stage stage;
		json_int_t p = rob_plan_partition(&cases[i].in, &stage);

		if (p != cases[i].partition || stage != cases[i].stage)
			fail_msg("%s: partition %lld stage %d, want %lld stage %d", cases[i].what, (long long)p,
				 (int)stage, (long long)cases[i].partition, (int)cases[i].stage);
	}
}

/*
 * The reconcile plan (rec_plan.c): one row per outcome.  Each row is what
 * was observed before the push (`o`) and after it (`a`; `fin` are the push
 * counts after a hot rollback's own converge, when set), and the plan,
 * outcome and report fields it must give.  Hashes are short stand-ins:
 * N the rendered config, O the ConfigMap's, P config-previous's; RN, RO,
 * RP their restart hashes.
 */
#define CANARY(reps, newr, part)                                                                                       \
	{                                                                                                              \
		.replicas = (reps), .new_rollout = (newr), .partition = (part), .canary_healthy_ms = -1,               \
		.canary_seconds = 30                                                                                   \
	}
#define OBS_BASE                                                                                                       \
	.valid = 1, .auto_rollback = 1, .hash = "N", .restart_hash = "RN", .had_config = 1, .cm_exists = 1,            \
	.cm_has_doc = 1, .cm_hash = "O", .cm_doc_hash = "O", .cm_restart = "RN", .canary = CANARY(3, 0, 0)
#define PUSH(ready, cur)                                                                                               \
	{                                                                                                              \
		.nready = (ready), .current = (cur)                                                                    \
	}

struct plan_want {
	enum rp_action action;
	int changed, restart_change, save_previous, write_config;
	enum rp_drift drift;
	int rolling_restart;
	json_int_t partition;
	enum rob_stage plan_stage;
	int push_current, push;
	const char *restart_from;
	enum rp_hot hot;
	enum rp_step step;
	enum rp_reason reason;
	int applied, rolled_back;
	enum rp_target target, restart;
	int from_template, stalled;
	enum rob_stage stage;
	int agents_current, agents_previous;
	int64_t requeue_ms;
};

struct plan_row {
	const char *what;
	struct rp_obs o;
	struct rp_after a;
	int has_fin;
	struct rp_push fin;
	struct plan_want w;
};

/* clang-format off */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Woverride-init"
static const struct plan_row plan_rows[] = {
	{"invalid spec: hold, keep the last good config",
	 {OBS_BASE, .valid = 0}, {.push = PUSH(3, 3)}, 0, {0},
	 {.action = RP_HOLD}},
	{"hot change, every router takes it",
	 {OBS_BASE}, {.push = PUSH(3, 3)}, 0, {0},
	 {.action = RP_APPLY, .changed = 1, .write_config = 1, .push = 1, .hot = RP_HOT_RELOADED,
	  .reason = RP_REASON_ALL_CURRENT, .applied = 1, .agents_current = 1}},
	{"hot change, one router unreachable: propagating",
	 {OBS_BASE}, {.push = {.nready = 3, .current = 2, .unreachable = 1}}, 0, {0},
	 {.action = RP_APPLY, .changed = 1, .write_config = 1, .push = 1, .reason = RP_REASON_PROPAGATING,
	  .requeue_ms = RP_CONVERGE_POLL_MS}},
	{"hot change, a router already needs a restart: rollout in progress",
	 {OBS_BASE}, {.push = {.nready = 3, .current = 2, .pending = 1}}, 0, {0},
	 {.action = RP_APPLY, .changed = 1, .write_config = 1, .push = 1, .reason = RP_REASON_ROLLOUT,
	  .requeue_ms = RP_CONVERGE_POLL_MS}},
	{"no ready routers",
	 {OBS_BASE}, {.push = PUSH(0, 0)}, 0, {0},
	 {.action = RP_APPLY, .changed = 1, .write_config = 1, .push = 1, .reason = RP_REASON_NO_READY,
	  .requeue_ms = RP_CONVERGE_POLL_MS}},
	{"first config: no ConfigMap, no status yet",
	 {OBS_BASE, .had_config = 0, .cm_exists = 0, .cm_has_doc = 0, .cm_hash = NULL, .cm_doc_hash = "",
	  .cm_restart = ""}, {.push = PUSH(0, 0)}, 0, {0},
	 {.action = RP_APPLY, .changed = 1, .write_config = 1, .push = 1, .reason = RP_REASON_NO_READY,
	  .requeue_ms = RP_CONVERGE_POLL_MS}},
	{"restart-class change: save previous, roll a canary",
	 {OBS_BASE, .cm_restart_class = 1, .cm_restart = "RO", .canary = CANARY(3, 1, 0)},
	 {.push = {.nready = 3, .current = 0, .pending = 3, .previous = 3}}, 0, {0},
	 {.action = RP_APPLY, .changed = 1, .restart_change = 1, .save_previous = 1, .write_config = 1,
	  .rolling_restart = 1, .partition = 2, .plan_stage = ROB_STAGE_CANARY, .restart_from = "O",
	  .stage = ROB_STAGE_CANARY, .reason = RP_REASON_ROLLOUT, .agents_previous = 1,
	  .requeue_ms = RP_CONVERGE_POLL_MS}},
	{"restart-class change, one replica: no canary",
	 {OBS_BASE, .cm_restart_class = 1, .cm_restart = "RO", .canary = CANARY(1, 1, 0)},
	 {.push = {.nready = 1, .pending = 1, .previous = 1}}, 0, {0},
	 {.action = RP_APPLY, .changed = 1, .restart_change = 1, .save_previous = 1, .write_config = 1,
	  .rolling_restart = 1, .restart_from = "O", .reason = RP_REASON_ROLLOUT, .agents_previous = 1,
	  .requeue_ms = RP_CONVERGE_POLL_MS}},
	{"restart-class change from an unreadable document",
	 {OBS_BASE, .cm_restart_class = 1, .cm_restart = ""},
	 {.push = {.nready = 3, .current = 1, .pending = 2}}, 0, {0},
	 {.action = RP_APPLY, .changed = 1, .restart_change = 1, .save_previous = 1, .write_config = 1,
	  .rolling_restart = 1, .restart_from = "O", .reason = RP_REASON_ROLLOUT,
	  .requeue_ms = RP_CONVERGE_POLL_MS}},
	{"restart-class change, every ready router already current",
	 {OBS_BASE, .cm_restart_class = 1, .cm_restart = "RO"}, {.push = PUSH(3, 3)}, 0, {0},
	 {.action = RP_APPLY, .changed = 1, .restart_change = 1, .save_previous = 1, .write_config = 1,
	  .rolling_restart = 1, .restart_from = "O", .reason = RP_REASON_ALL_CURRENT, .applied = 1,
	  .agents_current = 1}},
	{"hot change during a rollout: routers on the previous document wait",
	 {OBS_BASE, .prev_hash = "P", .prev_restart = "RP", .canary = CANARY(3, 0, 2)},
	 {.push = {.nready = 3, .current = 1, .pending = 2, .previous = 2}}, 0, {0},
	 {.action = RP_APPLY, .changed = 1, .write_config = 1, .push = 1, .restart_from = "P", .partition = 2,
	  .plan_stage = ROB_STAGE_CANARY, .stage = ROB_STAGE_CANARY, .reason = RP_REASON_ROLLOUT,
	  .agents_previous = 1, .requeue_ms = RP_CONVERGE_POLL_MS}},
	{"config-previous of the same restart hash: nobody waits",
	 {OBS_BASE, .prev_hash = "P", .prev_restart = "RN"}, {.push = PUSH(3, 3)}, 0, {0},
	 {.action = RP_APPLY, .changed = 1, .write_config = 1, .push = 1, .hot = RP_HOT_RELOADED,
	  .reason = RP_REASON_ALL_CURRENT, .applied = 1, .agents_current = 1}},
	{"canary not healthy long enough: hold the partition",
	 {OBS_BASE, .cm_hash = "N", .cm_doc_hash = "N", .canary = CANARY(3, 0, 2)},
	 {.push = {.nready = 3, .current = 1, .pending = 2}, .canary_healthy_ms = 29999}, 0, {0},
	 {.action = RP_APPLY, .push = 1, .partition = 2, .plan_stage = ROB_STAGE_CANARY, .stage = ROB_STAGE_CANARY,
	  .reason = RP_REASON_ROLLOUT, .requeue_ms = RP_CONVERGE_POLL_MS}},
	{"canary healthy for canarySeconds: promote",
	 {OBS_BASE, .cm_hash = "N", .cm_doc_hash = "N", .canary = CANARY(3, 0, 2)},
	 {.push = {.nready = 3, .current = 1, .pending = 2}, .canary_healthy_ms = 30000}, 0, {0},
	 {.action = RP_APPLY, .push = 1, .partition = 2, .plan_stage = ROB_STAGE_CANARY, .step = RP_STEP_PROMOTE,
	  .stage = ROB_STAGE_PROMOTED, .reason = RP_REASON_ROLLOUT, .requeue_ms = RP_CONVERGE_POLL_MS}},
	{"routers refuse a hot change: roll back",
	 {OBS_BASE}, {.push = {.nready = 3, .current = 1, .rejected = 2}}, 1, PUSH(3, 3),
	 {.action = RP_APPLY, .changed = 1, .write_config = 1, .push = 1, .hot = RP_HOT_ROLLBACK,
	  .rolled_back = 1, .target = RP_TARGET_CURRENT, .reason = RP_REASON_ROLLED_BACK, .applied = 1}},
	{"a router needs a restart for a hot change: roll back, even when stalled",
	 {OBS_BASE}, {.push = {.nready = 3, .current = 2, .restart = 1}, .stalled = 1, .has_template = 1,
	  .template_is_rendered = 1, .previous_restorable = 1}, 1, PUSH(3, 2),
	 {.action = RP_APPLY, .changed = 1, .write_config = 1, .push = 1, .hot = RP_HOT_ROLLBACK,
	  .rolled_back = 1, .target = RP_TARGET_CURRENT, .reason = RP_REASON_ROLLED_BACK,
	  .requeue_ms = RP_CONVERGE_POLL_MS}},
	{"routers refuse, autoRollback off",
	 {OBS_BASE, .auto_rollback = 0}, {.push = {.nready = 3, .current = 1, .rejected = 2}}, 0, {0},
	 {.action = RP_APPLY, .changed = 1, .write_config = 1, .push = 1, .hot = RP_HOT_REFUSED,
	  .reason = RP_REASON_PROPAGATING, .requeue_ms = RP_CONVERGE_POLL_MS}},
	{"routers refuse the first config: nothing to roll back to",
	 {OBS_BASE, .cm_exists = 0, .cm_has_doc = 0, .cm_hash = NULL, .cm_doc_hash = "", .had_config = 0},
	 {.push = {.nready = 3, .rejected = 3}}, 0, {0},
	 {.action = RP_APPLY, .changed = 1, .write_config = 1, .push = 1, .hot = RP_HOT_REFUSED,
	  .reason = RP_REASON_PROPAGATING, .requeue_ms = RP_CONVERGE_POLL_MS}},
	{"a refused config stays rolled back",
	 {OBS_BASE, .rejected_hash = "N"}, {.push = PUSH(3, 3), .has_template = 1}, 0, {0},
	 {.action = RP_KEEP_ROLLED_BACK, .push_current = 1, .push = 1, .rolled_back = 1,
	  .target = RP_TARGET_CURRENT, .from_template = 1, .reason = RP_REASON_ROLLED_BACK, .applied = 1}},
	{"rolled back, even a stalled rollout is not rolled back twice",
	 {OBS_BASE, .rejected_hash = "N"}, {.push = PUSH(3, 2), .stalled = 1, .template_is_rendered = 1,
	  .has_template = 1, .previous_restorable = 1}, 0, {0},
	 {.action = RP_KEEP_ROLLED_BACK, .push_current = 1, .push = 1, .rolled_back = 1,
	  .target = RP_TARGET_CURRENT, .from_template = 1, .reason = RP_REASON_ROLLED_BACK,
	  .requeue_ms = RP_CONVERGE_POLL_MS}},
	{"rejected hash, but the ConfigMap holds no document: apply",
	 {OBS_BASE, .rejected_hash = "N", .cm_has_doc = 0, .cm_doc_hash = ""}, {.push = PUSH(3, 3)}, 0, {0},
	 {.action = RP_APPLY, .changed = 1, .write_config = 1, .push = 1, .hot = RP_HOT_RELOADED,
	  .reason = RP_REASON_ALL_CURRENT, .applied = 1, .agents_current = 1}},
	{"stalled restart-class rollout: restore config-previous",
	 {OBS_BASE, .cm_hash = "N", .cm_doc_hash = "N", .prev_hash = "P", .prev_restart = "RP"},
	 {.push = {.nready = 2, .current = 1, .pending = 1, .previous = 1}, .stalled = 1,
	  .template_is_rendered = 1, .has_template = 1, .previous_restorable = 1}, 0, {0},
	 {.action = RP_APPLY, .push = 1, .restart_from = "P", .step = RP_STEP_ROLLBACK, .rolled_back = 1,
	  .target = RP_TARGET_PREVIOUS, .restart = RP_TARGET_PREVIOUS, .from_template = 1,
	  .reason = RP_REASON_ROLLED_BACK, .requeue_ms = RP_CONVERGE_POLL_MS}},
	{"stalled, autoRollback off: report the deadline",
	 {OBS_BASE, .auto_rollback = 0, .cm_hash = "N", .cm_doc_hash = "N", .canary = CANARY(3, 0, 2)},
	 {.push = {.nready = 2, .current = 1, .pending = 1}, .stalled = 1, .template_is_rendered = 1,
	  .has_template = 1, .previous_restorable = 1, .canary_healthy_ms = 99999}, 0, {0},
	 {.action = RP_APPLY, .push = 1, .partition = 2, .plan_stage = ROB_STAGE_CANARY, .stalled = 1,
	  .stage = ROB_STAGE_CANARY, .reason = RP_REASON_ROLLOUT, .requeue_ms = RP_CONVERGE_POLL_MS}},
	{"stalled, config-previous not restorable",
	 {OBS_BASE, .cm_hash = "N", .cm_doc_hash = "N"},
	 {.push = {.nready = 2, .current = 1, .pending = 1}, .stalled = 1, .template_is_rendered = 1,
	  .has_template = 1}, 0, {0},
	 {.action = RP_APPLY, .push = 1, .stalled = 1, .reason = RP_REASON_ROLLOUT,
	  .requeue_ms = RP_CONVERGE_POLL_MS}},
	{"stalled, the template is not the rendered one",
	 {OBS_BASE, .cm_hash = "N", .cm_doc_hash = "N"},
	 {.push = {.nready = 2, .current = 1, .pending = 1}, .stalled = 1, .has_template = 1,
	  .previous_restorable = 1}, 0, {0},
	 {.action = RP_APPLY, .push = 1, .stalled = 1, .reason = RP_REASON_ROLLOUT,
	  .requeue_ms = RP_CONVERGE_POLL_MS}},
	{"a hot reload ends a stalled restart's deadline",
	 {OBS_BASE}, {.push = PUSH(3, 3), .stalled = 1, .template_is_rendered = 1, .has_template = 1,
	  .previous_restorable = 1}, 0, {0},
	 {.action = RP_APPLY, .changed = 1, .write_config = 1, .push = 1, .hot = RP_HOT_RELOADED,
	  .reason = RP_REASON_ALL_CURRENT, .applied = 1, .agents_current = 1}},
	{"ConfigMap edited by hand: restore it",
	 {OBS_BASE, .cm_hash = "N", .cm_doc_hash = "X"}, {.push = PUSH(3, 3)}, 0, {0},
	 {.action = RP_APPLY, .write_config = 1, .drift = RP_DRIFT_EDITED, .push = 1,
	  .reason = RP_REASON_ALL_CURRENT, .applied = 1, .agents_current = 1}},
	{"ConfigMap's config-hash annotation removed by hand: restore it",
	 {OBS_BASE, .cm_hash = "N", .cm_doc_hash = "N", .cm_unannotated = 1}, {.push = PUSH(3, 3)}, 0, {0},
	 {.action = RP_APPLY, .write_config = 1, .drift = RP_DRIFT_EDITED, .push = 1,
	  .reason = RP_REASON_ALL_CURRENT, .applied = 1, .agents_current = 1}},
	{"ConfigMap deleted: recreate it",
	 {OBS_BASE, .cm_exists = 0, .cm_has_doc = 0, .cm_hash = NULL, .cm_doc_hash = ""}, {.push = PUSH(3, 3)},
	 0, {0},
	 {.action = RP_APPLY, .changed = 1, .write_config = 1, .drift = RP_DRIFT_DELETED, .push = 1,
	  .hot = RP_HOT_RELOADED, .reason = RP_REASON_ALL_CURRENT, .applied = 1, .agents_current = 1}},
	{"nothing changed, all current",
	 {OBS_BASE, .cm_hash = "N", .cm_doc_hash = "N"}, {.push = PUSH(3, 3)}, 0, {0},
	 {.action = RP_APPLY, .push = 1, .reason = RP_REASON_ALL_CURRENT, .applied = 1, .agents_current = 1}},
	{"all current, an Agent's token Secret missing: look again",
	 {OBS_BASE, .cm_hash = "N", .cm_doc_hash = "N", .token_secret_invalid = 1}, {.push = PUSH(3, 3)}, 0,
	 {0},
	 {.action = RP_APPLY, .push = 1, .reason = RP_REASON_ALL_CURRENT, .applied = 1, .agents_current = 1,
	  .requeue_ms = RP_SECRET_POLL_MS}},
};
#pragma GCC diagnostic pop
/* clang-format on */

static int same_str(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

#define CHECK_FIELD(got, want)                                                                                         \
	do {                                                                                                           \
		if ((long long)(got) != (long long)(want)) {                                                           \
			print_error("%s: %s is %lld, want %lld\n", row->what, #got, (long long)(got),                  \
				    (long long)(want));                                                                \
			bad++;                                                                                         \
		}                                                                                                      \
	} while (0)

static int check_plan_row(const struct plan_row *row)
{
	const struct plan_want *w = &row->w;
	struct rp_plan p;
	struct rp_outcome out;
	struct rp_report rep;
	int bad = 0;

	rp_plan(&row->o, &p);
	CHECK_FIELD(p.action, w->action);
	if (p.action == RP_HOLD)
		return bad;
	CHECK_FIELD(p.changed, w->changed);
	CHECK_FIELD(p.restart_change, w->restart_change);
	CHECK_FIELD(p.save_previous, w->save_previous);
	CHECK_FIELD(p.write_config, w->write_config);
	CHECK_FIELD(p.drift, w->drift);
	CHECK_FIELD(p.apply_objects, w->action == RP_APPLY);
	CHECK_FIELD(p.rolling_restart, w->rolling_restart);
	CHECK_FIELD(p.partition, w->partition);
	CHECK_FIELD(p.stage, w->plan_stage);
	CHECK_FIELD(p.push_current, w->push_current);
	CHECK_FIELD(p.push, w->push);
	if (!same_str(p.restart_from, w->restart_from)) {
		print_error("%s: restart_from %s, want %s\n", row->what, p.restart_from ?: "NULL",
			    w->restart_from ?: "NULL");
		bad++;
	}
	rp_plan_outcome(&row->o, &p, &row->a, &out);
	CHECK_FIELD(out.hot, w->hot);
	CHECK_FIELD(out.step, w->step);
	CHECK_FIELD(out.rolled_back, w->rolled_back);
	rp_report(&row->o, &p, &out, &row->a, row->has_fin ? &row->fin : &row->a.push, &rep);
	CHECK_FIELD(rep.reason, w->reason);
	CHECK_FIELD(rep.applied, w->applied);
	CHECK_FIELD(rep.rolled_back, w->rolled_back);
	CHECK_FIELD(rep.target, w->target);
	CHECK_FIELD(rep.restart, w->restart);
	CHECK_FIELD(rep.restart_from_template, w->from_template);
	CHECK_FIELD(rep.stalled, w->stalled);
	CHECK_FIELD(rep.stage, w->stage);
	CHECK_FIELD(rep.agents_current, w->agents_current);
	CHECK_FIELD(rep.agents_previous, w->agents_previous);
	CHECK_FIELD(rep.requeue_ms, w->requeue_ms);
	return bad;
}

/* Every outcome of the reconcile plan, and the ConfigApplied reasons. */
static void test_reconcile_plan_table(void **state)
{
	int bad = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(plan_rows) / sizeof(plan_rows[0]); i++)
		bad += check_plan_row(&plan_rows[i]);
	assert_string_equal(rp_reason_name(RP_REASON_ROLLED_BACK), "RolledBack");
	assert_string_equal(rp_reason_name(RP_REASON_NO_READY), "NoReadyRouters");
	assert_string_equal(rp_reason_name(RP_REASON_ALL_CURRENT), "AllRoutersCurrent");
	assert_string_equal(rp_reason_name(RP_REASON_ROLLOUT), "RolloutInProgress");
	assert_string_equal(rp_reason_name(RP_REASON_PROPAGATING), "Propagating");
	assert_string_equal(rp_reason_status(RP_REASON_ALL_CURRENT), "True");
	assert_string_equal(rp_reason_status(RP_REASON_PROPAGATING), "False");
	assert_int_equal(bad, 0);
}

/* The assignment in the document: cluster.replicas (at least 1) and the
 * peers' names, never their addresses. */
static void test_render_cluster(void **state)
{
	json_t *agents = json_array(), *doc, *cl;
	json_t *three = golden_rc(""), *zero = golden_rc(",\"replicas\":0");
	struct rr_tokens tok = {0};
	struct rr_render r;

	(void)state;
	assert_int_equal(rr_render_from(three, agents, &tok, 0, &r), 0);
	assert_true(r.valid);
	doc = json_loads(r.doc, 0, NULL);
	cl = json_object_get(doc, "cluster");
	assert_int_equal(json_integer_value(json_object_get(cl, "replicas")), 3);
	assert_string_equal(json_string_value(json_object_get(cl, "peerHost")), "r1-{ordinal}.r1-peers.ns.svc");
	assert_null(json_object_get(cl, "resolve")); /* membership is pushed, not rendered (decision 46) */
	json_decref(doc);
	rr_free(&r);
	assert_int_equal(rr_render_from(zero, agents, &tok, 0, &r), 0);
	assert_true(r.valid);
	assert_int_equal(r.cfg.cluster.replicas, 1);
	rr_free(&r);
	rr_tokens_free(&tok);
	json_decref(three);
	json_decref(zero);
	json_decref(agents);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_wq_dedup_and_debounce),
		cmocka_unit_test(test_wq_trailing_debounce),
		cmocka_unit_test(test_wq_backoff_and_shutdown),
		cmocka_unit_test(test_kubeconfig_inline_and_files),
		cmocka_unit_test(test_configmap_round_trip_plain_and_gzip),
		cmocka_unit_test(test_golden_router_objects),
		cmocka_unit_test(test_render_from_tokens),
		cmocka_unit_test(test_render_tls),
		cmocka_unit_test(test_render_is_loadable_with_control_characters),
		cmocka_unit_test(test_render_cluster),
		cmocka_unit_test(test_render_protocol),
		cmocka_unit_test(test_agent_status_a2a_url),
		cmocka_unit_test(test_plan_partition_table),
		cmocka_unit_test(test_reconcile_plan_table),
	};

	if (util_init())
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
