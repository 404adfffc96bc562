/*
 * Unit tests for the deduplication window's memory (router/dedup.c): add,
 * find, unlink and renew; pruning by age and by count in age order, stopped
 * by an entry not committed yet; references that stay valid while the ring
 * and the index grow; wrap-around of positions over many windows; clusters
 * of colliding index slots (keys chosen by hand) and their backward-shift
 * deletion; interned receivers and their reference counts; times far apart
 * (the base moving up); and a long random sequence of operations checked
 * against a plain model.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dedup.h"
#include "rtfx.h"
#include "switchboard/log.h"
#include "switchboard/util.h"

#define T0 1700000000000LL /* a wall-clock time in ms */

static struct dedup *new_window(void)
{
	struct dedup *w;

	assert_int_equal(dedup_new(&w), 0);
	return w;
}

/* The key of "id-<n>". */
static struct dedup_key key_n(const struct dedup *w, unsigned n)
{
	char id[32];
	struct dedup_key k;

	snprintf(id, sizeof(id), "id-%u", n);
	dedup_key(w, id, strlen(id), &k);
	return k;
}

static uint64_t add(struct dedup *w, const struct dedup_key *k, const char *recv, int64_t since, unsigned flags)
{
	uint64_t ref;

	assert_int_equal(dedup_add(w, k, recv, NULL, 7, since, flags, &ref), 0);
	assert_true(ref != 0);
	return ref;
}

static void test_add_find_unlink(void **state)
{
	struct dedup *w = new_window();
	struct dedup_key k1, k2, k3;
	uint64_t r1, r2, r3;

	(void)state;
	dedup_key(w, "m-1", 3, &k1);
	dedup_key(w, "m-2", 3, &k2);
	dedup_key(w, "m-3", 3, &k3);
	assert_int_equal(dedup_find(w, &k1), 0);
	r1 = add(w, &k1, "bob", T0, 0);
	r2 = add(w, &k2, "alice", T0 + 1, DEDUP_COMMITTED);
	r3 = add(w, &k3, "bob", T0 + 2, DEDUP_COMMITTED | DEDUP_CANCELLED);
	assert_int_equal(dedup_count(w), 3);
	assert_int_equal(dedup_find(w, &k1), r1);
	assert_int_equal(dedup_find(w, &k2), r2);
	assert_int_equal(dedup_find(w, &k3), r3);
	assert_int_equal(dedup_flags(w, r1), 0);
	assert_int_equal(dedup_flags(w, r3), DEDUP_COMMITTED | DEDUP_CANCELLED);
	assert_int_equal(dedup_since_ms(w, r2), T0 + 1);
	assert_int_equal(dedup_seq(w, r2), 7);
	assert_true(dedup_receiver_is(w, r1, "bob"));
	assert_false(dedup_receiver_is(w, r1, "alice"));
	assert_true(dedup_receiver_is(w, r2, "alice"));
	dedup_commit(w, r1);
	assert_int_equal(dedup_flags(w, r1), DEDUP_COMMITTED);
	/* the same bytes give the same key, other keys another */
	{
		struct dedup_key again;

		dedup_key(w, "m-1", 3, &again);
		assert_memory_equal(&again, &k1, sizeof(again));
		assert_memory_not_equal(&k1, &k2, sizeof(k1));
	}
	/* unlink the middle, then the newest, then the oldest */
	dedup_unlink(w, r2);
	assert_int_equal(dedup_find(w, &k2), 0);
	assert_int_equal(dedup_find(w, &k3), r3);
	dedup_unlink(w, r3);
	assert_int_equal(dedup_find(w, &k1), r1);
	dedup_unlink(w, r1);
	assert_int_equal(dedup_count(w), 0);
	assert_int_equal(dedup_find(w, &k1), 0);
	/* and it is usable again */
	r1 = add(w, &k1, "carol", T0, 0);
	assert_true(dedup_receiver_is(w, r1, "carol"));
	dedup_free(w);
}

