/* serve's on-disk chunk cache: the chunks fetched from a repository, kept
 * in a directory so that the next read of the same chunk (by any snapshot
 * that shares it, or a later serve of the same one) does not fetch it
 * again.
 *
 *   - Content-addressed: an entry is named by its chunk id and holds the
 *     chunk as the pack stores it (compressed, and encrypted when the
 *     repository is: no plaintext of an encrypted repository reaches the
 *     disk). A read decodes and verifies it exactly as a fetched blob
 *     (cairn_repo_decode_stored); a torn, truncated or altered entry is
 *     removed and reported as a miss, never served.
 *   - Bounded: when the entries pass max_bytes (their size on disk, as du
 *     counts it), the least recently used go until 90% of it is left.
 *   - Shared: any number of threads, and several processes on one
 *     directory. Entries appear whole (written aside, then renamed); an
 *     eviction pass runs under a lock file and rescans the directory, so
 *     it sees the other processes' entries and uses.
 *
 * Layout under dir (created 0700): blobs/<2 hex>/<64 hex>, tmp/, lock.
 * An entry: "cairncc1", type(1) flags(1) zero(2) raw_len(4 LE)
 * stored_len(4 LE), then the stored bytes; the file is exactly that long.
 *
 * The cache is best effort: a failed write or removal leaves the caller's
 * read unaffected. Functions return 0 (or 1 where said) or a negative
 * errno. */
#ifndef CAIRN_SERVE_BLOB_CACHE_H
#define CAIRN_SERVE_BLOB_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "repo/repo.h"

#define BLOB_CACHE_DEFAULT_SIZE (1024ull * 1024 * 1024)
#define BLOB_CACHE_ENTRY_HEADER 20

struct blob_cache;

/* Opens (creating it) the cache in dir, bounded by max_bytes (> 0), and
 * takes stock of what it holds (evicting when it is over). */
int blob_cache_open(const char *dir, uint64_t max_bytes, struct blob_cache **out,
		    char *err, size_t errlen);
void blob_cache_close(struct blob_cache *c);

/* Chunk id, decoded and verified through r into buf (cap bytes): 1 and
 * *len its length on a hit; 0 on a miss (a damaged entry is removed and
 * is a miss); <0 only for -ENOMEM. */
int blob_cache_get(struct blob_cache *c, struct cairn_repo *r, const cairn_id *id, void *buf,
		   size_t cap, size_t *len);
/* Keeps chunk id's stored bytes (as the disk reader fetched them). */
int blob_cache_put(struct blob_cache *c, const cairn_id *id, const struct cairn_stored_blob *b);

/* Bytes the entries take on disk, as this process knows them. */
uint64_t blob_cache_bytes(struct blob_cache *c);

#endif
