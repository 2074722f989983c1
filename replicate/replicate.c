/* Replication (see replicate.h). */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "replicate.h"
#include "transcode.h"
#include "base/pipeline.h"
#include "repo/replica.h"

#define PACKS_PER_INDEX 64
#define DEFAULT_CONNECTIONS 4

struct slot {
	struct cairn_pack_dir *dir;
	uint64_t copied;
};


struct job {
	struct cairn_repo *src, *dst;
	const struct cairn_replicate_opts *o;
	struct cairn_replicate_result *res;
	struct cairn_snapshot **selected;
	size_t nselected, selected_cap;
	cairn_id *packs; /* sorted, unique */
	uint64_t *sizes;
	bool *present;
	size_t npacks, packs_cap;
	struct slot *slots;
	/* buffers of the workers, reused from pack to pack: a fresh one of
	 * tens of MiB would be page-faulted in every time */
	pthread_mutex_t bufs_lock;
	struct buf *bufs;
	size_t nbufs;
	/* copied packs whose index file is not written yet */
	struct cairn_pack_dir **unindexed;
	size_t nunindexed;
	char *err;
	size_t errlen;
};

static int cmp_id(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(cairn_id));
}

static bool name_wanted(const struct cairn_replicate_opts *o, const char *name)
{
	if (!o->nnames)
		return true;
	for (size_t i = 0; i < o->nnames; i++)
		if (!strcmp(o->names[i], name))
			return true;
	return false;
}

static bool id_wanted(const struct cairn_replicate_opts *o, const cairn_id *id)
{
	if (!o->nsnapshots)
		return true;
	char hex[65];
	hex_encode(id->b, CAIRN_ID_LEN, hex);
	for (size_t i = 0; i < o->nsnapshots; i++)
		if (!strncmp(hex, o->snapshots[i], strlen(o->snapshots[i])))
			return true;
	return false;
}

static bool snapshot_wanted(const struct cairn_replicate_opts *o, const struct cairn_snapshot *s)
{
	return name_wanted(o, s->name) && id_wanted(o, &s->id);
}

/* The snapshots of src that dst lacks, oldest first; one listing of dst's
 * manifests instead of a request per snapshot. */
static int select_snapshots(struct job *j, struct cairn_snapshot **v, size_t n)
{
	struct cairn_object_set have;
	int rc = cairn_repo_list_objects(j->dst, "snapshots", &have);
	if (rc < 0)
		return set_err(j->err, j->errlen, rc, "%s", cairn_repo_error(j->dst));
	for (size_t i = 0; rc == 0 && i < n; i++) {
		if (!name_wanted(j->o, v[i]->name) || !id_wanted(j->o, &v[i]->id))
			continue;
		if (cairn_object_set_has(&have, &v[i]->id, NULL)) {
			j->res->snapshots_present++;
			continue;
		}
		if (array_grow(&j->selected, &j->selected_cap, j->nselected,
			       sizeof(*j->selected)) < 0)
			rc = set_err(j->err, j->errlen, -ENOMEM, "out of memory");
		else
			j->selected[j->nselected++] = v[i];
	}
	cairn_object_set_free(&have);
	return rc;
}

/* The pack of src holding a blob dst lacks joins the copy list. */
static int need_blob(struct job *j, const cairn_id *blob)
{
	if (!memcmp(blob, &cairn_zero_id, sizeof(*blob)) || cairn_repo_has_blob(j->dst, blob))
		return 0;
	cairn_id pack;
	if (cairn_repo_blob_pack(j->src, blob, &pack) < 0) {
		char hex[65];
		hex_encode(blob->b, CAIRN_ID_LEN, hex);
		return set_err(j->err, j->errlen, -EBADMSG,
			       "blob %.12s is referenced in the source but in none of its index "
			       "files; run cairn check on the source",
			       hex);
	}
	if (array_grow(&j->packs, &j->packs_cap, j->npacks, sizeof(*j->packs)) < 0)
		return set_err(j->err, j->errlen, -ENOMEM, "out of memory");
	j->packs[j->npacks++] = pack;
	return 0;
}

