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
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "internal.h"

#define GC_DIR "gc"
#define WAIT_SUFFIX ".wait"
#define INDEX_PACKS_PER_FILE 256

static int cmp_id(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(cairn_id));
}

/* ---- immutable repositories (docs/design.md section 20) ---- */

static bool immutable(const struct cairn_repo *r)
{
	return r->immutable_days && r->be->ops->retention && r->be->ops->retain;
}

static int64_t days_s(const struct cairn_repo *r)
{
	return (int64_t)r->immutable_days * 86400;
}

static void note_locked(struct cairn_gc_result *res, int64_t until)
{
	if (until > res->locked_until)
		res->locked_until = until;
}

/* ---- condemned lists ---- */

static bool is_wait_name(const char *name)
{
	size_t n = strlen(name), w = strlen(WAIT_SUFFIX);
	return n > w && !strcmp(name + n - w, WAIT_SUFFIX);
}

static json_t *get_json(struct cairn_repo *r, const char *name, int *rc)
{
	char path[160];
	struct buf b = { 0 };
	snprintf(path, sizeof(path), GC_DIR "/%s", name);
	*rc = r->be->ops->get(r->be, path, &b);
	json_t *j = *rc == 0 ? json_loadb((const char *)b.p, b.len, 0, NULL) : NULL;
	buf_free(&b);
	if (*rc == 0 && !json_is_object(j))
		*rc = -EBADMSG;
	return j;
}

static int put_json(struct cairn_repo *r, const char *name, json_t *j)
{
	char path[160];
	snprintf(path, sizeof(path), GC_DIR "/%s", name);
	_cleanup_free_ char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (!text)
		return -ENOMEM;
	int rc = r->be->ops->put(r->be, path, text, strlen(text));
	return rc < 0 ? repo_err(r, rc, "cannot write %s: %s", path, strerror(-rc)) : 0;
}

/* Appends the packs of one condemned list to *v. */
static int read_condemned(struct cairn_repo *r, const char *name, cairn_id **v, size_t *n,
			  size_t *cap)
{
	int rc;
	json_t *j = get_json(r, name, &rc);
	json_t *packs = json_object_get(j, "packs");
	size_t i;
	json_t *p;
	if (rc == 0 && !json_is_array(packs))
		rc = -EBADMSG;
	json_array_foreach(packs, i, p) {
		if (rc < 0)
			break;
		if ((rc = array_grow(v, cap, *n, sizeof(**v))) < 0)
			break;
		if (!json_is_string(p) || hex_decode(json_string_value(p), (*v)[*n].b, CAIRN_ID_LEN) < 0)
			rc = -EBADMSG;
		else
			(*n)++;
	}
	json_decref(j);
	return rc;
}

int gc_load_condemned(struct cairn_repo *r)
{
	struct name_list names;
	int rc = list_names(r, GC_DIR, &names);
	if (rc < 0)
		return rc;
	free(r->condemned);
	r->condemned = NULL;
	r->ncondemned = 0;
	size_t cap = 0;
	for (size_t i = 0; rc == 0 && i < names.n; i++) {
		if (is_wait_name(names.v[i]))
			continue;
		int lrc = read_condemned(r, names.v[i], &r->condemned, &r->ncondemned, &cap);
		if (lrc == -ENOMEM)
			rc = lrc;
		else if (lrc < 0)
			repo_warn(r, "gc list %s is unreadable (%s); skipped", names.v[i],
				  strerror(-lrc));
	}
	name_list_free(&names);
	if (r->ncondemned)
		qsort(r->condemned, r->ncondemned, sizeof(cairn_id), cmp_id);
	return rc;
}

bool gc_pack_condemned(const struct cairn_repo *r, const cairn_id *pack)
{
	return r->ncondemned &&
	       bsearch(pack, r->condemned, r->ncondemned, sizeof(cairn_id), cmp_id);
}

/* ---- a snapshot of the index files, grouped by pack ---- */

struct pack_group {
	cairn_id pack;
	struct idx_entry *e;
	size_t n;
	uint64_t bytes, live_bytes;
	size_t live;
	bool condemn, repack, in_list;
};

