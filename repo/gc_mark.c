/* What is live: every blob the manifests reference (the marks), the one
 * copy of each blob gc keeps, and each pack's live bytes. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "gc_internal.h"

static int mark_id(struct cairn_repo *r, struct idx_table *refs, const cairn_id *id)
{
	if (!memcmp(id, &cairn_zero_id, sizeof(*id)))
		return 0;
	struct idx_entry e = { .id = *id };
	int rc = idx_insert(refs, &e, NULL);
	return rc < 0 ? repo_err(r, rc, "out of memory") : 0;
}

void gc_manifests_free(struct manifests *m)
{
	if (m->v)
		cairn_snapshot_list_free(m->v, m->n);
	m->v = NULL;
	m->n = 0;
}

/* Forgets the warnings from index `from` on. */
static void drop_warnings(struct cairn_repo *r, size_t from)
{
	pthread_mutex_lock(&r->lock);
	while (r->nwarnings > from)
		free(r->warnings[--r->nwarnings]);
	pthread_mutex_unlock(&r->lock);
}

#define LIST_ATTEMPTS 3

/* A manifest that cannot be read stops gc: it cannot know what that
 * snapshot references. But one that a concurrent forget removed between
 * the listing and its read is no damage: a new listing no longer has it. */
int gc_list_manifests(struct cairn_repo *r, struct manifests *m)
{
	int rc = 0;
	for (unsigned attempt = 1; rc == 0 && attempt <= LIST_ATTEMPTS; attempt++) {
		size_t warnings = cairn_repo_warning_count(r);
		if ((rc = cairn_snapshot_list(r, &m->v, &m->n)) < 0)
			return rc;
		if (cairn_repo_warning_count(r) == warnings)
			return 0;
		if (attempt == LIST_ATTEMPTS)
			break;
		drop_warnings(r, warnings);
		gc_manifests_free(m);
	}
	return repo_err(r, -EBADMSG, "%s: a manifest is unreadable, so gc cannot know what "
				     "it references; fix that first (cairn check)",
			cairn_repo_warning(r, cairn_repo_warning_count(r) - 1));
}

/* The data blobs of a snapshot's firmware state files. */
static int mark_firmware(struct cairn_repo *r, struct idx_table *refs,
			 const struct cairn_snapshot *s)
{
	int rc = 0;
	for (size_t f = 0; rc == 0 && f < s->nfirmware; f++)
		for (size_t c = 0; rc == 0 && c < s->firmware[f].nchunks; c++)
			rc = mark_id(r, refs, &s->firmware[f].chunks[c]);
	return rc;
}

/* Every blob a manifest references: chunk-map pages and chunks, and the
 * chunks of its firmware state. */
int gc_mark_all(struct cairn_repo *r, struct idx_table *refs, const struct manifests *m)
{
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < m->n; i++) {
		rc = mark_firmware(r, refs, m->v[i]);
		for (size_t d = 0; rc == 0 && d < m->v[i]->ndisks; d++) {
			struct cairn_disk *disk = &m->v[i]->disks[d];
			for (size_t p = 0; rc == 0 && p < disk->npages; p++)
				rc = mark_id(r, refs, &disk->pages[p]);
			if (rc == 0)
				rc = cairn_snapshot_load_map(r, disk);
			for (uint64_t c = 0; rc == 0 && c < disk->nchunks; c++)
				rc = mark_id(r, refs, &disk->map[c]);
		}
	}
	return rc;
}

/* One copy per blob: the first outside condemned packs. */
int gc_build_canon(struct gc_run *g)
{
	int rc = idx_table_init(&g->canon, g->x.ng * 64);
	for (size_t i = 0; rc == 0 && i < g->x.ng; i++) {
		bool condemned = pack_condemned(g->r, &g->x.g[i].pack);
		for (size_t j = 0; rc >= 0 && j < g->x.g[i].n; j++) {
			struct idx_entry e = g->x.g[i].e[j];
			e.pack = (uint32_t)i;
			e.condemned = condemned || damage_known(g->r, &g->x.g[i].pack, &e.id);
			rc = idx_insert(&g->canon, &e, NULL);
		}
		rc = rc < 0 ? rc : 0;
	}
	return rc < 0 ? repo_err(g->r, rc, "out of memory") : 0;
}

int gc_check_refs_indexed(struct gc_run *g)
{
	for (size_t i = 0; i < g->refs.cap; i++) {
		struct idx_entry *e = &g->refs.slots[i];
		if (memcmp(&e->id, &cairn_zero_id, sizeof(e->id)) && !idx_lookup(&g->canon, &e->id)) {
			char hex[65];
			hex_encode(e->id.b, CAIRN_ID_LEN, hex);
			return repo_err(g->r, -EBADMSG,
					"blob %.12s is referenced but in no index file; run cairn "
					"check and cairn repair index before gc",
					hex);
		}
	}
	return 0;
}

void gc_account(struct gc_run *g)
{
	for (size_t i = 0; i < g->x.ng; i++) {
		struct pack_group *p = &g->x.g[i];
		for (size_t j = 0; j < p->n; j++) {
			struct idx_entry *c = idx_lookup(&g->canon, &p->e[j].id);
			bool live = idx_lookup(&g->refs, &p->e[j].id) && c && c->pack == i;
			p->bytes += p->e[j].stored_len;
			p->live_bytes += live ? p->e[j].stored_len : 0;
			p->live += live;
		}
		g->res->packs++;
		g->res->bytes += p->bytes;
		g->res->live_bytes += p->live_bytes;
	}
}
