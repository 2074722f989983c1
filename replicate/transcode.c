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
#include "transcode.h"

/* A source snapshot and its copy in dst: the reference for the next
 * snapshot of the same name. */
struct pair {
	struct cairn_snapshot *src, *dst;
};

struct tc_slot {
	uint8_t *buf; /* one destination chunk */
	uint8_t *sbuf; /* one source chunk */
	cairn_id id;
	size_t len;
};

/* One disk being copied. */
struct tc_disk {
	struct cairn_repo *src, *dst;
	struct cairn_writer *w;
	const struct cairn_replicate_opts *o;
	struct cairn_disk *sd; /* source disk, map loaded */
	struct cairn_disk *psd, *pdd; /* the previous pair's disk of that name, or NULL */
	struct cairn_disk *dd; /* the copy being built */
	struct tc_slot *slots;
	pthread_mutex_t lock; /* the fields below */
	uint64_t new_chunks, new_bytes, done, total;
	int failed;
	char err[400];
};

static bool is_zero_id(const cairn_id *id)
{
	return !memcmp(id, &cairn_zero_id, sizeof(*id));
}

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
static bool slot_unchanged(const struct tc_disk *d, uint64_t seq, uint64_t j0, uint64_t j1)
{
	if (!d->psd || !d->pdd || d->psd->size != d->sd->size ||
	    d->psd->chunk_size != d->sd->chunk_size || d->pdd->chunk_size != d->dd->chunk_size ||
	    seq >= d->pdd->nchunks || j1 >= d->psd->nchunks)
		return false;
	for (uint64_t j = j0; j <= j1; j++)
		if (memcmp(&d->psd->map[j], &d->sd->map[j], sizeof(cairn_id)))
			return false;
	return true;
}

/* Fills s->buf with the bytes [off, off+len) of the source disk. */
static int read_slot(struct tc_disk *d, struct tc_slot *s, uint64_t off, uint64_t j0, uint64_t j1)
{
	uint64_t scs = d->sd->chunk_size;
	for (uint64_t j = j0; j <= j1; j++) {
		uint64_t cstart = j * scs;
		uint64_t clen = d->sd->size - cstart < scs ? d->sd->size - cstart : scs;
		uint64_t from = off > cstart ? off : cstart;
		uint64_t to = off + s->len < cstart + clen ? off + s->len : cstart + clen;
		uint8_t *at = s->buf + (from - off);
		if (is_zero_id(&d->sd->map[j])) {
			memset(at, 0, to - from);
			continue;
		}
		/* a source chunk that is exactly this slot is read in place */
		bool whole = cstart == off && clen == s->len;
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

static int tc_work(void *ctx, uint64_t seq, unsigned slot)
{
	struct tc_disk *d = ctx;
	struct tc_slot *s = &d->slots[slot];
	if (d->o->cancel && *d->o->cancel)
		return disk_fail(d, -EINTR, "interrupted");
	uint64_t dcs = d->dd->chunk_size, off = seq * dcs;
	s->len = (size_t)(d->dd->size - off < dcs ? d->dd->size - off : dcs);
	uint64_t j0 = off / d->sd->chunk_size, j1 = (off + s->len - 1) / d->sd->chunk_size;
	if (slot_unchanged(d, seq, j0, j1)) {
		s->id = d->pdd->map[seq];
		return 0;
	}
	bool zero = true;
	for (uint64_t j = j0; zero && j <= j1; j++)
		zero = is_zero_id(&d->sd->map[j]);
	int rc = zero ? 0 : read_slot(d, s, off, j0, j1);
	if (rc < 0)
		return rc;
	if (zero || all_zero(s->buf, s->len)) {
		s->id = cairn_zero_id;
		return 0;
	}
	cairn_repo_chunk_id(d->dst, s->buf, s->len, &s->id);
	bool added = false;
	size_t stored = 0;
	rc = cairn_writer_put(d->w, CAIRN_BLOB_DATA, &s->id, s->buf, s->len, &added, &stored);
	if (rc < 0)
		return disk_fail(d, rc, "destination: %s", cairn_repo_error(d->dst));
	if (added) {
		pthread_mutex_lock(&d->lock);
		d->new_chunks++;
		d->new_bytes += stored;
		pthread_mutex_unlock(&d->lock);
	}
	return 0;
}

static int tc_consume(void *ctx, uint64_t seq, unsigned slot)
{
	struct tc_disk *d = ctx;
	d->dd->map[seq] = d->slots[slot].id;
	d->done += d->slots[slot].len;
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

static int copy_disk(struct tc_disk *d)
{
	unsigned workers = cairn_default_workers(), nslots = workers * 2;
	d->slots = calloc(nslots, sizeof(*d->slots));
	int rc = d->slots ? 0 : -ENOMEM;
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
	if (rc < 0 && !d->failed)
		disk_fail(d, rc, "disk %s: %s", d->sd->name, strerror(-rc));
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
		dd->chunk_size = chunk;
		dd->nchunks = (sd->size + chunk - 1) / chunk;
		dd->map = calloc(dd->nchunks ? dd->nchunks : 1, sizeof(*dd->map));
		/* the digest is of the disk's bytes, whatever cuts them */
		dd->has_digest = sd->has_digest;
		memcpy(dd->digest, sd->digest, sizeof(dd->digest));
		dd->incremental = sd->incremental;
		if (!dd->name || (sd->format && !dd->format) || (sd->path && !dd->path) || !dd->map)
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

/* Reads every chunk of the copy back from dst (each is checked against its
 * id on the way) and, where the source recorded one, compares the disk's
 * digest. */
static int verify_copy(struct tc_run *x, const struct cairn_snapshot *t)
{
	uint32_t cs = cairn_repo_chunk_size(x->dst);
	_cleanup_free_ uint8_t *buf = malloc(cs);
	XXH3_state_t *h = XXH3_createState();
	int rc = buf && h ? 0 : -ENOMEM;
	for (size_t i = 0; rc == 0 && i < t->ndisks; i++) {
		const struct cairn_disk *d = &t->disks[i];
		XXH3_128bits_reset(h);
		for (uint64_t c = 0; rc == 0 && c < d->nchunks; c++) {
			size_t len = (size_t)(d->size - c * cs < cs ? d->size - c * cs : cs);
			if (is_zero_id(&d->map[c])) {
				memset(buf, 0, len);
			} else {
				int n = cairn_repo_read_blob(x->dst, &d->map[c], buf, cs);
				rc = n < 0 ? n : (size_t)n != len ? -EBADMSG : 0;
			}
			XXH3_128bits_update(h, buf, len);
		}
		XXH128_canonical_t c;
		XXH128_canonicalFromHash(&c, XXH3_128bits_digest(h));
		if (rc == 0 && d->has_digest && memcmp(c.digest, d->digest, sizeof(d->digest)))
			rc = -EBADMSG;
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
