/* Replication between unrelated repositories: read, re-cut, store again.
 * See transcode.h for the contract and docs/design.md section 19. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "repo/disk.h"
#include "repo/disk_reader.h"
#include "repo/disk_writer.h"
#include "repo/firmware.h"
#include "copy_verify.h"
#include "transcode.h"

/* A source snapshot and its copy in dst: the reference for the next
 * snapshot of the same name. */
struct pair {
	struct cairn_snapshot *src, *dst;
};

/* Source bytes held at once, about: a window of destination slots is
 * planned, its source slots fetched through the disk reader (few large
 * ranged reads, out of order), and each destination slot stored as soon
 * as all its source bytes are in. */
#define TC_WINDOW (128u * 1024 * 1024)

/* Destination slots [first, first+count) and the source slots under them,
 * [j0, j0+nsrc), whose bytes land in buf (slot j at (j - j0) * source
 * chunk size). */
struct tc_window {
	uint64_t first, count;
	uint64_t j0, nsrc;
	uint8_t *buf;
	bool *pending; /* per destination slot: read and stored from buf */
	_Atomic uint32_t *left; /* per pending slot: its source slots still to arrive */
};

/* One disk being copied. */
struct tc_disk {
	struct cairn_repo *src, *dst;
	struct cairn_writer *w;
	const struct cairn_replicate_opts *o;
	struct cairn_disk *sd; /* source disk, map loaded */
	/* the previous pair's disk of that name, when its slots can be
	 * reused (same size and chunk sizes, maps loaded), else NULL */
	struct cairn_disk *psd, *pdd;
	struct cairn_disk *dd; /* the copy being built */
	struct cairn_disk_writer *dw; /* stores dd */
	struct cairn_dreader *rd; /* reads sd */
	uint64_t *skip; /* source slots the window's fetch leaves out */
	struct tc_window win;
	uint64_t new_chunks, new_bytes; /* once copied */
	pthread_mutex_t lock; /* the fields below */
	uint64_t done, total; /* progress */
	int failed;
	char err[400];
};

static int disk_fail(struct tc_disk *d, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int disk_fail(struct tc_disk *d, int rc, const char *fmt, ...)
{
	pthread_mutex_lock(&d->lock);
	if (!d->failed) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(d->err, sizeof(d->err), fmt, ap);
		va_end(ap);
		d->failed = rc;
	}
	pthread_mutex_unlock(&d->lock);
	return rc;
}

/* Progress is reported from the reader's threads too: one at a time. */
static void progress_add(struct tc_disk *d, uint64_t bytes)
{
	pthread_mutex_lock(&d->lock);
	d->done += bytes;
	if (d->o->progress)
		d->o->progress(d->o->progress_opaque, d->done, d->total);
	pthread_mutex_unlock(&d->lock);
}

static int writer_fail(struct tc_disk *d, int rc)
{
	return disk_fail(d, rc, "destination: %s", cairn_disk_writer_error(d->dw));
}

/* True when every source chunk under destination slot seq is the one the
 * previous snapshot had, so the previous copy's id for the slot holds. */
static bool slot_unchanged(const struct tc_disk *d, uint64_t j0, uint64_t j1)
{
	if (!d->psd)
		return false;
	for (uint64_t j = j0; j <= j1; j++)
		if (memcmp(&d->psd->map[j], &d->sd->map[j], sizeof(cairn_id)))
			return false;
	return true;
}

static bool source_zero(const struct tc_disk *d, uint64_t j0, uint64_t j1)
{
	for (uint64_t j = j0; j <= j1; j++)
		if (!cairn_id_is_zero(&d->sd->map[j]))
			return false;
	return true;
}

/* The source slots [*j0, *j1] under destination slot seq. */
static void source_span(const struct tc_disk *d, uint64_t seq, uint64_t *j0, uint64_t *j1)
{
	uint64_t off = seq * d->dd->chunk_size, len = cairn_disk_chunk_len(d->dd, seq);
	*j0 = off / d->sd->chunk_size;
	*j1 = (off + len - 1) / d->sd->chunk_size;
}

