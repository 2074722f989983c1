/* Backing up images: read in order (feeding the whole-disk digest), hash,
 * deduplicate, compress, encrypt and pack on the worker pool. */
#include <errno.h>
#include <stdio.h>
#include <xxhash.h>

#include "agent.h"

#define SLOTS_PER_WORKER 4

struct disk_job {
	struct cairn_repo *r;
	struct cairn_writer *w;
	struct cairn_source *src;
	struct cairn_disk *disk;
	XXH3_state_t *xxh;
	const uint8_t *zeros;
	const struct cairn_disk *prev; /* chunk map to reuse for unchanged chunks */
	bool digest; /* every byte is read, so the whole-disk digest is known */
	uint8_t **bufs; /* per slot */
	bool *has_data; /* per slot */
	bool *reuse; /* per slot: chunk id taken from prev */
	struct cairn_backup_result *res;
	uint64_t done_before; /* progress of earlier disks */
	const struct cairn_backup_opts *o;
	char *err;
	size_t errlen;
};

static uint64_t chunk_len(const struct cairn_disk *d, uint64_t seq)
{
	uint64_t off = seq * d->chunk_size;
	return MIN((uint64_t)d->chunk_size, d->size - off);
}

static int produce(void *ctx, uint64_t seq, unsigned slot)
{
	struct disk_job *j = ctx;
	uint64_t off = seq * j->disk->chunk_size, len = chunk_len(j->disk, seq);
	if (j->o->cancel && *j->o->cancel)
		return set_err(j->err, j->errlen, -EINTR, "interrupted; no snapshot written");
	/* a damaged (or condemned) chunk is read again: the source heals it */
	j->reuse[slot] = j->prev && !cairn_source_changed(j->src, off, len) &&
			 cairn_repo_blob_reusable(j->r, &j->prev->map[seq]);
	if (j->reuse[slot])
		return 0; /* unchanged since the previous snapshot: not read */
	j->has_data[slot] = cairn_source_has_data(j->src, off, len);
	if (!j->has_data[slot]) {
		if (j->digest)
			XXH3_128bits_update(j->xxh, j->zeros, len);
		return 0;
	}
	int rc = cairn_source_read(j->src, j->bufs[slot], len, off, j->err, j->errlen);
	if (rc < 0)
		return rc;
	j->res->bytes_read += len;
	if (j->digest)
		XXH3_128bits_update(j->xxh, j->bufs[slot], len);
	return 0;
}

static int work(void *ctx, uint64_t seq, unsigned slot)
{
	struct disk_job *j = ctx;
	uint64_t len = chunk_len(j->disk, seq);
	cairn_id *id = &j->disk->map[seq];
	if (j->reuse[slot]) {
		*id = j->prev->map[seq];
		return 0;
	}
	if (!j->has_data[slot] || all_zero(j->bufs[slot], len)) {
		*id = cairn_zero_id;
		__atomic_add_fetch(&j->res->zero_chunks, 1, __ATOMIC_RELAXED);
		return 0;
	}
	cairn_repo_chunk_id(j->r, j->bufs[slot], len, id);
	bool added;
	size_t stored;
	int rc = cairn_writer_put(j->w, CAIRN_BLOB_DATA, id, j->bufs[slot], len,
				  &added, &stored);
	if (rc < 0)
		return set_err(j->err, j->errlen, rc, "%s", cairn_repo_error(j->r));
	if (added) {
		__atomic_add_fetch(&j->res->new_chunks, 1, __ATOMIC_RELAXED);
		__atomic_add_fetch(&j->res->new_bytes, stored, __ATOMIC_RELAXED);
	}
	return 0;
}

static int consume(void *ctx, uint64_t seq, unsigned slot)
{
	struct disk_job *j = ctx;
	(void)slot;
	if (j->o->progress)
		j->o->progress(j->o->progress_opaque,
			       j->done_before + seq * j->disk->chunk_size +
				       chunk_len(j->disk, seq),
			       j->res->bytes_total);
	return 0;
}

static int backup_disk(struct disk_job *j, unsigned workers)
{
	struct cairn_disk *d = j->disk;
	unsigned slots = workers * SLOTS_PER_WORKER;
	d->nchunks = (d->size + d->chunk_size - 1) / d->chunk_size;
	d->map = calloc(d->nchunks ? d->nchunks : 1, sizeof(cairn_id));
	j->bufs = calloc(slots, sizeof(*j->bufs));
	j->has_data = calloc(slots, sizeof(*j->has_data));
	j->reuse = calloc(slots, sizeof(*j->reuse));
	j->xxh = XXH3_createState();
	int rc = d->map && j->bufs && j->has_data && j->reuse && j->xxh ? 0 : -ENOMEM;
	for (unsigned i = 0; rc == 0 && i < slots; i++)
		if (!(j->bufs[i] = malloc(d->chunk_size)))
			rc = -ENOMEM;
	if (rc == 0) {
		XXH3_128bits_reset(j->xxh);
		static const struct cairn_pipeline_ops ops = {
			.produce = produce, .work = work, .consume = consume };
		rc = cairn_pipeline_run(&ops, j, d->nchunks, workers, slots);
	}
	if (rc == 0)
		rc = cairn_source_recheck(j->src, j->err, j->errlen);
	if (rc == 0) {
		d->has_digest = j->digest;
		XXH128_canonical_t c;
		XXH128_canonicalFromHash(&c, XXH3_128bits_digest(j->xxh));
		memcpy(d->digest, c.digest, sizeof(d->digest));
		j->res->chunks += d->nchunks;
	}
	if (rc == -ENOMEM)
		set_err(j->err, j->errlen, rc, "out of memory");
	for (unsigned i = 0; j->bufs && i < slots; i++)
		free(j->bufs[i]);
	free(j->bufs);
	free(j->has_data);
	free(j->reuse);
	XXH3_freeState(j->xxh);
	return rc;
}

