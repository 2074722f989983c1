/* Snapshot disk reader for serve: the memory cache of decoded slots, the
 * cache directory, the repository's disk reader and the prefetch pool put
 * together.
 *
 * Loading follows the memory cache's protocol (serve/cache.h): a thread
 * that becomes a slot's loader fills it from the cache directory or, with
 * every other slot of its range it loads, in one disk-reader fetch, and
 * publishes each slot as it arrives, so a read waiting for one slot of a
 * long read-ahead range does not wait for the whole range. */
#include <errno.h>
#include <stdio.h>

#include "blob_cache.h"
#include "cache.h"
#include "cache_writer.h"
#include "prefetch.h"
#include "reader.h"
#include "base/pipeline.h"
#include "repo/disk.h"
#include "repo/disk_reader.h"

#define PREFETCH_WORKERS 4
#define PREFETCH_QUEUE 16
#define READAHEAD_STEP (8u * 1024 * 1024) /* the planner's largest range */
#define READAHEAD_MAX (128u * 1024 * 1024)

struct cairn_serve_reader {
	struct cairn_repo *r;
	const struct cairn_disk *d;
	struct chunk_cache *cache;
	struct prefetcher *pf;
	struct cairn_dreader *dr;
	struct blob_cache *bc; /* NULL: no cache directory */
	struct cache_writer *cw; /* into bc */
	uint64_t ahead_slots, step_slots;
};

/* One call's loads: the slots of [first, first+n) it became the loader
 * of, until each is published. */
struct load {
	struct cairn_serve_reader *rd;
	uint64_t first;
	size_t n;
	struct chunk_ref *refs; /* .e set: ours, not yet published */
	bool keep; /* fill the entries only: the caller publishes them */
	bool delivered; /* with keep: the (single) slot arrived */
};

static bool is_zero(const struct cairn_serve_reader *rd, uint64_t seq)
{
	return cairn_id_is_zero(&rd->d->map[seq]);
}

/* Fills buf with slot seq from the cache directory; false on a miss. */
static bool from_cache_dir(struct cairn_serve_reader *rd, uint64_t seq, uint8_t *buf)
{
	size_t len;
	return rd->bc &&
	       blob_cache_get(rd->bc, rd->r, &rd->d->map[seq], buf, rd->d->chunk_size, &len) == 1 &&
	       len == cairn_disk_chunk_len(rd->d, seq);
}

static int on_data(void *opaque, uint64_t seq, const void *data, size_t len)
{
	struct load *l = opaque;
	struct chunk_ref *ref = &l->refs[seq - l->first];
	if (!ref->e)
		return 0; /* not ours (cannot happen: the others are skipped) */
	memcpy(ref->data, data, len);
	if (l->keep) {
		l->delivered = true;
		return 0;
	}
	chunk_cache_publish(l->rd->cache, ref, 0);
	chunk_cache_release(l->rd->cache, ref);
	return 0;
}

static int on_stored(void *opaque, const cairn_id *id, const struct cairn_stored_blob *b)
{
	struct cairn_serve_reader *rd = opaque;
	cache_writer_queue(rd->cw, id, b); /* best effort: the read goes on */
	return 0;
}

/* Fetches the slots of l still held, as one disk-reader fetch over their
 * span (the others skipped). */
static int fetch_held(struct load *l, const volatile int *stop, char *err, size_t errlen)
{
	struct cairn_serve_reader *rd = l->rd;
	uint64_t lo = UINT64_MAX, hi = 0;
	for (size_t i = 0; i < l->n; i++)
		if (l->refs[i].e) {
			lo = MIN(lo, l->first + i);
			hi = l->first + i + 1;
		}
	if (hi == 0)
		return 0;
	/* indexed by absolute slot; calloc'd pages outside [lo, hi) are
	 * never touched */
	_cleanup_free_ uint64_t *skip = calloc(rd->d->nchunks / 64 + 1, sizeof(*skip));
	if (!skip)
		return set_err(err, errlen, -ENOMEM, "out of memory");
	for (uint64_t seq = lo; seq < hi; seq++)
		if (!l->refs[seq - l->first].e)
			skip[seq / 64] |= 1ull << (seq % 64);
	struct cairn_dreader_cb cb = { .data = on_data, .opaque = l };
	return cairn_dreader_fetch(rd->dr, lo, hi - lo, skip, &cb, stop, err, errlen);
}

