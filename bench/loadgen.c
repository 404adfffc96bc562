/*
 * End-to-end load generator for switchboard-router over HTTP on loopback.
 * Producers POST batches of messages (each carries its send time in its
 * content); consumers long-poll the agents' mailboxes and ack what they get.
 * Reports sustained throughput (messages acked by consumers per second),
 * produce-to-consume latency percentiles, the router's CPU time, resident
 * memory and storage commit (fsync) rate, and checks that every accepted
 * message was consumed.  Usage: loadgen --help.
 */
#include <curl/curl.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "switchboard/buf.h"
#include "switchboard/util.h"

struct opts {
	const char *data_url, *admin_url;
	int producers, consumers, nagents, batch, size, pull_max;
	double duration, warmup, rate;
	int router_pid;
};

/* --agent-ids: the receivers by name (e.g. the agents one replica owns);
 * otherwise a0 … a<agents-1>. */
static char agent_ids[64][64];
static int nagent_ids;

static const char *agent_name(int k, char out[64])
{
	if (nagent_ids)
		return agent_ids[k % nagent_ids];
	snprintf(out, 64, "a%d", k);
	return out;
}

static int parse_agent_ids(char *list)
{
	for (char *save = NULL, *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (nagent_ids == 64 || strlen(t) >= sizeof(agent_ids[0]))
			return -1;
		snprintf(agent_ids[nagent_ids++], sizeof(agent_ids[0]), "%s", t);
	}
	return nagent_ids ? 0 : -1;
}

static struct opts O = {"http://127.0.0.1:8080", "http://127.0.0.1:8081", 4, 4, 4, 200, 256, 1000, 60, 5, 0, 0};
static atomic_int stop_producing, stop_consuming, measuring;
static _Atomic uint64_t accepted, rejected, consumed, consumed_in_window, errors;

struct lat {
	uint64_t *v;
	size_t n, cap;
};

static size_t sink(char *p, size_t sz, size_t n, void *ud)
{
	return buf_append(ud, p, sz * n) ? 0 : sz * n;
}

static CURL *mk_curl(struct buf *resp, struct curl_slist **hdrs)
{
	CURL *c = curl_easy_init();

	*hdrs = curl_slist_append(NULL, "Content-Type: application/json");
	*hdrs = curl_slist_append(*hdrs, "Expect:");
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, resp);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, *hdrs);
	curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
	return c;
}

static void sleep_until(uint64_t ns)
{
	uint64_t now = util_mono_ns();

	if (ns > now) {
		struct timespec ts = {(time_t)((ns - now) / 1000000000ull), (long)((ns - now) % 1000000000ull)};

		nanosleep(&ts, NULL);
	}
}

static void *producer(void *arg)
{
	int id = (int)(intptr_t)arg;
	struct buf body, resp;
	struct curl_slist *hdrs;
	CURL *c;
	uint64_t seq = 0, next = util_mono_ns();
	double per_batch_ns = O.rate > 0 ? 1e9 * O.batch / (O.rate / O.producers) : 0;
	char *pad = malloc((size_t)O.size + 1);
	char url[256];

	memset(pad, 'x', (size_t)O.size);
	pad[O.size - 20] = '\0'; /* 20 bytes of the content carry the timestamp */
	buf_init(&body, (size_t)64 << 20);
	buf_init(&resp, (size_t)16 << 20);
	c = mk_curl(&resp, &hdrs);
	snprintf(url, sizeof(url), "%s/v1/messages", O.data_url);
	curl_easy_setopt(c, CURLOPT_URL, url);
	while (!atomic_load(&stop_producing)) {
		long code = 0;
		int rc = 0;

		if (per_batch_ns > 0) {
			sleep_until(next);
			next += (uint64_t)per_batch_ns;
		}
		buf_reset(&body);
		rc |= buf_puts(&body, "{\"messages\":[");
		for (int i = 0; i < O.batch; i++) {
			char nm[64];

			rc |= buf_printf(
				&body,
				"%s{\"performative\":\"inform\",\"sender\":\"p%d\",\"receiver\":\"%s\","
				"\"message_id\":\"p%d-%llu\",\"content\":\"%019llu:%s\"}",
				i ? "," : "", id, agent_name((int)((seq + (uint64_t)i) % (uint64_t)O.nagents), nm), id,
				(unsigned long long)(seq + (uint64_t)i), (unsigned long long)util_mono_ns(), pad);
		}
		rc |= buf_puts(&body, "]}");
		if (rc)
			abort();
		seq += (uint64_t)O.batch;
		buf_reset(&resp);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.data);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)body.len);
		if (curl_easy_perform(c) != CURLE_OK) {
			atomic_fetch_add(&errors, 1);
			usleep(10000);
			continue;
		}
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
		if (code == 202) {
			atomic_fetch_add(&accepted, (uint64_t)O.batch);
		} else {
			/* count per item: 207 carries "status":202 for the accepted ones */
			uint64_t ok = 0;

			for (const char *p = buf_str(&resp); (p = strstr(p, "\"status\":202")); p++)
				ok++;
			atomic_fetch_add(&accepted, ok);
			atomic_fetch_add(&rejected, (uint64_t)O.batch - ok);
			usleep(1000);
		}
	}
	curl_easy_cleanup(c);
	curl_slist_free_all(hdrs);
	buf_free(&body);
	buf_free(&resp);
	free(pad);
	return NULL;
}

