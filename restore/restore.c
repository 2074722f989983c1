/* Restoring a disk: workers fetch, decrypt, decompress, verify and write
 * chunks (zero chunks stay holes, or become zeros on a block device); the
 * calling thread feeds the whole-disk digest in order. */
#include <errno.h>
#include <stdio.h>
#include <xxhash.h>

#include "restore.h"
#include "sink.h"

#define SLOTS_PER_WORKER 4

struct restore_job {
	struct cairn_repo *r;
	struct cairn_disk *d;
	struct sink *sink;
	XXH3_state_t *xxh;
	const uint8_t *zeros;
	uint8_t **bufs;
	const struct cairn_restore_opts *o;
	struct cairn_restore_result *res;
	char *err;
	size_t errlen;
};

static size_t chunk_len(const struct cairn_disk *d, uint64_t seq)
{
	return (size_t)MIN((uint64_t)d->chunk_size, d->size - seq * d->chunk_size);
}

static bool is_zero_id(const cairn_id *id)
{
	return !memcmp(id, &cairn_zero_id, sizeof(*id));
}

static int produce(void *ctx, uint64_t seq, unsigned slot)
{
	struct restore_job *j = ctx;
	(void)seq;
	(void)slot;
	if (j->o->cancel && *j->o->cancel)
		return set_err(j->err, j->errlen, -EINTR, "interrupted; %s not written",
			       j->o->target);
	return 0;
}

static int work(void *ctx, uint64_t seq, unsigned slot)
{
	struct restore_job *j = ctx;
	const cairn_id *id = &j->d->map[seq];
	size_t len = chunk_len(j->d, seq);
	if (is_zero_id(id))
		return j->sink->needs_zeros
			       ? j->sink->write(j->sink, j->zeros, len, seq * j->d->chunk_size)
			       : 0;
	int n = cairn_repo_read_chunk(j->r, id, j->bufs[slot], j->d->chunk_size);
	if (n < 0)
		return set_err(j->err, j->errlen, n, "disk %s: %s", j->d->name,
			       cairn_repo_error(j->r));
	if ((size_t)n != len)
		return set_err(j->err, j->errlen, -EBADMSG,
			       "disk %s: chunk %llu has %d bytes, expected %zu", j->d->name,
			       (unsigned long long)seq, n, len);
	return j->sink->write(j->sink, j->bufs[slot], len, seq * j->d->chunk_size);
}

static int consume(void *ctx, uint64_t seq, unsigned slot)
{
	struct restore_job *j = ctx;
	size_t len = chunk_len(j->d, seq);
	uint64_t off = seq * j->d->chunk_size;
	if (is_zero_id(&j->d->map[seq])) {
		XXH3_128bits_update(j->xxh, j->zeros, len);
		j->res->zero_chunks++;
	} else {
		XXH3_128bits_update(j->xxh, j->bufs[slot], len);
		j->res->bytes_written += len;
	}
	j->res->chunks++;
	if (j->o->progress)
		j->o->progress(j->o->progress_opaque, off + len, j->d->size);
	return 0;
}

static int check_digest(struct restore_job *j)
{
	XXH128_canonical_t c;
	XXH128_canonicalFromHash(&c, XXH3_128bits_digest(j->xxh));
	if (memcmp(c.digest, j->d->digest, sizeof(j->d->digest)))
		return set_err(j->err, j->errlen, -EBADMSG,
			       "disk %s: restored data does not match the digest recorded at backup",
			       j->d->name);
	return 0;
}

int cairn_restore_disk(struct cairn_repo *r, struct cairn_disk *d,
		       const struct cairn_restore_opts *o,
		       struct cairn_restore_result *res, char *err, size_t errlen)
{
	memset(res, 0, sizeof(*res));
	res->bytes = d->size;
	int rc = cairn_snapshot_load_map(r, d);
	if (rc < 0)
		return set_err(err, errlen, rc, "%s", cairn_repo_error(r));
	unsigned workers = o->workers ? o->workers : cairn_repo_read_workers(r);
	unsigned slots = workers * SLOTS_PER_WORKER;
	struct restore_job j = { .r = r, .d = d, .o = o, .res = res, .err = err,
				 .errlen = errlen };
	/* page-aligned buffers let the sink write them with O_DIRECT */
	_cleanup_free_ uint8_t *zeros = aligned_alloc(4096, d->chunk_size);
	if (zeros)
		memset(zeros, 0, d->chunk_size);
	j.bufs = calloc(slots, sizeof(*j.bufs));
	j.xxh = XXH3_createState();
	rc = zeros && j.bufs && j.xxh ? 0 : -ENOMEM;
	for (unsigned i = 0; rc == 0 && i < slots; i++)
		if (!(j.bufs[i] = aligned_alloc(4096, d->chunk_size)))
			rc = -ENOMEM;
	if (rc < 0)
		set_err(err, errlen, rc, "out of memory");
	j.zeros = zeros;
	if (rc == 0)
		rc = o->format == CAIRN_FMT_QCOW2
			     ? sink_qcow2_open(o->target, d->size, o->force, &j.sink, err, errlen)
			     : sink_raw_open(o->target, d->size, o->force, &j.sink, err, errlen);
	if (rc == 0) {
		XXH3_128bits_reset(j.xxh);
		static const struct cairn_pipeline_ops ops = {
			.produce = produce, .work = work, .consume = consume };
		rc = cairn_pipeline_run(&ops, &j, d->nchunks, workers, slots);
	}
	if (rc == 0 && d->has_digest)
		rc = check_digest(&j);
	if (rc == 0)
		rc = j.sink->commit(j.sink);
	if (j.sink)
		j.sink->free(j.sink);
	for (unsigned i = 0; j.bufs && i < slots; i++)
		free(j.bufs[i]);
	free(j.bufs);
	XXH3_freeState(j.xxh);
	return rc;
}
