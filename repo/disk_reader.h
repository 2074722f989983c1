/* The disk reader: the one way to read a snapshot's disk back out of the
 * repository (restore, serve, replicate's re-chunking). It reads by pack,
 * not by chunk (docs/design.md section 11):
 *   - the distinct stored chunks of the requested slots are grouped by
 *     pack and sorted by offset; ranges that are adjacent or close are
 *     merged into few large ranged reads (a pack's whole span when most
 *     of it is needed), each at most a bounded size (repo/read_plan.h);
 *   - up to `connections` ranged reads are in flight, and the fetched
 *     bytes are decoded and verified on every core (the AES-GCM tag in an
 *     encrypted repository, the chunk's hash in a plain one, exactly as
 *     cairn_repo_read_chunk);
 *   - every chunk is delivered, out of order, to each of the requested
 *     slots that hold it: a chunk many slots share is fetched and decoded
 *     once; zero slots are delivered as runs and cost nothing.
 * Memory is bounded by a budget (fetched and decoded bytes held at once),
 * whatever the disk's size; the planner works in batches of slots.
 *
 * Transient transport errors are retried by the backends (5xx, resets,
 * timeouts); what remains is an error: a damaged or missing chunk is a
 * one-line message naming the disk, the pack, the slot and its offset.
 *
 * The reader does not compute the whole-disk digest: a restore feeds the
 * chunks it is given into cairn_chunk_digest (repo/disk.h); serve's
 * random access has none. Functions return 0 or a negative errno
 * (-EBADMSG: damaged or missing data) with a one-line reason in err. */
#ifndef CAIRN_REPO_DISK_READER_H
#define CAIRN_REPO_DISK_READER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "repo.h"

#define CAIRN_DREADER_DEFAULT_BUDGET (256u * 1024 * 1024)

/* A chunk's stored bytes as fetched (b->bytes valid during the call only),
 * once per distinct chunk a fetch reads, after they decoded and verified
 * and before its slots are delivered: a cache outside the repository keeps
 * them and decodes them later with cairn_repo_decode_stored. Called from
 * the reader's threads; a non-zero return stops the fetch. */
typedef int (*cairn_dreader_stored_fn)(void *opaque, const cairn_id *id,
				       const struct cairn_stored_blob *b);

struct cairn_dreader_opts {
	/* ranged reads in flight at once, shared by every fetch of this
	 * reader; 0: the backend's --connections (a local directory: one
	 * per CPU) */
	unsigned connections;
	/* bytes fetched or decoded and not yet delivered, at most (one
	 * range always proceeds); 0: CAIRN_DREADER_DEFAULT_BUDGET */
	size_t budget;
	size_t max_range; /* bytes of one ranged read; 0: a whole pack */
	size_t merge_gap; /* unneeded bytes a merge may read across; 0: 512 KiB */
	/* may be NULL: every fetch of this reader hands stored bytes here */
	cairn_dreader_stored_fn stored;
	void *stored_opaque;
};

/* Slot seq (within the disk) holds these len bytes (its full length,
 * cairn_disk_chunk_len); data is valid during the call only (4096-byte
 * aligned: writable with O_DIRECT). Called from the reader's threads,
 * several at once, in any slot order. A non-zero return stops the fetch
 * and is returned by it (a negative errno; the callback may put its
 * reason into the fetch's err, which the fetch then leaves alone). */
typedef int (*cairn_dreader_data_fn)(void *opaque, uint64_t seq, const void *data, size_t len);
/* Slots [seq, seq+count) are zero. Same threading as data. */
typedef int (*cairn_dreader_zero_fn)(void *opaque, uint64_t seq, uint64_t count);

struct cairn_dreader_cb {
	cairn_dreader_data_fn data;
	cairn_dreader_zero_fn zeros; /* may be NULL: zero runs are not reported */
	void *opaque;
	/* With runs set, one data call may cover several consecutive slots:
	 * data holds slots seq, seq+1, ... back to back and len is their
	 * total length (a chunk_size each, the disk's last slot shorter), so
	 * that a target writes a pack's run of slots at once. */
	bool runs;
};

struct cairn_dreader;

/* r must have its index loaded and d its chunk map (cairn_snapshot_load_map);
 * both must outlive the reader. o may be NULL (defaults). Starts no
 * threads: each fetch runs its own for its duration. */
int cairn_dreader_new(struct cairn_repo *r, const struct cairn_disk *d,
		      const struct cairn_dreader_opts *o, struct cairn_dreader **out,
		      char *err, size_t errlen);
void cairn_dreader_free(struct cairn_dreader *rd);
DEFINE_CLEANUP(struct cairn_dreader *, cairn_dreader_free);

/* Delivers slots [first, first+count) (clipped to the disk) to cb, minus
 * the slots whose bit is set in skip (bit seq % 64 of skip[seq / 64],
 * indexed by absolute slot; NULL: none skipped). Returns once every slot
 * was delivered, or with the first error (a callback's, a transport's or
 * damage); after an error some slots may have been delivered.
 * cancel (may be NULL): non-zero stops the fetch with -EINTR.
 *
 * Thread-safe: several fetches may run at once on one reader (e.g. one
 * per NBD request); they share its connections and budget. A fetch of a
 * few slots in one range runs on the calling thread alone. */
int cairn_dreader_fetch(struct cairn_dreader *rd, uint64_t first, uint64_t count,
			const uint64_t *skip, const struct cairn_dreader_cb *cb,
			const volatile int *cancel, char *err, size_t errlen);

/* Bytes fetched from the repository so far by every fetch of rd
 * (thread-safe; for tests and statistics). */
uint64_t cairn_dreader_fetched_bytes(const struct cairn_dreader *rd);

#endif
