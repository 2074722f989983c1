/* Phase 2's doomed set: the packs of every condemned list whose wait is
 * over, less those spared (a pack that still holds the only copy of a
 * referenced blob, or that is under retention). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "gc_internal.h"

int gc_collect_final(struct phase2 *p)
{
	struct name_list names;
	int rc = list_names(p->r, GC_DIR, &names);
	for (size_t i = 0; rc == 0 && i < names.n; i++) {
		if (gc_is_wait_name(names.v[i]))
			continue;
		struct final_list fl = { 0 };
		size_t cap = 0;
		bool over;
		if ((rc = gc_wait_over(p->r, names.v[i], &over)) < 0)
			break;
		if (!over) {
			p->res->lists_waiting++;
			continue;
		}
		if ((rc = gc_read_condemned(p->r, names.v[i], &fl.packs, &fl.n, &cap)) < 0) {
			free(fl.packs);
			break;
		}
		if (!(fl.base = strdup(names.v[i])) ||
		    array_grow(&p->lists, &p->lists_cap, p->nlists, sizeof(*p->lists)) < 0) {
			free(fl.base);
			free(fl.packs);
			rc = -ENOMEM;
			break;
		}
		p->lists[p->nlists++] = fl;
		for (size_t k = 0; rc == 0 && k < fl.n; k++) {
			if ((rc = array_grow(&p->doomed, &p->doomed_cap, p->ndoomed, sizeof(cairn_id))) == 0)
				p->doomed[p->ndoomed++] = fl.packs[k];
		}
	}
	name_list_free(&names);
	if (p->ndoomed)
		qsort(p->doomed, p->ndoomed, sizeof(cairn_id), id_cmp);
	return rc;
}

bool gc_doomed(const struct phase2 *p, const cairn_id *pack)
{
	return p->ndoomed && bsearch(pack, p->doomed, p->ndoomed, sizeof(cairn_id), id_cmp);
}

static bool undoom(struct phase2 *p, const cairn_id *pack)
{
	cairn_id *at = bsearch(pack, p->doomed, p->ndoomed, sizeof(cairn_id), id_cmp);
	if (!at)
		return false;
	memmove(at, at + 1, (size_t)(p->doomed + p->ndoomed - at - 1) * sizeof(cairn_id));
	p->ndoomed--;
	return true;
}

void gc_spare(struct phase2 *p, const cairn_id *pack)
{
	if (undoom(p, pack))
		p->res->packs_kept++;
}

static void note_locked(struct cairn_gc_result *res, int64_t until)
{
	if (until > res->locked_until)
		res->locked_until = until;
}

/* A doomed pack whose retention has not ended (or that an index file under
 * retention still lists): it stays, and so does its list, for a later gc. */
int gc_spare_locked(struct phase2 *p, const cairn_id *pack, int64_t until)
{
	if (!undoom(p, pack))
		return 0;
	if (array_grow(&p->locked, &p->locked_cap, p->nlocked, sizeof(*p->locked)) < 0)
		return repo_err(p->r, -ENOMEM, "out of memory");
	p->locked[p->nlocked++] = *pack;
	p->res->packs_locked++;
	note_locked(p->res, until);
	return 0;
}

bool gc_list_has_locked(const struct phase2 *p, const struct final_list *fl)
{
	for (size_t i = 0; i < fl->n; i++)
		for (size_t j = 0; j < p->nlocked; j++)
			if (!id_cmp(&fl->packs[i], &p->locked[j]))
				return true;
	return false;
}
