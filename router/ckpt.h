/*
 * ckpt: WAL checkpoints on a thread and a connection of their own, so that
 * the store's writer (router/store.c) never stops committing to copy the
 * WAL back into the database and fsync it.  The writer's WAL hook reports
 * the WAL's size after each commit (ckpt_notify); every CKPT_FRAMES new pages
 * the checkpointer runs a PASSIVE checkpoint, which never blocks the writer.  Should the checkpointer fall far behind
 * (CKPT_HARD_FRAMES), the writer checkpoints inline, as SQLite's automatic checkpoint would.
 */
#ifndef SWITCHBOARD_CKPT_H
#define SWITCHBOARD_CKPT_H

#include <stdint.h>

#include "switchboard/common.h"

#define CKPT_FRAMES	 2000  /* pages written (~8 MiB) since the last checkpoint that start one */
#define CKPT_HARD_FRAMES 32000 /* pages (~128 MiB) past which the writer checkpoints itself */

struct ckpt;

/* Open a second connection to the WAL database at `path` (borrowed) and
 * start the checkpointer thread.  Its checkpoints fsync the database before
 * the WAL may restart (synchronous=NORMAL does that much).  Returns 0 with
 * *out set, -EIO (logged), -ENOMEM or another -errno. */
int ckpt_start(const char *path, int64_t busy_ms, struct ckpt **out) SB_MUST_CHECK;

/* The WAL holds `frames` pages after a commit: wake the checkpointer when
 * CKPT_FRAMES were written since its last checkpoint.  Cheap; called by the
 * writer on every commit.  Thread-safe. */
void ckpt_notify(struct ckpt *c, int frames);

/* Checkpoints run so far (complete or not).  Thread-safe. */
uint64_t ckpt_count(struct ckpt *c);

/* Stop the thread (a running checkpoint finishes first), close the
 * connection and free `c`.  NULL is a no-op. */
void ckpt_stop(struct ckpt *c);

#endif
