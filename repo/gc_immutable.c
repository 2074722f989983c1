/* The parts of garbage collection that only an immutable repository has
 * (S3 Object Lock, docs/design.md section 20):
 *
 *   - manifests that forget could not delete while they were locked
 *     (forgotten/<id>) are deleted once their retention has ended;
 *   - every object the repository still needs has its retention extended
 *     before it runs out, so kept backups stay locked as long as they are
 *     kept, not only DAYS after their write.
 *
 * The second is a sweep over every needed object; a record under
 * retention/ says until when the last sweep locked them all, so a gc
 * sweeps only when less than half of the retention is left.
 *
 * In phase 2, doomed packs still under retention (or listed by an index
 * file under retention) are kept for a later gc, only the index files that
 * list a doomed pack are rewritten, and a doomed pack that is kept after
 * all has its retention extended. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "gc_internal.h"

#define RETENTION_DIR "retention"
#define FORGOTTEN_DIR "forgotten"

static int64_t days_s(const struct cairn_repo *r)
{
	return (int64_t)r->immutable_days * 86400;
}

static const char *reason(struct cairn_repo *r, int rc)
{
	const char *why = cairn_backend_error(r->be, rc);
	return why ? why : strerror(-rc);
}

/* ---- forgotten manifests ---- */

/* One marker: the manifest goes when its lock has ended (the store, not
 * our clock, has the last word), then the marker. A protected snapshot
 * keeps its manifest: protection wins over an earlier forget. */
static int forget_one(struct cairn_repo *r, const char *hex, int64_t now,
		      struct cairn_gc_result *res)
{
	char manifest[128], marker[128];
	cairn_id id;
	int64_t until = 0;
	snprintf(manifest, sizeof(manifest), "snapshots/%s", hex);
	snprintf(marker, sizeof(marker), FORGOTTEN_DIR "/%s", hex);
	if (hex_decode(hex, id.b, CAIRN_ID_LEN) < 0)
		return 0; /* not ours */
	bool prot;
	int rc = cairn_snapshot_is_protected(r, &id, &prot);
	if (rc < 0)
		return rc;
	if (!prot && (rc = r->be->ops->retention(r->be, manifest, &until)) < 0 && rc != -ENOENT)
		return repo_err(r, rc, "cannot read the retention of %s: %s", manifest,
				reason(r, rc));
	if (!prot && rc == 0) {
		if (until > now) {
			res->manifests_locked++;
			if (until > res->locked_until)
				res->locked_until = until;
			return 0;
		}
		rc = r->be->ops->remove(r->be, manifest);
		if (rc == -EPERM) {
			repo_warn(r, "%s; kept for a later gc", reason(r, rc));
			res->manifests_locked++;
			return 0;
		}
		if (rc < 0 && rc != -ENOENT)
			return repo_err(r, rc, "cannot remove %s: %s", manifest, reason(r, rc));
		res->manifests_removed++;
	}
	rc = r->be->ops->remove(r->be, marker);
	return rc < 0 && rc != -ENOENT
		       ? repo_err(r, rc, "cannot remove %s: %s", marker, reason(r, rc))
		       : 0;
}

int immutable_forget_due(struct cairn_repo *r, int64_t now, struct cairn_gc_result *res)
{
	struct name_list names;
	int rc = list_names(r, FORGOTTEN_DIR, &names);
	for (size_t i = 0; rc == 0 && i < names.n; i++)
		rc = forget_one(r, names.v[i], now, res);
	name_list_free(&names);
	return rc;
}

/* ---- the retention floor ---- */

/* The latest record's date (0: none); *names gets every record. */
static int read_floor(struct cairn_repo *r, struct name_list *names, int64_t *floor)
{
	*floor = 0;
	int rc = list_names(r, RETENTION_DIR, names);
	for (size_t i = 0; rc == 0 && i < names->n; i++) {
		char path[160];
		struct buf b = { 0 };
		snprintf(path, sizeof(path), RETENTION_DIR "/%s", names->v[i]);
		int grc = r->be->ops->get(r->be, path, &b);
		json_t *j = grc == 0 ? json_loadb((const char *)b.p, b.len, 0, NULL) : NULL;
		buf_free(&b);
		json_int_t until = 0;
		if (grc == -ENOMEM)
			rc = grc;
		else if (j && json_unpack(j, "{s:I}", "until_s", &until) == 0 && until > *floor)
			*floor = until;
		json_decref(j);
	}
	return rc;
}

