/* Phase 1's decision: which packs are condemned (nothing live, orphans)
 * and which are repacked (mostly garbage, or healed damage). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "gc_internal.h"

static int add_condemned(struct gc_run *g, const cairn_id *pack)
{
	if (array_grow(&g->condemn, &g->condemn_cap, g->ncondemn, sizeof(*g->condemn)) < 0)
		return -ENOMEM;
	g->condemn[g->ncondemn++] = *pack;
	return 0;
}

/* A pack with a damaged blob is rewritten once every damaged blob in it
 * has a good copy elsewhere (a backup healed it); until then it stays, as
 * the damage record names it. */
static bool damage_healed(struct gc_run *g, size_t gi, bool *any)
{
	struct pack_group *p = &g->x.g[gi];
	bool healed = true;
	*any = false;
	for (size_t j = 0; j < p->n; j++) {
		if (!damage_known(g->r, &p->pack, &p->e[j].id))
			continue;
		*any = true;
		struct idx_entry *c = idx_lookup(&g->canon, &p->e[j].id);
		if (idx_lookup(&g->refs, &p->e[j].id) && (!c || c->pack == gi))
			healed = false;
	}
	return healed;
}

static void mark_repack(struct gc_run *g, struct pack_group *p)
{
	p->repack = p->condemn = true;
	g->res->packs_repacked++;
	g->res->repacked_bytes += p->live_bytes;
	g->res->unused_bytes += p->bytes - p->live_bytes;
}

static int by_unused_desc(const void *a, const void *b)
{
	const struct pack_group *x = *(struct pack_group *const *)a;
	const struct pack_group *y = *(struct pack_group *const *)b;
	uint64_t ux = x->bytes - x->live_bytes, uy = y->bytes - y->live_bytes;
	return ux < uy ? 1 : ux > uy ? -1 : 0;
}

/* As restic's --max-unused: the unused bytes that stay in partly used packs
 * may be at most this share of the used bytes; the packs with the most
 * garbage are rewritten first, so the fewest bytes are copied. */
int gc_decide(struct gc_run *g)
{
	_cleanup_free_ struct pack_group **partly = calloc(g->x.ng + 1, sizeof(*partly));
	if (!partly)
		return repo_err(g->r, -ENOMEM, "out of memory");
	size_t np = 0;
	uint64_t unused_left = 0, live = 0;
	for (size_t i = 0; i < g->x.ng; i++) {
		struct pack_group *p = &g->x.g[i];
		if (pack_condemned(g->r, &p->pack))
			continue; /* an earlier run's; phase 2 decides */
		bool damaged, healed = damage_healed(g, i, &damaged);
		live += p->live_bytes;
		if (damaged && !healed)
			continue;
		if (damaged && p->live) {
			mark_repack(g, p);
		} else if (!p->live) {
			p->condemn = true;
			g->res->packs_unused++;
			g->res->unused_bytes += p->bytes;
		} else if (p->bytes > p->live_bytes) {
			partly[np++] = p;
			unused_left += p->bytes - p->live_bytes;
		}
	}
	qsort(partly, np, sizeof(*partly), by_unused_desc);
	uint64_t allowed = live / 100 * g->o->max_unused_pct;
	for (size_t i = 0; i < np && unused_left > allowed; i++) {
		unused_left -= partly[i]->bytes - partly[i]->live_bytes;
		mark_repack(g, partly[i]);
	}
	g->res->unused_left = unused_left;
	return 0;
}

/* Packs in data/ that no index file lists: left by a killed backup (or
 * one still writing: the wait for its lock covers that). */
int gc_find_orphans(struct gc_run *g)
{
	struct name_list packs;
	int rc = list_names(g->r, "data", &packs);
	for (size_t i = 0; rc == 0 && i < packs.n; i++) {
		cairn_id id;
		if (hex_decode(packs.v[i], id.b, CAIRN_ID_LEN) < 0 || gc_find_group(&g->x, &id) ||
		    pack_condemned(g->r, &id))
			continue;
		if (array_grow(&g->orphans, &g->orphans_cap, g->norphans, sizeof(id)) < 0)
			rc = -ENOMEM;
		else
			g->orphans[g->norphans++] = id;
	}
	name_list_free(&packs);
	g->res->packs_orphaned = g->norphans;
	return rc;
}

int gc_condemn(struct gc_run *g)
{
	for (size_t i = 0; i < g->x.ng; i++)
		if (g->x.g[i].condemn && add_condemned(g, &g->x.g[i].pack) < 0)
			return -ENOMEM;
	for (size_t i = 0; i < g->norphans; i++)
		if (add_condemned(g, &g->orphans[i]) < 0)
			return -ENOMEM;
	return g->ncondemn ? gc_write_condemned(g->r, g->condemn, g->ncondemn) : 0;
}
