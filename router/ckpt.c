/*
 * The checkpointer thread (see ckpt.h).  It sleeps until the writer reports
 * CKPT_FRAMES pages written to the WAL since the last checkpoint copied
 * what it found, then runs one PASSIVE checkpoint on its own connection.
 * Counting new frames, not the WAL's length, matters: the writer never
 * pauses, so the WAL restarts only now and then, and a checkpointer woken by
 * its length would run back to back, copying the same hot pages (B-tree
 * roots, the table's last leaf) again and again.  SQLite restarts the WAL from
 * its beginning at the writer's next transaction once a checkpoint has
 * copied every frame and no reader still needs them.  PASSIVE takes no lock
 * the writer waits for; the copy and its fsync (synchronous NORMAL or FULL)
 * happen here instead of between two of the writer's commits.
 */
#include "ckpt.h"

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>

#include "switchboard/log.h"

struct ckpt {
	sqlite3 *db;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	int frames; /* the WAL's size at the writer's last commit */
	int done;   /* frames the last checkpoint had copied (0 after the WAL restarted) */
	int stopping;
	uint64_t runs;
};

/* Work for the checkpointer: CKPT_FRAMES written since the last checkpoint
 * copied what it found.  c->lock held. */
static int due(const struct ckpt *c)
{
	return c->frames - c->done >= CKPT_FRAMES;
}

/* One PASSIVE checkpoint. */
static void checkpoint_once(struct ckpt *c)
{
	int log_frames = 0, copied = 0;
	int rc = sqlite3_wal_checkpoint_v2(c->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log_frames, &copied);

	if (rc != SQLITE_OK && rc != SQLITE_BUSY)
		log_warn("WAL checkpoint failed; the writer checkpoints itself past its limit", "error",
			 sqlite3_errmsg(c->db));
	pthread_mutex_lock(&c->lock);
	c->runs++;
	if (copied > c->done && copied <= c->frames)
		c->done = copied;
	pthread_mutex_unlock(&c->lock);
}

static void *ckpt_main(void *arg)
{
	struct ckpt *c = arg;

	pthread_setname_np(pthread_self(), "sb-ckpt");
	pthread_mutex_lock(&c->lock);
	for (;;) {
		while (!c->stopping && !due(c))
			pthread_cond_wait(&c->wake, &c->lock);
		if (c->stopping)
			break;
		pthread_mutex_unlock(&c->lock);
		checkpoint_once(c);
		pthread_mutex_lock(&c->lock);
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

int ckpt_start(const char *path, int64_t busy_ms, struct ckpt **out)
{
	struct ckpt *c = calloc(1, sizeof(*c));
	int rc = -EIO;

	if (!c)
		return -ENOMEM;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->wake, NULL);
	if (sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK ||
	    sqlite3_exec(c->db, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_exec(c->db, "PRAGMA wal_autocheckpoint=0", NULL, NULL, NULL) != SQLITE_OK) {
		log_error("cannot open the checkpoint connection", "path", path, "error",
			  c->db ? sqlite3_errmsg(c->db) : "?");
		goto out;
	}
	sqlite3_busy_timeout(c->db, (int)busy_ms);
	rc = -pthread_create(&c->thread, NULL, ckpt_main, c);
	if (rc)
		goto out;
	*out = c;
	return 0;
out:
	sqlite3_close(c->db);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->wake);
	free(c);
	return rc;
}

void ckpt_notify(struct ckpt *c, int frames)
{
	pthread_mutex_lock(&c->lock);
	if (frames < c->frames)
		c->done = 0; /* the WAL restarted from its beginning */
	c->frames = frames;
	if (due(c))
		pthread_cond_signal(&c->wake);
	pthread_mutex_unlock(&c->lock);
}

uint64_t ckpt_count(struct ckpt *c)
{
	uint64_t n;

	pthread_mutex_lock(&c->lock);
	n = c->runs;
	pthread_mutex_unlock(&c->lock);
	return n;
}

void ckpt_stop(struct ckpt *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	c->stopping = 1;
	pthread_cond_signal(&c->wake);
	pthread_mutex_unlock(&c->lock);
	pthread_join(c->thread, NULL);
	if (sqlite3_close(c->db) != SQLITE_OK)
		log_warn("the checkpoint connection did not close cleanly");
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->wake);
	free(c);
}
