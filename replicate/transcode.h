/* Replication between unrelated repositories (private to replicate/).
 *
 * When dst was not made with `init --replica-of src`, chunk ids (keyed by
 * each repository's id key), blob encryption and possibly the chunk size
 * differ, so objects cannot be copied byte for byte. Each snapshot dst
 * lacks is then read disk by disk from src and stored again in dst: cut at
 * dst's chunk size, hashed, compressed and encrypted the way dst does it,
 * deduplicated against everything dst holds. docs/design.md section 19.
 *
 * A snapshot counts as present in dst when dst holds one with the same
 * name, host and time (nanoseconds), which a copy keeps. Slots whose source
 * chunks did not change since the previous snapshot of the same name that
 * dst already holds take their ids from that copy without reading them.
 *
 * wanted() selects the source snapshots the caller asked for. Returns 0 or
 * a negative errno with a one-line reason in err. */
#ifndef CAIRN_REPLICATE_TRANSCODE_H
#define CAIRN_REPLICATE_TRANSCODE_H

#include "replicate.h"

typedef bool (*replicate_wanted_fn)(const struct cairn_replicate_opts *o,
				    const struct cairn_snapshot *s);

int replicate_transcode(struct cairn_repo *src, struct cairn_repo *dst,
			const struct cairn_replicate_opts *o, replicate_wanted_fn wanted,
			struct cairn_replicate_result *res, char *err, size_t errlen);

#endif
