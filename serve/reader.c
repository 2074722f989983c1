/* Snapshot disk reader: chunk map lookups, the chunk cache and the
 * prefetch pool put together. */
#include <errno.h>
#include <stdio.h>

#include "cache.h"
#include "prefetch.h"
#include "reader.h"
#include "base/pipeline.h"

struct cairn_disk_reader {
	struct cairn_repo *r;
	const struct cairn_disk *d;
	struct chunk_cache *cache;
	struct prefetcher *pf;
	unsigned readahead;
};

static bool is_zero(const struct cairn_disk_reader *rd, uint64_t seq)
{
	return !memcmp(&rd->d->map[seq], &cairn_zero_id, sizeof(cairn_id));
}

static size_t chunk_len(const struct cairn_disk_reader *rd, uint64_t seq)
{
	const struct cairn_disk *d = rd->d;
	return (size_t)MIN((uint64_t)d->chunk_size, d->size - seq * d->chunk_size);
}

/* Decodes chunk seq into buf. The repository's own error text is shared by
 * all threads, so the message is made here from what we know. */
static int load_chunk(struct cairn_disk_reader *rd, uint64_t seq, uint8_t *buf,
		      char *err, size_t errlen)
{
	size_t want = chunk_len(rd, seq);
	int n = cairn_repo_read_blob(rd->r, &rd->d->map[seq], buf, rd->d->chunk_size);
	if (n >= 0 && (size_t)n != want)
		n = -EBADMSG;
	if (n >= 0)
		return 0;
	char hex[65];
	hex_encode(rd->d->map[seq].b, CAIRN_ID_LEN, hex);
	return set_err(err, errlen, n, "disk %s: chunk %llu (blob %.16s, offset %llu): %s",
		       rd->d->name, (unsigned long long)seq, hex,
		       (unsigned long long)(seq * rd->d->chunk_size),
		       n == -EBADMSG ? "damaged or missing in the repository" : strerror(-n));
}

static void prefetch_one(void *opaque, uint64_t seq)
{
	struct cairn_disk_reader *rd = opaque;
	struct chunk_ref ref;
	int rc = chunk_cache_acquire(rd->cache, seq, false, &ref);
	if (rc == 1)
		chunk_cache_publish(rd->cache, &ref, load_chunk(rd, seq, ref.data, NULL, 0));
	if (rc >= 0)
		chunk_cache_release(rd->cache, &ref);
}

int cairn_disk_reader_new(struct cairn_repo *r, const struct cairn_disk *d,
			  const struct cairn_disk_reader_opts *o,
			  struct cairn_disk_reader **out, char *err, size_t errlen)
{
	if (!d->map)
		return set_err(err, errlen, -EINVAL, "disk %s: chunk map not loaded", d->name);
	struct cairn_disk_reader *rd = calloc(1, sizeof(*rd));
	if (!rd)
		return set_err(err, errlen, -ENOMEM, "out of memory");
	rd->r = r;
	rd->d = d;
	rd->readahead = o && o->readahead ? o->readahead : 8;
	unsigned workers = o && o->prefetch_workers ? o->prefetch_workers
						    : cairn_default_workers();
	size_t cache = o && o->cache_bytes ? o->cache_bytes : CAIRN_READER_DEFAULT_CACHE;
	/* the read-ahead window must fit in the cache with room for the
	 * chunks being read, or prefetched chunks would evict each other */
	cache = MAX(cache, (size_t)(rd->readahead + 2 * workers + 8) * d->chunk_size);
	int rc = chunk_cache_new(d->chunk_size, cache, &rd->cache);
	if (rc == 0)
		rc = prefetcher_new(workers, 4 * (size_t)rd->readahead, prefetch_one, rd, &rd->pf);
	if (rc < 0) {
		cairn_disk_reader_free(rd);
		return set_err(err, errlen, rc, "out of memory");
	}
	*out = rd;
	return 0;
}

int cairn_disk_reader_start(struct cairn_disk_reader *rd, char *err, size_t errlen)
{
	int rc = prefetcher_start(rd->pf);
	return rc < 0 ? set_err(err, errlen, rc, "cannot start prefetch threads: %s",
				strerror(-rc))
		      : 0;
}