/* Loads the slots of [first, first+count) that no one holds or loads yet.
 * What could not be loaded is published with fail_rc (or the fetch's
 * error when fail_rc is 0) for the readers waiting for it. */
static int load_range(struct cairn_serve_reader *rd, uint64_t first, uint64_t count,
		      int fail_rc, const volatile int *stop, char *err, size_t errlen)
{
	count = MIN(count, rd->d->nchunks - MIN(first, rd->d->nchunks));
	struct load l = { .rd = rd, .first = first, .n = (size_t)count };
	if (!count || !(l.refs = calloc(l.n, sizeof(*l.refs))))
		return count ? set_err(err, errlen, -ENOMEM, "out of memory") : 0;
	for (size_t i = 0; i < l.n; i++) {
		uint64_t seq = first + i;
		if (is_zero(rd, seq) || chunk_cache_acquire(rd->cache, seq, false, &l.refs[i]) != 1) {
			chunk_cache_release(rd->cache, &l.refs[i]); /* a hit, or not ours */
			continue;
		}
		if (from_cache_dir(rd, seq, l.refs[i].data)) {
			chunk_cache_publish(rd->cache, &l.refs[i], 0);
			chunk_cache_release(rd->cache, &l.refs[i]);
		}
	}
	int rc = fetch_held(&l, stop, err, errlen);
	for (size_t i = 0; i < l.n; i++)
		if (l.refs[i].e) {
			chunk_cache_publish(rd->cache, &l.refs[i], fail_rc ? fail_rc : rc < 0 ? rc : -EIO);
			chunk_cache_release(rd->cache, &l.refs[i]);
		}
	free(l.refs);
	return rc;
}

/* Read-ahead: a failed load is published as -EAGAIN, so a reader waiting
 * for one of its slots loads it itself (and reports what goes wrong). */
static void prefetch_range(void *opaque, uint64_t first, uint64_t count, const volatile int *stop)
{
	load_range(opaque, first, count, -EAGAIN, stop, NULL, 0);
}

static int open_cache_dir(struct cairn_serve_reader *rd, const struct cairn_serve_reader_opts *o,
			  char *err, size_t errlen)
{
	if (!o || !o->cache_dir)
		return 0;
	uint64_t max = o->cache_dir_bytes ? o->cache_dir_bytes : BLOB_CACHE_DEFAULT_SIZE;
	int rc = blob_cache_open(o->cache_dir, max, &rd->bc, err, errlen);
	if (rc == 0 && (rc = cache_writer_new(rd->bc, CACHE_WRITER_DEFAULT_QUEUE, &rd->cw)) < 0)
		set_err(err, errlen, rc, "out of memory");
	return rc;
}

/* Ranges fetched ahead at once: as many as the store runs requests in
 * parallel, so that a remote store's round trips overlap (a WAN's round
 * trip is hidden only with every connection busy). */
static unsigned prefetch_workers(const struct cairn_repo *r, const struct cairn_serve_reader_opts *o)
{
	if (o && o->prefetch_workers)
		return o->prefetch_workers;
	return MAX(PREFETCH_WORKERS, cairn_repo_read_workers(r));
}

/* Read-ahead steps of the planner's largest range, a window of one step
 * per prefetch worker (within READAHEAD_MAX), at least the default. */
static void size_readahead(struct cairn_serve_reader *rd, const struct cairn_serve_reader_opts *o,
			   unsigned workers)
{
	uint64_t cs = rd->d->chunk_size;
	size_t ahead = o && o->readahead_bytes
			       ? o->readahead_bytes
			       : MAX(CAIRN_SERVE_READER_DEFAULT_READAHEAD,
				     MIN(READAHEAD_MAX, (size_t)workers * READAHEAD_STEP));
	rd->step_slots = MAX(1, READAHEAD_STEP / cs);
	rd->ahead_slots = MAX(2 * rd->step_slots, ahead / cs);
}

