/* Replication between unrelated repositories: read, re-cut, store again.
 * See transcode.h for the contract and docs/design.md section 19. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "base/pipeline.h"
#include "repo/disk.h"
#include "repo/disk_writer.h"
#include "transcode.h"

/* A source snapshot and its copy in dst: the reference for the next
 * snapshot of the same name. */
struct pair {
	struct cairn_snapshot *src, *dst;
};

struct tc_slot {
	uint8_t *buf; /* one destination chunk */
	uint8_t *sbuf; /* one source chunk */
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
	struct tc_slot *slots;
	uint64_t done, total; /* progress (the consuming thread's) */
	uint64_t new_chunks, new_bytes; /* once copied */
	pthread_mutex_t lock; /* the fields below */
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

/* Fills s->buf with the bytes [off, off+len) of the source disk. */
static int read_slot(struct tc_disk *d, struct tc_slot *s, uint64_t off, size_t len, uint64_t j0,
		     uint64_t j1)
{
	uint64_t scs = d->sd->chunk_size;
	for (uint64_t j = j0; j <= j1; j++) {
		uint64_t cstart = j * scs, clen = cairn_disk_chunk_len(d->sd, j);
		uint64_t from = MAX(off, cstart), to = MIN(off + len, cstart + clen);
		uint8_t *at = s->buf + (from - off);
		if (cairn_id_is_zero(&d->sd->map[j])) {
			memset(at, 0, to - from);
			continue;
		}
		/* a source chunk that is exactly this slot is read in place */
		bool whole = cstart == off && clen == len;
		int n = cairn_repo_read_blob(d->src, &d->sd->map[j], whole ? s->buf : s->sbuf, scs);
		if (n >= 0 && (uint64_t)n != clen)
			n = -EBADMSG;
		if (n < 0)
			return disk_fail(d, n, "source: disk %s, chunk %llu: %s", d->sd->name,
					 (unsigned long long)j,
					 n == -EBADMSG ? "damaged data" : strerror(-n));
		if (!whole)
			memcpy(at, s->sbuf + (from - cstart), to - from);
	}
	return 0;
}

static int tc_produce(void *ctx, uint64_t seq, unsigned slot)
{
	(void)ctx, (void)seq, (void)slot;
	return 0;
}

static int writer_fail(struct tc_disk *d, int rc)
{
	return disk_fail(d, rc, "destination: %s", cairn_disk_writer_error(d->dw));
}

static bool source_zero(const struct tc_disk *d, uint64_t j0, uint64_t j1)
{
	for (uint64_t j = j0; j <= j1; j++)
		if (!cairn_id_is_zero(&d->sd->map[j]))
			return false;
	return true;
}

/* Slot seq of the copy: the previous copy's id when the source did not
 * change under it (and dst can still reuse that blob), zeros when every
 * source chunk under it is zero, else read, re-cut and stored. */
static int tc_work(void *ctx, uint64_t seq, unsigned slot)
{
	struct tc_disk *d = ctx;
	if (d->o->cancel && *d->o->cancel)
		return disk_fail(d, -EINTR, "interrupted");
	uint64_t off = seq * d->dd->chunk_size;
	size_t len = cairn_disk_chunk_len(d->dd, seq);
	uint64_t j0 = off / d->sd->chunk_size, j1 = (off + len - 1) / d->sd->chunk_size;
	if (slot_unchanged(d, j0, j1)) {
		int64_t n = cairn_disk_writer_reuse(d->dw, seq, 1);
		if (n != 0)
			return n < 0 ? writer_fail(d, (int)n) : 0;
	}
	if (source_zero(d, j0, j1)) {
		int rc = cairn_disk_writer_zeros(d->dw, seq, 1);
		return rc < 0 ? writer_fail(d, rc) : 0;
	}
	int rc = read_slot(d, &d->slots[slot], off, len, j0, j1);
	if (rc < 0)
		return rc;
	rc = cairn_disk_writer_put(d->dw, seq, d->slots[slot].buf, len);
	return rc < 0 ? writer_fail(d, rc) : 0;
}

static int tc_consume(void *ctx, uint64_t seq, unsigned slot)
{
	struct tc_disk *d = ctx;
	(void)slot;
	d->done += cairn_disk_chunk_len(d->dd, seq);
	if (d->o->progress)
		d->o->progress(d->o->progress_opaque, d->done, d->total);
	return 0;
}

static void free_slots(struct tc_slot *v, unsigned n)
{
	for (unsigned i = 0; v && i < n; i++) {
		free(v[i].buf);
		free(v[i].sbuf);
	}
	free(v);
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
	unsigned workers = cairn_default_workers(), nslots = workers * 2;
	d->slots = calloc(nslots, sizeof(*d->slots));
	rc = d->slots ? 0 : -ENOMEM;
	for (unsigned i = 0; rc == 0 && i < nslots; i++) {
		d->slots[i].buf = malloc(d->dd->chunk_size);
		d->slots[i].sbuf = malloc(d->sd->chunk_size);
		if (!d->slots[i].buf || !d->slots[i].sbuf)
			rc = -ENOMEM;
	}
	if (rc < 0) {
		free_slots(d->slots, d->slots ? nslots : 0);
		return disk_fail(d, rc, "out of memory");
	}
	static const struct cairn_pipeline_ops ops = { .produce = tc_produce, .work = tc_work,
						       .consume = tc_consume };
	rc = cairn_pipeline_run(&ops, d, d->dd->nchunks, workers, nslots);
	free_slots(d->slots, nslots);
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

/* Reads a copied disk back from dst (each chunk checked against its id on
 * the way) and compares the whole-disk digests it has. */
static int verify_disk(struct tc_run *x, const struct cairn_disk *d, uint8_t *buf,
		       XXH3_state_t *h)
{
	_cleanup_(cairn_chunk_digest_freep) struct cairn_chunk_digest *cd = NULL;
	int rc = d->has_digest2 ? cairn_chunk_digest_new(d->size, d->chunk_size, &cd) : 0;
	XXH3_128bits_reset(h);
	for (uint64_t c = 0; rc == 0 && c < d->nchunks; c++) {
		size_t len = cairn_disk_chunk_len(d, c);
		if (cairn_id_is_zero(&d->map[c])) {
			memset(buf, 0, len);
		} else {
			int n = cairn_repo_read_blob(x->dst, &d->map[c], buf, d->chunk_size);
			rc = n < 0 ? n : (size_t)n != len ? -EBADMSG : 0;
		}
		if (d->has_digest)
			XXH3_128bits_update(h, buf, len);
		if (cd)
			cairn_chunk_digest_data(cd, c, buf, len);
	}
	uint8_t got[CAIRN_DIGEST_LEN];
	XXH128_canonical_t c;
	XXH128_canonicalFromHash(&c, XXH3_128bits_digest(h));
	if (rc == 0 && d->has_digest && memcmp(c.digest, d->digest, sizeof(d->digest)))
		rc = -EBADMSG;
	if (rc == 0 && cd) {
		cairn_chunk_digest_final(cd, got);
		if (memcmp(got, d->digest2, sizeof(got)))
			rc = -EBADMSG;
	}
	return rc;
}

/* Reads every chunk of the copy back from dst and, where it records them,
 * compares the disk's digests. */
static int verify_copy(struct tc_run *x, const struct cairn_snapshot *t)
{
	_cleanup_free_ uint8_t *buf = malloc(cairn_repo_chunk_size(x->dst));
	XXH3_state_t *h = XXH3_createState();
	int rc = buf && h ? 0 : -ENOMEM;
	for (size_t i = 0; rc == 0 && i < t->ndisks; i++) {
		const struct cairn_disk *d = &t->disks[i];
		rc = verify_disk(x, d, buf, h);
		if (rc < 0)
			set_err(x->err, x->errlen, rc, "verify: snapshot %s disk %s in the destination: %s",
				t->name, d->name, rc == -EBADMSG ? "does not match the source" : strerror(-rc));
	}
	XXH3_freeState(h);
	return rc;
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