/* Slot seq of the copy without reading: the previous copy's id when the
 * source did not change under it (and dst can still reuse that blob),
 * zeros when every source chunk under it is zero. 1: it must be read. */
static int settle_unread(struct tc_disk *d, uint64_t seq, uint64_t j0, uint64_t j1)
{
	if (slot_unchanged(d, j0, j1)) {
		int64_t n = cairn_disk_writer_reuse(d->dw, seq, 1);
		if (n < 0)
			return writer_fail(d, (int)n);
		if (n == 1)
			goto settled;
	}
	if (!source_zero(d, j0, j1))
		return 1;
	int rc = cairn_disk_writer_zeros(d->dw, seq, 1);
	if (rc < 0)
		return writer_fail(d, rc);
settled:
	progress_add(d, cairn_disk_chunk_len(d->dd, seq));
	return 0;
}

static void skip_set(uint64_t *skip, uint64_t j, bool on)
{
	if (on)
		skip[j / 64] |= UINT64_C(1) << (j % 64);
	else
		skip[j / 64] &= ~(UINT64_C(1) << (j % 64));
}

/* Settles what needs no reading, marks the rest pending and lets the
 * fetch through to the source slots under them. */
static int plan_window(struct tc_disk *d)
{
	struct tc_window *w = &d->win;
	for (uint64_t i = 0; i < w->count; i++) {
		uint64_t j0, j1;
		source_span(d, w->first + i, &j0, &j1);
		int rc = settle_unread(d, w->first + i, j0, j1);
		if (rc < 0)
			return rc;
		w->pending[i] = rc == 1;
		if (!w->pending[i])
			continue;
		atomic_store_explicit(&w->left[i], (uint32_t)(j1 - j0 + 1), memory_order_relaxed);
		for (uint64_t j = j0; j <= j1; j++)
			skip_set(d->skip, j, false);
	}
	return 0;
}

/* Source slot j is in the window's buffer: each pending destination slot
 * it completes is stored. */
static int source_arrived(struct tc_disk *d, uint64_t j)
{
	struct tc_window *w = &d->win;
	uint64_t scs = d->sd->chunk_size, dcs = d->dd->chunk_size;
	uint64_t off = j * scs, len = cairn_disk_chunk_len(d->sd, j);
	uint64_t s0 = MAX(off / dcs, w->first), s1 = MIN((off + len - 1) / dcs, w->first + w->count - 1);
	for (uint64_t seq = s0; seq <= s1; seq++) {
		uint64_t i = seq - w->first;
		if (!w->pending[i] || atomic_fetch_sub(&w->left[i], 1) != 1)
			continue;
		size_t slen = cairn_disk_chunk_len(d->dd, seq);
		int rc = cairn_disk_writer_put(d->dw, seq, w->buf + (seq * dcs - w->j0 * scs), slen);
		if (rc < 0)
			return writer_fail(d, rc);
		progress_add(d, slen);
	}
	return 0;
}

static int on_data(void *opaque, uint64_t j, const void *data, size_t len)
{
	struct tc_disk *d = opaque;
	memcpy(d->win.buf + (j - d->win.j0) * d->sd->chunk_size, data, len);
	return source_arrived(d, j);
}

static int on_zeros(void *opaque, uint64_t j, uint64_t count)
{
	struct tc_disk *d = opaque;
	int rc = 0;
	for (uint64_t k = j; rc == 0 && k < j + count; k++) {
		memset(d->win.buf + (k - d->win.j0) * d->sd->chunk_size, 0,
		       cairn_disk_chunk_len(d->sd, k));
		rc = source_arrived(d, k);
	}
	return rc;
}