int cairn_serve_reader_new(struct cairn_repo *r, const struct cairn_disk *d,
			   const struct cairn_serve_reader_opts *o,
			   struct cairn_serve_reader **out, char *err, size_t errlen)
{
	if (!d->map && d->nchunks)
		return set_err(err, errlen, -EINVAL, "disk %s: chunk map not loaded", d->name);
	struct cairn_serve_reader *rd = calloc(1, sizeof(*rd));
	if (!rd)
		return set_err(err, errlen, -ENOMEM, "out of memory");
	rd->r = r;
	rd->d = d;
	unsigned workers = prefetch_workers(r, o);
	size_readahead(rd, o, workers);
	uint64_t window = rd->ahead_slots * d->chunk_size;
	/* the read-ahead window must fit in the memory cache twice over, or
	 * slots fetched ahead would evict each other before they are read */
	size_t cache = o && o->cache_bytes ? o->cache_bytes : CAIRN_SERVE_READER_DEFAULT_CACHE;
	cache = MAX(cache, (size_t)(2 * window + 16 * (uint64_t)d->chunk_size));
	int rc = open_cache_dir(rd, o, err, errlen);
	/* what the disk reader fetches goes to the cache directory as stored */
	struct cairn_dreader_opts dro = { .budget = (size_t)MAX(2 * window, 64u << 20),
					  .stored = rd->bc ? on_stored : NULL,
					  .stored_opaque = rd };
	if (rc == 0)
		rc = cairn_dreader_new(r, d, &dro, &rd->dr, err, errlen);
	if (rc == 0 && (rc = chunk_cache_new(d->chunk_size, cache, &rd->cache)) < 0)
		set_err(err, errlen, rc, "out of memory");
	if (rc == 0 && (rc = prefetcher_new(workers, PREFETCH_QUEUE, prefetch_range, rd, &rd->pf)) < 0)
		set_err(err, errlen, rc, "out of memory");
	if (rc < 0) {
		cairn_serve_reader_free(rd);
		return rc;
	}
	*out = rd;
	return 0;
}

int cairn_serve_reader_start(struct cairn_serve_reader *rd, char *err, size_t errlen)
{
	int rc = prefetcher_start(rd->pf);
	if (rc < 0)
		return set_err(err, errlen, rc, "cannot start prefetch threads: %s", strerror(-rc));
	/* without its thread the cache is written by the reads themselves */
	if (rd->cw)
		cache_writer_start(rd->cw);
	return 0;
}

void cairn_serve_reader_free(struct cairn_serve_reader *rd)
{
	if (!rd)
		return;
	prefetcher_free(rd->pf); /* joins the threads that use the rest */
	cache_writer_free(rd->cw); /* writes what the reads left it */
	blob_cache_close(rd->bc);
	chunk_cache_free(rd->cache);
	cairn_dreader_free(rd->dr);
	free(rd);
}

uint64_t cairn_serve_reader_size(const struct cairn_serve_reader *rd)
{
	return rd->d->size;
}

uint64_t cairn_serve_reader_fetched_bytes(const struct cairn_serve_reader *rd)
{
	return cairn_dreader_fetched_bytes(rd->dr);
}

/* Slot seq, whose entry ref this thread holds as its loader (and still
 * holds after): from the cache directory, else fetched alone. */
static int load_held(struct cairn_serve_reader *rd, uint64_t seq, struct chunk_ref *ref,
		     char *err, size_t errlen)
{
	if (from_cache_dir(rd, seq, ref->data))
		return 0;
	struct load l = { .rd = rd, .first = seq, .n = 1, .refs = ref, .keep = true };
	int rc = fetch_held(&l, NULL, err, errlen);
	return rc < 0 ? rc : l.delivered ? 0 : -EIO;
}

static int chunk_error(struct cairn_serve_reader *rd, uint64_t seq, int rc, char *err,
		       size_t errlen)
{
	char hex[65];
	hex_encode(rd->d->map[seq].b, CAIRN_ID_LEN, hex);
	return set_err(err, errlen, rc, "disk %s: chunk %llu (blob %.16s, offset %llu): %s",
		       rd->d->name, (unsigned long long)seq, hex,
		       (unsigned long long)(seq * rd->d->chunk_size),
		       rc == -EBADMSG ? "damaged or missing in the repository" : strerror(-rc));
}

