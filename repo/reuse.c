/* Which stored copies of a blob writers may reuse. gc's condemned packs
 * (r->condemned, loaded by gc_condemned.c) and check's damaged blobs
 * (r->damage, loaded by damage.c) are plain sorted sets in the repository;
 * the index loader and gc look them up here, below both owners, so that
 * neither the index nor the loader calls up into gc or check. */
#include <stdlib.h>

#include "internal.h"

bool pack_condemned(const struct cairn_repo *r, const cairn_id *pack)
{
	return r->ncondemned &&
	       bsearch(pack, r->condemned, r->ncondemned, sizeof(cairn_id), id_cmp);
}

int damage_item_cmp(const void *a, const void *b)
{
	const struct damage_item *x = a, *y = b;
	int c = memcmp(&x->pack, &y->pack, sizeof(x->pack));
	return c ? c : memcmp(&x->blob, &y->blob, sizeof(x->blob));
}

bool damage_known(const struct cairn_repo *r, const cairn_id *pack, const cairn_id *blob)
{
	if (!r->damage.n)
		return false;
	struct damage_item whole = { .pack = *pack, .blob = cairn_zero_id };
	struct damage_item one = { .pack = *pack, .blob = *blob };
	return bsearch(&whole, r->damage.v, r->damage.n, sizeof(whole), damage_item_cmp) ||
	       bsearch(&one, r->damage.v, r->damage.n, sizeof(one), damage_item_cmp);
}

bool cairn_repo_blob_reusable(struct cairn_repo *r, const cairn_id *id)
{
	if (!memcmp(id, &cairn_zero_id, sizeof(*id)))
		return true;
	pthread_rwlock_rdlock(&r->idx_lock);
	const struct idx_entry *e = idx_lookup(&r->idx, id);
	bool ok = e && !e->condemned;
	pthread_rwlock_unlock(&r->idx_lock);
	return ok;
}
