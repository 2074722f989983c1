/* Garbage collection (docs/design.md section 17).
 *
 * Two phases, so that backups may run meanwhile:
 *   1. mark every blob the manifests reference; packs with nothing live
 *      (and packs repacked because they are mostly garbage) are condemned:
 *      listed in gc/<id>, and then gc/<id>.wait names every lock that
 *      existed once the list was visible. Writers that load the index after
 *      that never reuse a condemned blob; readers still can.
 *   2. a condemned list whose waited-for locks are all gone is final: the
 *      manifests are marked again, a pack that now holds the only copy of a
 *      referenced blob (a backup that started before phase 1 reused it) is
 *      kept, the others are dropped from a rewritten index and deleted.
 * Every step leaves a repository that checks clean if the process dies. */
#include <errno.h>
#include <time.h>

#include "gc_internal.h"

static int phase1(struct gc_run *g)
{
	struct manifests m = { 0 };
	int rc = gc_list_manifests(g->r, &m);
	if (rc == 0)
		rc = cairn_repo_load_index(g->r);
	if (rc == 0)
		rc = gc_ixsnap_load(g->r, &g->x, false);
	if (rc == 0)
		rc = gc_build_canon(g);
	if (rc == 0 && (rc = idx_table_init(&g->refs, 4096)) < 0)
		rc = repo_err(g->r, rc, "out of memory");
	if (rc == 0)
		rc = gc_mark_all(g->r, &g->refs, &m);
	g->res->snapshots = m.n;
	gc_manifests_free(&m);
	if (rc == 0)
		rc = gc_check_refs_indexed(g);
	if (rc == 0) {
		gc_account(g);
		rc = gc_decide(g);
	}
	if (rc == 0) {
		rc = gc_find_orphans(g);
	}
	if (rc < 0 || g->o->dry_run)
		return rc;
	if ((rc = gc_repack(g)) < 0)
		return rc;
	return gc_condemn(g);
}

static void phase2_free(struct phase2 *p)
{
	for (size_t i = 0; i < p->nlists; i++) {
		free(p->lists[i].base);
		free(p->lists[i].packs);
	}
	free(p->lists);
	free(p->doomed);
	free(p->locked);
	gc_ixsnap_free(&p->x);
	idx_table_free(&p->refs);
	idx_table_free(&p->safe);
}

static int phase2(struct cairn_repo *r, struct cairn_gc_result *res, int64_t now)
{
	struct phase2 p = { .r = r, .res = res, .now = now };
	struct manifests m = { 0 };
	int rc = gc_collect_final(&p);
	if (rc == 0 && p.nlists) {
		/* what the repository looks like now, backups since phase 1
		 * included: manifests first (gc_list_manifests) */
		rc = gc_list_manifests(r, &m);
		if (rc == 0)
			rc = gc_ixsnap_load(r, &p.x, gc_immutable(r));
		if (rc == 0 && (rc = idx_table_init(&p.refs, 4096)) < 0)
			rc = repo_err(r, rc, "out of memory");
		if (rc == 0)
			rc = cairn_repo_load_index(r);
		if (rc == 0)
			rc = gc_mark_all(r, &p.refs, &m);
		if (rc == 0)
			rc = gc_build_safe(&p);
		if (rc == 0)
			rc = gc_rescue_all(&p);
		if (rc == 0 && gc_immutable(r))
			rc = gc_keep_locked(&p);
		if (rc == 0)
			rc = gc_immutable(r) ? gc_consolidate_immutable(&p) : gc_consolidate(&p);
		if (rc == 0)
			rc = gc_delete_doomed(&p);
		if (rc == 0)
			rc = damage_prune(r);
	}
	gc_manifests_free(&m);
	phase2_free(&p);
	return rc;
}

/* A writer that died in the middle of a put leaves its temporary object
 * behind (under a name no listing shows). A day is far longer than any put
 * takes, so nothing older can still be being written. */
#define TEMP_MAX_AGE_S (24 * 3600)

static int sweep_temps(struct cairn_repo *r, struct cairn_gc_result *res)
{
	if (!r->be->ops->sweep)
		return 0;
	int rc = r->be->ops->sweep(r->be, TEMP_MAX_AGE_S, &res->temps_removed);
	return rc < 0 ? repo_err(r, rc, "cannot remove the temporary objects of crashed writers: %s",
				 strerror(-rc))
		      : 0;
}

int cairn_gc(struct cairn_repo *r, const struct cairn_gc_opts *o, struct cairn_gc_result *res)
{
	memset(res, 0, sizeof(*res));
	int64_t now = o->now_s ? o->now_s : time(NULL);
	int rc = cairn_repo_need_full(r);
	if (rc < 0)
		return rc;
	/* first, so that what those manifests alone used is garbage now */
	if (gc_immutable(r) && !o->dry_run)
		rc = immutable_forget_due(r, now, res);
	if (rc < 0)
		return rc;
	struct gc_run g = { .r = r, .o = o, .res = res };
	rc = phase1(&g);
	gc_ixsnap_free(&g.x);
	idx_table_free(&g.refs);
	idx_table_free(&g.canon);
	free(g.orphans);
	free(g.condemn);
	if (rc == 0 && !o->dry_run) {
		/* the lists just written (and older ones) are loaded for phase 2 */
		if ((rc = gc_load_condemned(r)) == 0)
			rc = phase2(r, res, now);
		if (rc == 0 && gc_immutable(r))
			rc = immutable_extend(r, now, res);
		if (rc == 0)
			rc = sweep_temps(r, res);
	}
	return rc;
}