/* Each consumer acks on its own connection and thread, so that polling never
 * waits for an ack's commit (a real consumer would pipeline the same way). */
struct acker {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	char *q[8];
	size_t qn[8];
	int head, count, done;
	const char *url;
};

static void *acker_main(void *arg)
{
	struct acker *a = arg;
	struct buf resp;
	struct curl_slist *hdrs;
	CURL *c;

	buf_init(&resp, (size_t)1 << 20);
	c = mk_curl(&resp, &hdrs);
	curl_easy_setopt(c, CURLOPT_URL, a->url);
	for (;;) {
		char *body;
		size_t n;

		pthread_mutex_lock(&a->lock);
		while (!a->count && !a->done)
			pthread_cond_wait(&a->cond, &a->lock);
		if (!a->count && a->done) {
			pthread_mutex_unlock(&a->lock);
			break;
		}
		body = a->q[a->head];
		n = a->qn[a->head];
		pthread_mutex_unlock(&a->lock);
		buf_reset(&resp);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
		if (curl_easy_perform(c) != CURLE_OK || !strstr(buf_str(&resp), "\"acked\":"))
			atomic_fetch_add(&errors, 1);
		else
			atomic_fetch_add(&consumed, n);
		free(body);
		pthread_mutex_lock(&a->lock);
		a->head = (a->head + 1) % 8;
		a->count--;
		pthread_cond_broadcast(&a->cond);
		pthread_mutex_unlock(&a->lock);
	}
	curl_easy_cleanup(c);
	curl_slist_free_all(hdrs);
	buf_free(&resp);
	return NULL;
}

static void acker_push(struct acker *a, char *body, size_t n)
{
	pthread_mutex_lock(&a->lock);
	while (a->count == 8)
		pthread_cond_wait(&a->cond, &a->lock);
	a->q[(a->head + a->count) % 8] = body;
	a->qn[(a->head + a->count) % 8] = n;
	a->count++;
	pthread_cond_broadcast(&a->cond);
	pthread_mutex_unlock(&a->lock);
}

