/*
 * peer_nats: NATS JetStream under the peer driver (peer.h).  One stream with
 * file storage and one replica; producers publish asynchronously with up to
 * --batch publishes in flight and count the server's publish acks (a publish
 * ack means stored); consumers share one durable pull consumer with explicit
 * acks (MaxAckPending raised so it never throttles), fetch up to
 * FETCH_BATCH messages at a time and ack each.  Durability is the server's (JetStream
 * sync settings), set by bench/peers/run.sh.
 */
#include <nats/nats.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "peer.h"

#define STREAM	"SBBENCH"
#define SUBJECT "sbbench"
#define DURABLE "c"
/* libnats 3.4.1 corrupts its heap in natsSubscription_Fetch under load with large batches (found with
 * core dumps; see the session note): fetch fewer at a time */
#define FETCH_BATCH 250

static void die(const char *what, natsStatus s)
{
	fprintf(stderr, "peer_nats: %s: %s\n", what, natsStatus_GetText(s));
	exit(2);
}

static void connect_js(natsConnection **nc, jsCtx **js, jsOptions *jo)
{
	natsStatus s = natsConnection_ConnectTo(nc, P.url);

	if (s != NATS_OK)
		die("connect", s);
	s = natsConnection_JetStream(js, *nc, jo);
	if (s != NATS_OK)
		die("jetstream", s);
}

static int setup(void)
{
	natsConnection *nc = NULL;
	jsCtx *js = NULL;
	jsStreamConfig cfg;
	jsConsumerConfig cc;
	jsConsumerInfo *ci = NULL;
	jsErrCode je = 0;
	natsStatus s;
	const char *subjects[] = {SUBJECT};

	connect_js(&nc, &js, NULL);
	js_DeleteStream(js, STREAM, NULL, NULL);
	jsStreamConfig_Init(&cfg);
	cfg.Name = STREAM;
	cfg.Subjects = subjects;
	cfg.SubjectsLen = 1;
	cfg.Storage = js_FileStorage;
	cfg.Replicas = 1;
	s = js_AddStream(NULL, js, &cfg, NULL, &je);
	if (s != NATS_OK)
		die("add stream", s);
	jsConsumerConfig_Init(&cc);
	cc.Durable = DURABLE;
	cc.AckPolicy = js_AckExplicit;
	cc.MaxAckPending = 1000000;
	cc.AckWait = (int64_t)60 * 1000000000; /* ns */
	s = js_AddConsumer(&ci, js, STREAM, &cc, NULL, &je);
	if (s != NATS_OK)
		die("add consumer", s);
	jsConsumerInfo_Destroy(ci);
	jsCtx_Destroy(js);
	natsConnection_Destroy(nc);
	return 0;
}

static void on_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
	(void)js, (void)closure;
	if (pa && !pae)
		peer_accepted_payload(natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg));
	else
		atomic_fetch_add(&peer_errors, 1);
	natsMsg_Destroy(msg);
}

static void *producer(void *arg)
{
	natsConnection *nc = NULL;
	jsCtx *js = NULL;
	jsOptions jo;
	char *payload = malloc((size_t)P.size);
	uint64_t next = 0, seq = 0;
	int id = (int)(intptr_t)arg;

	jsOptions_Init(&jo);
	jo.PublishAsync.MaxPending = P.batch;
	/* with sync_interval: always the server fsyncs each message, and a full window can take longer
	 * than libnats' default 200 ms stall: wait for room instead of failing the publish */
	jo.PublishAsync.StallWait = 10000;
	jo.PublishAsync.AckHandler = on_ack;
	connect_js(&nc, &js, &jo);
	while (!atomic_load(&peer_stop_producing)) {
		peer_pace(&next);
		for (int i = 0; i < P.batch; i++) {
			natsStatus s;

			peer_payload(payload, id, seq++);
			s = js_PublishAsync(js, SUBJECT, payload, P.size, NULL);
			if (s != NATS_OK)
				atomic_fetch_add(&peer_errors, 1);
		}
	}
	js_PublishAsyncComplete(js, NULL);
	free(payload);
	jsCtx_Destroy(js);
	natsConnection_Destroy(nc);
	return NULL;
}

static void *consumer(void *arg)
{
	int id = (int)(intptr_t)arg;
	natsConnection *nc = NULL;
	natsSubscription *sub = NULL;
	jsCtx *js = NULL;
	jsSubOptions so;
	natsStatus s;

	connect_js(&nc, &js, NULL);
	jsSubOptions_Init(&so);
	so.Stream = STREAM;
	so.Consumer = DURABLE;
	s = js_PullSubscribe(&sub, js, SUBJECT, DURABLE, NULL, &so, NULL);
	if (s != NATS_OK)
		die("pull subscribe", s);
	/* no client-side pending limit, so libnats never drops messages as a slow consumer */
	s = natsSubscription_SetPendingLimits(sub, -1, -1);
	if (s != NATS_OK)
		die("pending limits", s);
	while (!atomic_load(&peer_stop_consuming)) {
		natsMsgList list = {0};

		/* A fetch that expires while the server is still sending it messages
		 * makes libnats 3.4.1 free a message list twice (natsMsgList_Destroy,
		 * seen with 4 KiB messages and a backlog; gdb backtrace in the session
		 * note): with a backlog a fetch fills long before 2 s, so it rarely
		 * expires mid-delivery. */
		s = natsSubscription_Fetch(&list, sub, FETCH_BATCH, 2000, NULL);
		if (s != NATS_OK) {
			/* libnats 3.4.1 can return a timeout with a list whose Count exceeds
			 * its array (found with ASan): trust a list only with NATS_OK; the
			 * messages of a failed fetch are redelivered after AckWait */
			if (s != NATS_TIMEOUT)
				fprintf(stderr, "peer_nats: fetch: %s\n", natsStatus_GetText(s));
			continue;
		}
		for (int i = 0; i < list.Count; i++) {
			natsMsg *m = list.Msgs[i];

			peer_consumed(id, natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m));
			natsMsg_Ack(m, NULL);
		}
		natsMsgList_Destroy(&list);
	}
	natsSubscription_Destroy(sub);
	jsCtx_Destroy(js);
	natsConnection_Destroy(nc);
	return NULL;
}

static void teardown(void)
{
}

int main(int argc, char **argv)
{
	static const struct peer_driver d = {"nats-jetstream", setup, producer, consumer, teardown};

	int rc;

	if (P.url && strncmp(P.url, "nats://", 7) != 0)
		P.url = "nats://127.0.0.1:4222";
	rc = peer_main(argc, argv, &d);
	/* stop libnats' own threads before exit() runs the library's destructors */
	nats_CloseAndWait(5000);
	return rc;
}
