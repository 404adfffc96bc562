/*
 * own_of: which ordinal owns each agent id read from standard input, one id
 * per line, under the replica count given as the only argument (the same
 * rendezvous hashing the routers and the operator use, lib/own.c).  Prints
 * "id ordinal" lines.  For the benchmarks' scripts.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "switchboard/own.h"

int main(int argc, char **argv)
{
	char line[512];
	long replicas = argc == 2 ? strtol(argv[1], NULL, 10) : 0;

	if (replicas < 1 || replicas > OWN_MAX_REPLICAS) {
		fprintf(stderr, "usage: own_of REPLICAS < ids\n");
		return 2;
	}
	while (fgets(line, sizeof(line), stdin)) {
		line[strcspn(line, "\r\n")] = '\0';
		if (*line)
			printf("%s %u\n", line, own_owner(line, (uint32_t)replicas));
	}
	return 0;
}
