/* Backing up images. A disk is walked by extents: runs of holes go to the
 * disk writer as zero runs and runs the dirty map calls unchanged as
 * reused runs, so their cost does not grow with their length; only the
 * slots holding data are read (in order, on the calling thread) and handed
 * to the worker pool, which stores them through the disk writer. */
#include <errno.h>
#include <stdio.h>

#include "repo/disk.h"
#include "repo/disk_writer.h"
#include "agent.h"
#include "guard.h"

#define SLOTS_PER_WORKER 4

/* Slots [seq, seq+count) to read. */
struct slot_range {
	uint64_t seq, count;
};

struct disk_job {
	struct cairn_source *src;
	struct cairn_disk *disk;
	struct cairn_disk_writer *dw;
	bool reuse; /* a previous map and a dirty map: unchanged runs are reused */
	struct slot_range *ranges; /* the data slots, in order */
	size_t nranges, ranges_cap;
	size_t at_range; /* where produce is */
	uint64_t at_slot;
	uint64_t *seq_of; /* per pipeline slot: the disk slot it holds */
	uint8_t **bufs; /* per pipeline slot */
	struct cairn_backup_result *res;
	uint64_t done_before; /* progress of earlier disks */
	const struct cairn_backup_opts *o;
	bool read_failed; /* err holds the reason; else the disk writer does */
	char *err;
	size_t errlen;
};

static int add_range(struct disk_job *j, uint64_t seq, uint64_t count)
{
	struct slot_range *last = j->nranges ? &j->ranges[j->nranges - 1] : NULL;
	if (last && last->seq + last->count == seq) {
		last->count += count;
		return 0;
	}
	if (array_grow(&j->ranges, &j->ranges_cap, j->nranges, sizeof(*j->ranges)) < 0)
		return -ENOMEM;
	j->ranges[j->nranges++] = (struct slot_range){ seq, count };
	return 0;
}

/* Slots from seq on, before end, that a run of bytes covers: with `in`
 * (the run holds data, or changed) every slot it touches; else only the
 * slots wholly inside it, and when there is none, slot seq alone with
 * *in set, as the rest of it belongs to the next run. */
static uint64_t slots_of_run(const struct cairn_disk *d, uint64_t seq, uint64_t end,
			     uint64_t run, bool *in)
{
	uint64_t run_end = seq * d->chunk_size + run, n;
	if (*in)
		n = cairn_disk_chunk_count(run_end, d->chunk_size) - seq;
	else if (run_end == d->size)
		n = d->nchunks - seq;
	else
		n = run_end / d->chunk_size - seq;
	if (!n) {
		*in = true;
		n = 1;
	}
	return MIN(n, end - seq);
}

/* Slots [seq, end) are read: holes become zero runs, the rest ranges to
 * read. */
static int plan_read(struct disk_job *j, uint64_t seq, uint64_t end)
{
	while (seq < end) {
		bool data;
		uint64_t run = cairn_source_extent(j->src, seq * j->disk->chunk_size, &data);
		uint64_t n = slots_of_run(j->disk, seq, end, run, &data);
		int rc = data ? add_range(j, seq, n) : cairn_disk_writer_zeros(j->dw, seq, n);
		if (rc < 0)
			return rc;
		seq += n;
	}
	return 0;
}

/* Slots [seq, seq+n) are unchanged: reused, except those whose blob may
 * not be reused, which are read again (the source heals them). */
static int plan_reuse(struct disk_job *j, uint64_t seq, uint64_t n)
{
	uint64_t end = seq + n;
	while (seq < end) {
		int64_t took = cairn_disk_writer_reuse(j->dw, seq, end - seq);
		if (took < 0)
			return (int)took;
		seq += (uint64_t)took;
		if (seq < end) {
			int rc = plan_read(j, seq, seq + 1);
			if (rc < 0)
				return rc;
			seq++;
		}
	}
	return 0;
}