/* Copies destination slots [first, first+count). */
static int copy_window(struct tc_disk *d, uint64_t first, uint64_t count)
{
	struct tc_window *w = &d->win;
	uint64_t j1;
	w->first = first;
	w->count = count;
	source_span(d, first, &w->j0, &j1);
	source_span(d, first + count - 1, &j1, &j1);
	w->nsrc = j1 - w->j0 + 1;
	int rc = plan_window(d);
	if (rc == 0 && d->o->cancel && *d->o->cancel)
		rc = disk_fail(d, -EINTR, "interrupted");
	if (rc < 0)
		return rc;
	static const struct cairn_dreader_cb cb0 = { .data = on_data, .zeros = on_zeros };
	struct cairn_dreader_cb cb = cb0;
	cb.opaque = d;
	char ferr[300];
	rc = cairn_dreader_fetch(d->rd, w->j0, w->nsrc, d->skip, &cb, d->o->cancel, ferr,
				 sizeof(ferr));
	for (uint64_t j = w->j0; j <= j1; j++)
		skip_set(d->skip, j, true);
	if (rc == -EINTR)
		return disk_fail(d, rc, "interrupted");
	return rc < 0 ? disk_fail(d, rc, "source: %s", ferr) : 0;
}

/* Destination slots per window: about TC_WINDOW of source bytes, ending
 * where a source slot ends when the sizes divide (no source slot fetched
 * twice). */
static uint64_t window_slots(const struct tc_disk *d)
{
	uint64_t scs = d->sd->chunk_size, dcs = d->dd->chunk_size;
	uint64_t n = MAX(TC_WINDOW / dcs, 1);
	if (scs > dcs && scs % dcs == 0)
		n = MAX(n - n % (scs / dcs), scs / dcs);
	return n;
}

static int alloc_window(struct tc_disk *d, uint64_t nslots)
{
	uint64_t scs = d->sd->chunk_size;
	uint64_t bytes = MIN(nslots * d->dd->chunk_size + 2 * scs, d->sd->nchunks * scs);
	size_t words = d->sd->nchunks / 64 + 1;
	d->win.buf = malloc(MAX(bytes, 1));
	d->win.pending = calloc(nslots, sizeof(*d->win.pending));
	d->win.left = calloc(nslots, sizeof(*d->win.left));
	d->skip = malloc(words * sizeof(*d->skip));
	if (!d->win.buf || !d->win.pending || !d->win.left || !d->skip)
		return -ENOMEM;
	memset(d->skip, 0xff, words * sizeof(*d->skip));
	return 0;
}

static void free_window(struct tc_disk *d)
{
	free(d->win.buf);
	free(d->win.pending);
	free((void *)d->win.left);
	free(d->skip);
}

/* Every slot of the copy, a window at a time. */
static int copy_slots(struct tc_disk *d)
{
	char err[300];
	_cleanup_(cairn_dreader_freep) struct cairn_dreader *rd = NULL;
	int rc = cairn_dreader_new(d->src, d->sd, NULL, &rd, err, sizeof(err));
	if (rc < 0)
		return disk_fail(d, rc, "source: %s", err);
	d->rd = rd;
	uint64_t n = window_slots(d);
	if ((rc = alloc_window(d, n)) < 0)
		rc = disk_fail(d, rc, "out of memory");
	for (uint64_t s = 0; rc == 0 && s < d->dd->nchunks; s += n)
		rc = copy_window(d, s, MIN(n, d->dd->nchunks - s));
	free_window(d);
	d->rd = NULL;
	return rc;
}

/* The copy's whole-disk digests. `digest` is of the disk's bytes, whatever
 * cuts them, so the source's carries over. digest2 depends on the cut: the
 * writer's when it read every slot, else the source's when both cut alike;
 * when both exist they must agree. */
static int copy_digests(struct tc_disk *d)
{
	const struct cairn_disk *sd = d->sd;
	struct cairn_disk *dd = d->dd;
	dd->has_digest = sd->has_digest;
	memcpy(dd->digest, sd->digest, sizeof(dd->digest));
	if (!sd->has_digest2 || sd->chunk_size != dd->chunk_size)
		return 0;
	if (dd->has_digest2 && memcmp(dd->digest2, sd->digest2, sizeof(dd->digest2)))
		return disk_fail(d, -EBADMSG, "disk %s: the copy's digest does not match the source's",
				 sd->name);
	dd->has_digest2 = true;
	memcpy(dd->digest2, sd->digest2, sizeof(dd->digest2));
	return 0;
}

/* The previous pair's disk serves for reuse only when it cut the same disk
 * the same way. */