static void test_windows_have_their_own_key(void **state)
{
	struct dedup *a = new_window(), *b = new_window();
	struct dedup_key ka, kb;

	(void)state;
	dedup_key(a, "same", 4, &ka);
	dedup_key(b, "same", 4, &kb);
	assert_memory_not_equal(&ka, &kb, sizeof(ka));
	dedup_free(a);
	dedup_free(b);
}

static void test_prune_age_and_count(void **state)
{
	struct dedup *w = new_window();
	struct dedup_key k[10];
	uint64_t r[10];

	(void)state;
	for (unsigned i = 0; i < 10; i++) {
		k[i] = key_n(w, i);
		r[i] = add(w, &k[i], "bob", T0 + i * 1000, DEDUP_COMMITTED);
	}
	/* by age: entries counted from before the cutoff */
	assert_int_equal(dedup_prune(w, T0 + 2500, 100), 3);
	assert_int_equal(dedup_count(w), 7);
	assert_int_equal(dedup_find(w, &k[2]), 0);
	assert_int_equal(dedup_find(w, &k[3]), r[3]);
	/* by count: the oldest beyond max */
	assert_int_equal(dedup_prune(w, T0, 5), 2);
	assert_int_equal(dedup_find(w, &k[4]), 0);
	assert_int_equal(dedup_find(w, &k[5]), r[5]);
	/* an entry not committed stops the pruning, whatever is behind it */
	{
		struct dedup *v = new_window();
		uint64_t a = add(v, &k[0], "x", T0, DEDUP_COMMITTED);
		uint64_t b = add(v, &k[1], "x", T0, 0);

		add(v, &k[2], "x", T0, DEDUP_COMMITTED);
		assert_int_equal(dedup_prune(v, T0 + 10000, 0), 1);
		assert_int_equal(dedup_find(v, &k[0]), 0);
		(void)a;
		assert_int_equal(dedup_count(v), 2);
		dedup_commit(v, b);
		assert_int_equal(dedup_prune(v, T0 + 10000, 0), 2);
		assert_int_equal(dedup_count(v), 0);
		dedup_free(v);
	}
	dedup_free(w);
}

static void test_renew_moves_to_newest(void **state)
{
	struct dedup *w = new_window();
	struct dedup_key k[4];
	uint64_t r[4], moved;

	(void)state;
	for (unsigned i = 0; i < 4; i++) {
		k[i] = key_n(w, i);
		r[i] = add(w, &k[i], "bob", T0 + i, DEDUP_COMMITTED);
	}
	/* the oldest becomes the newest, cancelled, counted from later */
	assert_int_equal(dedup_renew(w, r[0], T0 + 100, DEDUP_COMMITTED | DEDUP_CANCELLED, &moved), 0);
	assert_true(moved != r[0]);
	assert_int_equal(dedup_find(w, &k[0]), moved);
	assert_int_equal(dedup_count(w), 4);
	assert_int_equal(dedup_flags(w, moved), DEDUP_COMMITTED | DEDUP_CANCELLED);
	assert_int_equal(dedup_since_ms(w, moved), T0 + 100);
	assert_true(dedup_receiver_is(w, moved, "bob"));
	/* one from the middle too */
	assert_int_equal(dedup_renew(w, r[2], T0 + 101, DEDUP_COMMITTED, &r[2]), 0);
	/* pruned in age order: 1, 3, then 0, then 2 */
	assert_int_equal(dedup_prune(w, T0, 3), 1);
	assert_int_equal(dedup_find(w, &k[1]), 0);
	assert_int_equal(dedup_prune(w, T0, 2), 1);
	assert_int_equal(dedup_find(w, &k[3]), 0);
	assert_int_equal(dedup_prune(w, T0, 1), 1);
	assert_int_equal(dedup_find(w, &k[0]), 0);
	assert_int_equal(dedup_find(w, &k[2]), r[2]);
	assert_int_equal(dedup_since_ms(w, r[2]), T0 + 101);
	dedup_free(w);
}