/* Walks the disk by runs; afterwards j->ranges lists the slots to read. */
static int plan_disk(struct disk_job *j)
{
	const struct cairn_disk *d = j->disk;
	if (!j->reuse)
		return plan_read(j, 0, d->nchunks);
	for (uint64_t seq = 0; seq < d->nchunks;) {
		bool changed;
		uint64_t run = cairn_source_changed_extent(j->src, seq * d->chunk_size, &changed);
		uint64_t n = slots_of_run(d, seq, d->nchunks, run, &changed);
		int rc = changed ? plan_read(j, seq, seq + n) : plan_reuse(j, seq, n);
		if (rc < 0)
			return rc;
		seq += n;
	}
	return 0;
}

static int produce(void *ctx, uint64_t item, unsigned slot)
{
	struct disk_job *j = ctx;
	(void)item; /* items come in order: the next slot of the ranges */
	uint64_t seq = j->ranges[j->at_range].seq + j->at_slot;
	if (++j->at_slot == j->ranges[j->at_range].count) {
		j->at_range++;
		j->at_slot = 0;
	}
	j->seq_of[slot] = seq;
	if (j->o->cancel && *j->o->cancel) {
		j->read_failed = true;
		return set_err(j->err, j->errlen, -EINTR, "interrupted; no snapshot written");
	}
	size_t len = cairn_disk_chunk_len(j->disk, seq);
	int rc = cairn_source_read(j->src, j->bufs[slot], len, seq * j->disk->chunk_size, j->err,
				   j->errlen);
	if (rc < 0) {
		j->read_failed = true;
		return rc;
	}
	j->res->bytes_read += len;
	return 0;
}

static int work(void *ctx, uint64_t item, unsigned slot)
{
	struct disk_job *j = ctx;
	uint64_t seq = j->seq_of[slot];
	(void)item;
	return cairn_disk_writer_put(j->dw, seq, j->bufs[slot], cairn_disk_chunk_len(j->disk, seq));
}

static int consume(void *ctx, uint64_t item, unsigned slot)
{
	struct disk_job *j = ctx;
	uint64_t seq = j->seq_of[slot];
	(void)item;
	if (j->o->progress)
		j->o->progress(j->o->progress_opaque,
			       j->done_before + seq * j->disk->chunk_size +
				       cairn_disk_chunk_len(j->disk, seq),
			       j->res->bytes_total);
	return 0;
}

static uint64_t slots_to_read(const struct disk_job *j)
{
	uint64_t n = 0;
	for (size_t i = 0; i < j->nranges; i++)
		n += j->ranges[i].count;
	return n;
}

static int read_slots(struct disk_job *j, unsigned workers)
{
	unsigned slots = workers * SLOTS_PER_WORKER;
	j->bufs = calloc(slots, sizeof(*j->bufs));
	j->seq_of = calloc(slots, sizeof(*j->seq_of));
	int rc = j->bufs && j->seq_of ? 0 : -ENOMEM;
	for (unsigned i = 0; rc == 0 && i < slots; i++)
		if (!(j->bufs[i] = malloc(j->disk->chunk_size)))
			rc = -ENOMEM;
	if (rc == 0) {
		static const struct cairn_pipeline_ops ops = {
			.produce = produce, .work = work, .consume = consume };
		rc = cairn_pipeline_run(&ops, j, slots_to_read(j), workers, slots);
	}
	for (unsigned i = 0; j->bufs && i < slots; i++)
		free(j->bufs[i]);
	free(j->bufs);
	free(j->seq_of);
	return rc;
}

/* The result's counters, and the disk's measure for the anomaly guard. */
static void add_stats(struct disk_job *j, const struct cairn_disk_writer *dw)
{
	struct cairn_backup_result *res = j->res;
	struct cairn_disk_writer_stats st;
	cairn_disk_writer_stats(dw, &st);
	if (!j->o->guard.off)
		cairn_anomaly_measure(&j->disk->anomaly, j->disk->size, st.new_raw_bytes,
				      st.new_bytes);
	res->chunks += st.chunks;
	res->zero_chunks += st.zero_chunks;
	res->new_chunks += st.new_chunks;
	res->new_bytes += st.new_bytes;
}

