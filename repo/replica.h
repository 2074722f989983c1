/* Packs copied between repositories that share keys and chunk parameters
 * (docs/design.md section 19), in as few requests as a remote backend
 * allows: one listing tells which objects a side has and their sizes (no
 * HEAD per object), and a copied pack's directory is parsed from the bytes
 * on their way (no read back of the destination to index it).
 *
 * Every function returns 0 or a negative errno with the reason recorded in
 * the repository named in its comment (cairn_repo_error()). The copy and
 * read functions may be called from several threads at once. */
#ifndef CAIRN_REPO_REPLICA_H
#define CAIRN_REPO_REPLICA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "repo.h"
#include "base/util.h"

/* The objects of one directory ("data", "snapshots", ...), sorted by id. */
struct cairn_object {
	cairn_id id;
	uint64_t size;
};
struct cairn_object_set {
	struct cairn_object *v;
	size_t n, cap;
};
/* Lists dir of r once (names that are not object ids are skipped). */
int cairn_repo_list_objects(struct cairn_repo *r, const char *dir, struct cairn_object_set *out);
/* True when id is in s; *size (may be NULL) its size. */
bool cairn_object_set_has(const struct cairn_object_set *s, const cairn_id *id, uint64_t *size);
void cairn_object_set_free(struct cairn_object_set *s);

/* The directory of one pack: what an index file says about it. */
struct cairn_pack_dir;
void cairn_pack_dir_free(struct cairn_pack_dir *d);

/* Copies pack id from src to dst after checking its bytes against its name
 * and reading its directory (with dst's keys, which are src's), so a
 * damaged source pack is refused, never copied. *bytes its size, *dir its
 * directory (the caller frees it). b holds the bytes on their way; a
 * caller that passes the same one again saves the page faults of a fresh
 * buffer of tens of MiB per pack. Errors in src. */
int cairn_repo_copy_pack(struct cairn_repo *src, struct cairn_repo *dst, const cairn_id *id,
			 struct buf *b, uint64_t *bytes, struct cairn_pack_dir **dir);
/* The directory of pack id of size bytes already in r (an interrupted run
 * sent it, no index file names it yet). Errors in r. */
int cairn_repo_read_pack_dir(struct cairn_repo *r, const cairn_id *id, uint64_t size,
			     struct cairn_pack_dir **dir);
/* Writes one index file for the n packs and adds them to r's loaded index;
 * the directories stay the caller's. Errors in r. */
int cairn_repo_index_pack_dirs(struct cairn_repo *r, struct cairn_pack_dir *const *dirs,
			       size_t n);

#endif
