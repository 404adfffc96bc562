/*
 * peer_rabbit: RabbitMQ under the peer driver (peer.h), with librabbitmq
 * (rabbitmq-c 0.11).  One durable queue, shared by every producer and
 * consumer as the Redis stream and the NATS stream are: a quorum queue or a
 * classic queue (--queue quorum|classic, the one option of its own).  Each
 * producer and each consumer has its own connection and channel.  Producers
 * put their channel in confirm mode, publish --batch persistent messages
 * (delivery_mode 2) to the queue, then wait until the broker has confirmed
 * every one of them (basic.ack, one by one or `multiple`) before marking them
 * accepted and publishing the next batch; a basic.nack is an error, not an
 * acceptance.  Consumers use basic.consume with manual acks and a prefetch
 * (basic.qos) of --batch messages, record each message, then ack everything
 * recorded so far with one basic.ack `multiple` when half the prefetch is
 * waiting or nothing more is buffered.  Durability is the broker's: a quorum
 * queue confirms after its Raft log is fsynced, a durable classic queue
 * confirms a persistent message once it is fsynced to its message store or
 * index (bench/peers/run.sh starts the broker; docs/decisions.md says more).
 */
#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "peer.h"

#define QUEUE "sbbench"
#define CHAN  1
/* how long a connection, a synchronous method or a producer's confirms may take before the run gives up */
#define WAIT_SECS 60

static char host[256];
static int port = 5672;
static const char *queue_type = "quorum";

static void die(const char *what, const char *why)
{
	fprintf(stderr, "peer_rabbit: %s: %s\n", what, why);
	exit(2);
}

/* The broker closed the channel or the connection (method m), or sent a method we did not expect. */
static void die_method(const char *what, const amqp_method_t *m)
{
	char why[512];

	if (m->id == AMQP_CHANNEL_CLOSE_METHOD) {
		amqp_channel_close_t *cc = m->decoded;

		snprintf(why, sizeof(why), "the broker closed the channel: %u %.*s", cc->reply_code,
			 (int)cc->reply_text.len, (const char *)cc->reply_text.bytes);
	} else if (m->id == AMQP_CONNECTION_CLOSE_METHOD) {
		amqp_connection_close_t *cc = m->decoded;

		snprintf(why, sizeof(why), "the broker closed the connection: %u %.*s", cc->reply_code,
			 (int)cc->reply_text.len, (const char *)cc->reply_text.bytes);
	} else {
		snprintf(why, sizeof(why), "unexpected method 0x%08x from the broker", (unsigned)m->id);
	}
	die(what, why);
}

static void die_reply(const char *what, amqp_rpc_reply_t r)
{
	switch (r.reply_type) {
	case AMQP_RESPONSE_NORMAL:
		return;
	case AMQP_RESPONSE_NONE:
		die(what, "no reply");
		break;
	case AMQP_RESPONSE_LIBRARY_EXCEPTION:
		die(what, amqp_error_string2(r.library_error));
		break;
	case AMQP_RESPONSE_SERVER_EXCEPTION:
		die_method(what, &r.reply);
	}
}

/* Check the reply to the synchronous method just called. */
static void check(amqp_connection_state_t c, const char *what)
{
	die_reply(what, amqp_get_rpc_reply(c));
}

/* A connection with channel CHAN open, as the broker's default guest user (admitted from loopback only). */
static amqp_connection_state_t connect_or_die(void)
{
	amqp_connection_state_t c = amqp_new_connection();
	amqp_socket_t *s = c ? amqp_tcp_socket_new(c) : NULL;
	struct timeval tv = {WAIT_SECS, 0};
	int rc;

	if (!s)
		die("connect", "no memory");
	rc = amqp_set_rpc_timeout(c, &tv);
	if (rc != AMQP_STATUS_OK)
		die("rpc timeout", amqp_error_string2(rc));
	rc = amqp_socket_open_noblock(s, host, port, &tv);
	if (rc != AMQP_STATUS_OK)
		die("connect", amqp_error_string2(rc));
	die_reply("login", amqp_login(c, "/", 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, "guest", "guest"));
	amqp_channel_open(c, CHAN);
	check(c, "channel.open");
	return c;
}

static void disconnect(amqp_connection_state_t c)
{
	die_reply("channel.close", amqp_channel_close(c, CHAN, AMQP_REPLY_SUCCESS));
	die_reply("connection.close", amqp_connection_close(c, AMQP_REPLY_SUCCESS));
	amqp_destroy_connection(c);
}