static void unique_packs(struct job *j)
{
	if (!j->npacks)
		return;
	qsort(j->packs, j->npacks, sizeof(*j->packs), cmp_id);
	size_t w = 1;
	for (size_t i = 1; i < j->npacks; i++)
		if (cmp_id(&j->packs[i], &j->packs[w - 1]))
			j->packs[w++] = j->packs[i];
	j->npacks = w;
}

static int collect_packs(struct job *j)
{
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < j->nselected; i++) {
		const struct cairn_snapshot *s = j->selected[i];
		for (size_t f = 0; rc == 0 && f < s->nfirmware; f++)
			for (size_t c = 0; rc == 0 && c < s->firmware[f].nchunks; c++)
				rc = need_blob(j, &s->firmware[f].chunks[c]);
		for (size_t d = 0; rc == 0 && d < j->selected[i]->ndisks; d++) {
			struct cairn_disk *disk = &j->selected[i]->disks[d];
			for (size_t p = 0; rc == 0 && p < disk->npages; p++)
				rc = need_blob(j, &disk->pages[p]);
			if (rc == 0 && (rc = cairn_snapshot_load_map(j->src, disk)) < 0)
				rc = set_err(j->err, j->errlen, rc, "%s", cairn_repo_error(j->src));
			for (uint64_t c = 0; rc == 0 && c < disk->nchunks; c++)
				rc = need_blob(j, &disk->map[c]);
			/* maps of big disks add up; they are not needed again */
			free(disk->map);
			disk->map = NULL;
		}
	}
	if (rc == 0)
		unique_packs(j);
	return rc;
}

/* Sizes from src's listing; packs an interrupted run already sent (in
 * dst's listing) are not sent again. Two listings, not a HEAD per pack:
 * on S3 a thousand packs cost one request. */
static int size_packs(struct job *j)
{
	j->sizes = calloc(j->npacks + 1, sizeof(*j->sizes));
	j->present = calloc(j->npacks + 1, sizeof(*j->present));
	if (!j->sizes || !j->present)
		return set_err(j->err, j->errlen, -ENOMEM, "out of memory");
	if (!j->npacks)
		return 0;
	struct cairn_object_set in_src, in_dst;
	int rc = cairn_repo_list_objects(j->src, "data", &in_src);
	if (rc < 0)
		return set_err(j->err, j->errlen, rc, "source: %s", cairn_repo_error(j->src));
	if ((rc = cairn_repo_list_objects(j->dst, "data", &in_dst)) < 0) {
		cairn_object_set_free(&in_src);
		return set_err(j->err, j->errlen, rc, "destination: %s", cairn_repo_error(j->dst));
	}
	for (size_t i = 0; rc == 0 && i < j->npacks; i++) {
		if (cairn_object_set_has(&in_dst, &j->packs[i], &j->sizes[i])) {
			j->present[i] = true;
			j->res->packs_present++;
		} else if (cairn_object_set_has(&in_src, &j->packs[i], &j->sizes[i])) {
			j->res->bytes_to_copy += j->sizes[i];
		} else {
			char hex[65];
			hex_encode(j->packs[i].b, CAIRN_ID_LEN, hex);
			rc = set_err(j->err, j->errlen, -ENOENT,
				     "pack %s, which the source's index names, is missing from the "
				     "source; run cairn check on it",
				     hex);
		}
	}
	cairn_object_set_free(&in_src);
	cairn_object_set_free(&in_dst);
	return rc;
}

static int cancelled(struct job *j)
{
	if (j->o->cancel && *j->o->cancel)
		return set_err(j->err, j->errlen, -EINTR,
			       "interrupted; what arrived stays and the next run goes on from there");
	return 0;
}

static int copy_produce(void *ctx, uint64_t seq, unsigned slot)
{
	struct job *j = ctx;
	(void)seq;
	j->slots[slot].copied = 0;
	return cancelled(j);
}

