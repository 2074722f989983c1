/* The index files as gc sees them: a snapshot of their entries grouped by
 * pack (and, in an immutable repository, which file lists which pack). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "gc_internal.h"

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

void gc_ixsnap_free(struct ixsnap *x)
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
	return id_cmp(&((const struct pack_group *)a)->pack, &((const struct pack_group *)b)->pack);
}

/* A pack listed by several index files (a crash between writing a new
 * index and deleting the old ones) is one group. */
static void dedupe_groups(struct ixsnap *x)
{
	qsort(x->g, x->ng, sizeof(*x->g), cmp_group);
	size_t out = 0;
	for (size_t i = 0; i < x->ng; i++) {
		if (out && !id_cmp(&x->g[out - 1].pack, &x->g[i].pack)) {
			free(x->g[i].e);
			continue;
		}
		x->g[out++] = x->g[i];
	}
	x->ng = out;
}

int gc_ixsnap_load(struct cairn_repo *r, struct ixsnap *x, bool per_file)
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

struct pack_group *gc_find_group(struct ixsnap *x, const cairn_id *pack)
{
	struct pack_group key = { .pack = *pack };
	return bsearch(&key, x->g, x->ng, sizeof(*x->g), cmp_group);
}
