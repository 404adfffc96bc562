/*
 * bench_render: CPU time of one full operator render of a RouterConfig with
 * N Agents (default 10,000): select the Agents, build the canonical
 * document, hash it, parse and validate it with the router's own code, and
 * build the gzip ConfigMap.  Prints the median and worst of 7 runs, the
 * document size and the ConfigMap size.  Target: < 1 s CPU for 10,000.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "rec_objects.h"
#include "rec_render.h"
#include "switchboard/util.h"

static double cpu_seconds(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
	       (double)ru.ru_stime.tv_usec / 1e6;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 10000;
	json_t *rc, *agents = json_array();
	double t[7];
	size_t doclen = 0, cmlen = 0;

	if (util_init() || !agents)
		return 1;
	rc = json_pack("{s:s,s:s,s:{s:s,s:s,s:s,s:I},s:{s:i,s:{s:s,s:{s:I}}}}", "apiVersion",
		       "switchboard.dev/v1alpha1", "kind", "RouterConfig", "metadata", "name", "bench", "namespace",
		       "default", "uid", "u-1", "generation", (json_int_t)1, "spec", "replicas", 2, "router", "profile",
		       "production", "performance", "memoryLimitBytes", (json_int_t)8 << 30);
	json_object_set_new(json_object_get(json_object_get(json_object_get(rc, "spec"), "router"), "performance"),
			    "agentQueueSize", json_integer(100));
	for (int i = 0; i < n; i++) {
		char name[64];

		snprintf(name, sizeof(name), "agent-%05d", i);
		if (json_array_append_new(
			    agents, json_pack("{s:s,s:s,s:{s:s,s:s,s:I},s:{s:{s:s},s:{s:s,s:s,s:i,s:i},s:[{s:s,s:s}]}}",
					      "apiVersion", "switchboard.dev/v1alpha1", "kind", "Agent", "metadata",
					      "name", name, "namespace", "default", "generation", (json_int_t)1, "spec",
					      "routerRef", "name", "bench", "delivery", "mode", "push", "endpoint",
					      "http://agent.example:8000/inbox", "timeoutMs", 5000, "maxInFlight", 16,
					      "capabilities", "name", "search", "description", "Looks things up")))
			return 1;
	}
	/* security.auth is token in production: every agent needs a digest, so
	 * run the benchmark with auth none (no Secrets to read offline) */
	json_object_set_new(json_object_get(json_object_get(rc, "spec"), "router"), "security",
			    json_pack("{s:s}", "auth", "none"));
	for (int r = 0; r < 7; r++) {
		struct rr_render out;
		json_t *cm;
		double t0 = cpu_seconds();

		if (rr_render_agents(NULL, rc, agents, 0, &out) || !out.valid) {
			fprintf(stderr, "render failed (%zu errors)\n", out.report.errors);
			for (size_t i = 0; i < out.report.n && i < 5; i++)
				fprintf(stderr, "  %s: %s\n", out.report.items[i].path, out.report.items[i].msg);
			rr_free(&out);
			return 1;
		}
		cm = rob_configmap(rc, "config", out.doc, out.len, out.hash, out.restart_hash);
		t[r] = cpu_seconds() - t0;
		doclen = out.len;
		{
			char *s = json_dumps(cm, JSON_COMPACT);

			cmlen = s ? strlen(s) : 0;
			free(s);
		}
		json_decref(cm);
		rr_free(&out);
	}
	qsort(t, 7, sizeof(t[0]), cmp);
	printf("render %d agents: CPU median %.3f s, worst %.3f s (target < 1 s); document %zu bytes, "
	       "ConfigMap %zu bytes (limit 1048576)\n",
	       n, t[3], t[6], doclen, cmlen);
	json_decref(agents);
	json_decref(rc);
	return 0;
}