static int write_floor(struct cairn_repo *r, const struct name_list *old, int64_t floor)
{
	uint8_t rnd[16];
	char hex[40], path[160], when[40], until[40];
	int rc = random_bytes(rnd, sizeof(rnd));
	if (rc < 0)
		return repo_err(r, rc, "no randomness");
	hex_encode(rnd, sizeof(rnd), hex);
	format_time_utc(now_ns(), when, sizeof(when));
	format_time_utc(floor * 1000000000LL, until, sizeof(until));
	json_t *j = json_pack("{s:i, s:s, s:s, s:I}", "version", 1, "time", when, "until", until,
			      "until_s", (json_int_t)floor);
	_cleanup_free_ char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (!text)
		return repo_err(r, -ENOMEM, "out of memory");
	snprintf(path, sizeof(path), RETENTION_DIR "/%s", hex);
	if ((rc = r->be->ops->put(r->be, path, text, strlen(text))) < 0)
		return repo_err(r, rc, "cannot write %s: %s", path, reason(r, rc));
	for (size_t i = 0; i < old->n; i++) {
		snprintf(path, sizeof(path), RETENTION_DIR "/%s", old->v[i]);
		r->be->ops->remove(r->be, path); /* a stale record only costs a sweep */
	}
	return 0;
}

/* ---- the sweep ---- */

struct sweep {
	struct cairn_repo *r;
	struct cairn_gc_result *res;
	int64_t until;
	struct name_list forgotten;
};

static bool is_forgotten(const struct sweep *w, const char *hex)
{
	const char *m;
	return name_list_match(&w->forgotten, hex, &m) && !strcmp(m, hex);
}

static int extend(struct sweep *w, const char *name)
{
	int rc = w->r->be->ops->retain(w->r->be, name, w->until);
	if (rc == -ENOENT)
		return 0; /* deleted meanwhile (a forget, a key removal) */
	if (rc < 0)
		return repo_err(w->r, rc, "cannot extend the retention of %s: %s", name,
				reason(w->r, rc));
	w->res->retention_extended++;
	return 0;
}

static int extend_dir(struct sweep *w, const char *dir)
{
	struct name_list names;
	int rc = list_names(w->r, dir, &names);
	for (size_t i = 0; rc == 0 && i < names.n; i++) {
		const char *n = names.v[i];
		char name[200];
		cairn_id id;
		if (!strcmp(dir, "data")) {
			/* condemned packs are left to run out */
			if (hex_decode(n, id.b, CAIRN_ID_LEN) == 0 && pack_condemned(w->r, &id))
				continue;
			snprintf(name, sizeof(name), "data/%.2s/%s", n, n);
		} else {
			/* so is a manifest forget could not delete yet */
			if (!strcmp(dir, "snapshots") && is_forgotten(w, n))
				continue;
			snprintf(name, sizeof(name), "%s/%s", dir, n);
		}
		rc = extend(w, name);
	}
	name_list_free(&names);
	return rc;
}

int immutable_extend(struct cairn_repo *r, int64_t now, struct cairn_gc_result *res)
{
	struct name_list old;
	int64_t floor;
	int rc = read_floor(r, &old, &floor);
	if (rc < 0) {
		name_list_free(&old);
		return repo_err(r, rc, "cannot list %s/: %s", RETENTION_DIR, reason(r, rc));
	}
	res->retention_floor = floor;
	if (floor > now + days_s(r) / 2) {
		name_list_free(&old);
		return 0;
	}
	struct sweep w = { .r = r, .res = res, .until = now + days_s(r) };
	/* what the sweep misses (written meanwhile) was locked at its write,
	 * by the store's clock, for the full period */
	int64_t floor_new = MIN(w.until, (int64_t)time(NULL) + days_s(r));
	/* Not index/: its files only repeat the packs' own directories
	 * (cairn repair index rebuilds them, and gc re-indexes a referenced
	 * pack that no index lists), and one that names a condemned pack must
	 * run out before the pack can go. Not verifications/ either: records
	 * of recovery tests, not backups. */
	static const char *const dirs[] = { "data", "snapshots", "keys" };
	if ((rc = gc_load_condemned(r)) == 0)
		rc = list_names(r, FORGOTTEN_DIR, &w.forgotten);
	for (size_t i = 0; rc == 0 && i < ARRAY_SIZE(dirs); i++)
		rc = extend_dir(&w, dirs[i]);
	if (rc == 0)
		rc = extend(&w, "config");
	if (rc == 0 && (rc = write_floor(r, &old, floor_new)) == 0)
		res->retention_floor = floor_new;
	name_list_free(&w.forgotten);
	name_list_free(&old);
	return rc;
}

/* Immutable as far as gc is concerned: a retention is set and the store
 * can read and extend it. */
bool gc_immutable(const struct cairn_repo *r)
{
	return r->immutable_days && r->be->ops->retention && r->be->ops->retain;
}

/* ---- phase 2 ---- */

/* A pack gc keeps after all was condemned, so its retention was not
 * extended with the others: it is now. */
