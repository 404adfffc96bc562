/*
 * own: which router replica owns an agent.  Several replicas act as one
 * router by giving every agent exactly one owner, the ordinal with the
 * highest weight for the agent's id among 0 … replicas-1 (rendezvous, or
 * highest-random-weight, hashing).  The assignment depends only on the id
 * and the replica count, never on readiness, so a pod that restarts keeps
 * its agents; and when the count grows from n to n+1 only the agents whose
 * new winner is ordinal n move (about 1/(n+1) of them), while a shrink moves
 * only the agents of the leaving ordinals.
 *
 * The operator (for Agent status and scaling) and every router compute the
 * same owner from the same function, so the weight is pinned: XXH64 of the
 * id with the ordinal as seed (XXH64's output is frozen by its
 * specification).  Unit tests hold fixed vectors so a change to it fails.
 */
#ifndef SWITCHBOARD_OWN_H
#define SWITCHBOARD_OWN_H

#include <stddef.h>
#include <stdint.h>

#define OWN_MAX_REPLICAS 1000

/* The weight of ordinal `ordinal` for the agent id `id` (`len` bytes,
 * borrowed).  Pure; thread-safe. */
uint64_t own_weight(const char *id, size_t len, uint32_t ordinal);

/* The ordinal that owns agent `id` (NUL-terminated, borrowed) among
 * `replicas` (1 … OWN_MAX_REPLICAS; 0 is taken as 1).  Ties go to the lower
 * ordinal.  Pure; thread-safe. */
uint32_t own_owner(const char *id, uint32_t replicas);

/* The epoch of an assignment: 16 hex digits naming the replica count (and,
 * through `peers`, the addresses it was rendered with; NULL for none), so
 * two routers can tell whether they agree on who owns what.  Pure;
 * thread-safe. */
void own_epoch(uint32_t replicas, const char *peers, char out[17]);

#endif