/* The packs one index file lists. */
struct file_packs {
	cairn_id *v;
	size_t n, cap;
};

struct ixsnap {
	struct name_list files;
	struct pack_group *g;
	size_t ng, cap;
	/* immutable repositories: per file (parallel to files), so that a pack
	 * is deleted only once no index file lists it */
	bool per_file;
	struct file_packs *fp;
	size_t cur; /* the file being walked */
};

static int collect_group(void *opaque, const cairn_id *pack, struct idx_entry *e, size_t n)
{
	struct ixsnap *x = opaque;
	if (array_grow(&x->g, &x->cap, x->ng, sizeof(*x->g)) < 0)
		return -ENOMEM;
	if (x->per_file) {
		struct file_packs *f = &x->fp[x->cur];
		if (array_grow(&f->v, &f->cap, f->n, sizeof(*f->v)) < 0)
			return -ENOMEM;
		f->v[f->n++] = *pack;
	}
	struct pack_group *g = &x->g[x->ng];
	memset(g, 0, sizeof(*g));
	g->pack = *pack;
	if (!(g->e = malloc((n + 1) * sizeof(*e))))
		return -ENOMEM;
	memcpy(g->e, e, n * sizeof(*e));
	g->n = n;
	x->ng++;
	return 0;
}

static void ixsnap_free(struct ixsnap *x)
{
	for (size_t i = 0; i < x->ng; i++)
		free(x->g[i].e);
	free(x->g);
	for (size_t i = 0; x->fp && i < x->files.n; i++)
		free(x->fp[i].v);
	free(x->fp);
	name_list_free(&x->files);
	memset(x, 0, sizeof(*x));
}

static int cmp_group(const void *a, const void *b)
{
	return cmp_id(&((const struct pack_group *)a)->pack, &((const struct pack_group *)b)->pack);
}

/* A pack listed by several index files (a crash between writing a new
 * index and deleting the old ones) is one group. */
static void dedupe_groups(struct ixsnap *x)
{
	qsort(x->g, x->ng, sizeof(*x->g), cmp_group);
	size_t out = 0;
	for (size_t i = 0; i < x->ng; i++) {
		if (out && !cmp_id(&x->g[out - 1].pack, &x->g[i].pack)) {
			free(x->g[i].e);
			continue;
		}
		x->g[out++] = x->g[i];
	}
	x->ng = out;
}

static int ixsnap_load(struct cairn_repo *r, struct ixsnap *x, bool per_file)
{
	memset(x, 0, sizeof(*x));
	int rc = list_names(r, "index", &x->files);
	struct buf raw = { 0 }, plain = { 0 };
	x->per_file = per_file;
	if (rc == 0 && per_file && !(x->fp = calloc(x->files.n + 1, sizeof(*x->fp))))
		rc = repo_err(r, -ENOMEM, "out of memory");
	for (size_t i = 0; rc == 0 && i < x->files.n; i++) {
		x->cur = i;
		rc = get_hashed(r, "index", x->files.v[i], &raw);
		if (rc == 0)
			rc = envelope_open(r, ENV_INDEX, raw.p, raw.len, &plain);
		if (rc == 0)
			rc = index_walk(plain.p, plain.len, collect_group, x);
		if (rc < 0 && rc != -ENOMEM)
			rc = repo_err(r, rc, "index file %.12s is damaged; run cairn check and "
					     "cairn repair index before gc", x->files.v[i]);
	}
	buf_free(&raw);
	buf_free(&plain);
	if (rc == 0)
		dedupe_groups(x);
	return rc;
}

static struct pack_group *find_group(struct ixsnap *x, const cairn_id *pack)
{
	struct pack_group key = { .pack = *pack };
	return bsearch(&key, x->g, x->ng, sizeof(*x->g), cmp_group);
}

/* ---- marking ---- */

