/*
 * peer: the shared driver of the peer benchmarks (see peer.h).
 */
#include "peer.h"

#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>
#include <unistd.h>

struct peer_opts P = {"127.0.0.1:6379", 8, 4, 256, 200, 60, 5, 0, 0};
atomic_int peer_stop_producing, peer_stop_consuming;
_Atomic uint64_t peer_accepted, peer_errors;
static _Atomic uint64_t consumed, consumed_in_window, duplicates;

/* Per producer: which sequence numbers the server accepted and which a
 * consumer saw, so a loss hidden behind a redelivery is still a loss. */
#define SEQ_BITS (1u << 26) /* 64 M messages per producer */
static _Atomic uint64_t *acc_bits[256], *con_bits[256];
static atomic_int measuring;

struct lat {
	uint64_t *v;
	size_t n, cap;
};
static struct lat lats[64];

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void peer_payload(char *buf, int producer, uint64_t seq)
{
	char stamp[40];

	memset(buf, 'x', (size_t)P.size);
	snprintf(stamp, sizeof(stamp), "%019llu:%03d:%08llu", (unsigned long long)mono_ns(), producer,
		 (unsigned long long)seq);
	memcpy(buf, stamp, 32);
}

static int seq_of(const char *payload, size_t len, int *producer, uint64_t *seq)
{
	if (len < 32 || payload[19] != ':' || payload[23] != ':')
		return -1;
	*producer = atoi(payload + 20);
	*seq = strtoull(payload + 24, NULL, 10);
	return *producer >= 0 && *producer < 256 && *seq < SEQ_BITS ? 0 : -1;
}

/* Set the bit; returns its previous value. */
static int set_bit(_Atomic uint64_t *bits, uint64_t i)
{
	uint64_t m = 1ull << (i & 63);

	return bits ? (atomic_fetch_or(&bits[i >> 6], m) & m) != 0 : 0;
}

void peer_mark_accepted(int producer, uint64_t seq)
{
	if (producer < 0 || producer >= 256 || seq >= SEQ_BITS)
		return;
	if (!set_bit(acc_bits[producer], seq))
		atomic_fetch_add(&peer_accepted, 1);
}

void peer_accepted_payload(const char *payload, size_t len)
{
	int producer;
	uint64_t seq;

	if (seq_of(payload, len, &producer, &seq) == 0)
		peer_mark_accepted(producer, seq);
}

void peer_consumed(int tid, const char *payload, size_t len)
{
	int producer;
	uint64_t seq;

	if (seq_of(payload, len, &producer, &seq) == 0 && set_bit(con_bits[producer], seq)) {
		atomic_fetch_add(&duplicates, 1);
		return;
	}
	atomic_fetch_add(&consumed, 1);
	if (!atomic_load(&measuring))
		return;
	atomic_fetch_add(&consumed_in_window, 1);
	if (len >= 19 && tid >= 0 && tid < 64) {
		struct lat *l = &lats[tid];
		uint64_t sent = strtoull(payload, NULL, 10), now = mono_ns();

		if (l->n == l->cap) {
			size_t cap = l->cap ? l->cap * 2 : 1 << 16;
			uint64_t *v = realloc(l->v, cap * sizeof(*v));

			if (!v)
				return;
			l->v = v;
			l->cap = cap;
		}
		if (now > sent)
			l->v[l->n++] = now - sent;
	}
}

void peer_pace(uint64_t *next_ns)
{
	double per_batch_ns;
	uint64_t now;

	if (P.rate <= 0)
		return;
	per_batch_ns = 1e9 * P.batch / (P.rate / P.producers);
	if (!*next_ns)
		*next_ns = mono_ns();
	now = mono_ns();
	if (*next_ns > now) {
		struct timespec ts = {(time_t)((*next_ns - now) / 1000000000ull),
				      (long)((*next_ns - now) % 1000000000ull)};

		nanosleep(&ts, NULL);
	}
	*next_ns += (uint64_t)per_batch_ns;
}

