/*
 * peer_redis: Redis Streams under the peer driver (peer.h).  Producers
 * pipeline --batch XADDs per round trip; consumers in one consumer group read
 * with XREADGROUP (COUNT 1000, BLOCK 100 ms) and XACK what they read in one
 * command, so delivery is at least once with consumer acks.  Durability is
 * the server's (appendonly, appendfsync), set by bench/peers/run.sh.
 */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "peer.h"

#define STREAM "sbbench"
#define GROUP  "g"

static char host[256];
static int port = 6379;

static redisContext *connect_or_die(void)
{
	redisContext *c = redisConnect(host, port);

	if (!c || c->err) {
		fprintf(stderr, "peer_redis: cannot connect to %s:%d: %s\n", host, port, c ? c->errstr : "no memory");
		exit(2);
	}
	return c;
}

static int setup(void)
{
	const char *colon = strrchr(P.url, ':');
	redisContext *c;
	redisReply *r;

	snprintf(host, sizeof(host), "%.*s", colon ? (int)(colon - P.url) : (int)strlen(P.url), P.url);
	if (colon)
		port = atoi(colon + 1);
	c = connect_or_die();
	freeReplyObject(redisCommand(c, "DEL " STREAM));
	r = redisCommand(c, "XGROUP CREATE " STREAM " " GROUP " $ MKSTREAM");
	if (!r || r->type == REDIS_REPLY_ERROR) {
		fprintf(stderr, "peer_redis: XGROUP CREATE: %s\n", r ? r->str : c->errstr);
		return -1;
	}
	freeReplyObject(r);
	redisFree(c);
	return 0;
}

static void *producer(void *arg)
{
	redisContext *c = connect_or_die();
	char *payload = malloc((size_t)P.size);
	uint64_t next = 0, seq = 0;
	int id = (int)(intptr_t)arg;

	while (!atomic_load(&peer_stop_producing)) {
		peer_pace(&next);
		for (int i = 0; i < P.batch; i++) {
			peer_payload(payload, id, seq + (uint64_t)i);
			redisAppendCommand(c, "XADD " STREAM " * d %b", payload, (size_t)P.size);
		}
		for (int i = 0; i < P.batch; i++) {
			redisReply *r = NULL;

			if (redisGetReply(c, (void **)&r) != REDIS_OK) {
				fprintf(stderr, "peer_redis: %s\n", c->errstr);
				exit(2);
			}
			if (r->type == REDIS_REPLY_STRING)
				peer_mark_accepted(id, seq + (uint64_t)i); /* persisted per appendfsync */
			else
				atomic_fetch_add(&peer_errors, 1);
			freeReplyObject(r);
		}
		seq += (uint64_t)P.batch;
	}
	free(payload);
	redisFree(c);
	return NULL;
}

static void *consumer(void *arg)
{
	int id = (int)(intptr_t)arg;
	redisContext *c = connect_or_die();
	char name[32];
	const char **argv = malloc(sizeof(char *) * 1004);
	size_t *lens = malloc(sizeof(size_t) * 1004);

	snprintf(name, sizeof(name), "c%d", id);
	while (!atomic_load(&peer_stop_consuming)) {
		redisReply *r = redisCommand(
			c, "XREADGROUP GROUP " GROUP " %s COUNT 1000 BLOCK 100 STREAMS " STREAM " >", name);
		redisReply *entries;
		size_t n = 0;

		if (!r) {
			fprintf(stderr, "peer_redis: %s\n", c->errstr);
			exit(2);
		}
		if (r->type != REDIS_REPLY_ARRAY || r->elements == 0) {
			freeReplyObject(r);
			continue;
		}
		entries = r->element[0]->element[1];
		argv[n] = "XACK", lens[n++] = 4;
		argv[n] = STREAM, lens[n++] = strlen(STREAM);
		argv[n] = GROUP, lens[n++] = strlen(GROUP);
		for (size_t i = 0; i < entries->elements; i++) {
			redisReply *e = entries->element[i], *fields = e->element[1];

			if (fields->elements >= 2)
				peer_consumed(id, fields->element[1]->str, fields->element[1]->len);
			argv[n] = e->element[0]->str, lens[n++] = e->element[0]->len;
		}
		freeReplyObject(redisCommandArgv(c, (int)n, argv, lens));
		freeReplyObject(r);
	}
	free(argv);
	free(lens);
	redisFree(c);
	return NULL;
}

static void teardown(void)
{
}

int main(int argc, char **argv)
{
	static const struct peer_driver d = {"redis-streams", setup, producer, consumer, teardown};

	return peer_main(argc, argv, &d);
}
