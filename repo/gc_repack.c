/* Writing what gc keeps: live blobs of repacked packs copied into new
 * packs (phase 1), and the index rewritten without the doomed packs
 * (phase 2). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "gc_internal.h"

#define INDEX_PACKS_PER_FILE 256

/* Packs a repack has written, for one index file at the end. */
struct new_packs {
	cairn_id *ids;
	struct idx_entry **entries;
	size_t *counts;
	size_t n, cap_ids, cap_entries, cap_counts;
};

static int flush_pack(struct cairn_repo *r, struct pack_builder *pb, struct new_packs *np)
{
	int rc;
	if ((rc = array_grow(&np->ids, &np->cap_ids, np->n, sizeof(*np->ids))) < 0 ||
	    (rc = array_grow(&np->entries, &np->cap_entries, np->n, sizeof(*np->entries))) < 0 ||
	    (rc = array_grow(&np->counts, &np->cap_counts, np->n, sizeof(*np->counts))) < 0 ||
	    (rc = pack_builder_write(r, pb, &np->ids[np->n])) < 0)
		return rc;
	np->entries[np->n] = TAKE_PTR(pb->entries);
	np->counts[np->n++] = pb->n;
	pb->n = pb->cap = 0;
	pb->data.len = 0;
	return 0;
}

static int write_new_index(struct cairn_repo *r, struct new_packs *np)
{
	if (!np->n)
		return 0;
	struct buf plain = { 0 };
	cairn_id id;
	int rc = index_encode(r, np->ids, np->entries, np->counts, np->n, &plain);
	if (rc == 0)
		rc = index_write(r, &plain, &id);
	buf_free(&plain);
	return rc;
}

static void new_packs_free(struct new_packs *np)
{
	for (size_t i = 0; i < np->n; i++)
		free(np->entries[i]);
	free(np->entries);
	free(np->counts);
	free(np->ids);
}

/* Appends the kept copies of one pack's blobs to pb, flushing full packs. */
static int repack_one(struct gc_run *g, size_t gi, struct pack_builder *pb,
		      struct new_packs *np, struct buf *blob)
{
	struct pack_group *p = &g->x.g[gi];
	char hex[65], name[128];
	hex_encode(p->pack.b, CAIRN_ID_LEN, hex);
	snprintf(name, sizeof(name), "data/%.2s/%s", hex, hex);
	int rc = 0;
	for (size_t j = 0; rc == 0 && j < p->n; j++) {
		struct idx_entry e = p->e[j];
		struct idx_entry *c = idx_lookup(&g->canon, &e.id);
		if (!idx_lookup(&g->refs, &e.id) || !c || c->pack != gi)
			continue;
		blob->len = 0;
		if ((rc = buf_reserve(blob, e.stored_len + 1)) < 0)
			break;
		rc = g->r->be->ops->get_range(g->r->be, name, e.offset, e.stored_len, blob->p);
		if (rc < 0)
			return repo_err(g->r, rc, "cannot read %s: %s", name, strerror(-rc));
		rc = pack_builder_add(pb, &e, blob->p);
		if (rc == 0 && pb->data.len >= g->r->pack_size)
			rc = flush_pack(g->r, pb, np);
	}
	return rc;
}

/* Copies the live blobs of mostly-unused packs into new packs, as stored
 * (no re-encoding: a blob's encryption binds only its id, type and flags). */
int gc_repack(struct gc_run *g)
{
	struct pack_builder pb = { .size_hint = g->r->pack_size };
	struct new_packs np = { 0 };
	struct buf blob = { 0 };
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < g->x.ng; i++)
		if (g->x.g[i].repack)
			rc = repack_one(g, i, &pb, &np, &blob);
	if (rc == 0 && pb.n)
		rc = flush_pack(g->r, &pb, &np);
	if (rc == 0)
		rc = write_new_index(g->r, &np);
	g->res->packs_written = np.n;
	new_packs_free(&np);
	pack_builder_free(&pb);
	buf_free(&blob);
	return rc;
}

/* New index files for these groups, INDEX_PACKS_PER_FILE packs each. */
int gc_write_groups(struct cairn_repo *r, struct pack_group **gs, size_t n)
{
	cairn_id packs[INDEX_PACKS_PER_FILE];
	struct idx_entry *entries[INDEX_PACKS_PER_FILE];
	size_t counts[INDEX_PACKS_PER_FILE];
	int rc = 0;
	for (size_t at = 0; rc == 0 && at < n; at += INDEX_PACKS_PER_FILE) {
		size_t k = MIN(n - at, (size_t)INDEX_PACKS_PER_FILE);
		for (size_t i = 0; i < k; i++) {
			packs[i] = gs[at + i]->pack;
			entries[i] = gs[at + i]->e;
			counts[i] = gs[at + i]->n;
		}
		struct buf plain = { 0 };
		cairn_id id;
		rc = index_encode(r, packs, entries, counts, k, &plain);
		if (rc == 0)
			rc = index_write(r, &plain, &id);
		buf_free(&plain);
	}
	return rc;
}

/* One index for everything that stays, then the old files go. */
int gc_consolidate(struct phase2 *p)
{
	_cleanup_free_ struct pack_group **keep = calloc(p->x.ng + 1, sizeof(*keep));
	if (!keep)
		return repo_err(p->r, -ENOMEM, "out of memory");
	size_t n = 0;
	for (size_t i = 0; i < p->x.ng; i++)
		if (!gc_doomed(p, &p->x.g[i].pack))
			keep[n++] = &p->x.g[i];
	int rc = gc_write_groups(p->r, keep, n);
	for (size_t i = 0; rc == 0 && i < p->x.files.n; i++) {
		char name[128];
		snprintf(name, sizeof(name), "index/%s", p->x.files.v[i]);
		int drc = p->r->be->ops->remove(p->r->be, name);
		if (drc < 0 && drc != -ENOENT)
			rc = repo_err(p->r, drc, "cannot remove %s: %s", name, strerror(-drc));
	}
	return rc;
}