static void drop_unusable_prev(struct tc_disk *d)
{
	if (!d->psd || !d->pdd || d->psd->size != d->sd->size ||
	    d->psd->chunk_size != d->sd->chunk_size || d->psd->nchunks != d->sd->nchunks ||
	    d->pdd->size != d->dd->size || d->pdd->chunk_size != d->dd->chunk_size ||
	    d->pdd->nchunks != cairn_disk_chunk_count(d->dd->size, d->dd->chunk_size))
		d->psd = d->pdd = NULL;
}

static int copy_disk(struct tc_disk *d)
{
	drop_unusable_prev(d);
	_cleanup_(cairn_disk_writer_freep) struct cairn_disk_writer *dw = NULL;
	int rc = cairn_disk_writer_new(d->dst, d->w, d->dd, d->pdd, &dw);
	if (rc < 0)
		return disk_fail(d, rc, "disk %s: %s", d->sd->name, strerror(-rc));
	d->dw = dw;
	rc = copy_slots(d);
	if (rc == 0 && (rc = cairn_disk_writer_finish(dw)) < 0)
		writer_fail(d, rc);
	if (rc == 0)
		rc = copy_digests(d);
	if (rc < 0 && !d->failed)
		disk_fail(d, rc, "disk %s: %s", d->sd->name, strerror(-rc));
	struct cairn_disk_writer_stats st;
	cairn_disk_writer_stats(dw, &st);
	d->new_chunks = st.new_chunks;
	d->new_bytes = st.new_bytes;
	return rc;
}

static struct cairn_disk *disk_named(struct cairn_snapshot *s, const char *name)
{
	for (size_t i = 0; s && i < s->ndisks; i++)
		if (!strcmp(s->disks[i].name, name))
			return &s->disks[i];
	return NULL;
}

