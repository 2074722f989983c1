/* Building a snapshot to save: its manifest fields (name, source, host,
 * time, tags) and its disks' descriptions (name, format, path, size, the
 * repository's chunk size). The disks' chunk maps and digests come from the
 * disk writer (repo/disk_writer.h); cairn_snapshot_save stores the whole. */
#ifndef CAIRN_REPO_SNAPSHOT_BUILD_H
#define CAIRN_REPO_SNAPSHOT_BUILD_H

#include <stddef.h>
#include <stdint.h>

#include "repo.h"

/* Fills a zeroed snapshot: name, source ("image", "domain"), this host,
 * now, the tags, and room for ndisks disks. */
int cairn_snapshot_begin(struct cairn_snapshot *s, const char *name, const char *source,
			 const char *const *tags, size_t ntags, size_t ndisks);
/* Adds the next disk (at most the ndisks given to begin): read from path
 * (recorded resolved when it exists), of this format and size, cut with
 * r's chunk size. */
int cairn_snapshot_add_disk(struct cairn_snapshot *s, struct cairn_repo *r, const char *name,
			    const char *path, const char *format, uint64_t size);

#endif