static void *consumer(void *arg)
{
	int id = (int)(intptr_t)arg;
	struct buf resp, ack;
	struct curl_slist *hdrs;
	struct lat *lat = calloc(1, sizeof(*lat));
	CURL *c;
	char pull_url[256], ack_url[256], nm[64];
	int agent = id % O.nagents;

	buf_init(&resp, (size_t)256 << 20);
	buf_init(&ack, (size_t)64 << 20);
	c = mk_curl(&resp, &hdrs);
	snprintf(pull_url, sizeof(pull_url), "%s/v1/agents/%s/messages?max=%d&wait_ms=100", O.data_url,
		 agent_name(agent, nm), O.pull_max);
	snprintf(ack_url, sizeof(ack_url), "%s/v1/agents/%s/ack", O.data_url, agent_name(agent, nm));
	struct acker ak = {.url = ack_url};
	pthread_t akt;

	pthread_mutex_init(&ak.lock, NULL);
	pthread_cond_init(&ak.cond, NULL);
	pthread_create(&akt, NULL, acker_main, &ak);
	while (!atomic_load(&stop_consuming)) {
		const char *p;
		uint64_t now, n = 0;
		int rc = 0;

		buf_reset(&resp);
		curl_easy_setopt(c, CURLOPT_URL, pull_url);
		curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
		if (curl_easy_perform(c) != CURLE_OK) {
			atomic_fetch_add(&errors, 1);
			usleep(10000);
			continue;
		}
		now = util_mono_ns();
		buf_reset(&ack);
		rc |= buf_puts(&ack, "{\"message_ids\":[");
		for (p = buf_str(&resp); (p = strstr(p, "{\"message_id\":\"")); n++) {
			const char *s = p + 15, *e = strchr(s, '"'), *ct;

			if (!e)
				break;
			rc |= buf_printf(&ack, "%s\"%.*s\"", n ? "," : "", (int)(e - s), s);
			ct = strstr(e, "\"content\":\"");
			if (ct && atomic_load(&measuring)) {
				uint64_t sent = strtoull(ct + 11, NULL, 10);

				if (lat->n == lat->cap) {
					lat->cap = lat->cap ? lat->cap * 2 : 1 << 16;
					lat->v = realloc(lat->v, lat->cap * sizeof(*lat->v));
				}
				lat->v[lat->n++] = now - sent;
			}
			p = e;
		}
		rc |= buf_puts(&ack, "]}");
		if (rc)
			abort();
		if (!n)
			continue;
		if (atomic_load(&measuring))
			atomic_fetch_add(&consumed_in_window, n);
		acker_push(&ak, buf_steal(&ack), n);
		buf_init(&ack, (size_t)64 << 20);
	}
	pthread_mutex_lock(&ak.lock);
	ak.done = 1;
	pthread_cond_broadcast(&ak.cond);
	pthread_mutex_unlock(&ak.lock);
	pthread_join(akt, NULL);
	curl_easy_cleanup(c);
	curl_slist_free_all(hdrs);
	buf_free(&resp);
	buf_free(&ack);
	return lat;
}

static double scrape(const char *name)
{
	struct buf resp;
	struct curl_slist *hdrs;
	CURL *c;
	char url[256];
	double v = -1;

	buf_init(&resp, (size_t)64 << 20);
	c = mk_curl(&resp, &hdrs);
	snprintf(url, sizeof(url), "%s/metrics", O.admin_url);
	curl_easy_setopt(c, CURLOPT_URL, url);
	if (curl_easy_perform(c) == CURLE_OK) {
		for (const char *p = buf_str(&resp); (p = strstr(p, name)); p++) {
			if ((p == resp.data || p[-1] == '\n') && p[strlen(name)] == ' ') {
				v = strtod(p + strlen(name) + 1, NULL);
				break;
			}
		}
	}
	curl_easy_cleanup(c);
	curl_slist_free_all(hdrs);
	buf_free(&resp);
	return v;
}

/* Scrape a histogram's cumulative buckets: up to 32 (le, count) pairs. */
static int scrape_hist(const char *name, double *le, double *cnt)
{
	struct buf resp;
	struct curl_slist *hdrs;
	CURL *c;
	char url[256], pat[160];
	int n = 0;

	buf_init(&resp, (size_t)64 << 20);
	c = mk_curl(&resp, &hdrs);
	snprintf(url, sizeof(url), "%s/metrics", O.admin_url);
	snprintf(pat, sizeof(pat), "%s_bucket{le=\"", name);
	curl_easy_setopt(c, CURLOPT_URL, url);
	if (curl_easy_perform(c) == CURLE_OK) {
		for (const char *p = buf_str(&resp); n < 32 && (p = strstr(p, pat)); p++) {
			const char *v = p + strlen(pat);

			le[n] = strncmp(v, "+Inf", 4) == 0 ? 1e300 : strtod(v, NULL);
			v = strchr(v, ' ');
			cnt[n++] = v ? strtod(v + 1, NULL) : 0;
		}
	}
	curl_easy_cleanup(c);
	curl_slist_free_all(hdrs);
	buf_free(&resp);
	return n;
}