/* Unlinking the newest entries gives their place back (as a failed commit
 * does), across a chunk's edge too. */
static void test_newest_unlinked(void **state)
{
	enum { C = DEDUP_CHUNK_ENTRIES, N = C + 3 }; /* a chunk and a bit */
	struct dedup *w = new_window();
	uint64_t r[N], again;
	size_t one_chunk, two_chunks = 0;
	struct dedup_key k;

	(void)state;
	for (unsigned i = 0; i < C; i++) {
		k = key_n(w, i);
		r[i] = add(w, &k, "bob", T0, 0);
	}
	one_chunk = dedup_bytes(w);
	for (unsigned round = 0; round < 3; round++) {
		for (unsigned i = C; i < N; i++) {
			k = key_n(w, i);
			r[i] = add(w, &k, "bob", T0, 0);
			assert_int_equal(r[i], i + 1); /* the same places each round */
		}
		if (!two_chunks)
			two_chunks = dedup_bytes(w);
		assert_int_equal(dedup_bytes(w), two_chunks);
		for (unsigned i = N - 1; i >= C; i--)
			dedup_unlink(w, r[i]);
		assert_int_equal(dedup_count(w), C);
		assert_true(dedup_bytes(w) <= two_chunks); /* the second is kept as the spare */
	}
	assert_true(one_chunk < two_chunks);
	/* the newest of the first chunk, after a tombstone: both places free */
	dedup_unlink(w, r[C - 2]);
	dedup_unlink(w, r[C - 1]);
	k = key_n(w, 100000);
	assert_int_equal(dedup_find(w, &k), 0);
	again = add(w, &k, "carol", T0, 0);
	assert_int_equal(again, C - 1);
	assert_int_equal(dedup_find(w, &k), again);
	assert_int_equal(dedup_count(w), C - 1);
	dedup_free(w);
}

/* References taken early stay valid while the window grows to many
 * chunks and index sizes; the memory per entry stays small. */
static void test_growth_keeps_references(void **state)
{
	enum { N = 200000 };
	struct dedup *w = new_window();
	uint64_t *refs = malloc(N * sizeof(*refs));
	uint64_t hints[100] = {0}; /* one per name */
	size_t bytes;

	(void)state;
	assert_non_null(refs);
	for (unsigned i = 0; i < N; i++) {
		struct dedup_key k = key_n(w, i);
		char recv[16];

		snprintf(recv, sizeof(recv), "agent-%u", i % 100);
		assert_int_equal(dedup_add(w, &k, recv, &hints[i % 100], i, T0 + i, 0, &refs[i]), 0);
	}
	assert_int_equal(dedup_count(w), N);
	for (unsigned i = 0; i < N; i += 7) {
		struct dedup_key k = key_n(w, i);
		char recv[16];

		snprintf(recv, sizeof(recv), "agent-%u", i % 100);
		assert_int_equal(dedup_find(w, &k), refs[i]);
		assert_int_equal(dedup_seq(w, refs[i]), i);
		assert_int_equal(dedup_since_ms(w, refs[i]), T0 + i);
		assert_true(dedup_receiver_is(w, refs[i], recv));
	}
	/* 32 bytes an entry, 4 per index slot at 3/8..3/4 full, a partial chunk */
	bytes = dedup_bytes(w);
	assert_true(bytes < (size_t)N * 44);
	for (unsigned i = 0; i < N; i++)
		dedup_commit(w, refs[i]);
	assert_int_equal(dedup_prune(w, T0 + N, 0), N);
	assert_int_equal(dedup_count(w), 0);
	/* given back but the chunk the oldest end is in, and a spare */
	assert_true(dedup_bytes(w) < 2 * DEDUP_CHUNK_ENTRIES * 32 + 65536);
	free(refs);
	dedup_free(w);
}

