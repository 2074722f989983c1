/* Phase 2's end: the doomed packs are deleted (in batches where the store
 * can), then the condemned lists that are done. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "gc_internal.h"

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
	cairn_id *at = bsearch(&id, d->p->doomed, d->p->ndoomed, sizeof(cairn_id), id_cmp);
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
	if (!be->ops->remove_many || gc_immutable(p->r))
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
			if ((rc = gc_spare_locked(p, &id, 0)) < 0)
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

int gc_delete_doomed(struct phase2 *p)
{
	int rc = delete_doomed_batched(p);
	if (rc == -ENOTSUP)
		rc = delete_doomed_each(p);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < p->nlists; i++) {
		if (!gc_list_has_locked(p, &p->lists[i]))
			gc_remove_list(p->r, p->lists[i].base);
	}
	return 0;
}
