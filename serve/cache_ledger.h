/* What serve's on-disk chunk cache holds, in memory: each entry's bytes on
 * disk and when it was last used, and the total, so that the cache can be
 * kept under its size by removing the least recently used entries first.
 *
 * Pure bookkeeping (no files, no locks): serve/blob_cache.c fills it from a
 * scan of the directory and from its own reads and writes, and asks it
 * which entries to remove. Not thread-safe: the caller serializes. */
#ifndef CAIRN_SERVE_CACHE_LEDGER_H
#define CAIRN_SERVE_CACHE_LEDGER_H

#include <stddef.h>
#include <stdint.h>

#include "repo/repo.h"

struct cache_ledger;

int cache_ledger_new(struct cache_ledger **out); /* 0 or -ENOMEM */
void cache_ledger_free(struct cache_ledger *l);
/* Forgets every entry. */
void cache_ledger_clear(struct cache_ledger *l);

/* Records entry id with its size on disk, last used at stamp (any clock
 * that only grows; a scan takes the files' mtimes). Replaces what was
 * known of id. 0 or -ENOMEM. */
int cache_ledger_set(struct cache_ledger *l, const cairn_id *id, uint64_t bytes, int64_t stamp);
/* id was used at stamp (nothing when it is unknown or known newer). */
void cache_ledger_touch(struct cache_ledger *l, const cairn_id *id, int64_t stamp);
void cache_ledger_remove(struct cache_ledger *l, const cairn_id *id);

uint64_t cache_ledger_bytes(const struct cache_ledger *l);
size_t cache_ledger_count(const struct cache_ledger *l);

/* The entries to remove, least recently used first, so that at most
 * target bytes remain; they stay recorded until removed. *out (freed by
 * the caller, NULL when none) gets the count's ids. Returns the count or
 * -ENOMEM. */
long cache_ledger_victims(const struct cache_ledger *l, uint64_t target, cairn_id **out);

#endif