static int backup_disk(struct cairn_repo *r, struct cairn_writer *w, struct disk_job *j,
		       const struct cairn_disk *prev, unsigned workers)
{
	_cleanup_(cairn_disk_writer_freep) struct cairn_disk_writer *dw = NULL;
	int rc = cairn_disk_writer_new(r, w, j->disk, prev, &dw);
	if (rc < 0)
		return set_err(j->err, j->errlen, rc, "disk %s: %s", j->disk->name,
			       rc == -ENOMEM ? "out of memory" : strerror(-rc));
	j->dw = dw;
	rc = plan_disk(j);
	if (rc == 0)
		rc = read_slots(j, workers);
	if (rc == 0)
		rc = cairn_disk_writer_finish(dw);
	if (rc < 0 && !j->read_failed) {
		const char *why = cairn_disk_writer_error(dw);
		set_err(j->err, j->errlen, rc, "%s",
			*why ? why : rc == -ENOMEM ? "out of memory" : strerror(-rc));
	}
	if (rc == 0)
		rc = cairn_source_recheck(j->src, j->err, j->errlen);
	if (rc == 0) {
		add_stats(j, dw);
		if (j->o->progress)
			j->o->progress(j->o->progress_opaque, j->done_before + j->disk->size,
				       j->res->bytes_total);
	}
	free(j->ranges);
	return rc;
}

/* Finds the latest readable snapshot of the same name, recorded as the
 * parent; a damaged newer manifest is left as a repository warning. */
static void find_parent(struct cairn_repo *r, const char *name,
			struct cairn_snapshot *s)
{
	struct cairn_snapshot *p = NULL;
	if (cairn_snapshot_find(r, "latest-readable", name, &p) == 0) {
		s->has_parent = true;
		s->parent = p->id;
		cairn_snapshot_free(p);
	}
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
	uint64_t done = 0;
	for (size_t i = 0; rc == 0 && i < s->ndisks; i++) {
		const struct cairn_disk *p = prev ? prev[i] : NULL;
		/* a previous map only helps when the source says what changed */
		if (p && (!cairn_source_has_dirty_map(srcs[i]) || !p->map ||
			  p->size != s->disks[i].size || p->chunk_size != s->disks[i].chunk_size))
			p = NULL;
		struct disk_job j = { .src = srcs[i], .disk = &s->disks[i], .reuse = p != NULL,
				      .res = res, .done_before = done, .o = o, .err = err,
				      .errlen = errlen };
		rc = backup_disk(r, w, &j, p, workers);
		s->disks[i].incremental = p != NULL;
		done += s->disks[i].size;
	}
	for (size_t i = 0; rc == 0 && i < o->nfirmware; i++) {
		const struct cairn_firmware_state *f = &o->firmware[i];
		if ((rc = cairn_firmware_add(r, w, s, f->kind, f->path, f->mode, f->data, f->len,
					     &res->new_bytes)) < 0)
			set_err(err, errlen, rc, "firmware state %s: %s", f->path,
				rc == -ENOMEM ? "out of memory" : cairn_repo_error(r));
	}
	if (rc < 0)
		return rc;
	s->bytes_read = res->bytes_read;
	s->new_chunks = res->new_chunks;
	s->new_bytes = res->new_bytes;
	guard_judge(r, s, o, res);
	rc = cairn_snapshot_save(r, w, s);
	if (rc < 0)
		return set_err(err, errlen, rc, "%s", cairn_repo_error(r));
	guard_act(r, s, o, res);
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
	int rc = s && srcs ? cairn_snapshot_begin(s, o->name, "image", o->tags, o->ntags, ndisks)
			   : -ENOMEM;
	if (rc < 0)
		set_err(err, errlen, rc, "out of memory");
	/* open everything first: a bad image fails before any work is done */
	for (size_t i = 0; rc == 0 && i < ndisks; i++) {
		rc = cairn_source_open(disks[i].path, &srcs[i], err, errlen);
		if (rc == 0 && (rc = cairn_snapshot_add_disk(s, r, disks[i].name, disks[i].path,
							     cairn_source_format(srcs[i]),
							     cairn_source_size(srcs[i]))) < 0)
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