/* A window that slides over many times its size: positions wrap the index
 * (and the chunk table) again and again. */
static void test_wrap_around(void **state)
{
	enum { WIN = 5000, TOTAL = 300000 };
	struct dedup *w = new_window();
	size_t max_bytes = 0;

	(void)state;
	for (unsigned i = 0; i < TOTAL; i++) {
		struct dedup_key k = key_n(w, i);

		add(w, &k, i % 2 ? "a" : "b", T0 + i, DEDUP_COMMITTED);
		dedup_prune(w, T0 + i - WIN + 1, (size_t)-1);
		assert_int_equal(dedup_count(w), i + 1 < WIN ? i + 1 : WIN);
		if (i % 9973 == 0) {
			for (unsigned j = i + 1 > WIN ? i + 1 - WIN : 0; j <= i; j += 97) {
				struct dedup_key kj = key_n(w, j);
				uint64_t r = dedup_find(w, &kj);

				assert_true(r != 0);
				assert_int_equal(dedup_since_ms(w, r), T0 + j);
				assert_true(dedup_receiver_is(w, r, j % 2 ? "a" : "b"));
			}
			if (i >= WIN) {
				struct dedup_key gone = key_n(w, i - WIN);

				assert_int_equal(dedup_find(w, &gone), 0);
			}
		}
		if (dedup_bytes(w) > max_bytes)
			max_bytes = dedup_bytes(w);
	}
	assert_true(max_bytes < 4 * DEDUP_CHUNK_ENTRIES * 32); /* bounded by the window, not by the total */
	dedup_free(w);
}

/* Keys made by hand so that they share a home slot (and a tag): a cluster
 * that deletion must keep findable, from any place in it. */
static void test_collisions(void **state)
{
	enum { N = 40 };
	struct dedup *w = new_window();
	struct dedup_key k[N];
	uint64_t r[N];

	(void)state;
	for (unsigned i = 0; i < N; i++) {
		/* the home slot comes from the low word's low 32 bits: two
		 * clusters, one at the index's last slot (it wraps round to
		 * the first), one at its first; the high word (the tag) is the
		 * same for all but one; the keys differ only in their top bits */
		k[i].h[0] = (i % 3 == 0 ? 5 : 0xffffffffu) | (uint64_t)i << 40;
		k[i].h[1] = 0xabcdef0000000000ULL | (i == 7 ? 1 : 0);
		r[i] = add(w, &k[i], "bob", T0, DEDUP_COMMITTED);
	}
	for (unsigned i = 0; i < N; i++)
		assert_int_equal(dedup_find(w, &k[i]), r[i]);
	/* the same high word, another low word: not found */
	{
		struct dedup_key other = k[3];

		other.h[0] ^= (uint64_t)1 << 63;
		assert_int_equal(dedup_find(w, &other), 0);
	}
	/* unlink from the middle of the cluster, every third one */
	for (unsigned i = 1; i < N; i += 3)
		dedup_unlink(w, r[i]);
	for (unsigned i = 0; i < N; i++)
		assert_int_equal(dedup_find(w, &k[i]), i % 3 == 1 ? 0 : r[i]);
	/* prune the rest from the oldest: each removal shifts the cluster */
	while (dedup_count(w)) {
		assert_int_equal(dedup_prune(w, T0, dedup_count(w) - 1), 1);
		for (unsigned i = 0; i < N; i++) {
			uint64_t f = dedup_find(w, &k[i]);

			if (f)
				assert_int_equal(f, r[i]);
		}
	}
	dedup_free(w);
}