static int cmp64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* utime+stime (seconds) and RSS (bytes) of the server process. */
/* CPU seconds this load generator has used (all its threads). */
static double self_cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
	       (double)ru.ru_stime.tv_usec / 1e6;
}

static void server_stats(double *cpu, double *rss)
{
	char path[64], line[4096];
	FILE *f;

	*cpu = *rss = 0;
	if (P.server_pid <= 0)
		return;
	snprintf(path, sizeof(path), "/proc/%d/stat", P.server_pid);
	f = fopen(path, "r");
	if (f && fgets(line, sizeof(line), f)) {
		char *p = strrchr(line, ')');
		unsigned long ut = 0, st = 0;

		/* fields after ')': state(3) ... utime(14) stime(15) */
		if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) == 2)
			*cpu = (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
	}
	if (f)
		fclose(f);
	snprintf(path, sizeof(path), "/proc/%d/status", P.server_pid);
	f = fopen(path, "r");
	while (f && fgets(line, sizeof(line), f))
		if (strncmp(line, "VmRSS:", 6) == 0)
			*rss = strtod(line + 6, NULL) * 1024;
	if (f)
		fclose(f);
}

static void usage(const char *name)
{
	printf("%s [--url HOST:PORT|URL] [--producers N] [--consumers N] [--size BYTES] [--batch N]\n"
	       "     [--duration S] [--warmup S] [--rate MSG/S] [--server-pid PID]\n",
	       name);
}

