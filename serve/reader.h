/* Random access to one disk of a snapshot, straight from the repository:
 * any byte range is read from the chunks that cover it (zero chunks cost
 * nothing), decoded chunks are kept in a small LRU cache, and a read that
 * follows the previous one of its stream queues the next chunks for
 * decoding on a few prefetch threads.
 *
 * Every chunk is verified against its id as it is decoded, so a damaged
 * pack gives an error, never wrong data. The whole-disk digest cannot be
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

#define CAIRN_READER_DEFAULT_CACHE (64u * 1024 * 1024)

struct cairn_disk_reader_opts {
	size_t cache_bytes; /* 0: CAIRN_READER_DEFAULT_CACHE */
	unsigned prefetch_workers; /* 0: one per CPU */
	unsigned readahead; /* chunks queued ahead of a sequential read; 0: 8 */
};

/* Where one client stream (an NBD connection) last read, to tell
 * sequential reads from random ones. Start zeroed. */
struct cairn_read_cursor {
	uint64_t next_off; /* end of the last read */
	uint64_t queued_to; /* chunks below this were already queued */
};

struct cairn_disk_reader;

/* r must have its index loaded and d its chunk map (cairn_snapshot_load_map);
 * both must outlive the reader. No threads are started yet. */
int cairn_disk_reader_new(struct cairn_repo *r, const struct cairn_disk *d,
			  const struct cairn_disk_reader_opts *o,
			  struct cairn_disk_reader **out, char *err, size_t errlen);
/* Starts the prefetch threads (in the process that will serve, i.e. after
 * any fork). */
int cairn_disk_reader_start(struct cairn_disk_reader *rd, char *err, size_t errlen);
void cairn_disk_reader_free(struct cairn_disk_reader *rd);

uint64_t cairn_disk_reader_size(const struct cairn_disk_reader *rd);

/* Reads [off, off+len) (within the disk). cur may be NULL (no prefetch). */
int cairn_disk_reader_pread(struct cairn_disk_reader *rd, struct cairn_read_cursor *cur,
			    void *buf, size_t len, uint64_t off, char *err, size_t errlen);

/* The extent that starts at off: *len bytes (at least to the end of off's
 * chunk, at most to max or the disk end) that are all zero chunks (*zero)
 * or all stored data. */
void cairn_disk_reader_extent(const struct cairn_disk_reader *rd, uint64_t off,
			      uint64_t max, uint64_t *len, bool *zero);

#endif
