/*
 * peer: the shared driver of the peer benchmarks (peer_redis, peer_nats).  A
 * driver supplies a producer and a consumer loop; this file runs P producers
 * and C consumers for warm-up + duration, paces producers to --rate when
 * given, records produce->consume latency from a timestamp carried in the
 * payload's first 20 bytes, drains, and prints the same "e2e:" report lines
 * as bench/loadgen.c (throughput, latency percentiles, server CPU and RSS,
 * produced/consumed/lost), so bench/peers/run.sh parses all three systems
 * alike.
 */
#ifndef SWITCHBOARD_BENCH_PEER_H
#define SWITCHBOARD_BENCH_PEER_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct peer_opts {
	const char *url; /* host:port or nats://... */
	int producers, consumers, size, batch;
	double duration, warmup, rate;
	int server_pid;
};

extern struct peer_opts P;
extern atomic_int peer_stop_producing, peer_stop_consuming;
extern _Atomic uint64_t peer_accepted, peer_errors;

/* Fill `buf` (P.size bytes) with a payload stamped with the current time,
 * the producer's index and the message's sequence number (32 bytes). */
void peer_payload(char *buf, int producer, uint64_t seq);

/* The server acknowledged (stored) message `seq` of `producer`. */
void peer_mark_accepted(int producer, uint64_t seq);

/* The same, for a payload built by peer_payload(). */
void peer_accepted_payload(const char *payload, size_t len);

/* A consumer got one message: record its latency (from the stamped payload)
 * and mark it consumed; a message seen twice counts as a duplicate, not
 * twice.  `tid` is the consumer's index. */
void peer_consumed(int tid, const char *payload, size_t len);

/* Producers call this before each batch when pacing (--rate). */
void peer_pace(uint64_t *next_ns);

struct peer_driver {
	const char *name;
	int (*setup)(void);
	void *(*producer)(void *id);
	void *(*consumer)(void *id);
	void (*teardown)(void);
};

/* Parse the common options and run the benchmark.  Returns the exit code
 * (1 when messages were lost). */
int peer_main(int argc, char **argv, const struct peer_driver *d);

#endif