/* Copies part of slot seq, loading it unless it is in memory. */
static int read_part(struct cairn_serve_reader *rd, uint64_t seq, uint8_t *dst, size_t skip,
		     size_t len, char *err, size_t errlen)
{
	if (is_zero(rd, seq)) {
		memset(dst, 0, len);
		return 0;
	}
	struct chunk_ref ref;
	int rc;
	/* -EAGAIN: a read-ahead load gave up, or this slot was evicted
	 * between its load and this copy: go again */
	for (unsigned tries = 0; tries < 8; tries++) {
		rc = chunk_cache_acquire(rd->cache, seq, true, &ref);
		if (rc == 1) {
			rc = load_held(rd, seq, &ref, err, errlen);
			chunk_cache_publish(rd->cache, &ref, rc);
		}
		if (rc != -EAGAIN)
			break;
		chunk_cache_release(rd->cache, &ref);
	}
	if (rc == 0)
		memcpy(dst, ref.data + skip, len);
	chunk_cache_release(rd->cache, &ref);
	if (rc < 0 && !(err && err[0]))
		chunk_error(rd, seq, rc, err, errlen);
	return rc;
}

/* Sequential enough when the read starts near where the stream's last one
 * ended (clients keep several requests in flight, so they arrive a little
 * out of order): then the window ahead of it is queued, whole steps at a
 * time. nbdkit may run one connection's requests on several threads: the
 * cursor is only a hint, a lost update costs a duplicate or late queue. */
static void read_ahead(struct cairn_serve_reader *rd, struct cairn_read_cursor *cur,
		       uint64_t off, uint64_t end)
{
	uint64_t cs = rd->d->chunk_size, window = rd->ahead_slots * cs;
	uint64_t last = __atomic_load_n(&cur->next_off, __ATOMIC_RELAXED);
	__atomic_store_n(&cur->next_off, end, __ATOMIC_RELAXED);
	if (off + window < last || off > last + window)
		return;
	uint64_t nchunks = rd->d->nchunks, first = (end + cs - 1) / cs;
	uint64_t target = MIN(first + rd->ahead_slots, nchunks);
	uint64_t from = __atomic_load_n(&cur->queued_to, __ATOMIC_RELAXED);
	if (from < first || from > target)
		from = first;
	while (from < target && (from + rd->step_slots <= target || target == nchunks)) {
		uint64_t n = MIN(rd->step_slots, nchunks - from);
		prefetcher_queue(rd->pf, from, n);
		from += n;
	}
	__atomic_store_n(&cur->queued_to, from, __ATOMIC_RELAXED);
}

int cairn_serve_reader_pread(struct cairn_serve_reader *rd, struct cairn_read_cursor *cur,
			     void *buf, size_t len, uint64_t off, char *err, size_t errlen)
{
	const struct cairn_disk *d = rd->d;
	if (off > d->size || len > d->size - off)
		return set_err(err, errlen, -EINVAL, "read beyond the end of disk %s", d->name);
	if (!len)
		return 0;
	if (cur)
		read_ahead(rd, cur, off, off + len);
	/* a step's misses in one fetch, then its slots copied out: a thread
	 * holds at most a step of loading slots, whatever the request size */
	uint8_t *p = buf;
	uint64_t last = (off + len - 1) / d->chunk_size;
	uint64_t loaded_to = off / d->chunk_size;
	while (len) {
		uint64_t seq = off / d->chunk_size;
		int rc = 0;
		if (seq >= loaded_to) {
			uint64_t n = MIN(rd->step_slots, last + 1 - seq);
			rc = load_range(rd, seq, n, 0, NULL, err, errlen);
			loaded_to = seq + n;
		}
		size_t skip = (size_t)(off - seq * d->chunk_size);
		size_t n = MIN(len, cairn_disk_chunk_len(d, seq) - skip);
		if (rc < 0 || (rc = read_part(rd, seq, p, skip, n, err, errlen)) < 0)
			return rc;
		p += n;
		off += n;
		len -= n;
	}
	return 0;
}

void cairn_serve_reader_extent(const struct cairn_serve_reader *rd, uint64_t off,
			       uint64_t max, uint64_t *len, bool *zero)
{
	const struct cairn_disk *d = rd->d;
	uint64_t seq = off / d->chunk_size;
	uint64_t max_seq = (MAX(max, off + 1) + d->chunk_size - 1) / d->chunk_size;
	uint64_t run = cairn_disk_run(d, seq, max_seq - seq, zero);
	*len = MIN((seq + run) * d->chunk_size, d->size) - off;
}
