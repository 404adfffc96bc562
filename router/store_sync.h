/*
 * store_sync: pipelined group commit for storage.sync full.  The store's
 * writer commits a transaction without waiting for the disk (SQLite's
 * synchronous=NORMAL writes the WAL frames and returns) and hands the
 * transaction's tickets here; this thread fdatasyncs the WAL file once for
 * every transaction that has queued up meanwhile, and only then completes
 * their tickets, in commit order.  The writer executes the next transaction
 * while the disk syncs the last ones, so a slow fsync no longer stops it.
 * A commit is acknowledged only after an fdatasync that began after its
 * frames were written: the guarantee of synchronous=FULL.  Private to
 * router/store*.c.
 */
#ifndef SWITCHBOARD_STORE_SYNC_H
#define SWITCHBOARD_STORE_SYNC_H

#include "store.h"
#include "switchboard/common.h"

struct store_sync;

/* Called on the sync thread with the tickets of every transaction one
 * fdatasync covered (linked through `next`, in commit order) once the WAL
 * holding them is on disk (rc 0) or the sync failed (-EIO). */
typedef void (*store_sync_done_fn)(struct store_ticket *batch, int rc, void *ctx);

/* Open `wal_path` (borrowed; the WAL file SQLite keeps while a connection
 * is open) and start the sync thread.  Returns 0 with *out set, -errno. */
int store_sync_start(const char *wal_path, store_sync_done_fn fn, void *ctx, struct store_sync **out) SB_MUST_CHECK;

/* Queue a committed transaction's tickets (`batch`, linked through `next`,
 * NULL-terminated; taken until `fn` returns it).  Thread-safe. */
void store_sync_push(struct store_sync *y, struct store_ticket *batch);

/* Sync and complete what is queued, stop the thread, close the file and
 * free `y`.  NULL is a no-op. */
void store_sync_stop(struct store_sync *y);

#endif
