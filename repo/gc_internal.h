/* Internal to gc (docs/design.md section 17): what the gc_*.c files share.
 * gc.c drives the two phases; gc_index.c snapshots the index files,
 * gc_mark.c finds what is live, gc_decide.c picks what to condemn,
 * gc_repack.c writes new packs and index files, gc_condemned.c reads and
 * writes the condemned lists, gc_doomed.c, gc_rescue.c and gc_delete.c
 * carry out phase 2, gc_immutable.c does what only an immutable repository
 * needs. */
#ifndef CAIRN_REPO_GC_INTERNAL_H
#define CAIRN_REPO_GC_INTERNAL_H

#include "internal.h"

#define GC_DIR "gc" /* the condemned lists */

/* ---- a snapshot of the index files, grouped by pack (gc_index.c) ---- */

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

int gc_ixsnap_load(struct cairn_repo *r, struct ixsnap *x, bool per_file);
void gc_ixsnap_free(struct ixsnap *x);
struct pack_group *gc_find_group(struct ixsnap *x, const cairn_id *pack);

/* ---- marking (gc_mark.c) ---- */

/* A listing's manifests, read before the index: a manifest is written
 * after the index files it needs, so every one listed here has its blobs
 * in the index loaded afterwards (the other order misses the index files
 * of a backup that ends in between). */
struct manifests {
	struct cairn_snapshot **v;
	size_t n;
};

int gc_list_manifests(struct cairn_repo *r, struct manifests *m);
void gc_manifests_free(struct manifests *m);
/* Inserts every blob a manifest references into refs. */
int gc_mark_all(struct cairn_repo *r, struct idx_table *refs, const struct manifests *m);

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

/* gc_mark.c */
int gc_build_canon(struct gc_run *g);
int gc_check_refs_indexed(struct gc_run *g);
void gc_account(struct gc_run *g);
/* gc_decide.c */
int gc_decide(struct gc_run *g);
int gc_find_orphans(struct gc_run *g);
/* Writes the condemned list of this run (and its wait object). */
int gc_condemn(struct gc_run *g);
/* gc_repack.c */
int gc_repack(struct gc_run *g);

/* ---- condemned lists (gc_condemned.c) ---- */

bool gc_is_wait_name(const char *name);
/* Appends the packs of the list gc/<name> to *v. */
int gc_read_condemned(struct cairn_repo *r, const char *name, cairn_id **v, size_t *n,
		      size_t *cap);
int gc_write_condemned(struct cairn_repo *r, const cairn_id *packs, size_t n);
/* *over: every lock the list gc/<base> waits for is gone. */
int gc_wait_over(struct cairn_repo *r, const char *base, bool *over);
/* Removes the list gc/<base> and its wait object. */
void gc_remove_list(struct cairn_repo *r, const char *base);

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

/* gc_doomed.c */
int gc_collect_final(struct phase2 *p);
bool gc_doomed(const struct phase2 *p, const cairn_id *pack);
void gc_spare(struct phase2 *p, const cairn_id *pack);
int gc_spare_locked(struct phase2 *p, const cairn_id *pack, int64_t until);
bool gc_list_has_locked(const struct phase2 *p, const struct final_list *fl);
/* gc_rescue.c */
int gc_build_safe(struct phase2 *p);
int gc_rescue_all(struct phase2 *p);
/* gc_repack.c */
int gc_write_groups(struct cairn_repo *r, struct pack_group **gs, size_t n);
int gc_consolidate(struct phase2 *p);
/* gc_delete.c */
int gc_delete_doomed(struct phase2 *p);

/* ---- immutable repositories (gc_immutable.c, docs/design.md section 20) ---- */

bool gc_immutable(const struct cairn_repo *r);
int gc_extend_kept(struct cairn_repo *r, const cairn_id *pack, int64_t now);
int gc_keep_locked(struct phase2 *p);
int gc_consolidate_immutable(struct phase2 *p);

#endif
