/* Replication (see replicate.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "replicate.h"
#include "repo/pipeline.h"

#define PACKS_PER_BATCH 64
#define DEFAULT_CONNECTIONS 4

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
	size_t batch_start;
	uint64_t *copied; /* per slot */
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

/* The snapshots of src that dst lacks, oldest first. */
static int select_snapshots(struct job *j, struct cairn_snapshot **v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (!name_wanted(j->o, v[i]->name) || !id_wanted(j->o, &v[i]->id))
			continue;
		int has = cairn_repo_has_object(j->dst, "snapshots", &v[i]->id, NULL);
		if (has < 0)
			return set_err(j->err, j->errlen, has, "%s", cairn_repo_error(j->dst));
		if (has) {
			j->res->snapshots_present++;
			continue;
		}
		if (array_grow(&j->selected, &j->selected_cap, j->nselected,
			       sizeof(*j->selected)) < 0)
			return set_err(j->err, j->errlen, -ENOMEM, "out of memory");
		j->selected[j->nselected++] = v[i];
	}
	return 0;
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
	for (size_t i = 0; rc == 0 && i < j->nselected; i++)
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
	if (rc == 0)
		unique_packs(j);
	return rc;
}

/* Packs an interrupted run already sent are not sent again. */
static int size_packs(struct job *j)
{
	j->sizes = calloc(j->npacks + 1, sizeof(*j->sizes));
	j->present = calloc(j->npacks + 1, sizeof(*j->present));
	if (!j->sizes || !j->present)
		return set_err(j->err, j->errlen, -ENOMEM, "out of memory");
	for (size_t i = 0; i < j->npacks; i++) {
		uint64_t size = 0;
		int has = cairn_repo_has_object(j->dst, "data", &j->packs[i], &size);
		if (has < 0)
			return set_err(j->err, j->errlen, has, "%s", cairn_repo_error(j->dst));
		if (has) {
			j->present[i] = true;
			j->res->packs_present++;
			continue;
		}
		if ((has = cairn_repo_has_object(j->src, "data", &j->packs[i], &size)) <= 0)
			return set_err(j->err, j->errlen, has < 0 ? has : -ENOENT,
				       "a pack the source's index names is missing from it; run "
				       "cairn check on the source");
		j->sizes[i] = size;
		j->res->bytes_to_copy += size;
	}
	return 0;
}

static int copy_produce(void *ctx, uint64_t seq, unsigned slot)
{
	struct job *j = ctx;
	(void)seq;
	j->copied[slot] = 0;
	if (j->o->cancel && *j->o->cancel)
		return set_err(j->err, j->errlen, -EINTR,
			       "interrupted; what arrived stays and the next run goes on from there");
	return 0;
}

static int copy_work(void *ctx, uint64_t seq, unsigned slot)
{
	struct job *j = ctx;
	size_t i = j->batch_start + seq;
	if (j->present[i])
		return 0;
	int rc = cairn_repo_copy_object(j->src, j->dst, "data", &j->packs[i], &j->copied[slot]);
	return rc < 0 ? set_err(j->err, j->errlen, rc, "%s", cairn_repo_error(j->src)) : 0;
}

static int copy_consume(void *ctx, uint64_t seq, unsigned slot)
{
	struct job *j = ctx;
	if (!j->present[j->batch_start + seq]) {
		j->res->packs_copied++;
		j->res->bytes_copied += j->copied[slot];
	}
	if (j->o->progress)
		j->o->progress(j->o->progress_opaque, j->res->bytes_copied, j->res->bytes_to_copy);
	return 0;
}

/* Batches: a pack is indexed at dst soon after it arrives, so that an
 * interrupted run leaves indexed packs the next run skips. */
static int copy_packs(struct job *j)
{
	unsigned conns = j->o->connections ? j->o->connections : DEFAULT_CONNECTIONS;
	if (!(j->copied = calloc(conns * 2, sizeof(*j->copied))))
		return set_err(j->err, j->errlen, -ENOMEM, "out of memory");
	static const struct cairn_pipeline_ops ops = {
		.produce = copy_produce, .work = copy_work, .consume = copy_consume };
	int rc = 0;
	for (j->batch_start = 0; rc == 0 && j->batch_start < j->npacks;
	     j->batch_start += PACKS_PER_BATCH) {
		size_t n = MIN((size_t)PACKS_PER_BATCH, j->npacks - j->batch_start);
		rc = cairn_pipeline_run(&ops, j, n, conns, conns * 2);
		if (rc == 0 && (rc = cairn_repo_index_packs(j->dst, &j->packs[j->batch_start], n)) < 0)
			rc = set_err(j->err, j->errlen, rc, "%s", cairn_repo_error(j->dst));
	}
	return rc;
}

static int copy_manifests(struct job *j)
{
	for (size_t i = 0; i < j->nselected; i++) {
		int rc = cairn_repo_copy_object(j->src, j->dst, "snapshots", &j->selected[i]->id, NULL);
		if (rc < 0)
			return set_err(j->err, j->errlen, rc, "%s", cairn_repo_error(j->src));
		j->res->snapshots_copied++;
	}
	return 0;
}

static int verify_copies(struct job *j)
{
	for (size_t i = 0; i < j->npacks; i++) {
		int rc = cairn_repo_verify_object(j->dst, "data", &j->packs[i]);
		if (rc < 0)
			return set_err(j->err, j->errlen, rc, "%s", cairn_repo_error(j->dst));
		j->res->packs_verified++;
	}
	for (size_t i = 0; i < j->nselected; i++) {
		int rc = cairn_repo_verify_object(j->dst, "snapshots", &j->selected[i]->id);
		if (rc < 0)
			return set_err(j->err, j->errlen, rc, "%s", cairn_repo_error(j->dst));
	}
	return 0;
}

int cairn_replicate(struct cairn_repo *src, struct cairn_repo *dst,
		    const struct cairn_replicate_opts *o, struct cairn_replicate_result *res,
		    char *err, size_t errlen)
{
	memset(res, 0, sizeof(*res));
	if (!cairn_repo_is_replica_of(src, dst))
		return set_err(err, errlen, -EINVAL,
			       "the destination does not share the source's keys and chunk size; "
			       "create it with cairn init DST --replica-of SRC");
	struct job j = { .src = src, .dst = dst, .o = o, .res = res, .err = err,
			 .errlen = errlen };
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
	free(j.copied);
	cairn_snapshot_list_free(v, n);
	return rc;
}