static int mark_id(struct cairn_repo *r, struct idx_table *refs, const cairn_id *id)
{
	if (!memcmp(id, &cairn_zero_id, sizeof(*id)))
		return 0;
	struct idx_entry e = { .id = *id };
	int rc = idx_insert(refs, &e, NULL);
	return rc < 0 ? repo_err(r, rc, "out of memory") : 0;
}

/* A listing's manifests, read before the index: a manifest is written
 * after the index files it needs, so every one listed here has its blobs
 * in the index loaded afterwards (the other order misses the index files
 * of a backup that ends in between). */
struct manifests {
	struct cairn_snapshot **v;
	size_t n;
};

static void manifests_free(struct manifests *m)
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
static int list_manifests(struct cairn_repo *r, struct manifests *m)
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
		manifests_free(m);
	}
	return repo_err(r, -EBADMSG, "%s: a manifest is unreadable, so gc cannot know what "
				     "it references; fix that first (cairn check)",
			cairn_repo_warning(r, cairn_repo_warning_count(r) - 1));
}

/* Every blob a manifest references: chunk-map pages and chunks. */
static int mark_all(struct cairn_repo *r, struct idx_table *refs, const struct manifests *m)
{
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < m->n; i++)
		for (size_t d = 0; rc == 0 && d < m->v[i]->ndisks; d++) {
			struct cairn_disk *disk = &m->v[i]->disks[d];
			for (size_t p = 0; rc == 0 && p < disk->npages; p++)
				rc = mark_id(r, refs, &disk->pages[p]);
			if (rc == 0)
				rc = cairn_snapshot_load_map(r, disk);
			for (uint64_t c = 0; rc == 0 && c < disk->nchunks; c++)
				rc = mark_id(r, refs, &disk->map[c]);
		}
	return rc;
}

/* ---- phase 1 ---- */

struct gc_run {
	struct cairn_repo *r;
	const struct cairn_gc_opts *o;
	struct cairn_gc_result *res;
	struct ixsnap x;
	struct idx_table refs, canon; /* canon: the copy of each blob gc keeps */
	cairn_id *orphans;
	size_t norphans, orphans_cap;
	cairn_id *condemn;
	size_t ncondemn, condemn_cap;
};