static struct buf take_buf(struct job *j)
{
	struct buf b = { 0 };
	pthread_mutex_lock(&j->bufs_lock);
	if (j->nbufs)
		b = j->bufs[--j->nbufs];
	pthread_mutex_unlock(&j->bufs_lock);
	return b;
}

/* There is room: bufs has a place for every worker. */
static void give_buf(struct job *j, struct buf *b)
{
	pthread_mutex_lock(&j->bufs_lock);
	j->bufs[j->nbufs++] = *b;
	pthread_mutex_unlock(&j->bufs_lock);
}

/* A pack an interrupted run sent is only indexed: its directory is read
 * from dst, where it is (whole: every put is atomic). */
static int copy_work(void *ctx, uint64_t seq, unsigned slot)
{
	struct job *j = ctx;
	struct slot *s = &j->slots[slot];
	if (j->present[seq]) {
		int rc = cairn_repo_read_pack_dir(j->dst, &j->packs[seq], j->sizes[seq], &s->dir);
		return rc < 0 ? set_err(j->err, j->errlen, rc, "%s", cairn_repo_error(j->dst)) : 0;
	}
	struct buf b = take_buf(j);
	int rc = cairn_repo_copy_pack(j->src, j->dst, &j->packs[seq], &b, &s->copied, &s->dir);
	give_buf(j, &b);
	return rc < 0 ? set_err(j->err, j->errlen, rc, "%s", cairn_repo_error(j->src)) : 0;
}

static int flush_index(struct job *j)
{
	int rc = cairn_repo_index_pack_dirs(j->dst, j->unindexed, j->nunindexed);
	for (size_t i = 0; i < j->nunindexed; i++)
		cairn_pack_dir_free(j->unindexed[i]);
	j->nunindexed = 0;
	return rc < 0 ? set_err(j->err, j->errlen, rc, "%s", cairn_repo_error(j->dst)) : 0;
}

/* In order, on the calling thread, while the workers go on copying: a
 * pack is indexed at dst soon after it arrives, so that an interrupted
 * run leaves indexed packs the next run skips. */
static int copy_consume(void *ctx, uint64_t seq, unsigned slot)
{
	struct job *j = ctx;
	struct slot *s = &j->slots[slot];
	if (!j->present[seq]) {
		j->res->packs_copied++;
		j->res->bytes_copied += s->copied;
	}
	j->unindexed[j->nunindexed++] = TAKE_PTR(s->dir);
	int rc = 0;
	if (j->nunindexed == PACKS_PER_INDEX || seq + 1 == j->npacks)
		rc = flush_index(j);
	if (rc == 0 && j->o->progress)
		j->o->progress(j->o->progress_opaque, j->res->bytes_copied, j->res->bytes_to_copy);
	return rc;
}

static unsigned connections(const struct job *j)
{
	return j->o->connections ? j->o->connections : DEFAULT_CONNECTIONS;
}

/* One pipeline over every pack, connections wide: no barrier between
 * index batches leaves connections idle. */
static int copy_packs(struct job *j)
{
	unsigned conns = connections(j);
	j->slots = calloc(conns * 2, sizeof(*j->slots));
	j->unindexed = calloc(PACKS_PER_INDEX, sizeof(*j->unindexed));
	j->bufs = calloc(conns, sizeof(*j->bufs));
	if (!j->slots || !j->unindexed || !j->bufs)
		return set_err(j->err, j->errlen, -ENOMEM, "out of memory");
	static const struct cairn_pipeline_ops ops = {
		.produce = copy_produce, .work = copy_work, .consume = copy_consume };
	int rc = cairn_pipeline_run(&ops, j, j->npacks, conns, conns * 2);
	/* what the workers read but no index names stays unindexed packs,
	 * which the next run indexes */
	for (unsigned i = 0; i < conns * 2; i++)
		cairn_pack_dir_free(j->slots[i].dir);
	for (size_t i = 0; i < j->nunindexed; i++)
		cairn_pack_dir_free(j->unindexed[i]);
	j->nunindexed = 0;
	while (j->nbufs)
		buf_free(&j->bufs[--j->nbufs]);
	return rc;
}