static int setup(void)
{
	const char *colon = strrchr(P.url, ':');
	amqp_table_entry_t arg = {
		.key = amqp_cstring_bytes("x-queue-type"),
		.value = {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = amqp_cstring_bytes(queue_type)}};
	amqp_table_t args = {1, &arg};
	amqp_connection_state_t c;

	snprintf(host, sizeof(host), "%.*s", colon ? (int)(colon - P.url) : (int)strlen(P.url), P.url);
	if (colon) {
		char *end;
		long v = strtol(colon + 1, &end, 10);

		if (*end || v <= 0 || v > 65535)
			die("--url", "the port is not a number from 1 to 65535");
		port = (int)v;
	}
	c = connect_or_die();
	amqp_queue_delete(c, CHAN, amqp_cstring_bytes(QUEUE), 0, 0);
	check(c, "queue.delete");
	/* durable, neither exclusive nor auto-deleted: what a quorum queue requires, and what keeps a
	 * classic queue's persistent messages on disk */
	amqp_queue_declare(c, CHAN, amqp_cstring_bytes(QUEUE), 0, 1, 0, 0, args);
	check(c, "queue.declare");
	disconnect(c);
	return 0;
}

/* One producer's batch in flight: delivery tags first .. first+n-1 carry its sequence numbers
 * seq0 .. seq0+n-1 (a channel in confirm mode numbers its publishes from 1). */
struct batch {
	int id, n, settled;
	uint64_t first, seq0;
	unsigned char *state; /* per message: 0 waiting, 1 confirmed, 2 refused (basic.nack) */
};

/* basic.ack or basic.nack for `tag` (and, with `multiple`, every earlier tag). */
static void settle(struct batch *b, uint64_t tag, int multiple, int ok)
{
	uint64_t end = b->first + (uint64_t)b->n;

	for (uint64_t t = multiple ? b->first : tag; t <= tag && t < end; t++) {
		if (t < b->first || b->state[t - b->first])
			continue;
		b->state[t - b->first] = ok ? 1 : 2;
		b->settled++;
		if (ok)
			peer_mark_accepted(b->id, b->seq0 + (t - b->first));
		else
			atomic_fetch_add(&peer_errors, 1);
	}
}

static void publish_batch(amqp_connection_state_t c, char *payload, struct batch *b)
{
	amqp_basic_properties_t props = {._flags = AMQP_BASIC_DELIVERY_MODE_FLAG,
					 .delivery_mode = AMQP_DELIVERY_PERSISTENT};

	b->n = P.batch;
	b->settled = 0;
	memset(b->state, 0, (size_t)b->n);
	for (int i = 0; i < b->n; i++) {
		int rc;

		peer_payload(payload, b->id, b->seq0 + (uint64_t)i);
		rc = amqp_basic_publish(c, CHAN, amqp_empty_bytes, amqp_cstring_bytes(QUEUE), 0, 0, &props,
					(amqp_bytes_t){(size_t)P.size, payload});
		if (rc != AMQP_STATUS_OK)
			die("basic.publish", amqp_error_string2(rc));
	}
}

/* Read frames until every message of the batch is confirmed or refused. */
static void wait_confirms(amqp_connection_state_t c, struct batch *b)
{
	while (b->settled < b->n) {
		struct timeval tv = {WAIT_SECS, 0};
		amqp_frame_t f;
		int rc = amqp_simple_wait_frame_noblock(c, &f, &tv);

		if (rc != AMQP_STATUS_OK)
			die("waiting for publisher confirms", amqp_error_string2(rc));
		if (f.frame_type != AMQP_FRAME_METHOD)
			continue;
		if (f.payload.method.id == AMQP_BASIC_ACK_METHOD) {
			amqp_basic_ack_t *a = f.payload.method.decoded;

			settle(b, a->delivery_tag, a->multiple, 1);
		} else if (f.payload.method.id == AMQP_BASIC_NACK_METHOD) {
			amqp_basic_nack_t *n = f.payload.method.decoded;

			settle(b, n->delivery_tag, n->multiple, 0);
		} else {
			die_method("waiting for publisher confirms", &f.payload.method);
		}
	}
	amqp_maybe_release_buffers(c);
}

