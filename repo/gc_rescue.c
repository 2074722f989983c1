/* Phase 2's rescue: a doomed pack that now holds the only copy of a
 * referenced blob (a backup that started before phase 1 reused it) is
 * kept, and indexed again if no index file lists it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "gc_internal.h"

/* Blobs with a copy outside the doomed packs. */
int gc_build_safe(struct phase2 *p)
{
	int rc = idx_table_init(&p->safe, p->x.ng * 64);
	for (size_t i = 0; rc >= 0 && i < p->x.ng; i++)
		for (size_t j = 0; rc >= 0 && !gc_doomed(p, &p->x.g[i].pack) && j < p->x.g[i].n; j++)
			rc = idx_insert(&p->safe, &p->x.g[i].e[j], NULL);
	return rc < 0 ? repo_err(p->r, rc, "out of memory") : 0;
}

/* A doomed pack that holds the only copy of a referenced blob stays; an
 * unindexed one is indexed again from its own directory. */
static int rescue(struct phase2 *p, const cairn_id *pack, struct idx_entry *e, size_t n,
		  bool indexed, bool *kept)
{
	*kept = false;
	for (size_t j = 0; j < n && !*kept; j++)
		*kept = idx_lookup(&p->refs, &e[j].id) && !idx_lookup(&p->safe, &e[j].id);
	if (!*kept || indexed)
		return 0;
	struct buf plain = { 0 };
	cairn_id id;
	struct idx_entry *groups[1] = { e };
	int rc = index_encode(p->r, pack, groups, &n, 1, &plain);
	if (rc == 0)
		rc = index_write(p->r, &plain, &id);
	buf_free(&plain);
	return rc;
}

int gc_rescue_all(struct phase2 *p)
{
	int rc = 0;
	cairn_id *list = malloc((p->ndoomed + 1) * sizeof(cairn_id));
	if (!list)
		return -ENOMEM;
	size_t n = p->ndoomed;
	memcpy(list, p->doomed, n * sizeof(cairn_id));
	for (size_t i = 0; rc == 0 && i < n; i++) {
		struct pack_group *grp = gc_find_group(&p->x, &list[i]);
		struct idx_entry *e = grp ? grp->e : NULL;
		size_t ne = grp ? grp->n : 0;
		_cleanup_free_ struct idx_entry *dir = NULL;
		if (!grp) {
			char hex[65], name[128];
			uint64_t size;
			hex_encode(list[i].b, CAIRN_ID_LEN, hex);
			snprintf(name, sizeof(name), "data/%.2s/%s", hex, hex);
			if (p->r->be->ops->stat(p->r->be, name, &size) < 0)
				continue; /* already deleted by a run that died */
			if (pack_read_directory(p->r, hex, size, &dir, &ne) < 0) {
				ne = 0; /* an unreadable orphan holds nothing anyone can use */
			}
			e = dir;
		}
		bool kept;
		rc = rescue(p, &list[i], e, ne, grp != NULL, &kept);
		if (rc == 0 && kept)
			gc_spare(p, &list[i]);
		if (rc == 0 && kept && gc_immutable(p->r))
			rc = gc_extend_kept(p->r, &list[i], p->now);
	}
	free(list);
	return rc;
}