/* Quantile from bucket deltas, interpolated within the bucket. */
static double hist_quantile(double q, const double *le, const double *c0, const double *c1, int n)
{
	double total = c1[n - 1] - c0[n - 1], want = q * total, prev = 0, lo = 0;

	for (int i = 0; i < n && total > 0; i++) {
		double cum = c1[i] - c0[i];

		if (cum >= want) {
			double hi = le[i] > 1e299 ? lo : le[i];

			return cum > prev ? lo + (hi - lo) * (want - prev) / (cum - prev) : hi;
		}
		prev = cum;
		lo = le[i];
	}
	return -1;
}

static double proc_cpu_s(int pid)
{
	char path[64], line[1024], *p;
	unsigned long ut = 0, st = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	if (!fgets(line, sizeof(line), f)) {
		fclose(f);
		return -1;
	}
	fclose(f);
	p = strrchr(line, ')');
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
		return -1;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static double self_cpu_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void usage(void)
{
	printf("loadgen [--data URL] [--admin URL] [--producers N] [--consumers N] [--agents N] [--batch N]\n"
	       "        [--size BYTES] [--pull-max N] [--duration S] [--warmup S] [--rate MSG/S] [--pid ROUTER_PID]\n"
	       "        [--agent-ids ID,ID,...]   receivers by name instead of a0 … a<agents-1>\n");
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{"data", 1, 0, 'd'},	  {"admin", 1, 0, 'a'},	   {"producers", 1, 0, 'p'},
		{"consumers", 1, 0, 'c'}, {"agents", 1, 0, 'n'},   {"batch", 1, 0, 'b'},
		{"size", 1, 0, 's'},	  {"pull-max", 1, 0, 'm'}, {"duration", 1, 0, 't'},
		{"warmup", 1, 0, 'w'},	  {"rate", 1, 0, 'r'},	   {"pid", 1, 0, 'P'},
		{"agent-ids", 1, 0, 'A'}, {"help", 0, 0, 'h'},	   {0, 0, 0, 0},
	};
	pthread_t pt[64], ct[64];
	struct lat all = {0};
	double cpu0, cpu1, self0, self1, commits0, commits1, rss;
	uint64_t acc0, t0, t1, lost;
	int o;

	while ((o = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (o) {
		case 'd':
			O.data_url = optarg;
			break;
		case 'a':
			O.admin_url = optarg;
			break;
		case 'p':
			O.producers = atoi(optarg);
			break;
		case 'c':
			O.consumers = atoi(optarg);
			break;
		case 'n':
			O.nagents = atoi(optarg);
			break;
		case 'b':
			O.batch = atoi(optarg);
			break;
		case 's':
			O.size = atoi(optarg);
			break;
		case 'm':
			O.pull_max = atoi(optarg);
			break;
		case 't':
			O.duration = atof(optarg);
			break;
		case 'w':
			O.warmup = atof(optarg);
			break;
		case 'r':
			O.rate = atof(optarg);
			break;
		case 'P':
			O.router_pid = atoi(optarg);
			break;
		case 'A':
			if (parse_agent_ids(optarg)) {
				usage();
				return 2;
			}
			O.nagents = nagent_ids;
			break;
		default:
			usage();
			return o == 'h' ? 0 : 2;
		}
	}
	if (O.producers < 1 || O.producers > 64 || O.consumers < 1 || O.consumers > 64 || O.size < 64) {
		usage();
		return 2;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	for (intptr_t i = 0; i < O.consumers; i++)
		pthread_create(&ct[i], NULL, consumer, (void *)i);
	for (intptr_t i = 0; i < O.producers; i++)
		pthread_create(&pt[i], NULL, producer, (void *)i);
	usleep((useconds_t)(O.warmup * 1e6));
	atomic_store(&measuring, 1);
	t0 = util_mono_ns();
	acc0 = atomic_load(&accepted);
	cpu0 = O.router_pid ? proc_cpu_s(O.router_pid) : 0;
	self0 = self_cpu_s();
	commits0 = scrape("switchboard_router_storage_commits_total");
	double le[32], h0[32], h1[32];
	int nb = scrape_hist("switchboard_router_accept_to_deliver_seconds", le, h0);
	usleep((useconds_t)(O.duration * 1e6));
	atomic_store(&measuring, 0);
	t1 = util_mono_ns();
	cpu1 = O.router_pid ? proc_cpu_s(O.router_pid) : 0;
	self1 = self_cpu_s();
	commits1 = scrape("switchboard_router_storage_commits_total");
	rss = scrape("switchboard_router_resident_memory_bytes");
	if (scrape_hist("switchboard_router_accept_to_deliver_seconds", le, h1) != nb)
		nb = 0;
	uint64_t acc_window = atomic_load(&accepted) - acc0, cons_window = atomic_load(&consumed_in_window);
	atomic_store(&stop_producing, 1);
	for (int i = 0; i < O.producers; i++)
		pthread_join(pt[i], NULL);
	/* let consumers drain what was accepted, up to 30 s */
	for (int i = 0; i < 3000 && atomic_load(&consumed) < atomic_load(&accepted); i++)
		usleep(10000);
	atomic_store(&stop_consuming, 1);
	for (int i = 0; i < O.consumers; i++) {
		struct lat *l;

		pthread_join(ct[i], (void **)&l);
		all.v = realloc(all.v, (all.n + l->n + 1) * sizeof(*all.v));
		memcpy(all.v + all.n, l->v, l->n * sizeof(*l->v));
		all.n += l->n;
		free(l->v);
		free(l);
	}
	qsort(all.v, all.n, sizeof(*all.v), cmp_u64);
	double secs = (double)(t1 - t0) / 1e9;
	lost = atomic_load(&accepted) > atomic_load(&consumed) ? atomic_load(&accepted) - atomic_load(&consumed) : 0;
	printf("e2e: producers=%d consumers=%d agents=%d batch=%d payload=%dB pull_max=%d rate=%s duration=%.0fs\n",
	       O.producers, O.consumers, O.nagents, O.batch, O.size, O.pull_max, O.rate > 0 ? "paced" : "max", secs);
	if (O.rate > 0)
		printf("e2e: target rate %.0f msg/s\n", O.rate);
	printf("e2e: throughput accepted %.0f msg/s, consumed+acked %.0f msg/s\n", (double)acc_window / secs,
	       (double)cons_window / secs);
	if (all.n)
		printf("e2e: latency produce->consume p50 %.3f ms, p99 %.3f ms, p99.9 %.3f ms (%zu samples)\n",
		       (double)all.v[all.n / 2] / 1e6, (double)all.v[(size_t)(all.n * 0.99)] / 1e6,
		       (double)all.v[(size_t)(all.n * 0.999)] / 1e6, all.n);
	if (nb > 0)
		printf("e2e: router accept->deliver (commit to hand-over) p50 %.3f ms, p99 %.3f ms, p99.9 %.3f ms\n",
		       hist_quantile(0.5, le, h0, h1, nb) * 1e3, hist_quantile(0.99, le, h0, h1, nb) * 1e3,
		       hist_quantile(0.999, le, h0, h1, nb) * 1e3);
	if (commits0 >= 0 && commits1 >= 0)
		printf("e2e: storage commits (fsyncs with sync=full) %.0f/s, %.1f messages per commit\n",
		       (commits1 - commits0) / secs,
		       commits1 > commits0 ? (double)acc_window / (commits1 - commits0) : 0);
	if (O.router_pid)
		printf("e2e: router cpu %.2f s/s (%.0f%% of one core), %.1f cpu-s per million messages; loadgen cpu "
		       "%.2f s/s\n",
		       (cpu1 - cpu0) / secs, 100 * (cpu1 - cpu0) / secs,
		       cons_window ? (cpu1 - cpu0) / ((double)cons_window / 1e6) : 0, (self1 - self0) / secs);
	printf("e2e: router rss %.1f MiB\n", rss / 1048576.0);
	printf("e2e: totals accepted %llu, rejected %llu, consumed %llu, http errors %llu, lost %llu\n",
	       (unsigned long long)atomic_load(&accepted), (unsigned long long)atomic_load(&rejected),
	       (unsigned long long)atomic_load(&consumed), (unsigned long long)atomic_load(&errors),
	       (unsigned long long)lost);
	free(all.v);
	curl_global_cleanup();
	if (lost) {
		printf("e2e: FAILURE: %llu accepted messages were not consumed\n", (unsigned long long)lost);
		return 1;
	}
	return 0;
}