static void *producer(void *arg)
{
	struct batch b = {.id = (int)(intptr_t)arg, .first = 1, .state = malloc((size_t)P.batch)};
	char *payload = malloc((size_t)P.size);
	amqp_connection_state_t c = connect_or_die();
	uint64_t next = 0;

	if (!b.state || !payload)
		die("producer", "no memory");
	amqp_confirm_select(c, CHAN);
	check(c, "confirm.select");
	while (!atomic_load(&peer_stop_producing)) {
		peer_pace(&next);
		publish_batch(c, payload, &b);
		wait_confirms(c, &b);
		b.first += (uint64_t)b.n;
		b.seq0 += (uint64_t)b.n;
	}
	disconnect(c);
	free(payload);
	free(b.state);
	return NULL;
}

/* Ack every delivery up to *last (recorded already) in one basic.ack `multiple`. */
static void ack_upto(amqp_connection_state_t c, uint64_t last, int *pending)
{
	int rc;

	if (!*pending)
		return;
	rc = amqp_basic_ack(c, CHAN, last, 1);
	if (rc != AMQP_STATUS_OK)
		die("basic.ack", amqp_error_string2(rc));
	*pending = 0;
}

/* amqp_consume_message() met a frame other than a delivery: read it.  A method there (the broker
 * cancelling the consumer, closing the channel or the connection) ends the run. */
static void other_frame(amqp_connection_state_t c)
{
	amqp_frame_t f;
	int rc = amqp_simple_wait_frame(c, &f);

	if (rc != AMQP_STATUS_OK)
		die("consume", amqp_error_string2(rc));
	if (f.frame_type == AMQP_FRAME_METHOD)
		die_method("consume", &f.payload.method);
}

static void start_consuming(amqp_connection_state_t c)
{
	amqp_basic_qos(c, CHAN, 0, (uint16_t)(P.batch < 65535 ? P.batch : 65535), 0);
	check(c, "basic.qos");
	amqp_basic_consume(c, CHAN, amqp_cstring_bytes(QUEUE), amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
	check(c, "basic.consume");
}

static void *consumer(void *arg)
{
	int id = (int)(intptr_t)arg, pending = 0, ack_every = P.batch / 2 > 0 ? P.batch / 2 : 1;
	amqp_connection_state_t c = connect_or_die();
	uint64_t last = 0;

	start_consuming(c);
	while (!atomic_load(&peer_stop_consuming)) {
		struct timeval tv = {0, 100000};
		amqp_envelope_t env;
		amqp_rpc_reply_t r;

		amqp_maybe_release_buffers(c);
		r = amqp_consume_message(c, &env, &tv, 0);
		if (r.reply_type == AMQP_RESPONSE_NORMAL) {
			peer_consumed(id, env.message.body.bytes, env.message.body.len);
			last = env.delivery_tag;
			pending++;
			amqp_destroy_envelope(&env);
			/* ack when half the prefetch is waiting, or before blocking for more */
			if (pending >= ack_every || (!amqp_data_in_buffer(c) && !amqp_frames_enqueued(c)))
				ack_upto(c, last, &pending);
			continue;
		}
		ack_upto(c, last, &pending);
		if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && r.library_error == AMQP_STATUS_TIMEOUT)
			continue;
		if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && r.library_error == AMQP_STATUS_UNEXPECTED_STATE)
			other_frame(c);
		else
			die_reply("consume", r);
	}
	ack_upto(c, last, &pending);
	disconnect(c);
	return NULL;
}

static void teardown(void)
{
}

/* Take out --queue quorum|classic (the one option of this driver); peer_main() parses the rest. */
static int queue_option(int *argc, char **argv)
{
	int n = 0;

	for (int i = 0; i < *argc; i++) {
		if (strcmp(argv[i], "--queue") == 0 && i + 1 < *argc)
			queue_type = argv[++i];
		else
			argv[n++] = argv[i];
	}
	argv[n] = NULL;
	*argc = n;
	if (strcmp(queue_type, "quorum") != 0 && strcmp(queue_type, "classic") != 0) {
		fprintf(stderr, "peer_rabbit: --queue is quorum or classic, not %s\n", queue_type);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static struct peer_driver d = {"rabbitmq-quorum", setup, producer, consumer, teardown};

	if (queue_option(&argc, argv))
		return 2;
	if (strcmp(queue_type, "classic") == 0)
		d.name = "rabbitmq-classic";
	P.url = "127.0.0.1:5672";
	return peer_main(argc, argv, &d);
}
