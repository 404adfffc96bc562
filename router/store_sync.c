/*
 * The sync thread of storage.sync full (see store_sync.h).  Tickets of
 * committed transactions queue in one FIFO list; the thread takes the whole
 * list, fdatasyncs the WAL once and completes them all.  fdatasync on a
 * descriptor of our own flushes the file's dirty pages whoever wrote them
 * (Linux syncs the inode), so SQLite's own descriptor is not needed.
 */
#include "store_sync.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "switchboard/log.h"

struct store_sync {
	int fd;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t work;
	struct store_ticket *head, *tail; /* committed, not synced */
	int stopping;
	store_sync_done_fn done;
	void *ctx;
};

static void *sync_main(void *arg)
{
	struct store_sync *y = arg;

	pthread_setname_np(pthread_self(), "sb-sync");
	pthread_mutex_lock(&y->lock);
	for (;;) {
		struct store_ticket *batch;
		int rc = 0;

		while (!y->head && !y->stopping)
			pthread_cond_wait(&y->work, &y->lock);
		if (!y->head)
			break; /* stopping, and nothing left */
		batch = y->head;
		y->head = y->tail = NULL;
		pthread_mutex_unlock(&y->lock);
		if (fdatasync(y->fd) != 0) {
			rc = -errno;
			log_error("fdatasync of the WAL failed; these commits are not known to be durable", "error",
				  strerror(-rc));
		}
		y->done(batch, rc ? -EIO : 0, y->ctx);
		pthread_mutex_lock(&y->lock);
	}
	pthread_mutex_unlock(&y->lock);
	return NULL;
}

int store_sync_start(const char *wal_path, store_sync_done_fn fn, void *ctx, struct store_sync **out)
{
	struct store_sync *y = calloc(1, sizeof(*y));
	int rc;

	if (!y)
		return -ENOMEM;
	y->done = fn;
	y->ctx = ctx;
	y->fd = open(wal_path, O_RDONLY | O_CREAT | O_CLOEXEC, 0600); /* SQLite made it, or takes it empty */
	if (y->fd < 0) {
		rc = -errno;
		log_error("cannot open the WAL to sync it", "path", wal_path);
		free(y);
		return rc;
	}
	pthread_mutex_init(&y->lock, NULL);
	pthread_cond_init(&y->work, NULL);
	rc = -pthread_create(&y->thread, NULL, sync_main, y);
	if (rc) {
		close(y->fd);
		pthread_mutex_destroy(&y->lock);
		pthread_cond_destroy(&y->work);
		free(y);
		return rc;
	}
	*out = y;
	return 0;
}

void store_sync_push(struct store_sync *y, struct store_ticket *batch)
{
	struct store_ticket *last = batch;

	while (last->next)
		last = last->next;
	pthread_mutex_lock(&y->lock);
	if (y->tail)
		y->tail->next = batch;
	else
		y->head = batch;
	y->tail = last;
	pthread_cond_signal(&y->work);
	pthread_mutex_unlock(&y->lock);
}

void store_sync_stop(struct store_sync *y)
{
	if (!y)
		return;
	pthread_mutex_lock(&y->lock);
	y->stopping = 1;
	pthread_cond_signal(&y->work);
	pthread_mutex_unlock(&y->lock);
	pthread_join(y->thread, NULL);
	close(y->fd);
	pthread_mutex_destroy(&y->lock);
	pthread_cond_destroy(&y->work);
	free(y);
}