static int load_map(struct cairn_repo *r, struct cairn_disk *d)
{
	return d && !d->map ? cairn_snapshot_load_map(r, d) : 0;
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* The copy's manifest fields: the source's, except what only made sense in
 * the source repository (its parent id, its libvirt checkpoint, which
 * belongs to the source's chain). */
static int clone_meta(const struct cairn_snapshot *s, struct cairn_snapshot *t, uint32_t chunk)
{
	t->name = strdup(s->name);
	t->source = dup_or_null(s->source);
	t->host = dup_or_null(s->host);
	t->domain_xml = dup_or_null(s->domain_xml);
	t->consistency = dup_or_null(s->consistency);
	t->time_ns = s->time_ns;
	t->bytes_read = s->bytes_read;
	t->tags = s->ntags ? calloc(s->ntags, sizeof(*t->tags)) : NULL;
	t->disks = calloc(s->ndisks ? s->ndisks : 1, sizeof(*t->disks));
	if (!t->name || (s->source && !t->source) || (s->host && !t->host) ||
	    (s->domain_xml && !t->domain_xml) || (s->consistency && !t->consistency) ||
	    (s->ntags && !t->tags) || !t->disks)
		return -ENOMEM;
	for (; t->ntags < s->ntags; t->ntags++)
		if (!(t->tags[t->ntags] = strdup(s->tags[t->ntags])))
			return -ENOMEM;
	for (; t->ndisks < s->ndisks; t->ndisks++) {
		const struct cairn_disk *sd = &s->disks[t->ndisks];
		struct cairn_disk *dd = &t->disks[t->ndisks];
		dd->name = strdup(sd->name);
		dd->format = dup_or_null(sd->format);
		dd->path = dup_or_null(sd->path);
		dd->size = sd->size;
		dd->chunk_size = chunk; /* the disk writer makes the map */
		dd->incremental = sd->incremental;
		if (!dd->name || (sd->format && !dd->format) || (sd->path && !dd->path))
			return -ENOMEM;
	}
	return 0;
}

struct tc_run {
	struct cairn_repo *src, *dst;
	struct cairn_writer *w;
	const struct cairn_replicate_opts *o;
	struct cairn_replicate_result *res;
	struct pair *pairs; /* one per snapshot name seen so far */
	size_t npairs, pairs_cap;
	struct cairn_snapshot **copies; /* owned */
	size_t ncopies, copies_cap;
	char *err;
	size_t errlen;
};

static struct pair *pair_of(struct tc_run *x, const char *name)
{
	for (size_t i = 0; i < x->npairs; i++)
		if (!strcmp(x->pairs[i].src->name, name))
			return &x->pairs[i];
	return NULL;
}

static int set_pair(struct tc_run *x, struct cairn_snapshot *src, struct cairn_snapshot *dst)
{
	struct pair *p = pair_of(x, src->name);
	if (!p) {
		if (array_grow(&x->pairs, &x->pairs_cap, x->npairs, sizeof(*x->pairs)) < 0)
			return -ENOMEM;
		p = &x->pairs[x->npairs++];
	}
	*p = (struct pair){ src, dst };
	return 0;
}

/* Reads every chunk of the copy back from dst and, where it records them,
 * compares the disk's digests (copy_verify.h). */
static int verify_copy(struct tc_run *x, const struct cairn_snapshot *t)
{
	for (size_t i = 0; i < t->ndisks; i++) {
		char why[512];
		int rc = copy_verify_disk(x->dst, &t->disks[i], x->o->cancel, why, sizeof(why));
		if (rc < 0)
			return set_err(x->err, x->errlen, rc,
				       "verify: snapshot %s in the destination: %s", t->name, why);
	}
	return 0;
}

/* The firmware state files, read whole from src and stored again in dst
 * (they are small). */
static int copy_firmware(struct tc_run *x, const struct cairn_snapshot *s,
			 struct cairn_snapshot *t)
{
	for (size_t i = 0; i < s->nfirmware; i++) {
		const struct cairn_firmware_file *f = &s->firmware[i];
		_cleanup_free_ uint8_t *data = NULL;
		int rc = cairn_firmware_read(x->src, f, &data);
		if (rc < 0)
			return set_err(x->err, x->errlen, rc, "source: %s", cairn_repo_error(x->src));
		rc = cairn_firmware_add(x->dst, x->w, t, f->kind, f->path, f->mode, data, f->size,
					&t->new_bytes);
		if (rc < 0)
			return set_err(x->err, x->errlen, rc, "destination: %s",
				       cairn_repo_error(x->dst));
	}
	return 0;
}

static int copy_snapshot(struct tc_run *x, struct cairn_snapshot *s)
{
	struct cairn_snapshot *t = calloc(1, sizeof(*t));
	if (!t || array_grow(&x->copies, &x->copies_cap, x->ncopies, sizeof(*x->copies)) < 0) {
		free(t);
		return set_err(x->err, x->errlen, -ENOMEM, "out of memory");
	}
	x->copies[x->ncopies++] = t;
	int rc = clone_meta(s, t, cairn_repo_chunk_size(x->dst));
	if (rc < 0)
		return set_err(x->err, x->errlen, rc, "out of memory");
	struct pair *prev = pair_of(x, s->name);
	for (size_t i = 0; rc == 0 && i < s->ndisks; i++) {
		struct tc_disk d = { .src = x->src, .dst = x->dst, .w = x->w, .o = x->o,
				     .sd = &s->disks[i], .dd = &t->disks[i],
				     .lock = PTHREAD_MUTEX_INITIALIZER };
		if (prev) {
			d.psd = disk_named(prev->src, d.sd->name);
			d.pdd = disk_named(prev->dst, d.sd->name);
		}
		if ((rc = load_map(x->src, d.sd)) < 0 || (rc = load_map(x->src, d.psd)) < 0) {
			set_err(x->err, x->errlen, rc, "source: %s", cairn_repo_error(x->src));
			break;
		}
		if ((rc = load_map(x->dst, d.pdd)) < 0) {
			set_err(x->err, x->errlen, rc, "destination: %s", cairn_repo_error(x->dst));
			break;
		}
		d.total = d.dd->size;
		rc = copy_disk(&d);
		if (rc < 0)
			set_err(x->err, x->errlen, rc, "snapshot %s: %s", s->name, d.err);
		t->new_chunks += d.new_chunks;
		t->new_bytes += d.new_bytes;
		x->res->bytes_copied += d.new_bytes;
		pthread_mutex_destroy(&d.lock);
	}
	if (rc == 0)
		rc = copy_firmware(x, s, t);
	if (rc == 0 && (rc = cairn_snapshot_save(x->dst, x->w, t)) < 0)
		set_err(x->err, x->errlen, rc, "destination: %s", cairn_repo_error(x->dst));
	if (rc == 0 && x->o->verify)
		rc = verify_copy(x, t);
	if (rc == 0) {
		x->res->snapshots_copied++;
		rc = set_pair(x, s, t) < 0 ? set_err(x->err, x->errlen, -ENOMEM, "out of memory") : 0;
	}
	return rc;
}

static struct cairn_snapshot *copy_in(struct cairn_snapshot **v, size_t n,
				      const struct cairn_snapshot *s)
{
	for (size_t i = 0; i < n; i++)
		if (v[i]->time_ns == s->time_ns && !strcmp(v[i]->name, s->name) &&
		    !strcmp(v[i]->host ? v[i]->host : "", s->host ? s->host : ""))
			return v[i];
	return NULL;
}

static int run(struct tc_run *x, replicate_wanted_fn wanted, struct cairn_snapshot **sv, size_t sn,
	       struct cairn_snapshot **dv, size_t dn)
{
	int rc = 0;
	for (size_t i = 0; i < sn; i++)
		if (wanted(x->o, sv[i]) && !copy_in(dv, dn, sv[i]))
			x->res->snapshots_to_copy++;
	if (x->o->dry_run)
		return 0;
	for (size_t i = 0; rc == 0 && i < sn; i++) {
		struct cairn_snapshot *have = copy_in(dv, dn, sv[i]);
		if (have) {
			/* present (copied by an earlier run): the reference for the
			 * next snapshot of its name, wanted or not */
			if (wanted(x->o, sv[i]))
				x->res->snapshots_present++;
			rc = set_pair(x, sv[i], have) < 0 ? set_err(x->err, x->errlen, -ENOMEM, "out of memory")
							  : 0;
		} else if (wanted(x->o, sv[i])) {
			rc = copy_snapshot(x, sv[i]);
		}
		if (rc == 0 && x->o->cancel && *x->o->cancel)
			rc = set_err(x->err, x->errlen, -EINTR, "interrupted");
	}
	return rc;
}

int replicate_transcode(struct cairn_repo *src, struct cairn_repo *dst,
			const struct cairn_replicate_opts *o, replicate_wanted_fn wanted,
			struct cairn_replicate_result *res, char *err, size_t errlen)
{
	struct tc_run x = { .src = src, .dst = dst, .o = o, .res = res, .err = err, .errlen = errlen };
	struct cairn_snapshot **sv = NULL, **dv = NULL;
	size_t sn = 0, dn = 0;
	int rc = cairn_repo_load_index(src);
	if (rc == 0 && (rc = cairn_snapshot_list(src, &sv, &sn)) < 0)
		sv = NULL, sn = 0;
	if (rc < 0)
		set_err(err, errlen, rc, "source: %s", cairn_repo_error(src));
	if (rc == 0 && (rc = cairn_repo_load_index(dst)) == 0 &&
	    (rc = cairn_snapshot_list(dst, &dv, &dn)) < 0)
		dv = NULL, dn = 0;
	if (rc < 0 && err && !err[0])
		set_err(err, errlen, rc, "destination: %s", cairn_repo_error(dst));
	if (rc == 0 && !o->dry_run && (rc = cairn_writer_new(dst, &x.w)) < 0)
		set_err(err, errlen, rc, "destination: %s", cairn_repo_error(dst));
	if (rc == 0)
		rc = run(&x, wanted, sv, sn, dv, dn);
	if (x.w)
		cairn_writer_free(x.w);
	for (size_t i = 0; i < x.ncopies; i++)
		cairn_snapshot_free(x.copies[i]);
	free(x.copies);
	free(x.pairs);
	cairn_snapshot_list_free(sv, sn);
	cairn_snapshot_list_free(dv, dn);
	return rc;
}