/* Finds the latest snapshot of the same name, recorded as the parent. */
static void find_parent(struct cairn_repo *r, const char *name,
			struct cairn_snapshot *s)
{
	struct cairn_snapshot *p = NULL;
	if (cairn_snapshot_find(r, "latest", name, &p) == 0) {
		s->has_parent = true;
		s->parent = p->id;
		cairn_snapshot_free(p);
	}
}

int cairn_snapshot_begin(struct cairn_snapshot *s, const char *source,
			 const struct cairn_backup_opts *o, size_t ndisks)
{
	char host[256] = "";
	gethostname(host, sizeof(host) - 1);
	s->name = strdup(o->name);
	s->source = strdup(source);
	s->host = strdup(host);
	s->time_ns = now_ns();
	s->tags = calloc(o->ntags + 1, sizeof(char *));
	s->disks = calloc(ndisks + 1, sizeof(*s->disks));
	if (!s->name || !s->source || !s->host || !s->tags || !s->disks)
		return -ENOMEM;
	for (size_t i = 0; i < o->ntags; i++)
		if (!(s->tags[s->ntags++] = strdup(o->tags[i])))
			return -ENOMEM;
	return 0;
}

int cairn_snapshot_add_disk(struct cairn_snapshot *s, struct cairn_repo *r,
			    const char *name, const char *path,
			    const struct cairn_source *src)
{
	struct cairn_disk *d = &s->disks[s->ndisks++];
	d->name = strdup(name);
	d->format = strdup(cairn_source_format(src));
	d->path = realpath(path, NULL);
	if (!d->path)
		d->path = strdup(path);
	d->size = cairn_source_size(src);
	d->chunk_size = cairn_repo_chunk_size(r);
	return d->name && d->format && d->path ? 0 : -ENOMEM;
}

int cairn_backup_run(struct cairn_repo *r, struct cairn_snapshot *s,
		     struct cairn_source *const *srcs, const struct cairn_disk *const *prev,
		     const struct cairn_backup_opts *o, struct cairn_backup_result *res,
		     char *err, size_t errlen)
{
	_cleanup_(cairn_writer_freep) struct cairn_writer *own = NULL;
	struct cairn_writer *w = o->writer;
	unsigned workers = o->workers ? o->workers : cairn_default_workers();
	res->ndisks = s->ndisks;
	for (size_t i = 0; i < s->ndisks; i++)
		res->bytes_total += s->disks[i].size;
	int rc = w ? 0 : cairn_writer_new(r, &own);
	if (rc < 0)
		return set_err(err, errlen, rc, "%s", cairn_repo_error(r));
	if (!w)
		w = own;
	_cleanup_free_ uint8_t *zeros = calloc(1, cairn_repo_chunk_size(r));
	if (!zeros)
		return set_err(err, errlen, -ENOMEM, "out of memory");
	uint64_t done = 0;
	for (size_t i = 0; rc == 0 && i < s->ndisks; i++) {
		const struct cairn_disk *p = prev ? prev[i] : NULL;
		/* a previous map only helps when the source says what changed */
		if (p && (!cairn_source_has_dirty_map(srcs[i]) || !p->map ||
			  p->size != s->disks[i].size || p->chunk_size != s->disks[i].chunk_size))
			p = NULL;
		struct disk_job j = { .r = r, .w = w, .src = srcs[i], .disk = &s->disks[i],
				      .prev = p, .digest = !p, .zeros = zeros, .res = res,
				      .done_before = done, .o = o, .err = err, .errlen = errlen };
		rc = backup_disk(&j, workers);
		s->disks[i].incremental = p != NULL;
		done += s->disks[i].size;
	}
	if (rc < 0)
		return rc;
	s->bytes_read = res->bytes_read;
	s->new_chunks = res->new_chunks;
	s->new_bytes = res->new_bytes;
	rc = cairn_snapshot_save(r, w, s);
	if (rc < 0)
		return set_err(err, errlen, rc, "%s", cairn_repo_error(r));
	res->snapshot = s->id;
	res->has_parent = s->has_parent;
	res->parent = s->parent;
	return 0;
}

int cairn_backup_images(struct cairn_repo *r, const struct cairn_backup_disk *disks,
			size_t ndisks, const struct cairn_backup_opts *o,
			struct cairn_backup_result *res, char *err, size_t errlen)
{
	memset(res, 0, sizeof(*res));
	_cleanup_(cairn_snapshot_freep) struct cairn_snapshot *s = calloc(1, sizeof(*s));
	struct cairn_source **srcs = calloc(ndisks + 1, sizeof(*srcs));
	int rc = s && srcs ? cairn_snapshot_begin(s, "image", o, ndisks) : -ENOMEM;
	if (rc < 0)
		set_err(err, errlen, rc, "out of memory");
	/* open everything first: a bad image fails before any work is done */
	for (size_t i = 0; rc == 0 && i < ndisks; i++) {
		rc = cairn_source_open(disks[i].path, &srcs[i], err, errlen);
		if (rc == 0 && (rc = cairn_snapshot_add_disk(s, r, disks[i].name, disks[i].path,
							     srcs[i])) < 0)
			set_err(err, errlen, rc, "out of memory");
	}
	if (rc == 0) {
		find_parent(r, o->name, s);
		rc = cairn_backup_run(r, s, srcs, NULL, o, res, err, errlen);
	}
	for (size_t i = 0; srcs && i < ndisks; i++)
		if (srcs[i])
			cairn_source_close(srcs[i]);
	free(srcs);
	return rc;
}