static void test_receivers_interned(void **state)
{
	struct dedup *w = new_window();
	uint64_t hints[150] = {0}, r[300], stale;
	size_t empty;

	(void)state;
	empty = dedup_bytes(w);
	for (unsigned i = 0; i < 300; i++) {
		struct dedup_key k = key_n(w, i);
		char recv[16];

		snprintf(recv, sizeof(recv), "r%u", i % 150);
		assert_int_equal(dedup_add(w, &k, recv, i % 2 ? &hints[i % 150] : NULL, 0, T0, DEDUP_COMMITTED, &r[i]),
				 0);
	}
	for (unsigned i = 0; i < 300; i++) {
		char recv[16];

		snprintf(recv, sizeof(recv), "r%u", i % 150);
		assert_true(dedup_receiver_is(w, r[i], recv));
	}
	/* the first 150 leave: every name is still named once */
	for (unsigned i = 0; i < 150; i++)
		dedup_unlink(w, r[i]);
	for (unsigned i = 150; i < 300; i++) {
		char recv[16];

		snprintf(recv, sizeof(recv), "r%u", i % 150);
		assert_true(dedup_receiver_is(w, r[i], recv));
	}
	/* the rest leave: names freed, their numbers reused by new names, and
	 * a hint of a freed name is not trusted for the new one in its place */
	stale = hints[149]; /* r149 is freed last: new0 takes its number */
	for (unsigned i = 150; i < 300; i++)
		dedup_unlink(w, r[i]);
	for (unsigned i = 0; i < 10; i++) {
		struct dedup_key k = key_n(w, 1000 + i);
		char recv[16];
		uint64_t h = 0;

		snprintf(recv, sizeof(recv), "new%u", i);
		assert_int_equal(dedup_add(w, &k, recv, &h, 0, T0, 0, &r[i]), 0);
		assert_true(dedup_receiver_is(w, r[i], recv));
	}
	{
		struct dedup_key k = key_n(w, 2000);
		uint64_t ref;

		assert_true((uint32_t)stale == (uint32_t)hints[149]);
		assert_int_equal(dedup_add(w, &k, "r149", &stale, 0, T0, 0, &ref), 0);
		assert_true(dedup_receiver_is(w, ref, "r149"));
		assert_false(dedup_receiver_is(w, ref, "new0"));
		assert_true(dedup_receiver_is(w, r[0], "new0"));
		assert_true(stale != hints[149]);
	}
	assert_true(dedup_bytes(w) >= empty);
	dedup_free(w);
}

/* Times 40 days apart: the base moves up and the newest stay exact. */
static void test_times_far_apart(void **state)
{
	const int64_t day = 86400000LL;
	struct dedup *w = new_window();
	struct dedup_key k[4];
	uint64_t r[4];

	(void)state;
	for (unsigned i = 0; i < 4; i++)
		k[i] = key_n(w, i);
	r[0] = add(w, &k[0], "a", T0, DEDUP_COMMITTED);
	r[1] = add(w, &k[1], "a", T0 + 30 * day, DEDUP_COMMITTED);
	r[2] = add(w, &k[2], "a", T0 + 40 * day, DEDUP_COMMITTED);
	r[3] = add(w, &k[3], "a", T0 - 3 * day, DEDUP_COMMITTED); /* the clock went back */
	assert_int_equal(dedup_since_ms(w, r[1]), T0 + 30 * day);
	assert_int_equal(dedup_since_ms(w, r[2]), T0 + 40 * day);
	/* the oldest is older than the base: it reads as the base, still long gone */
	assert_true(dedup_since_ms(w, r[0]) <= T0 + 40 * day - 7 * day);
	assert_true(dedup_since_ms(w, r[3]) <= T0 + 40 * day - 7 * day);
	assert_int_equal(dedup_prune(w, T0 + 29 * day, 100), 1);
	assert_int_equal(dedup_find(w, &k[0]), 0);
	assert_int_equal(dedup_find(w, &k[1]), r[1]);
	dedup_free(w);
}

/* --- a random sequence of operations against a plain model --------------- */

struct model_e {
	unsigned id; /* key_n(id) */
	unsigned recv;
	int64_t since;
	unsigned flags;
	uint64_t ref;
};

static uint64_t rng = 88172645463325252ULL;

static unsigned rnd(unsigned n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (unsigned)(rng % n);
}

