/* The v1 whole-disk digest (XXH3-128 of the disk's bytes in order) of a
 * restore whose chunks arrive out of order, internal to restore/.
 *
 * A cursor hashes slots in disk order as they become available: zero
 * slots from memory, a chunk that arrives at the cursor at once, one that
 * arrives a little ahead (within a window of held copies) when the cursor
 * reaches it, and one that arrived too far ahead, or was written by an
 * earlier run of a resumed restore, by reading it back from the target.
 * The reader's reads are ordered by slot, so the window catches nearly
 * everything and the target is rarely read back (docs/design.md 11).
 * Thread-safe: chunks may be fed from several threads at once. */
#ifndef CAIRN_RESTORE_V1DIGEST_H
#define CAIRN_RESTORE_V1DIGEST_H

#include <stdatomic.h>

#include "sink.h"

#define V1DIGEST_WINDOW_BYTES (64u << 20)

struct v1digest;

/* written: bit seq set once slot seq is on the target (sink), readable
 * with sink->read; both outlive the digest. */
int v1digest_new(const struct cairn_disk *d, struct sink *sink, const _Atomic uint64_t *written,
		 struct v1digest **out);
void v1digest_free(struct v1digest *h);
/* Slot seq holds these len bytes (already written to the target). */
int v1digest_data(struct v1digest *h, uint64_t seq, const void *data, size_t len);
/* Every slot is on the target: hashes the rest and gives the digest. */
int v1digest_final(struct v1digest *h, uint8_t out[16]);
/* Slots read back from the target rather than hashed from memory. */
uint64_t v1digest_read_back(const struct v1digest *h);

#endif