void cairn_disk_reader_free(struct cairn_disk_reader *rd)
{
	if (!rd)
		return;
	prefetcher_free(rd->pf); /* joins the threads that use the cache */
	chunk_cache_free(rd->cache);
	free(rd);
}

uint64_t cairn_disk_reader_size(const struct cairn_disk_reader *rd)
{
	return rd->d->size;
}

/* Copies part of chunk seq, decoding it unless it is cached. */
static int read_part(struct cairn_disk_reader *rd, uint64_t seq, uint8_t *dst,
		     size_t skip, size_t len, char *err, size_t errlen)
{
	if (is_zero(rd, seq)) {
		memset(dst, 0, len);
		return 0;
	}
	struct chunk_ref ref;
	int rc = chunk_cache_acquire(rd->cache, seq, true, &ref);
	if (rc == 1) {
		rc = load_chunk(rd, seq, ref.data, err, errlen);
		chunk_cache_publish(rd->cache, &ref, rc);
	} else if (rc < 0) {
		/* another thread's load failed, or no memory: say which chunk */
		char hex[65];
		hex_encode(rd->d->map[seq].b, CAIRN_ID_LEN, hex);
		set_err(err, errlen, rc, "disk %s: chunk %llu (blob %.16s): %s", rd->d->name,
			(unsigned long long)seq, hex,
			rc == -EBADMSG ? "damaged or missing in the repository" : strerror(-rc));
	}
	if (rc == 0)
		memcpy(dst, ref.data + skip, len);
	chunk_cache_release(rd->cache, &ref);
	return rc;
}

/* Sequential enough when the read starts near where the stream's last one
 * ended: clients keep several requests in flight, so they arrive a little
 * out of order. */
static void read_ahead(struct cairn_disk_reader *rd, struct cairn_read_cursor *cur,
		       uint64_t off, uint64_t end)
{
	uint64_t cs = rd->d->chunk_size, window = (uint64_t)rd->readahead * cs;
	uint64_t last = __atomic_load_n(&cur->next_off, __ATOMIC_RELAXED);
	__atomic_store_n(&cur->next_off, end, __ATOMIC_RELAXED);
	if (off + window < last || off > last + window)
		return;
	uint64_t first = (end + cs - 1) / cs;
	uint64_t stop = MIN(first + rd->readahead, rd->d->nchunks);
	uint64_t from = __atomic_load_n(&cur->queued_to, __ATOMIC_RELAXED);
	if (from < first || from > stop)
		from = first;
	for (uint64_t seq = from; seq < stop; seq++)
		if (!is_zero(rd, seq))
			prefetcher_queue(rd->pf, seq);
	__atomic_store_n(&cur->queued_to, stop, __ATOMIC_RELAXED);
}

int cairn_disk_reader_pread(struct cairn_disk_reader *rd, struct cairn_read_cursor *cur,
			    void *buf, size_t len, uint64_t off, char *err, size_t errlen)
{
	const struct cairn_disk *d = rd->d;
	if (off > d->size || len > d->size - off)
		return set_err(err, errlen, -EINVAL, "read beyond the end of disk %s", d->name);
	if (cur)
		read_ahead(rd, cur, off, off + len);
	uint8_t *p = buf;
	while (len) {
		uint64_t seq = off / d->chunk_size;
		size_t skip = (size_t)(off - seq * d->chunk_size);
		size_t n = MIN(len, chunk_len(rd, seq) - skip);
		int rc = read_part(rd, seq, p, skip, n, err, errlen);
		if (rc < 0)
			return rc;
		p += n;
		off += n;
		len -= n;
	}
	return 0;
}

void cairn_disk_reader_extent(const struct cairn_disk_reader *rd, uint64_t off,
			      uint64_t max, uint64_t *len, bool *zero)
{
	const struct cairn_disk *d = rd->d;
	uint64_t seq = off / d->chunk_size;
	*zero = is_zero(rd, seq);
	uint64_t next = seq + 1;
	while (next < d->nchunks && next * d->chunk_size < max && is_zero(rd, next) == *zero)
		next++;
	*len = MIN(next * d->chunk_size, d->size) - off;
}
