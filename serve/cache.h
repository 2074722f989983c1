/* A bounded cache of decoded chunks of one disk, shared by the threads that
 * serve reads and the ones that prefetch: least recently used entries go
 * first, and a chunk being decoded by one thread is waited for by the
 * others instead of being decoded twice.
 *
 * An entry is pinned while someone holds a reference; pinned entries are
 * never evicted, so the cache may briefly hold more than its budget when
 * every entry is in use. A failed load is not remembered: the next reader
 * tries again (a transient I/O error should not stick). */
#ifndef CAIRN_SERVE_CACHE_H
#define CAIRN_SERVE_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct chunk_cache;
struct chunk_entry;

struct chunk_ref {
	struct chunk_entry *e;
	uint8_t *data; /* chunk_size bytes */
};

/* max_bytes / chunk_size entries, at least 4. 0 or -ENOMEM. */
int chunk_cache_new(size_t chunk_size, size_t max_bytes, struct chunk_cache **out);
void chunk_cache_free(struct chunk_cache *c);

/* Pins the entry of chunk seq.
 *   0:       ref->data holds the chunk (a hit, or another thread's load
 *            that this call waited for);
 *   1:       the caller is the loader: it fills ref->data and must call
 *            chunk_cache_publish();
 *   -EAGAIN: wait was false and another thread is loading it;
 *   <0:      the load this call waited for failed with that error, or
 *            -ENOMEM.
 * On 0 and 1 the caller ends with chunk_cache_release(). */
int chunk_cache_acquire(struct chunk_cache *c, uint64_t seq, bool wait,
			struct chunk_ref *ref);
/* Ends a load: rc 0 makes the data visible, rc < 0 drops the entry and
 * hands rc to the threads waiting for it. */
void chunk_cache_publish(struct chunk_cache *c, struct chunk_ref *ref, int rc);
void chunk_cache_release(struct chunk_cache *c, struct chunk_ref *ref);

#endif