int gc_extend_kept(struct cairn_repo *r, const cairn_id *pack, int64_t now)
{
	char hex[65], name[128];
	hex_encode(pack->b, CAIRN_ID_LEN, hex);
	snprintf(name, sizeof(name), "data/%.2s/%s", hex, hex);
	int rc = r->be->ops->retain(r->be, name, now + days_s(r));
	return rc < 0 && rc != -ENOENT
		       ? repo_err(r, rc, "cannot extend the retention of %s: %s", name, reason(r, rc))
		       : 0;
}

/* Doomed packs still under retention stay; so do those an index file
 * under retention lists (an index file is written after its packs, so its
 * lock usually ends later): a pack goes only once no index file lists it. */
int gc_keep_locked(struct phase2 *p)
{
	_cleanup_free_ cairn_id *list = malloc((p->ndoomed + 1) * sizeof(cairn_id));
	if (!list)
		return repo_err(p->r, -ENOMEM, "out of memory");
	size_t n = p->ndoomed;
	memcpy(list, p->doomed, n * sizeof(cairn_id));
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		char hex[65], name[128];
		int64_t until = 0;
		hex_encode(list[i].b, CAIRN_ID_LEN, hex);
		snprintf(name, sizeof(name), "data/%.2s/%s", hex, hex);
		rc = p->r->be->ops->retention(p->r->be, name, &until);
		if (rc == -ENOENT)
			rc = 0;
		else if (rc < 0)
			rc = repo_err(p->r, rc, "cannot read the retention of %s: %s", name,
				      strerror(-rc));
		else if (until > p->now)
			rc = gc_spare_locked(p, &list[i], until);
	}
	for (size_t f = 0; rc == 0 && f < p->x.files.n; f++) {
		const struct file_packs *fp = &p->x.fp[f];
		bool lists_doomed = false;
		for (size_t k = 0; k < fp->n && !lists_doomed; k++)
			lists_doomed = gc_doomed(p, &fp->v[k]);
		if (!lists_doomed)
			continue;
		char name[128];
		int64_t until = 0;
		snprintf(name, sizeof(name), "index/%s", p->x.files.v[f]);
		rc = p->r->be->ops->retention(p->r->be, name, &until);
		if (rc == -ENOENT || (rc == 0 && until <= p->now)) {
			rc = 0;
			continue;
		}
		if (rc < 0)
			rc = repo_err(p->r, rc, "cannot read the retention of %s: %s", name,
				      strerror(-rc));
		for (size_t k = 0; rc == 0 && k < fp->n; k++)
			if (gc_doomed(p, &fp->v[k]))
				rc = gc_spare_locked(p, &fp->v[k], until);
	}
	return rc;
}

/* Only the index files that list a pack about to go are rewritten (each
 * rewrite of an immutable repository's index is stored for the retention
 * period); a file the store refuses to delete keeps its packs too. */
int gc_consolidate_immutable(struct phase2 *p)
{
	size_t nfiles = p->x.files.n, n = 0;
	_cleanup_free_ bool *rewrite = calloc(nfiles + 1, sizeof(bool));
	_cleanup_free_ struct pack_group **keep = calloc(p->x.ng + 1, sizeof(*keep));
	if (!rewrite || !keep)
		return repo_err(p->r, -ENOMEM, "out of memory");
	for (size_t f = 0; f < nfiles; f++)
		for (size_t k = 0; k < p->x.fp[f].n && !rewrite[f]; k++)
			rewrite[f] = gc_doomed(p, &p->x.fp[f].v[k]);
	for (size_t i = 0; i < p->x.ng; i++)
		p->x.g[i].in_list = false; /* here: already in the new index */
	for (size_t f = 0; f < nfiles; f++)
		for (size_t k = 0; rewrite[f] && k < p->x.fp[f].n; k++) {
			struct pack_group *g = gc_find_group(&p->x, &p->x.fp[f].v[k]);
			if (g && !g->in_list && !gc_doomed(p, &g->pack)) {
				g->in_list = true;
				keep[n++] = g;
			}
		}
	int rc = gc_write_groups(p->r, keep, n);
	for (size_t f = 0; rc == 0 && f < nfiles; f++) {
		if (!rewrite[f])
			continue;
		char name[128];
		snprintf(name, sizeof(name), "index/%s", p->x.files.v[f]);
		int drc = p->r->be->ops->remove(p->r->be, name);
		if (drc == -EPERM) {
			const char *why = cairn_backend_error(p->r->be, drc);
			repo_warn(p->r, "%s; its packs are kept for a later gc", why ? why : name);
			for (size_t k = 0; rc == 0 && k < p->x.fp[f].n; k++)
				if (gc_doomed(p, &p->x.fp[f].v[k]))
					rc = gc_spare_locked(p, &p->x.fp[f].v[k], 0);
		} else if (drc < 0 && drc != -ENOENT) {
			rc = repo_err(p->r, drc, "cannot remove %s: %s", name, strerror(-drc));
		}
	}
	return rc;
}
