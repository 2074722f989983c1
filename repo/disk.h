/* The disk format, both ways: how a disk is cut into chunk slots, which
 * slots are zero, and the whole-disk digests (docs/design.md sections 4
 * and 9). Everything that writes a disk into the repository (the disk
 * writer) or reads one back (the disk reader) derives lengths, zero slots
 * and digests from here and nowhere else.
 *
 * Two whole-disk digests exist:
 *   digest  (format v1): XXH3-128 of the disk's byte stream. Its cost grows
 *           with the disk's virtual size (every zero byte is hashed), and it
 *           can only be computed in disk order. Readers still check it.
 *   digest2 (chunk-digest form): XXH3-128 over the sequence of the chunks'
 *           own XXH3-128 digests (16 canonical bytes each, in slot order); a
 *           zero slot contributes the digest of its length of zero bytes, a
 *           constant. Chunks may be fed in any order and zero slots as runs,
 *           so its cost follows the data, not the virtual size.
 * Both are stored high 64 bits first (XXH128_canonical_t). */
#ifndef CAIRN_REPO_DISK_H
#define CAIRN_REPO_DISK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "repo.h"

#define CAIRN_DIGEST_LEN 16

static inline bool cairn_id_is_zero(const cairn_id *id)
{
	return !memcmp(id, &cairn_zero_id, sizeof(*id));
}

/* ceil(size / chunk_size) */
static inline uint64_t cairn_disk_chunk_count(uint64_t size, uint32_t chunk_size)
{
	return (size + chunk_size - 1) / chunk_size;
}

/* Bytes of slot seq: chunk_size, or less for the last slot. */
static inline size_t cairn_disk_chunk_len(const struct cairn_disk *d, uint64_t seq)
{
	return (size_t)MIN((uint64_t)d->chunk_size, d->size - seq * d->chunk_size);
}

/* How many slots from seq (at most max) are all zero (*zero) or all
 * stored data; at least 1 when seq < d->nchunks. d->map must be loaded. */
uint64_t cairn_disk_run(const struct cairn_disk *d, uint64_t seq, uint64_t max, bool *zero);

/* The chunk-digest form (digest2) of one disk, fed in any order.
 * Not thread-safe for the same slot; distinct slots may be fed from
 * several threads at once (each writes its own 16 bytes). Holds 16 bytes
 * per slot. */
struct cairn_chunk_digest;
int cairn_chunk_digest_new(uint64_t size, uint32_t chunk_size, struct cairn_chunk_digest **out);
void cairn_chunk_digest_free(struct cairn_chunk_digest *cd);
DEFINE_CLEANUP(struct cairn_chunk_digest *, cairn_chunk_digest_free);
/* Slot seq holds these len bytes (len must be the slot's length). */
void cairn_chunk_digest_data(struct cairn_chunk_digest *cd, uint64_t seq, const void *data,
			     size_t len);
/* Slots [seq, seq+count) are zero. */
void cairn_chunk_digest_zeros(struct cairn_chunk_digest *cd, uint64_t seq, uint64_t count);
/* Slot seq's digest is already known (e.g. kept from an earlier pass). */
void cairn_chunk_digest_set(struct cairn_chunk_digest *cd, uint64_t seq,
			    const uint8_t digest[CAIRN_DIGEST_LEN]);
/* Slot seq's digest as fed so far. */
void cairn_chunk_digest_get(const struct cairn_chunk_digest *cd, uint64_t seq,
			    uint8_t digest[CAIRN_DIGEST_LEN]);
/* The disk's digest2 once every slot was fed. */
void cairn_chunk_digest_final(const struct cairn_chunk_digest *cd, uint8_t out[CAIRN_DIGEST_LEN]);

/* XXH3-128 of data, canonical (high 64 bits first). */
void cairn_xxh128(const void *data, size_t len, uint8_t out[CAIRN_DIGEST_LEN]);

#endif
