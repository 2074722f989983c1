/* Verifying a transcoded copy (private to replicate/): reads a disk of a
 * snapshot back from the destination through the disk reader (few large
 * ranged reads, every chunk checked against its id on the way) and
 * compares the whole-disk digests the disk records: digest2 from chunks
 * as they arrive, the v1 XXH3 digest in disk order through a bounded
 * window of slots. Returns 0, -EBADMSG when the copy does not match (or
 * a chunk is damaged or missing), or another negative errno, with a
 * one-line reason in err. */
#ifndef CAIRN_REPLICATE_COPY_VERIFY_H
#define CAIRN_REPLICATE_COPY_VERIFY_H

#include <stddef.h>

#include "repo/repo.h"

/* d's chunk map must be loaded; cancel may be NULL. */
int copy_verify_disk(struct cairn_repo *dst, const struct cairn_disk *d,
		     const volatile int *cancel, char *err, size_t errlen);

#endif