int peer_main(int argc, char **argv, const struct peer_driver *d)
{
	static const struct option lo[] = {
		{"url", 1, NULL, 'u'},	  {"producers", 1, NULL, 'p'}, {"consumers", 1, NULL, 'c'},
		{"size", 1, NULL, 's'},	  {"batch", 1, NULL, 'b'},     {"duration", 1, NULL, 't'},
		{"warmup", 1, NULL, 'w'}, {"rate", 1, NULL, 'r'},      {"server-pid", 1, NULL, 'P'},
		{"help", 0, NULL, 'h'},	  {NULL, 0, NULL, 0},
	};
	pthread_t prod[256], cons[64];
	uint64_t acc0, acc1, total_acc, total_cons;
	double cpu0, cpu1, self0, self1, rss, secs, t0;
	struct lat all = {0};
	int o;

	while ((o = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (o) {
		case 'u':
			P.url = optarg;
			break;
		case 'p':
			P.producers = atoi(optarg);
			break;
		case 'c':
			P.consumers = atoi(optarg);
			break;
		case 's':
			P.size = atoi(optarg);
			break;
		case 'b':
			P.batch = atoi(optarg);
			break;
		case 't':
			P.duration = atof(optarg);
			break;
		case 'w':
			P.warmup = atof(optarg);
			break;
		case 'r':
			P.rate = atof(optarg);
			break;
		case 'P':
			P.server_pid = atoi(optarg);
			break;
		case 'h':
			usage(d->name);
			return 0;
		default:
			usage(d->name);
			return 2;
		}
	}
	if (P.producers < 1 || P.producers > 256 || P.consumers < 1 || P.consumers > 64 || P.size < 32 || P.batch < 1)
		return 2;
	for (int i = 0; i < P.producers; i++) {
		acc_bits[i] = calloc(SEQ_BITS / 64, sizeof(uint64_t));
		con_bits[i] = calloc(SEQ_BITS / 64, sizeof(uint64_t));
		if (!acc_bits[i] || !con_bits[i])
			return 2;
	}
	if (d->setup())
		return 2;
	for (int i = 0; i < P.consumers; i++)
		pthread_create(&cons[i], NULL, d->consumer, (void *)(intptr_t)i);
	for (int i = 0; i < P.producers; i++)
		pthread_create(&prod[i], NULL, d->producer, (void *)(intptr_t)i);
	usleep((useconds_t)(P.warmup * 1e6));
	acc0 = atomic_load(&peer_accepted);
	server_stats(&cpu0, &rss);
	self0 = self_cpu_s();
	t0 = (double)mono_ns() / 1e9;
	atomic_store(&measuring, 1);
	usleep((useconds_t)(P.duration * 1e6));
	atomic_store(&measuring, 0);
	secs = (double)mono_ns() / 1e9 - t0;
	acc1 = atomic_load(&peer_accepted);
	server_stats(&cpu1, &rss);
	self1 = self_cpu_s();
	atomic_store(&peer_stop_producing, 1);
	for (int i = 0; i < P.producers; i++)
		pthread_join(prod[i], NULL);
	/* drain: everything accepted must be consumed */
	for (int i = 0; i < 300 && atomic_load(&consumed) < atomic_load(&peer_accepted); i++)
		usleep(100000);
	atomic_store(&peer_stop_consuming, 1);
	for (int i = 0; i < P.consumers; i++)
		pthread_join(cons[i], NULL);
	d->teardown();
	total_acc = atomic_load(&peer_accepted);
	total_cons = atomic_load(&consumed);
	for (int i = 0; i < P.consumers; i++) {
		uint64_t *v = realloc(all.v, (all.n + lats[i].n + 1) * sizeof(*v));

		if (!v)
			break;
		all.v = v;
		memcpy(all.v + all.n, lats[i].v, lats[i].n * sizeof(*v));
		all.n += lats[i].n;
		free(lats[i].v);
	}
	qsort(all.v, all.n, sizeof(*all.v), cmp64);
	printf("e2e: system=%s producers=%d consumers=%d batch=%d payload=%dB rate=%.0f duration=%.0fs\n", d->name,
	       P.producers, P.consumers, P.batch, P.size, P.rate, P.duration);
	printf("e2e: throughput accepted %.0f msg/s, consumed+acked %.0f msg/s\n", (double)(acc1 - acc0) / secs,
	       (double)atomic_load(&consumed_in_window) / secs);
	if (all.n)
		printf("e2e: latency produce->consume p50 %.3f ms, p99 %.3f ms, p99.9 %.3f ms (%zu samples)\n",
		       (double)all.v[all.n / 2] / 1e6, (double)all.v[(size_t)((double)all.n * 0.99)] / 1e6,
		       (double)all.v[(size_t)((double)all.n * 0.999)] / 1e6, all.n);
	if (P.server_pid > 0 && acc1 > acc0)
		printf("e2e: server cpu %.2f s/s, %.1f cpu-s per million messages; loadgen cpu %.2f s/s\n",
		       (cpu1 - cpu0) / secs, (cpu1 - cpu0) / ((double)(acc1 - acc0) / 1e6), (self1 - self0) / secs);
	printf("e2e: server rss %.1f MiB\n", rss / 1048576.0);
	{
		/* lost: accepted by the server, never seen by a consumer */
		uint64_t lost = 0;

		for (int i = 0; i < P.producers; i++) {
			for (size_t w = 0; w < SEQ_BITS / 64; w++)
				lost += (uint64_t)__builtin_popcountll(atomic_load(&acc_bits[i][w]) &
								       ~atomic_load(&con_bits[i][w]));
			free((void *)acc_bits[i]);
			free((void *)con_bits[i]);
		}
		printf("e2e: totals accepted %llu, consumed %llu (distinct), duplicates %llu, errors %llu, lost %llu\n",
		       (unsigned long long)total_acc, (unsigned long long)total_cons,
		       (unsigned long long)atomic_load(&duplicates), (unsigned long long)atomic_load(&peer_errors),
		       (unsigned long long)lost);
		if (lost) {
			printf("e2e: FAILURE: %llu accepted messages were not consumed\n", (unsigned long long)lost);
			free(all.v);
			return 1;
		}
	}
	free(all.v);
	return 0;
}