static int produce_nothing(void *ctx, uint64_t seq, unsigned slot)
{
	(void)seq, (void)slot;
	return cancelled(ctx);
}

static int manifest_work(void *ctx, uint64_t seq, unsigned slot)
{
	struct job *j = ctx;
	(void)slot;
	int rc = cairn_repo_copy_object(j->src, j->dst, "snapshots", &j->selected[seq]->id, NULL);
	return rc < 0 ? set_err(j->err, j->errlen, rc, "%s", cairn_repo_error(j->src)) : 0;
}

static int manifest_consume(void *ctx, uint64_t seq, unsigned slot)
{
	struct job *j = ctx;
	(void)seq, (void)slot;
	j->res->snapshots_copied++;
	return 0;
}

/* Last, once every index file they need is written. */
static int copy_manifests(struct job *j)
{
	static const struct cairn_pipeline_ops ops = {
		.produce = produce_nothing, .work = manifest_work, .consume = manifest_consume };
	unsigned conns = connections(j);
	return cairn_pipeline_run(&ops, j, j->nselected, conns, conns * 2);
}

/* Item seq < npacks is a pack, the rest the manifests. */
static int verify_work(void *ctx, uint64_t seq, unsigned slot)
{
	struct job *j = ctx;
	(void)slot;
	int rc = seq < j->npacks
			 ? cairn_repo_verify_object(j->dst, "data", &j->packs[seq])
			 : cairn_repo_verify_object(j->dst, "snapshots",
						    &j->selected[seq - j->npacks]->id);
	return rc < 0 ? set_err(j->err, j->errlen, rc, "%s", cairn_repo_error(j->dst)) : 0;
}

static int verify_consume(void *ctx, uint64_t seq, unsigned slot)
{
	struct job *j = ctx;
	(void)slot;
	if (seq < j->npacks)
		j->res->packs_verified++;
	return 0;
}

static int verify_copies(struct job *j)
{
	static const struct cairn_pipeline_ops ops = {
		.produce = produce_nothing, .work = verify_work, .consume = verify_consume };
	unsigned conns = connections(j);
	return cairn_pipeline_run(&ops, j, j->npacks + j->nselected, conns, conns * 2);
}

int cairn_replicate(struct cairn_repo *src, struct cairn_repo *dst,
		    const struct cairn_replicate_opts *o, struct cairn_replicate_result *res,
		    char *err, size_t errlen)
{
	memset(res, 0, sizeof(*res));
	if (!cairn_repo_is_replica_of(src, dst))
		return replicate_transcode(src, dst, o, snapshot_wanted, res, err, errlen);
	struct job j = { .src = src, .dst = dst, .o = o, .res = res, .err = err,
			 .errlen = errlen, .bufs_lock = PTHREAD_MUTEX_INITIALIZER };
	struct cairn_snapshot **v = NULL;
	size_t n = 0;
	int rc = cairn_repo_load_index(src);
	if (rc == 0 && (rc = cairn_snapshot_list(src, &v, &n)) < 0)
		v = NULL, n = 0;
	if (rc < 0)
		set_err(err, errlen, rc, "source: %s", cairn_repo_error(src));
	if (rc == 0 && (rc = cairn_repo_load_index(dst)) < 0)
		set_err(err, errlen, rc, "destination: %s", cairn_repo_error(dst));
	if (rc == 0)
		rc = select_snapshots(&j, v, n);
	if (rc == 0)
		rc = collect_packs(&j);
	if (rc == 0)
		rc = size_packs(&j);
	res->snapshots_to_copy = j.nselected;
	if (rc == 0 && !o->dry_run) {
		rc = copy_packs(&j);
		if (rc == 0)
			rc = copy_manifests(&j);
		if (rc == 0 && o->verify)
			rc = verify_copies(&j);
	}
	free(j.selected);
	free(j.packs);
	free(j.sizes);
	free(j.present);
	free(j.slots);
	free(j.bufs);
	pthread_mutex_destroy(&j.bufs_lock);
	free(j.unindexed);
	cairn_snapshot_list_free(v, n);
	return rc;
}