static void model_check(struct dedup *w, const struct model_e *m, size_t n)
{
	assert_int_equal(dedup_count(w), n);
	for (size_t i = 0; i < n; i++) {
		struct dedup_key k = key_n(w, m[i].id);
		char recv[8];

		snprintf(recv, sizeof(recv), "r%u", m[i].recv);
		assert_int_equal(dedup_find(w, &k), m[i].ref);
		assert_int_equal(dedup_flags(w, m[i].ref), m[i].flags);
		assert_int_equal(dedup_since_ms(w, m[i].ref), m[i].since);
		assert_true(dedup_receiver_is(w, m[i].ref, recv));
	}
}

static void test_random_against_model(void **state)
{
	enum { CAP = 3000, OPS = 200000 };
	struct dedup *w = new_window();
	struct model_e *m = calloc(CAP, sizeof(*m)); /* in age order */
	size_t n = 0;
	unsigned next_id = 0;
	int64_t now = T0;

	(void)state;
	assert_non_null(m);
	for (unsigned op = 0; op < OPS; op++) {
		unsigned c = rnd(100);

		now += rnd(3);
		if (c < 45 && n < CAP) { /* add */
			struct dedup_key k;
			char recv[8];
			unsigned r = rnd(20);

			m[n].id = next_id++;
			k = key_n(w, m[n].id);
			snprintf(recv, sizeof(recv), "r%u", r);
			m[n].recv = r;
			m[n].since = now;
			m[n].flags = rnd(2) ? DEDUP_COMMITTED : 0;
			assert_int_equal(dedup_add(w, &k, recv, NULL, 0, now, m[n].flags, &m[n].ref), 0);
			n++;
		} else if (c < 60 && n) { /* commit one */
			size_t i = rnd((unsigned)n);

			dedup_commit(w, m[i].ref);
			m[i].flags |= DEDUP_COMMITTED;
		} else if (c < 70 && n) { /* unlink one */
			size_t i = rnd((unsigned)n);

			dedup_unlink(w, m[i].ref);
			memmove(&m[i], &m[i + 1], (n - i - 1) * sizeof(*m));
			n--;
		} else if (c < 78 && n) { /* renew a committed one */
			size_t i = rnd((unsigned)n);
			struct model_e e = m[i];

			if (!(e.flags & DEDUP_COMMITTED))
				continue;
			e.flags = DEDUP_COMMITTED | (rnd(2) ? DEDUP_CANCELLED : 0);
			e.since = now;
			assert_int_equal(dedup_renew(w, m[i].ref, now, e.flags, &e.ref), 0);
			memmove(&m[i], &m[i + 1], (n - i - 1) * sizeof(*m));
			m[n - 1] = e;
		} else if (c < 90) { /* prune */
			int64_t cutoff = now - (int64_t)rnd(3000);
			size_t max = rnd(CAP), k = 0, dropped;

			while (k < n && m[k].flags & DEDUP_COMMITTED && (m[k].since < cutoff || n - k > max))
				k++;
			dropped = dedup_prune(w, cutoff, max);
			assert_int_equal(dropped, k);
			memmove(m, m + k, (n - k) * sizeof(*m));
			n -= k;
		}
		if (op % 5000 == 0)
			model_check(w, m, n);
	}
	model_check(w, m, n);
	free(m);
	dedup_free(w);
}

/* --- the routing core's window across a restart ----------------------- */

/* Lease and ack everything `agent` holds. */
static void drain(struct fx *f, const char *agent)
{
	struct buf b;
	struct rt_err e = {0};
	char lease[33];

	buf_init(&b, 1 << 22);
	for (;;) {
		json_t *o, *v, *ids = json_array();
		size_t i;

		buf_reset(&b);
		assert_int_equal(rt_pull(f->rt, agent, NULL, 1000, 0, NULL, lease, &b, &e), 0);
		o = json_loads(buf_str(&b), 0, NULL);
		assert_non_null(o);
		json_array_foreach (json_object_get(o, "messages"), i, v)
			json_array_append(ids, json_object_get(v, "message_id"));
		json_decref(o);
		if (!json_array_size(ids)) {
			json_decref(ids);
			break;
		}
		buf_reset(&b);
		assert_int_equal(rt_settle(f->rt, agent, NULL, ids, 1, &b, &e), 0);
		json_decref(ids);
	}
	buf_free(&b);
}

