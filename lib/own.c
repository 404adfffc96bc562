/*
 * own: rendezvous hashing of agent ids over router ordinals, and the epoch
 * that names an assignment.  See own.h for why the weight is XXH64 seeded
 * with the ordinal, and for the contracts.
 */
#include "switchboard/own.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>
#define XXH_STATIC_LINKING_ONLY /* XXH64_state_t on the stack */
#include <xxhash.h>

uint64_t own_weight(const char *id, size_t len, uint32_t ordinal)
{
	assert(id);
	return (uint64_t)XXH64(id, len, (XXH64_hash_t)ordinal);
}

uint32_t own_owner(const char *id, uint32_t replicas)
{
	size_t len = strlen(id);
	uint64_t best = 0;
	uint32_t owner = 0;

	if (replicas == 0)
		replicas = 1;
	if (replicas > OWN_MAX_REPLICAS)
		replicas = OWN_MAX_REPLICAS;
	for (uint32_t i = 0; i < replicas; i++) {
		uint64_t w = own_weight(id, len, i);

		if (i == 0 || w > best) {
			best = w;
			owner = i;
		}
	}
	return owner;
}

void own_epoch(uint32_t replicas, const char *peers, char out[17])
{
	char head[32];
	XXH64_state_t st;

	XXH64_reset(&st, 0);
	snprintf(head, sizeof(head), "replicas=%u;", replicas);
	XXH64_update(&st, head, strlen(head));
	if (peers)
		XXH64_update(&st, peers, strlen(peers));
	snprintf(out, 17, "%016llx", (unsigned long long)XXH64_digest(&st));
}
