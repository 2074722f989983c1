/* Repository-to-repository replication (docs/design.md section 19).
 *
 * Copies the snapshots that dst lacks, with every pack they need, in the
 * order packs -> index -> manifests, so an interrupted run leaves dst
 * consistent (at worst with packs that no snapshot uses yet) and the next
 * run resumes without sending again what arrived. Only snapshots listed
 * when the run starts are copied: a backup writing into src meanwhile adds
 * nothing half-done. When dst shares src's keys and chunk parameters
 * (cairn init DST --replica-of SRC) objects are copied byte for byte;
 * otherwise every snapshot is read and stored again (transcode.h).
 *
 * Returns 0 or a negative errno with a one-line reason in err. */
#ifndef CAIRN_REPLICATE_H
#define CAIRN_REPLICATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "repo/repo.h"

struct cairn_replicate_opts {
	const char *const *names; /* only snapshots of these names (NULL: all) */
	size_t nnames;
	const char *const *snapshots; /* only these ids or unique prefixes */
	size_t nsnapshots;
	unsigned connections; /* objects in flight; 0: 4 */
	bool verify; /* read every copied object back from dst and check it */
	bool dry_run;
	cairn_progress_fn progress; /* bytes copied of bytes to copy */
	void *progress_opaque;
	const volatile int *cancel;
};

struct cairn_replicate_result {
	size_t snapshots_to_copy, snapshots_copied, snapshots_present;
	size_t packs_copied, packs_present, packs_verified;
	uint64_t bytes_copied, bytes_to_copy;
};

int cairn_replicate(struct cairn_repo *src, struct cairn_repo *dst,
		    const struct cairn_replicate_opts *o, struct cairn_replicate_result *res,
		    char *err, size_t errlen);

#endif
