/*
 * fuzz_kubeconfig: hostile kubeconfig files against the operator's loader
 * (kc_config_load() in operator/kc.c).  The input is written to a file in a
 * private directory that also holds small PEM files, so relative
 * certificate paths can resolve.  Inputs naming device or /proc/<pid>/fd
 * paths are skipped: reading a terminal or a pipe would block the fuzzer,
 * not find a bug.  A refusal must leave the config empty and say why; an
 * accepted config must have an https:// server with no path, a namespace,
 * both or neither of client certificate and key; and loading the same file
 * twice must give the same result (the loader is deterministic).
 */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"
#include "kc.h"
#include "switchboard/log.h"
#include "switchboard/util.h"
#include "switchboard/yjson.h"

static char dir[64], path[128];

static void put_file(const char *name, const char *text)
{
	char p[128];
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	f = fopen(p, "w");
	FZ_CHECK(f);
	fputs(text, f);
	FZ_CHECK(fclose(f) == 0);
}

static void cleanup(void)
{
	static const char *const files[] = {"kubeconfig", "ca.crt", "client.crt", "client.key"};
	char p[128];

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(p, sizeof(p), "%s/%s", dir, files[i]);
		unlink(p);
	}
	rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	FZ_CHECK(util_init() == 0);
	log_set_level(LOG_ERROR);
	snprintf(dir, sizeof(dir), "/tmp/fuzz_kubeconfig.XXXXXX");
	FZ_CHECK(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/kubeconfig", dir);
	FZ_CHECK(atexit(cleanup) == 0);
	put_file("ca.crt", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
	put_file("client.crt", "-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n");
	put_file("client.key", "-----BEGIN PRIVATE KEY-----\nMIID\n-----END PRIVATE KEY-----\n");
	return 0;
}

/* 1 if any string in the tree could name a blocking file. */
static int risky(const json_t *j)
{
	const char *k;
	json_t *v;
	size_t i;

	if (json_is_string(j)) {
		const char *s = json_string_value(j);

		return strstr(s, "dev") || strstr(s, "fd") || strstr(s, "proc");
	}
	json_object_foreach ((json_t *)j, k, v)
		if (risky(v))
			return 1;
	json_array_foreach (j, i, v)
		if (risky(v))
			return 1;
	return 0;
}

static void check_loaded(const struct kc_config *c)
{
	FZ_CHECK(c->server && strncmp(c->server, "https://", 8) == 0);
	FZ_CHECK(!strchr(c->server + 8, '/'));
	FZ_CHECK(c->namespace_);
	FZ_CHECK(!c->cert_pem == !c->key_pem);
	FZ_CHECK(!c->token_file || c->token_file[0]);
}

static int same(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static void load_twice(void)
{
	struct kc_config c, c2;
	char err[512] = "", err2[512] = "";
	int rc = kc_config_load(&c, path, NULL, err, sizeof(err));
	int rc2 = kc_config_load(&c2, path, NULL, err2, sizeof(err2));

	FZ_CHECK(rc == rc2);
	if (rc) {
		static const struct kc_config empty;

		FZ_CHECK(rc < 0);
		FZ_CHECK(memcmp(&c, &empty, sizeof(c)) == 0);
		FZ_CHECK(rc == -ENOMEM || (err[0] && strcmp(err, err2) == 0));
		return;
	}
	check_loaded(&c);
	FZ_CHECK(same(c.server, c2.server) && same(c.namespace_, c2.namespace_) && same(c.ca_pem, c2.ca_pem));
	FZ_CHECK(same(c.token, c2.token) && same(c.token_file, c2.token_file) && same(c.key_pem, c2.key_pem));
	kc_config_free(&c);
	kc_config_free(&c2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256];
	json_t *tree = NULL;
	FILE *f;

	if (yj_parse((const char *)data, size, &tree, err, sizeof(err)) == 0 && risky(tree)) {
		json_decref(tree);
		return 0;
	}
	json_decref(tree);
	f = fopen(path, "w");
	FZ_CHECK(f);
	FZ_CHECK(fwrite(data, 1, size, f) == size);
	FZ_CHECK(fclose(f) == 0);
	load_twice();
	return 0;
}
