/*
 * The deduplication window's memory (dedup.h): 32 bytes per entry in a
 * ring, plus a 32-bit index slot per entry at a load factor between 1/8
 * and 3/4 (about 0.64 at the production cap of a million entries: 6.3
 * bytes an entry), plus one copy of each receiver's name.
 *
 * Ring.  Entries sit at positions head..tail-1 (64-bit, never reused while
 * an entry lives there) in insertion order, in chunks of 8,192 entries
 * (256 KiB, mapped) taken at the newest end and given back at the oldest,
 * so memory follows the window's length and an entry never moves; a
 * reference is its position + 1.  An unlinked entry becomes a tombstone
 * until the oldest end (or the newest, for the newest entry) passes it.
 *
 * Index.  n slots (1,536 times a power of two), linear probing from the
 * hash's low word scaled to n, deletion by backward shift (no
 * index tombstones).  A slot holds the entry's position modulo 2^bits
 * (2^bits >= n; positions head..tail-1 span at most 2^bits, so that
 * identifies it) and, in the 32 - bits bits above, a tag from the hash's
 * high word (never 0, so 0 is an empty slot).  A probe reads an entry only
 * when the tag matches: 1 in 2^(32-bits) unrelated slots.
 *
 * Times.  An entry counts its window in milliseconds after the window's
 * base, 32 bits, exact for everything between the base and 2^32 ms (49
 * days) after it.  The base starts 2^30 ms (12.4 days) before the first
 * entry's time, more than the longest window (7 days) before it, and moves
 * up, rewriting every entry (O(n), once in 37 days), when a newer time
 * would not fit; an entry older than the base (only after a wall-clock jump
 * back of days, or one stuck behind an uncommitted entry for that long)
 * reads as counted from the base.
 *
 * Receivers.  Each distinct name is stored once, reference-counted by the
 * entries that name it, and found through a small index of its own (XXH3
 * with a seed from the window's key); an entry holds its 29-bit number.
 * A caller's hint (the name's number and generation) skips that lookup.
 */
#include "dedup.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <sodium.h>
#include <xxhash.h>

#define CHUNK_BITS 13
#define CHUNK	   ((uint64_t)1 << CHUNK_BITS)
_Static_assert(CHUNK == DEDUP_CHUNK_ENTRIES, "the header says how big a chunk is");
#define MIN_SLOTS  1536 /* smallest index; every size is this times a power of two */
#define MAX_BITS   31	/* a slot keeps at least one bit of tag */
#define F_DEAD	   4u	/* tombstone */
#define F_BITS	   3	/* DEDUP_COMMITTED, DEDUP_CANCELLED, F_DEAD */
#define NAME_MAX_N ((uint32_t)1 << (32 - F_BITS))
#define SINCE_BACK ((int64_t)1 << 30) /* the base starts this far behind */

struct entry {
	uint64_t key[2];
	uint64_t seq;
	uint32_t since; /* ms after w->base_ms */
	uint32_t rf;	/* receiver number << F_BITS | flags */
};

_Static_assert(sizeof(struct entry) == 32, "a window entry is 32 bytes");

struct name {
	char *s;       /* NULL: free, and refs is the next free number + 1 */
	uint64_t h;    /* hash of s, for the name index */
	uint32_t refs; /* entries that name it */
	uint32_t gen;  /* never 0; changes when the number is freed: a hint names (gen, number) */
};

struct dedup {
	unsigned char key[crypto_shorthash_siphashx24_KEYBYTES];
	uint64_t seed; /* names' hash seed, from the key */
	/* ring */
	struct entry **chunk; /* chunk number c at chunk[c & (nchunk - 1)] */
	size_t nchunk;	      /* a power of two (0 before the first) */
	struct entry *spare;  /* a released chunk, kept for the next */
	uint64_t head, tail;
	size_t live; /* entries that are not tombstones */
	int64_t base_ms;
	int based; /* base_ms is set */
	/* index */
	uint32_t *slots;
	size_t nslots;
	unsigned bits; /* of a slot's position (2^bits >= nslots); the tag is above */
	/* receiver names */
	struct name *names;
	uint32_t nnames, names_cap, free_name; /* free_name: first free number + 1, 0 none */
	uint32_t *name_slots;		       /* name number + 1, 0 empty */
	unsigned name_bits;
	uint32_t names_live;
};