static void test_rebuilt_at_start(void **state)
{
	enum { N = 3000 };
	struct fx *f = fx_alloc("delivery: {dedupWindowMs: 300000}\n"
				"performance: {agentQueueSize: 10000, maxConcurrentMessages: 100000}\n"
				"agents: [{id: a}, {id: b}, {id: c}]\n",
				"sbdedup");
	struct rt_stats st;
	struct rt_task t;
	char id[32];
	int dup;

	(void)state;
	fx_start(f);
	for (int i = 0; i < N; i++) {
		snprintf(id, sizeof(id), "rec-%d", i);
		assert_int_equal(fx_send(f, i % 2 ? "c" : "b", id, NULL, NULL, &dup), 202);
	}
	drain(f, "b");
	drain(f, "c");
	for (int i = 0; i < 5; i++) {
		snprintf(id, sizeof(id), "can-%d", i);
		assert_int_equal(fx_send(f, "b", id, NULL, NULL, &dup), 202);
		assert_int_equal(rt_task_cancel(f->rt, "b", id, NULL, &t), 0);
	}
	fx_stop(f);
	fx_start(f);
	rt_get_stats(f->rt, &st);
	assert_int_equal(st.dedup_entries, N + 5);
	assert_int_equal(st.queued, 0);
	/* settled ones are completed for their receiver only */
	assert_int_equal(rt_task_get(f->rt, "b", "rec-0", &t), 0);
	assert_int_equal(t.state, RT_TASK_COMPLETED);
	assert_int_equal(rt_task_get(f->rt, "c", "rec-0", &t), 0);
	assert_int_equal(t.state, RT_TASK_UNKNOWN);
	assert_int_equal(rt_task_get(f->rt, "c", "rec-2999", &t), 0);
	assert_int_equal(t.state, RT_TASK_COMPLETED);
	assert_int_equal(rt_task_get(f->rt, "b", "can-3", &t), 0);
	assert_int_equal(t.state, RT_TASK_CANCELED);
	/* and every id is still a duplicate, whoever it is sent to now */
	for (int i = 0; i < N; i += 97) {
		snprintf(id, sizeof(id), "rec-%d", i);
		assert_int_equal(fx_send(f, "b", id, NULL, NULL, &dup), 202);
		assert_true(dup);
	}
	assert_int_equal(fx_send(f, "c", "can-1", NULL, NULL, &dup), 202);
	assert_true(dup);
	assert_int_equal(fx_send(f, "b", "new-1", NULL, NULL, &dup), 202);
	assert_false(dup);
	rt_get_stats(f->rt, &st);
	assert_int_equal(st.dedup_entries, N + 6);
	fx_stop(f);
	fx_free_dir(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_add_find_unlink),	     cmocka_unit_test(test_windows_have_their_own_key),
		cmocka_unit_test(test_prune_age_and_count),  cmocka_unit_test(test_renew_moves_to_newest),
		cmocka_unit_test(test_newest_unlinked),	     cmocka_unit_test(test_growth_keeps_references),
		cmocka_unit_test(test_wrap_around),	     cmocka_unit_test(test_collisions),
		cmocka_unit_test(test_receivers_interned),   cmocka_unit_test(test_times_far_apart),
		cmocka_unit_test(test_random_against_model), cmocka_unit_test(test_rebuilt_at_start),
	};

	if (util_init())
		return 1;
	log_set_level(LOG_ERROR);
	return cmocka_run_group_tests_name("dedup", tests, NULL, NULL);
}
