/* Random access to one disk of a snapshot, straight from the repository,
 * at WAN speed:
 *   - a miss fetches through the repository's disk reader
 *     (repo/disk_reader.h): the missing slots of a request are grouped by
 *     pack and fetched with few large ranged reads, not one per chunk;
 *   - a stream (one NBD connection) that reads sequentially has the next
 *     slots fetched ahead, a bounded window of whole ranges (steps of the
 *     planner's largest range), on a few prefetch threads;
 *   - decoded chunks are kept in a bounded memory cache (serve/cache.h),
 *     and, with a cache directory, fetched chunks are also kept on disk
 *     (serve/blob_cache.h), written behind the reads by a thread of their
 *     own (serve/cache_writer.h), so a later serve of the same data starts
 *     warm.
 *
 * Every chunk is verified against its id as it is decoded (whether it
 * came from the repository or the cache directory), so a damaged pack
 * gives an error, never wrong data. The whole-disk digest cannot be
 * checked on random access.
 *
 * Thread-safe: reads may run in parallel from any number of threads.
 * Functions return 0 or a negative errno (-EBADMSG: damaged or missing
 * data) with a one-line reason in err. */
#ifndef CAIRN_SERVE_READER_H
#define CAIRN_SERVE_READER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "repo/repo.h"

#define CAIRN_SERVE_READER_DEFAULT_CACHE (128u * 1024 * 1024)
#define CAIRN_SERVE_READER_DEFAULT_READAHEAD (32u * 1024 * 1024)

struct cairn_serve_reader_opts {
	size_t cache_bytes; /* decoded chunks in memory; 0: the default above */
	/* ahead of a sequential stream; 0: 8 MiB per prefetch worker, at
	 * least the default above, at most 128 MiB */
	size_t readahead_bytes;
	/* ranges fetched ahead at once; 0: the store's read workers (its
	 * connections), at least 4 */
	unsigned prefetch_workers;
	/* the on-disk cache (serve/blob_cache.h): NULL none; bounded by
	 * cache_dir_bytes (0: BLOB_CACHE_DEFAULT_SIZE) */
	const char *cache_dir;
	uint64_t cache_dir_bytes;
};

/* Where one client stream (an NBD connection) last read, to tell
 * sequential reads from random ones. Start zeroed. */
struct cairn_read_cursor {
	uint64_t next_off; /* end of the last read */
	uint64_t queued_to; /* slots below this were already queued */
};

struct cairn_serve_reader;

/* r must have its index loaded and d its chunk map (cairn_snapshot_load_map);
 * both must outlive the reader. No threads are started yet; the cache
 * directory is opened (and created) here. */
int cairn_serve_reader_new(struct cairn_repo *r, const struct cairn_disk *d,
			   const struct cairn_serve_reader_opts *o,
			   struct cairn_serve_reader **out, char *err, size_t errlen);
/* Starts the prefetch threads and the cache directory's writer (in the
 * process that will serve, i.e. after any fork). */
int cairn_serve_reader_start(struct cairn_serve_reader *rd, char *err, size_t errlen);
/* Stops the threads, writes what the cache directory's writer still
 * holds, and frees. */
void cairn_serve_reader_free(struct cairn_serve_reader *rd);

uint64_t cairn_serve_reader_size(const struct cairn_serve_reader *rd);
/* Bytes fetched from the repository so far (tests, statistics). */
uint64_t cairn_serve_reader_fetched_bytes(const struct cairn_serve_reader *rd);

/* Reads [off, off+len) (within the disk). cur may be NULL (no read-ahead). */
int cairn_serve_reader_pread(struct cairn_serve_reader *rd, struct cairn_read_cursor *cur,
			     void *buf, size_t len, uint64_t off, char *err, size_t errlen);

/* The extent that starts at off: *len bytes (at least to the end of off's
 * chunk, at most to max or the disk end) that are all zero chunks (*zero)
 * or all stored data. */
void cairn_serve_reader_extent(const struct cairn_serve_reader *rd, uint64_t off,
			       uint64_t max, uint64_t *len, bool *zero);

#endif
