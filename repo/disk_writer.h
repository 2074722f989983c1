/* The disk writer: the one way a disk's chunks get into the repository
 * (the write half of the disk format; the disk reader is the read half).
 *
 * A writer is made for one struct cairn_disk whose name, size and
 * chunk_size are set; it allocates the disk's chunk map (d->nchunks,
 * d->map) and fills it as slots arrive. Every slot must be given exactly
 * once, in any order, from any number of threads (distinct slots at once):
 *   put    a slot's bytes: all-zero bytes become ZERO_ID (never stored),
 *          anything else its chunk id, stored through the cairn_writer
 *          unless the repository already has it;
 *   zeros  a run of zero slots (holes), at a cost independent of its length
 *          in bytes: nothing is hashed;
 *   reuse  a run of slots unchanged since the previous snapshot, whose ids
 *          are taken from its map, except where the repository says a blob
 *          must not be reused (missing, damaged, condemned): such a slot is
 *          handed back for the caller to read and put.
 * Alongside, it feeds the chunk-digest form of the whole-disk digest
 * (digest2, repo/disk.h). cairn_disk_writer_finish sets d->has_digest2 and
 * d->digest2 when every slot was put or zeroed, that is when the bytes of
 * the whole disk went through it; a disk that reused slots has no whole-
 * disk digest, and restores rely on the per-chunk checks alone. Writers of
 * this revision never record the v1 `digest` (docs/design.md section 9).
 *
 * Functions return 0 (or a count) or a negative errno; the first failure's
 * one-line reason is kept in the writer (cairn_disk_writer_error), so
 * worker threads never read the repository's message buffer themselves. */
#ifndef CAIRN_REPO_DISK_WRITER_H
#define CAIRN_REPO_DISK_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "repo.h"

struct cairn_disk_writer;

/* d: name, size and chunk_size set, map not yet allocated (the writer
 * allocates it; the disk keeps it). w: where blobs go, shared with other
 * disks and snapshots at will. prev (may be NULL): the same disk in the
 * previous snapshot, map loaded, same size and chunk size (else -EINVAL),
 * needed only for reuse; it must outlive the writer. */
int cairn_disk_writer_new(struct cairn_repo *r, struct cairn_writer *w, struct cairn_disk *d,
			  const struct cairn_disk *prev, struct cairn_disk_writer **out);
void cairn_disk_writer_free(struct cairn_disk_writer *dw);
DEFINE_CLEANUP(struct cairn_disk_writer *, cairn_disk_writer_free);

/* Slot seq holds these bytes; len must be the slot's length
 * (cairn_disk_chunk_len). */
int cairn_disk_writer_put(struct cairn_disk_writer *dw, uint64_t seq, const void *data,
			  size_t len);
/* Slots [seq, seq+count) are all zero. */
int cairn_disk_writer_zeros(struct cairn_disk_writer *dw, uint64_t seq, uint64_t count);
/* Takes slots from seq on from the previous snapshot's map while their
 * blobs are reusable, at most count. Returns how many it took (n): when
 * n < count, slot seq+n is not reusable and the caller reads and puts it
 * (or zeroes it), then goes on with reuse from seq+n+1. */
int64_t cairn_disk_writer_reuse(struct cairn_disk_writer *dw, uint64_t seq, uint64_t count);

/* After every slot was given: sets d->has_digest2/digest2 when no slot was
 * reused (and never d->has_digest). -EINVAL when slots are missing. */
int cairn_disk_writer_finish(struct cairn_disk_writer *dw);

struct cairn_disk_writer_stats {
	uint64_t chunks; /* slots of the disk */
	uint64_t zero_chunks; /* zeroed, or put with all-zero bytes */
	uint64_t reused_chunks; /* taken from the previous map */
	uint64_t data_chunks; /* put with data */
	uint64_t bytes_put; /* bytes handed to put */
	uint64_t new_chunks, new_bytes; /* blobs stored, bytes they take in packs */
	uint64_t new_raw_bytes; /* the same blobs' plaintext bytes */
};
/* Counters so far (exact once no slot is being given). */
void cairn_disk_writer_stats(const struct cairn_disk_writer *dw,
			     struct cairn_disk_writer_stats *out);
/* The first failure's reason ("" when none). Safe from any thread: the
 * text is the calling thread's copy, valid until its next call. */
const char *cairn_disk_writer_error(const struct cairn_disk_writer *dw);

#endif