/* One copy per blob: the first outside condemned packs. */
static int build_canon(struct gc_run *g)
{
	int rc = idx_table_init(&g->canon, g->x.ng * 64);
	for (size_t i = 0; rc == 0 && i < g->x.ng; i++) {
		bool condemned = gc_pack_condemned(g->r, &g->x.g[i].pack);
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

static int check_refs_indexed(struct gc_run *g)
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

static void account(struct gc_run *g)
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
static int decide(struct gc_run *g)
{
	_cleanup_free_ struct pack_group **partly = calloc(g->x.ng + 1, sizeof(*partly));
	if (!partly)
		return repo_err(g->r, -ENOMEM, "out of memory");
	size_t np = 0;
	uint64_t unused_left = 0, live = 0;
	for (size_t i = 0; i < g->x.ng; i++) {
		struct pack_group *p = &g->x.g[i];
		if (gc_pack_condemned(g->r, &p->pack))
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
static int find_orphans(struct gc_run *g)
{
	struct name_list packs;
	int rc = list_names(g->r, "data", &packs);
	for (size_t i = 0; rc == 0 && i < packs.n; i++) {
		cairn_id id;
		if (hex_decode(packs.v[i], id.b, CAIRN_ID_LEN) < 0 || find_group(&g->x, &id) ||
		    gc_pack_condemned(g->r, &id))
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
static int repack(struct gc_run *g)
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

static json_t *pack_array(const cairn_id *v, size_t n)
{
	json_t *a = json_array();
	for (size_t i = 0; a && i < n; i++) {
		char hex[65];
		hex_encode(v[i].b, CAIRN_ID_LEN, hex);
		json_array_append_new(a, json_string(hex));
	}
	return a;
}

/* The locks of everyone else, right now. */
static int add_other_locks(struct cairn_repo *r, json_t *a)
{
	struct name_list locks;
	int rc = list_names(r, "locks", &locks);
	for (size_t i = 0; rc == 0 && i < locks.n; i++) {
		bool seen = false;
		size_t k;
		json_t *v;
		json_array_foreach(a, k, v)
			seen = seen || !strcmp(json_string_value(v), locks.v[i]);
		if (!seen && strcmp(locks.v[i], r->lock_name))
			json_array_append_new(a, json_string(locks.v[i]));
	}
	name_list_free(&locks);
	return rc;
}

/* Every lock but ours. Where a heartbeat's rewrite leaves its lock absent
 * for a moment (SFTP), a second listing a second later catches the lock
 * the first one missed: heartbeats are minutes apart. */
static json_t *other_locks(struct cairn_repo *r, int *rc)
{
	json_t *a = json_array();
	*rc = a ? add_other_locks(r, a) : -ENOMEM;
	if (*rc == 0 && r->be->replace_gap) {
		sleep(1);
		*rc = add_other_locks(r, a);
	}
	return a;
}

/* The list first, then the locks: any backup whose lock is not in the
 * .wait object locked (and so loaded the index and these lists) after the
 * list was visible, and will not reuse what it names. */
static int write_wait(struct cairn_repo *r, const char *base)
{
	int rc;
	json_t *locks = other_locks(r, &rc);
	char name[160];
	snprintf(name, sizeof(name), "%s" WAIT_SUFFIX, base);
	if (rc == 0)
		return put_json(r, name, json_pack("{s:i, s:o}", "version", 1, "locks", locks));
	json_decref(locks);
	return rc;
}

static int write_condemned(struct gc_run *g)
{
	for (size_t i = 0; i < g->x.ng; i++)
		if (g->x.g[i].condemn && add_condemned(g, &g->x.g[i].pack) < 0)
			return -ENOMEM;
	for (size_t i = 0; i < g->norphans; i++)
		if (add_condemned(g, &g->orphans[i]) < 0)
			return -ENOMEM;
	if (!g->ncondemn)
		return 0;
	uint8_t rnd[16];
	char base[40], when[40];
	int rc = random_bytes(rnd, sizeof(rnd));
	if (rc < 0)
		return rc;
	hex_encode(rnd, sizeof(rnd), base);
	format_time_utc(now_ns(), when, sizeof(when));
	rc = put_json(g->r, base, json_pack("{s:i, s:s, s:o}", "version", 1, "time", when,
					    "packs", pack_array(g->condemn, g->ncondemn)));
	return rc == 0 ? write_wait(g->r, base) : rc;
}

static int phase1(struct gc_run *g)
{
	struct manifests m = { 0 };
	int rc = list_manifests(g->r, &m);
	if (rc == 0)
		rc = cairn_repo_load_index(g->r);
	if (rc == 0)
		rc = ixsnap_load(g->r, &g->x, false);
	if (rc == 0)
		rc = build_canon(g);
	if (rc == 0 && (rc = idx_table_init(&g->refs, 4096)) < 0)
		rc = repo_err(g->r, rc, "out of memory");
	if (rc == 0)
		rc = mark_all(g->r, &g->refs, &m);
	g->res->snapshots = m.n;
	manifests_free(&m);
	if (rc == 0)
		rc = check_refs_indexed(g);
	if (rc == 0) {
		account(g);
		rc = decide(g);
	}
	if (rc == 0) {
		rc = find_orphans(g);
	}
	if (rc < 0 || g->o->dry_run)
		return rc;
	if ((rc = repack(g)) < 0)
		return rc;
	return write_condemned(g);
}

/* ---- phase 2 ---- */

struct final_list {
	char *base;
	cairn_id *packs;
	size_t n;
};

struct phase2 {
	struct cairn_repo *r;
	struct cairn_gc_result *res;
	struct final_list *lists;
	size_t nlists, lists_cap;
	cairn_id *doomed; /* sorted */
	size_t ndoomed, doomed_cap;
	struct ixsnap x;
	struct idx_table refs, safe;
	int64_t now; /* Unix seconds, for retention */
	cairn_id *locked; /* doomed packs under retention: kept, lists stay */
	size_t nlocked, locked_cap;
};

/* True when every lock the list waits for is gone. */
static int wait_over(struct cairn_repo *r, const char *base, bool *over)
{
	char name[160];
	snprintf(name, sizeof(name), "%s" WAIT_SUFFIX, base);
	int rc;
	json_t *j = get_json(r, name, &rc);
	if (rc == -ENOENT) /* died between the two writes: wait from now */
		return (*over = false, write_wait(r, base));
	json_t *locks = json_object_get(j, "locks");
	size_t i;
	json_t *l;
	*over = rc == 0 && json_is_array(locks);
	size_t missing = 0;
	json_array_foreach(locks, i, l) {
		bool gone = true;
		if (rc == 0 && json_is_string(l))
			rc = lock_gone(r, json_string_value(l), &gone);
		if (!gone)
			*over = false;
		missing += gone;
	}
	if (rc == 0 && *over && missing && r->be->replace_gap) {
		/* a lock may have been caught in the middle of a heartbeat's
		 * rewrite (SFTP): an absence that lasts a second is real, as
		 * heartbeats are minutes apart */
		sleep(1);
		json_array_foreach(locks, i, l) {
			bool gone = true;
			if (rc == 0 && json_is_string(l))
				rc = lock_gone(r, json_string_value(l), &gone);
			if (!gone)
				*over = false;
		}
	}
	json_decref(j);
	return rc == -EBADMSG ? 0 : rc;
}

static int collect_final(struct phase2 *p)
{
	struct name_list names;
	int rc = list_names(p->r, GC_DIR, &names);
	for (size_t i = 0; rc == 0 && i < names.n; i++) {
		if (is_wait_name(names.v[i]))
			continue;
		struct final_list fl = { 0 };
		size_t cap = 0;
		bool over;
		if ((rc = wait_over(p->r, names.v[i], &over)) < 0)
			break;
		if (!over) {
			p->res->lists_waiting++;
			continue;
		}
		if ((rc = read_condemned(p->r, names.v[i], &fl.packs, &fl.n, &cap)) < 0) {
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
		qsort(p->doomed, p->ndoomed, sizeof(cairn_id), cmp_id);
	return rc;
}

static bool doomed(const struct phase2 *p, const cairn_id *pack)
{
	return p->ndoomed && bsearch(pack, p->doomed, p->ndoomed, sizeof(cairn_id), cmp_id);
}

static bool undoom(struct phase2 *p, const cairn_id *pack)
{
	cairn_id *at = bsearch(pack, p->doomed, p->ndoomed, sizeof(cairn_id), cmp_id);
	if (!at)
		return false;
	memmove(at, at + 1, (size_t)(p->doomed + p->ndoomed - at - 1) * sizeof(cairn_id));
	p->ndoomed--;
	return true;
}

static void spare(struct phase2 *p, const cairn_id *pack)
{
	if (undoom(p, pack))
		p->res->packs_kept++;
}

/* A doomed pack whose retention has not ended (or that an index file under
 * retention still lists): it stays, and so does its list, for a later gc. */
static int spare_locked(struct phase2 *p, const cairn_id *pack, int64_t until)
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

static bool list_has_locked(const struct phase2 *p, const struct final_list *fl)
{
	for (size_t i = 0; i < fl->n; i++)
		for (size_t j = 0; j < p->nlocked; j++)
			if (!cmp_id(&fl->packs[i], &p->locked[j]))
				return true;
	return false;
}

/* Blobs with a copy outside the doomed packs. */
static int build_safe(struct phase2 *p)
{
	int rc = idx_table_init(&p->safe, p->x.ng * 64);
	for (size_t i = 0; rc >= 0 && i < p->x.ng; i++)
		for (size_t j = 0; rc >= 0 && !doomed(p, &p->x.g[i].pack) && j < p->x.g[i].n; j++)
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

/* A pack gc keeps after all was condemned, so its retention was not
 * extended with the others: it is now. */
static int extend_one(struct cairn_repo *r, const char *dir, const cairn_id *id, int64_t until)
{
	char hex[65], name[128];
	hex_encode(id->b, CAIRN_ID_LEN, hex);
	if (!strcmp(dir, "data"))
		snprintf(name, sizeof(name), "data/%.2s/%s", hex, hex);
	else
		snprintf(name, sizeof(name), "%s/%s", dir, hex);
	int rc = r->be->ops->retain(r->be, name, until);
	const char *why = cairn_backend_error(r->be, rc);
	return rc < 0 && rc != -ENOENT
		       ? repo_err(r, rc, "cannot extend the retention of %s: %s", name,
				  why ? why : strerror(-rc))
		       : 0;
}

static int rescue_all(struct phase2 *p)
{
	int rc = 0;
	cairn_id *list = malloc((p->ndoomed + 1) * sizeof(cairn_id));
	if (!list)
		return -ENOMEM;
	size_t n = p->ndoomed;
	memcpy(list, p->doomed, n * sizeof(cairn_id));
	for (size_t i = 0; rc == 0 && i < n; i++) {
		struct pack_group *grp = find_group(&p->x, &list[i]);
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
			spare(p, &list[i]);
		if (rc == 0 && kept && immutable(p->r))
			rc = extend_one(p->r, "data", &list[i], p->now + days_s(p->r));
	}
	free(list);
	return rc;
}

/* One index for everything that stays, then the old files go. */
static int consolidate(struct phase2 *p)
{
	cairn_id packs[INDEX_PACKS_PER_FILE];
	struct idx_entry *entries[INDEX_PACKS_PER_FILE];
	size_t counts[INDEX_PACKS_PER_FILE], n = 0;
	int rc = 0;
	for (size_t i = 0; rc == 0 && i <= p->x.ng; i++) {
		bool last = i == p->x.ng;
		if (!last && !doomed(p, &p->x.g[i].pack)) {
			packs[n] = p->x.g[i].pack;
			entries[n] = p->x.g[i].e;
			counts[n++] = p->x.g[i].n;
		}
		if (n && (n == INDEX_PACKS_PER_FILE || last)) {
			struct buf plain = { 0 };
			cairn_id id;
			rc = index_encode(p->r, packs, entries, counts, n, &plain);
			if (rc == 0)
				rc = index_write(p->r, &plain, &id);
			buf_free(&plain);
			n = 0;
		}
	}
	for (size_t i = 0; rc == 0 && i < p->x.files.n; i++) {
		char name[128];
		snprintf(name, sizeof(name), "index/%s", p->x.files.v[i]);
		int drc = p->r->be->ops->remove(p->r->be, name);
		if (drc < 0 && drc != -ENOENT)
			rc = repo_err(p->r, drc, "cannot remove %s: %s", name, strerror(-drc));
	}
	return rc;
}

/* Doomed packs still under retention stay; so do those an index file
 * under retention lists (an index file is written after its packs, so its
 * lock usually ends later): a pack goes only once no index file lists it. */
static int keep_locked(struct phase2 *p)
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
			rc = spare_locked(p, &list[i], until);
	}
	for (size_t f = 0; rc == 0 && f < p->x.files.n; f++) {
		const struct file_packs *fp = &p->x.fp[f];
		bool lists_doomed = false;
		for (size_t k = 0; k < fp->n && !lists_doomed; k++)
			lists_doomed = doomed(p, &fp->v[k]);
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
			if (doomed(p, &fp->v[k]))
				rc = spare_locked(p, &fp->v[k], until);
	}
	return rc;
}

/* Only the index files that list a pack about to go are rewritten (each
 * rewrite of an immutable repository's index is stored for the retention
 * period); a file the store refuses to delete keeps its packs too. */
static int write_groups(struct cairn_repo *r, struct pack_group **gs, size_t n)
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

static int consolidate_immutable(struct phase2 *p)
{
	size_t nfiles = p->x.files.n, n = 0;
	_cleanup_free_ bool *rewrite = calloc(nfiles + 1, sizeof(bool));
	_cleanup_free_ struct pack_group **keep = calloc(p->x.ng + 1, sizeof(*keep));
	if (!rewrite || !keep)
		return repo_err(p->r, -ENOMEM, "out of memory");
	for (size_t f = 0; f < nfiles; f++)
		for (size_t k = 0; k < p->x.fp[f].n && !rewrite[f]; k++)
			rewrite[f] = doomed(p, &p->x.fp[f].v[k]);
	for (size_t i = 0; i < p->x.ng; i++)
		p->x.g[i].in_list = false; /* here: already in the new index */
	for (size_t f = 0; f < nfiles; f++)
		for (size_t k = 0; rewrite[f] && k < p->x.fp[f].n; k++) {
			struct pack_group *g = find_group(&p->x, &p->x.fp[f].v[k]);
			if (g && !g->in_list && !doomed(p, &g->pack)) {
				g->in_list = true;
				keep[n++] = g;
			}
		}
	int rc = write_groups(p->r, keep, n);
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
				if (doomed(p, &p->x.fp[f].v[k]))
					rc = spare_locked(p, &p->x.fp[f].v[k], 0);
		} else if (drc < 0 && drc != -ENOENT) {
			rc = repo_err(p->r, drc, "cannot remove %s: %s", name, strerror(-drc));
		}
	}
	return rc;
}

struct doomed_sizes {
	const struct phase2 *p;
	uint64_t *size;
	bool *present;
};

static int note_doomed(void *opaque, const char *name, uint64_t size)
{
	struct doomed_sizes *d = opaque;
	cairn_id id;
	if (strlen(name) != 2 * CAIRN_ID_LEN || hex_decode(name, id.b, CAIRN_ID_LEN) < 0)
		return 0;
	cairn_id *at = bsearch(&id, d->p->doomed, d->p->ndoomed, sizeof(cairn_id), cmp_id);
	if (at) {
		d->present[at - d->p->doomed] = true;
		d->size[at - d->p->doomed] = size;
	}
	return 0;
}

/* Every doomed pack at once where the store deletes in batches (S3
 * DeleteObjects): one listing gives their sizes instead of a HEAD each,
 * and a request per thousand packs removes them instead of one each.
 * -ENOTSUP where packs go one by one. */
static int delete_doomed_batched(struct phase2 *p)
{
	struct cairn_backend *be = p->r->be;
	if (!be->ops->remove_many || immutable(p->r))
		return -ENOTSUP;
	size_t n = p->ndoomed;
	_cleanup_free_ uint64_t *size = calloc(n + 1, sizeof(*size));
	_cleanup_free_ bool *present = calloc(n + 1, sizeof(*present));
	_cleanup_free_ bool *done = calloc(n + 1, sizeof(*done));
	_cleanup_free_ char *names = calloc(n + 1, 80);
	_cleanup_free_ const char **v = calloc(n + 1, sizeof(*v));
	_cleanup_free_ size_t *which = calloc(n + 1, sizeof(*which));
	if (!size || !present || !done || !names || !v || !which)
		return repo_err(p->r, -ENOMEM, "out of memory");
	struct doomed_sizes d = { p, size, present };
	int rc = be->ops->list(be, "data", note_doomed, &d);
	if (rc < 0) {
		const char *why = cairn_backend_error(be, rc);
		return repo_err(p->r, rc, "cannot list packs: %s", why ? why : strerror(-rc));
	}
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		if (!present[i])
			continue; /* gone already: an earlier gc was interrupted */
		char hex[65];
		hex_encode(p->doomed[i].b, CAIRN_ID_LEN, hex);
		snprintf(names + 80 * k, 80, "data/%.2s/%s", hex, hex);
		v[k] = names + 80 * k;
		which[k++] = i;
	}
	rc = k ? be->ops->remove_many(be, v, k, done) : 0;
	if (rc == -ENOTSUP)
		return rc;
	for (size_t j = 0; j < k; j++)
		if (done[j]) {
			p->res->packs_deleted++;
			p->res->bytes_freed += size[which[j]];
		}
	if (rc < 0) {
		const char *why = cairn_backend_error(be, rc);
		return repo_err(p->r, rc, "cannot remove packs: %s", why ? why : strerror(-rc));
	}
	return 0;
}

static int delete_doomed_each(struct phase2 *p)
{
	for (size_t i = 0; i < p->ndoomed; i++) {
		char hex[65], name[128];
		uint64_t size = 0;
		hex_encode(p->doomed[i].b, CAIRN_ID_LEN, hex);
		snprintf(name, sizeof(name), "data/%.2s/%s", hex, hex);
		if (p->r->be->ops->stat(p->r->be, name, &size) < 0)
			continue;
		int rc = p->r->be->ops->remove(p->r->be, name);
		if (rc == -EPERM) {
			/* our clock and the store's disagree: the store wins */
			const char *why = cairn_backend_error(p->r->be, rc);
			repo_warn(p->r, "%s; kept for a later gc", why ? why : name);
			cairn_id id = p->doomed[i];
			if ((rc = spare_locked(p, &id, 0)) < 0)
				return rc;
			i--;
			continue;
		}
		if (rc < 0 && rc != -ENOENT)
			return repo_err(p->r, rc, "cannot remove %s: %s", name, strerror(-rc));
		p->res->packs_deleted++;
		p->res->bytes_freed += size;
	}
	return 0;
}

static int delete_doomed(struct phase2 *p)
{
	int rc = delete_doomed_batched(p);
	if (rc == -ENOTSUP)
		rc = delete_doomed_each(p);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < p->nlists; i++) {
		char name[160];
		if (list_has_locked(p, &p->lists[i]))
			continue;
		snprintf(name, sizeof(name), GC_DIR "/%s" WAIT_SUFFIX, p->lists[i].base);
		p->r->be->ops->remove(p->r->be, name);
		snprintf(name, sizeof(name), GC_DIR "/%s", p->lists[i].base);
		p->r->be->ops->remove(p->r->be, name);
	}
	return 0;
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
	ixsnap_free(&p->x);
	idx_table_free(&p->refs);
	idx_table_free(&p->safe);
}

static int phase2(struct cairn_repo *r, struct cairn_gc_result *res, int64_t now)
{
	struct phase2 p = { .r = r, .res = res, .now = now };
	struct manifests m = { 0 };
	int rc = collect_final(&p);
	if (rc == 0 && p.nlists) {
		/* what the repository looks like now, backups since phase 1
		 * included: manifests first (list_manifests) */
		rc = list_manifests(r, &m);
		if (rc == 0)
			rc = ixsnap_load(r, &p.x, immutable(r));
		if (rc == 0 && (rc = idx_table_init(&p.refs, 4096)) < 0)
			rc = repo_err(r, rc, "out of memory");
		if (rc == 0)
			rc = cairn_repo_load_index(r);
		if (rc == 0)
			rc = mark_all(r, &p.refs, &m);
		if (rc == 0)
			rc = build_safe(&p);
		if (rc == 0)
			rc = rescue_all(&p);
		if (rc == 0 && immutable(r))
			rc = keep_locked(&p);
		if (rc == 0)
			rc = immutable(r) ? consolidate_immutable(&p) : consolidate(&p);
		if (rc == 0)
			rc = delete_doomed(&p);
		if (rc == 0)
			rc = damage_prune(r);
	}
	manifests_free(&m);
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
	int rc = 0;
	/* first, so that what those manifests alone used is garbage now */
	if (immutable(r) && !o->dry_run)
		rc = immutable_forget_due(r, now, res);
	if (rc < 0)
		return rc;
	struct gc_run g = { .r = r, .o = o, .res = res };
	rc = phase1(&g);
	ixsnap_free(&g.x);
	idx_table_free(&g.refs);
	idx_table_free(&g.canon);
	free(g.orphans);
	free(g.condemn);
	if (rc == 0 && !o->dry_run) {
		/* the lists just written (and older ones) are loaded for phase 2 */
		if ((rc = gc_load_condemned(r)) == 0)
			rc = phase2(r, res, now);
		if (rc == 0 && immutable(r))
			rc = immutable_extend(r, now, res);
		if (rc == 0)
			rc = sweep_temps(r, res);
	}
	return rc;
}
