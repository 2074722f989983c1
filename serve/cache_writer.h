/* Write-behind for serve's cache directory: the chunks a read fetched are
 * queued and written to the blob cache by one thread of their own, so that
 * a read never waits on the cache directory's file system. Creating a file
 * costs a millisecond on some file systems (ext4 here: more than decoding
 * the chunk), and a read that paid it per chunk ran at half speed.
 *
 * Bounded: when max_bytes of chunks are waiting, new ones are dropped (the
 * cache is best effort; a dropped chunk is fetched again the next time it
 * is needed, and cached then). Freeing writes what is queued first.
 * Before cache_writer_start, and when the thread cannot be made, a chunk
 * is written at once by the caller. */
#ifndef CAIRN_SERVE_CACHE_WRITER_H
#define CAIRN_SERVE_CACHE_WRITER_H

#include <stddef.h>
#include <stdint.h>

#include "blob_cache.h"

#define CACHE_WRITER_DEFAULT_QUEUE (64u * 1024 * 1024)

struct cache_writer;

/* A writer into bc (not owned; it must outlive the writer). 0 or -ENOMEM. */
int cache_writer_new(struct blob_cache *bc, size_t max_bytes, struct cache_writer **out);
/* Starts the thread: separate from _new because a server that forks into
 * the background must start it in the child. 0 or a negative errno. */
int cache_writer_start(struct cache_writer *w);
/* Copies chunk id's stored bytes into the queue. 0, -ENOBUFS (dropped:
 * the queue is full) or -ENOMEM. */
int cache_writer_queue(struct cache_writer *w, const cairn_id *id,
		       const struct cairn_stored_blob *b);
/* Chunks dropped so far. */
uint64_t cache_writer_dropped(struct cache_writer *w);
/* Writes what is queued, joins the thread, frees. */
void cache_writer_free(struct cache_writer *w);

#endif