/* --- memory ------------------------------------------------------------------- */
/* Chunks and the index come straight from mmap, zeroed, in whole pages: they
 * are the window's bulk, allocated by whichever thread routes and freed by
 * the one that prunes, and from malloc they would leave holes in the
 * routing threads' arenas that only those threads could fill.  Unmapped,
 * they go back to the system at once. */

static void *pages_get(size_t bytes)
{
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

static void pages_put(void *p, size_t bytes)
{
	if (p)
		munmap(p, bytes);
}

#define CHUNK_BYTES (CHUNK * sizeof(struct entry))

/* --- ring -------------------------------------------------------------------- */

static struct entry *at(const struct dedup *w, uint64_t p)
{
	return &w->chunk[(p >> CHUNK_BITS) & (w->nchunk - 1)][p & (CHUNK - 1)];
}

/* Chunks holding positions head..tail-1 (the one at head stays while head
 * is inside it, even when the ring is empty). */
static uint64_t chunk_first(const struct dedup *w)
{
	return w->head >> CHUNK_BITS;
}

static uint64_t chunk_end(const struct dedup *w)
{
	return (w->tail + CHUNK - 1) >> CHUNK_BITS;
}

static void chunk_release(struct dedup *w, uint64_t c)
{
	struct entry **slot = &w->chunk[c & (w->nchunk - 1)];

	if (!w->spare)
		w->spare = *slot;
	else
		pages_put(*slot, CHUNK_BYTES);
	*slot = NULL;
}

/* Make room for an entry at position tail: the chunks in use are always
 * chunk_first..chunk_end-1, so a tail at a chunk's start needs that chunk.
 * Returns 0 or -ENOMEM. */
static int ring_reserve(struct dedup *w)
{
	uint64_t c = w->tail >> CHUNK_BITS, first = chunk_first(w);
	struct entry **slot;

	if (w->tail & (CHUNK - 1))
		return 0;
	if (c - first + 1 > w->nchunk) {
		size_t n = w->nchunk ? w->nchunk * 2 : 8;
		struct entry **nc = calloc(n, sizeof(void *));

		if (!nc)
			return -ENOMEM;
		for (uint64_t i = first; i < c; i++)
			nc[i & (n - 1)] = w->chunk[i & (w->nchunk - 1)];
		free(w->chunk);
		w->chunk = nc;
		w->nchunk = n;
	}
	slot = &w->chunk[c & (w->nchunk - 1)];
	assert(!*slot);
	if (w->spare) {
		*slot = w->spare;
		w->spare = NULL;
	} else {
		*slot = pages_get(CHUNK_BYTES);
	}
	return *slot ? 0 : -ENOMEM;
}

/* Drop the entry at head (a tombstone, or one already out of the index). */
static void ring_pop_head(struct dedup *w)
{
	assert(w->head < w->tail);
	w->head++;
	if (!(w->head & (CHUNK - 1)))
		chunk_release(w, (w->head >> CHUNK_BITS) - 1);
}

/* Drop tombstones at both ends, and the chunks past the new tail. */
static void ring_trim(struct dedup *w)
{
	uint64_t end;

	while (w->head < w->tail && at(w, w->head)->rf & F_DEAD)
		ring_pop_head(w);
	end = chunk_end(w);
	while (w->tail > w->head && at(w, w->tail - 1)->rf & F_DEAD)
		w->tail--;
	for (uint64_t c = chunk_end(w); c < end; c++)
		chunk_release(w, c);
}

/* --- times ------------------------------------------------------------------- */

static int64_t since_of(const struct dedup *w, const struct entry *e)
{
	return w->base_ms + e->since;
}

/* Move the base up so that `ms` fits, rewriting every entry. */
static void rebase(struct dedup *w, int64_t ms)
{
	int64_t nb = ms - SINCE_BACK, delta = nb - w->base_ms;

	for (uint64_t p = w->head; p < w->tail; p++) {
		struct entry *e = at(w, p);

		e->since = (int64_t)e->since > delta ? (uint32_t)((int64_t)e->since - delta) : 0;
	}
	w->base_ms = nb;
}

static uint32_t since_enc(struct dedup *w, int64_t ms)
{
	if (!w->based) {
		w->base_ms = ms - SINCE_BACK;
		w->based = 1;
	}
	if (ms - w->base_ms > (int64_t)UINT32_MAX)
		rebase(w, ms);
	return ms < w->base_ms ? 0 : (uint32_t)(ms - w->base_ms);
}

/* --- index ------------------------------------------------------------------- */
/* n slots, 1,536 times a power of two (so that a million entries take
 * 1.5 Mi slots, not 2 Mi, and growth still doubles); the home slot is the
 * hash's low word scaled to n.  A slot splits at bit `bits` (2^bits >= n):
 * the position below, the tag above. */

static unsigned bits_for(size_t n)
{
	unsigned b = 0;

	while (((size_t)1 << b) < n)
		b++;
	return b;
}

static size_t home_of(const uint64_t h[2], size_t n)
{
	return (size_t)(((h[0] & 0xffffffffu) * n) >> 32);
}

static size_t next_slot(size_t i, size_t n)
{
	return i + 1 < n ? i + 1 : 0;
}

/* How many slots on from `a` to reach `b`, wrapping. */
static size_t slot_dist(size_t a, size_t b, size_t n)
{
	return b >= a ? b - a : b + n - a;
}

static uint32_t tag_of(const uint64_t h[2], unsigned bits)
{
	uint32_t t = (uint32_t)(h[1] >> 32) >> bits;

	return t ? t : 1;
}

/* The position a slot names. */
static uint64_t slot_pos(const struct dedup *w, uint32_t s)
{
	uint64_t mask = ((uint64_t)1 << w->bits) - 1;

	return w->head + (((uint64_t)s - w->head) & mask);
}

static void slot_put(uint32_t *slots, size_t n, unsigned bits, const uint64_t h[2], uint64_t p)
{
	size_t i = home_of(h, n);

	while (slots[i])
		i = next_slot(i, n);
	slots[i] = tag_of(h, bits) << bits | (uint32_t)(p & (((uint64_t)1 << bits) - 1));
}

/* Rebuild the index with `n` slots.  Returns 0 or -ENOMEM. */
static int index_resize(struct dedup *w, size_t n)
{
	unsigned bits = bits_for(n);
	uint32_t *ns = pages_get(n * sizeof(*ns));

	if (!ns)
		return -ENOMEM;
	for (uint64_t p = w->head; p < w->tail; p++) {
		const struct entry *e = at(w, p);

		if (!(e->rf & F_DEAD))
			slot_put(ns, n, bits, e->key, p);
	}
	pages_put(w->slots, w->nslots * sizeof(*w->slots));
	w->slots = ns;
	w->nslots = n;
	w->bits = bits;
	return 0;
}

/* Whether `n` slots hold `live` entries at most 3/4 full, with positions
 * spanning `span`. */
static int index_fits(size_t n, size_t live, uint64_t span)
{
	return live * 4 <= 3 * n && span <= ((uint64_t)1 << bits_for(n));
}

/* Room for one more entry at tail.  Returns 0 or -ENOMEM. */
static int index_reserve(struct dedup *w)
{
	size_t n = w->nslots;

	if ((w->live + 1) * 4 <= 3 * n && w->tail + 1 - w->head <= ((uint64_t)1 << w->bits))
		return 0;
	while (!index_fits(n, w->live + 1, w->tail + 1 - w->head))
		n *= 2;
	if (bits_for(n) > MAX_BITS)
		return -ENOMEM;
	return index_resize(w, n);
}

/* The slot naming position `p` (whose key is `h`). */
static size_t slot_find(const struct dedup *w, const uint64_t h[2], uint64_t p)
{
	size_t i = home_of(h, w->nslots);

	for (;; i = next_slot(i, w->nslots)) {
		assert(w->slots[i]); /* p is in the index */
		if (slot_pos(w, w->slots[i]) == p)
			return i;
	}
}

/* Empty slot i, shifting back the entries of its cluster that may move. */
static void slot_clear(struct dedup *w, size_t i)
{
	size_t n = w->nslots, j = i;
	uint32_t s;

	while ((s = w->slots[j = next_slot(j, n)]) != 0) {
		size_t home = home_of(at(w, slot_pos(w, s))->key, n);

		if (slot_dist(home, j, n) >= slot_dist(i, j, n)) {
			w->slots[i] = s;
			i = j;
		}
	}
	w->slots[i] = 0;
}

/* After pruning: shrink an index that is less than 1/8 full. */
static void index_shrink(struct dedup *w)
{
	size_t n = w->nslots;

	while (n > MIN_SLOTS && w->live * 8 < n && index_fits(n / 2, w->live * 2, (w->tail - w->head) * 2))
		n /= 2;
	if (n != w->nslots && index_resize(w, n))
		return; /* out of memory: the bigger one still works */
}

/* --- receiver names ---------------------------------------------------------- */

static uint64_t name_hash(const struct dedup *w, const char *s)
{
	return XXH3_64bits_withSeed(s, strlen(s), w->seed);
}

static void name_slot_put(uint32_t *slots, unsigned bits, uint64_t h, uint32_t n)
{
	size_t mask = ((size_t)1 << bits) - 1, i = h & mask;

	while (slots[i])
		i = (i + 1) & mask;
	slots[i] = n + 1;
}

/* Room for one more name.  Returns 0 or -ENOMEM. */
static int names_reserve(struct dedup *w)
{
	if (!w->free_name && w->nnames == w->names_cap) {
		uint32_t cap = w->names_cap ? w->names_cap * 2 : 64;
		struct name *nv;

		if (cap > NAME_MAX_N)
			return -ENOMEM;
		nv = realloc(w->names, cap * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		w->names = nv;
		w->names_cap = cap;
	}
	if ((w->names_live + 1) * 2 > ((uint32_t)1 << w->name_bits)) {
		unsigned bits = w->name_bits + 1;
		uint32_t *ns = calloc((size_t)1 << bits, sizeof(*ns));

		if (!ns)
			return -ENOMEM;
		for (uint32_t n = 0; n < w->nnames; n++)
			if (w->names[n].s)
				name_slot_put(ns, bits, w->names[n].h, n);
		free(w->name_slots);
		w->name_slots = ns;
		w->name_bits = bits;
	}
	return 0;
}

/* The number of `s`, interned (with no references yet) when new; -ENOMEM.
 * A hint that still names a live number is trusted without reading `s`. */
static int64_t name_intern(struct dedup *w, const char *s, uint64_t *hint)
{
	uint64_t h;
	size_t mask, i;
	uint32_t n;
	char *copy;

	if (hint) {
		n = (uint32_t)*hint;
		if (n < w->nnames && w->names[n].s && w->names[n].gen == (uint32_t)(*hint >> 32))
			return n;
	}
	h = name_hash(w, s);
	mask = ((size_t)1 << w->name_bits) - 1;
	for (i = h & mask; w->name_slots[i]; i = (i + 1) & mask) {
		n = w->name_slots[i] - 1;
		if (w->names[n].h == h && strcmp(w->names[n].s, s) == 0)
			goto out;
	}
	copy = strdup(s);
	if (!copy || names_reserve(w)) {
		free(copy);
		return -ENOMEM;
	}
	if (w->free_name) {
		n = w->free_name - 1;
		w->free_name = w->names[n].refs;
	} else {
		n = w->nnames++;
		w->names[n].gen = 1;
	}
	w->names[n].s = copy;
	w->names[n].h = h;
	w->names[n].refs = 0;
	name_slot_put(w->name_slots, w->name_bits, h, n);
	w->names_live++;
out:
	if (hint)
		*hint = (uint64_t)w->names[n].gen << 32 | n;
	return n;
}

/* Drop one reference to name `n`; the last frees it. */
static void name_unref(struct dedup *w, uint32_t n)
{
	struct name *nm = &w->names[n];
	size_t mask = ((size_t)1 << w->name_bits) - 1, i, j;
	uint32_t s;

	assert(n < w->nnames && nm->s && nm->refs > 0);
	if (--nm->refs)
		return;
	for (i = nm->h & mask; w->name_slots[i] != n + 1; i = (i + 1) & mask)
		;
	for (j = i; (s = w->name_slots[j = (j + 1) & mask]) != 0;) {
		size_t home = w->names[s - 1].h & mask;

		if (((j - home) & mask) >= ((j - i) & mask)) {
			w->name_slots[i] = s;
			i = j;
		}
	}
	w->name_slots[i] = 0;
	free(nm->s);
	nm->s = NULL;
	nm->gen = nm->gen + 1 ? nm->gen + 1 : 1; /* hints of the old name no longer match */
	nm->refs = w->free_name;
	w->free_name = n + 1;
	w->names_live--;
}

/* --- the window -------------------------------------------------------------- */

int dedup_new(struct dedup **out)
{
	struct dedup *w;
	int rc = -ENOMEM;

	*out = NULL;
	if (sodium_init() < 0)
		return -EIO;
	w = calloc(1, sizeof(*w));
	if (!w)
		goto out;
	randombytes_buf(w->key, sizeof(w->key));
	memcpy(&w->seed, w->key, sizeof(w->seed));
	w->nslots = MIN_SLOTS;
	w->bits = bits_for(MIN_SLOTS);
	w->slots = pages_get(w->nslots * sizeof(*w->slots));
	w->name_bits = 6;
	w->name_slots = calloc((size_t)1 << w->name_bits, sizeof(*w->name_slots));
	if (!w->slots || !w->name_slots)
		goto out;
	*out = w;
	w = NULL;
	rc = 0;
out:
	dedup_free(w);
	return rc;
}

void dedup_free(struct dedup *w)
{
	if (!w)
		return;
	for (uint64_t c = chunk_first(w); c < chunk_end(w); c++)
		pages_put(w->chunk[c & (w->nchunk - 1)], CHUNK_BYTES);
	pages_put(w->spare, CHUNK_BYTES);
	free(w->chunk);
	pages_put(w->slots, w->nslots * sizeof(*w->slots));
	for (uint32_t n = 0; n < w->nnames; n++)
		free(w->names[n].s);
	free(w->names);
	free(w->name_slots);
	sodium_memzero(w->key, sizeof(w->key));
	free(w);
}

void dedup_key(const struct dedup *w, const char *id, size_t len, struct dedup_key *out)
{
	unsigned char h[crypto_shorthash_siphashx24_BYTES];

	crypto_shorthash_siphashx24(h, (const unsigned char *)id, len, w->key);
	memcpy(out->h, h, sizeof(out->h));
}

uint64_t dedup_find(const struct dedup *w, const struct dedup_key *k)
{
	size_t i = home_of(k->h, w->nslots);
	uint32_t tag = tag_of(k->h, w->bits), s;

	for (; (s = w->slots[i]) != 0; i = next_slot(i, w->nslots)) {
		uint64_t p;
		const struct entry *e;

		if (s >> w->bits != tag)
			continue;
		p = slot_pos(w, s);
		e = at(w, p);
		if (e->key[0] == k->h[0] && e->key[1] == k->h[1])
			return p + 1;
	}
	return 0;
}

void dedup_prefetch(const struct dedup *w, const struct dedup_key *k)
{
	__builtin_prefetch(&w->slots[home_of(k->h, w->nslots)]);
}

int dedup_add(struct dedup *w, const struct dedup_key *k, const char *receiver, uint64_t *hint, uint64_t seq,
	      int64_t since_ms, unsigned flags, uint64_t *ref)
{
	struct entry *e;
	int64_t n;
	int rc;

	assert(!(flags & ~(unsigned)(DEDUP_COMMITTED | DEDUP_CANCELLED))); /* and k is not here: the caller looked */
	*ref = 0;
	rc = index_reserve(w);
	if (rc)
		return rc;
	n = name_intern(w, receiver, hint);
	if (n < 0)
		return -ENOMEM;
	rc = ring_reserve(w);
	if (rc) {
		w->names[n].refs++;
		name_unref(w, (uint32_t)n); /* a new name goes again */
		return rc;
	}
	e = at(w, w->tail);
	e->key[0] = k->h[0];
	e->key[1] = k->h[1];
	e->seq = seq;
	e->since = since_enc(w, since_ms);
	e->rf = (uint32_t)n << F_BITS | flags;
	w->names[n].refs++;
	slot_put(w->slots, w->nslots, w->bits, k->h, w->tail);
	w->live++;
	*ref = ++w->tail;
	return 0;
}

/* Entry `ref`, which must be in the window. */
static struct entry *entry_of(const struct dedup *w, uint64_t ref)
{
	struct entry *e;

	assert(ref > w->head && ref <= w->tail);
	e = at(w, ref - 1);
	assert(!(e->rf & F_DEAD));
	return e;
}

int dedup_renew(struct dedup *w, uint64_t ref, int64_t since_ms, unsigned flags, uint64_t *out)
{
	struct entry *old = entry_of(w, ref), *e;
	size_t i;
	int rc;

	assert(old->rf & DEDUP_COMMITTED);
	assert(!(flags & ~(unsigned)(DEDUP_COMMITTED | DEDUP_CANCELLED)));
	*out = ref;
	w->live++; /* for a moment the entry is in two places */
	rc = index_reserve(w);
	w->live--;
	if (!rc)
		rc = ring_reserve(w);
	if (rc)
		return rc;
	old = entry_of(w, ref); /* the chunk table may have moved, never the chunks */
	i = slot_find(w, old->key, ref - 1);
	e = at(w, w->tail);
	*e = *old;
	e->since = since_enc(w, since_ms);
	e->rf = (e->rf & ~(uint32_t)(DEDUP_COMMITTED | DEDUP_CANCELLED)) | flags;
	w->slots[i] = (w->slots[i] & ~(uint32_t)((1u << w->bits) - 1)) | (uint32_t)(w->tail & ((1u << w->bits) - 1));
	old->rf |= F_DEAD;
	*out = ++w->tail;
	ring_trim(w);
	return 0;
}

void dedup_unlink(struct dedup *w, uint64_t ref)
{
	struct entry *e = entry_of(w, ref);

	slot_clear(w, slot_find(w, e->key, ref - 1));
	name_unref(w, e->rf >> F_BITS);
	e->rf |= F_DEAD;
	w->live--;
	ring_trim(w);
}

void dedup_commit(struct dedup *w, uint64_t ref)
{
	entry_of(w, ref)->rf |= DEDUP_COMMITTED;
}

unsigned dedup_flags(const struct dedup *w, uint64_t ref)
{
	return entry_of(w, ref)->rf & (DEDUP_COMMITTED | DEDUP_CANCELLED);
}

int64_t dedup_since_ms(const struct dedup *w, uint64_t ref)
{
	return since_of(w, entry_of(w, ref));
}

uint64_t dedup_seq(const struct dedup *w, uint64_t ref)
{
	return entry_of(w, ref)->seq;
}

int dedup_receiver_is(const struct dedup *w, uint64_t ref, const char *receiver)
{
	return strcmp(w->names[entry_of(w, ref)->rf >> F_BITS].s, receiver) == 0;
}

size_t dedup_prune(struct dedup *w, int64_t cutoff_ms, size_t max)
{
	size_t n = 0;

	while (w->head < w->tail) {
		struct entry *e = at(w, w->head);

		if (!(e->rf & F_DEAD)) {
			if (!(e->rf & DEDUP_COMMITTED) || (since_of(w, e) >= cutoff_ms && w->live <= max))
				break;
			slot_clear(w, slot_find(w, e->key, w->head));
			name_unref(w, e->rf >> F_BITS);
			w->live--;
			n++;
		}
		ring_pop_head(w);
	}
	if (n)
		index_shrink(w);
	return n;
}

size_t dedup_count(const struct dedup *w)
{
	return w->live;
}

size_t dedup_bytes(const struct dedup *w)
{
	size_t b = sizeof(*w) + w->nchunk * sizeof(void *) + w->nslots * sizeof(*w->slots);

	b += (size_t)(chunk_end(w) - chunk_first(w)) * CHUNK_BYTES;
	if (w->spare)
		b += CHUNK_BYTES;
	b += (size_t)w->names_cap * sizeof(*w->names) + ((size_t)1 << w->name_bits) * sizeof(*w->name_slots);
	for (uint32_t n = 0; n < w->nnames; n++)
		if (w->names[n].s)
			b += strlen(w->names[n].s) + 1;
	return b;
}
