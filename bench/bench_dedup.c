/*
 * The deduplication window alone (router/dedup.c): memory and time per
 * entry with 1,000,000 entries, the production profile's cap.  Fills a
 * window with ids shaped like loadgen's ("p3-1234567", four receivers),
 * then slides it (an add and a prune per id) for as many ids again, and
 * prints the resident set's growth per entry (from /proc/self/statm), what
 * the window says it allocated, and nanoseconds per key, add, find (hit and
 * miss) and prune.  Run by hand: build/rel/bench/bench_dedup [entries].
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dedup.h"
#include "switchboard/util.h"

static long rss_bytes(void)
{
	long pages = 0, resident = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	if (!f)
		return 0;
	if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
		resident = 0;
	fclose(f);
	return resident * sysconf(_SC_PAGESIZE);
}

static size_t id_of(char *out, size_t cap, unsigned long long n)
{
	return (size_t)snprintf(out, cap, "p%llu-%llu", n % 4, n);
}

int main(int argc, char **argv)
{
	unsigned long long n = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000;
	static const char *const recv[4] = {"a0", "a1", "a2", "a3"};
	uint64_t hints[4] = {0};
	struct dedup *w;
	struct dedup_key k;
	char id[32];
	uint64_t t0, t1, ref, found = 0;
	long rss0, rss1;
	int64_t now = 1700000000000LL;

	if (util_init() || dedup_new(&w))
		return 1;
	rss0 = rss_bytes();
	t0 = util_mono_ns();
	for (unsigned long long i = 0; i < n; i++) {
		dedup_key(w, id, id_of(id, sizeof(id), i), &k);
		if (dedup_add(w, &k, recv[i % 4], &hints[i % 4], i, now + (int64_t)(i / 1000), DEDUP_COMMITTED, &ref))
			return 1;
	}
	t1 = util_mono_ns();
	rss1 = rss_bytes();
	printf("dedup: %llu entries: rss +%.1f MiB = %.1f bytes/entry; window allocated %.1f bytes/entry\n", n,
	       (double)(rss1 - rss0) / 1048576.0, (double)(rss1 - rss0) / (double)n,
	       (double)dedup_bytes(w) / (double)n);
	printf("dedup: key+add %.1f ns\n", (double)(t1 - t0) / (double)n);
	t0 = util_mono_ns();
	for (unsigned long long i = 0; i < n; i++)
		dedup_key(w, id, id_of(id, sizeof(id), i * 7919 % n), &k);
	t1 = util_mono_ns();
	printf("dedup: key alone (SipHash-2-4, 128-bit) %.1f ns\n", (double)(t1 - t0) / (double)n);
	t0 = util_mono_ns();
	for (unsigned long long i = 0; i < n; i++) {
		dedup_key(w, id, id_of(id, sizeof(id), i * 7919 % n), &k);
		found += dedup_find(w, &k) != 0;
	}
	t1 = util_mono_ns();
	printf("dedup: key+find, present %.1f ns\n", (double)(t1 - t0) / (double)n);
	t0 = util_mono_ns();
	for (unsigned long long i = 0; i < n; i++) {
		dedup_key(w, id, id_of(id, sizeof(id), n + i), &k);
		found += dedup_find(w, &k) != 0;
	}
	t1 = util_mono_ns();
	printf("dedup: key+find, absent %.1f ns\n", (double)(t1 - t0) / (double)n);
	if (found != n)
		return 1;
	/* slide: each new id pushes the oldest out */
	t0 = util_mono_ns();
	for (unsigned long long i = n; i < 2 * n; i++) {
		dedup_key(w, id, id_of(id, sizeof(id), i), &k);
		if (dedup_add(w, &k, recv[i % 4], &hints[i % 4], i, now + (int64_t)(i / 1000), DEDUP_COMMITTED, &ref))
			return 1;
		dedup_prune(w, 0, (size_t)n);
	}
	t1 = util_mono_ns();
	printf("dedup: sliding (key+add+prune) %.1f ns; after %llu more: rss +%.1f MiB = %.1f bytes/entry\n",
	       (double)(t1 - t0) / (double)n, n, (double)(rss_bytes() - rss0) / 1048576.0,
	       (double)(rss_bytes() - rss0) / (double)n);
	dedup_free(w);
	return 0;
}
