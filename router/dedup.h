/*
 * dedup: the deduplication window's memory, for the routing core.  Every
 * message_id accepted within delivery.dedupWindowMs is one 32-byte entry: a
 * 128-bit keyed hash of the id (never the id itself), its sequence number,
 * when the window started counting it, its receiver (an interned name) and
 * two flags, committed and cancelled.  Entries are kept in age order
 * (insertion order) so that the oldest are pruned first, and found through
 * an open-addressing index.  A reference to an entry (uint64_t, 0 for
 * none) stays valid until the entry leaves the window, however much the
 * window grows meanwhile.
 *
 * Nothing here is thread-safe: the routing core calls every function with
 * rt->lock held.  Layout and hash: docs/decisions.md, entry 67.
 */
#ifndef SWITCHBOARD_DEDUP_H
#define SWITCHBOARD_DEDUP_H

#include <stddef.h>
#include <stdint.h>

#include "switchboard/common.h"

struct dedup;

/* Entries per chunk of the window's ring (256 KiB): its memory grows and
 * shrinks by this many. */
#define DEDUP_CHUNK_ENTRIES 8192

/* A message id as the window knows it: SipHash-2-4 with a 128-bit output
 * (libsodium's crypto_shorthash_siphashx24) under the window's own random
 * key.  A client cannot choose ids that collide without the key. */
struct dedup_key {
	uint64_t h[2];
};

/* Entry flags (dedup_flags, dedup_add, dedup_renew). */
enum {
	DEDUP_COMMITTED = 1u, /* its message was committed (or it was recovered): prunable */
	DEDUP_CANCELLED = 2u, /* its message was cancelled while queued, not delivered */
};

/* A new, empty window with a fresh random key into *out.  Returns 0,
 * -ENOMEM, or -EIO when libsodium cannot start.  Thread-safe. */
int dedup_new(struct dedup **out) SB_MUST_CHECK;

/* Free `w` and every entry (NULL-safe). */
void dedup_free(struct dedup *w);

/* The key of message id `id` (`len` bytes, borrowed) under `w`'s key.  Pure;
 * safe to call without the routing lock as long as `w` lives. */
void dedup_key(const struct dedup *w, const char *id, size_t len, struct dedup_key *out);

/* The entry of `k`, or 0 when the window does not hold it. */
uint64_t dedup_find(const struct dedup *w, const struct dedup_key *k);

/* Start fetching what dedup_find(w, k) will read first (a hint to the
 * CPU; nothing changes). */
void dedup_prefetch(const struct dedup *w, const struct dedup_key *k);

/*
 * Remember `k` as the newest entry: receiver `receiver` (borrowed; interned,
 * so each distinct name is stored once), sequence `seq`, counted from
 * `since_ms` (wall clock), `flags` a set of DEDUP_*.  `hint` (may be NULL)
 * caches where `receiver` was interned, so that the next call finds it
 * without hashing or reading a name: one hint must only ever be given with
 * one receiver name; it starts at 0, and any value it has then is safe.
 * The key must not be in the window already.  Returns 0 with the new entry
 * in *ref, or -ENOMEM (nothing changed).
 */
int dedup_add(struct dedup *w, const struct dedup_key *k, const char *receiver, uint64_t *hint, uint64_t seq,
	      int64_t since_ms, unsigned flags, uint64_t *ref) SB_MUST_CHECK;

/* Make entry `ref` the newest, counted from `since_ms`, with `flags`: it
 * moves to the newest end (its old place is left as a tombstone).  `ref`
 * must be committed (no message holds it).  Returns 0 with the entry's new
 * reference in *out, or -ENOMEM with `ref` unchanged and still valid. */
int dedup_renew(struct dedup *w, uint64_t ref, int64_t since_ms, unsigned flags, uint64_t *out) SB_MUST_CHECK;

/* Forget entry `ref`; `ref` is invalid after. */
void dedup_unlink(struct dedup *w, uint64_t ref);

/* Mark entry `ref` committed (from then on dedup_prune may drop it). */
void dedup_commit(struct dedup *w, uint64_t ref);

/* Entry `ref`'s DEDUP_* flags, start of its window and sequence number. */
unsigned dedup_flags(const struct dedup *w, uint64_t ref);
int64_t dedup_since_ms(const struct dedup *w, uint64_t ref);
uint64_t dedup_seq(const struct dedup *w, uint64_t ref);

/* 1 when entry `ref` was remembered for `receiver` (borrowed), else 0. */
int dedup_receiver_is(const struct dedup *w, uint64_t ref, const char *receiver);

/* Drop the oldest entries while they are committed and either counted
 * from before `cutoff_ms` or more than `max` entries are held; an entry
 * not committed yet stops the pruning, as everything newer waits behind
 * it.  Returns how many were dropped. */
size_t dedup_prune(struct dedup *w, int64_t cutoff_ms, size_t max);

/* Entries held. */
size_t dedup_count(const struct dedup *w);

/* Bytes the window has allocated: entries (with tombstones and the unused
 * part of the newest chunk), the index and the receiver names. */
size_t dedup_bytes(const struct dedup *w);

#endif
