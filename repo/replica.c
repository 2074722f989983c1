/* What replication needs from a repository (docs/design.md section 19):
 * objects copied byte for byte between repositories that share keys and
 * chunk parameters, so that nothing is re-hashed, re-compressed or
 * re-encrypted, and copied packs indexed at the destination. */
#include <errno.h>
#include <stdio.h>

#include "internal.h"

bool cairn_repo_is_replica_of(const struct cairn_repo *a, const struct cairn_repo *b)
{
	return a->encrypted == b->encrypted && a->chunk_size == b->chunk_size &&
	       !memcmp(a->k_enc, b->k_enc, KEY_LEN) && !memcmp(a->k_id, b->k_id, KEY_LEN);
}

static void object_name(const char *dir, const cairn_id *id, char *out, size_t len)
{
	char hex[65];
	hex_encode(id->b, CAIRN_ID_LEN, hex);
	if (!strcmp(dir, "data"))
		snprintf(out, len, "data/%.2s/%s", hex, hex);
	else
		snprintf(out, len, "%s/%s", dir, hex);
}

int cairn_repo_has_object(struct cairn_repo *r, const char *dir, const cairn_id *id,
			  uint64_t *size)
{
	char name[160];
	uint64_t sz;
	object_name(dir, id, name, sizeof(name));
	int rc = r->be->ops->stat(r->be, name, size ? size : &sz);
	if (rc == -ENOENT)
		return 0;
	return rc < 0 ? repo_err(r, rc, "cannot read %s: %s", name, strerror(-rc)) : 1;
}

/* The bytes are checked against their name before they are written: a
 * damaged source object must not become a "good" copy. */
int cairn_repo_copy_object(struct cairn_repo *src, struct cairn_repo *dst, const char *dir,
			   const cairn_id *id, uint64_t *bytes)
{
	char hex[65], name[160];
	struct buf b = { 0 };
	hex_encode(id->b, CAIRN_ID_LEN, hex);
	object_name(dir, id, name, sizeof(name));
	int rc = get_hashed(src, dir, hex, &b);
	if (rc == -EBADMSG)
		rc = repo_err(src, rc, "%s in %s is damaged; not copied", name, src->be->location);
	else if (rc < 0)
		rc = repo_err(src, rc, "cannot read %s from %s: %s", name, src->be->location,
			      strerror(-rc));
	if (rc == 0) {
		cairn_id got;
		if ((rc = put_hashed(dst, dir, &b, &got)) < 0)
			rc = repo_err(src, rc, "%s", dst->err);
	}
	if (rc == 0 && bytes)
		*bytes = b.len;
	buf_free(&b);
	return rc;
}

int cairn_repo_blob_pack(struct cairn_repo *r, const cairn_id *blob, cairn_id *pack)
{
	pthread_rwlock_rdlock(&r->idx_lock);
	const struct idx_entry *e = idx_lookup(&r->idx, blob);
	int rc = e && e->pack != PACK_PENDING ? 0 : -ENOENT;
	if (rc == 0)
		*pack = r->idx.packs[e->pack];
	pthread_rwlock_unlock(&r->idx_lock);
	return rc;
}

/* One index file listing the packs (already in r), read from their own
 * directories; the table in memory learns them too. */
int cairn_repo_index_packs(struct cairn_repo *r, const cairn_id *packs, size_t n)
{
	if (!n)
		return 0;
	struct idx_entry **entries = calloc(n, sizeof(*entries));
	size_t *counts = calloc(n, sizeof(*counts));
	int rc = entries && counts ? 0 : -ENOMEM;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		char hex[65];
		uint64_t size;
		hex_encode(packs[i].b, CAIRN_ID_LEN, hex);
		if ((rc = cairn_repo_has_object(r, "data", &packs[i], &size)) == 0)
			rc = repo_err(r, -ENOENT, "pack %.12s is not in %s", hex, r->be->location);
		else if (rc > 0 && (rc = pack_read_directory(r, hex, size, &entries[i], &counts[i])) < 0)
			rc = repo_err(r, rc, "pack %.12s in %s: unreadable directory", hex,
				      r->be->location);
	}
	struct buf plain = { 0 };
	cairn_id id;
	if (rc == 0 && (rc = index_encode(r, packs, entries, counts, n, &plain)) == 0)
		rc = index_write(r, &plain, &id);
	pthread_rwlock_wrlock(&r->idx_lock);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		uint32_t num;
		rc = idx_add_pack(&r->idx, &packs[i], &num);
		for (size_t j = 0; rc >= 0 && j < counts[i]; j++) {
			entries[i][j].pack = num;
			rc = idx_insert(&r->idx, &entries[i][j], NULL);
		}
		rc = rc < 0 ? rc : 0;
	}
	pthread_rwlock_unlock(&r->idx_lock);
	buf_free(&plain);
	for (size_t i = 0; entries && i < n; i++)
		free(entries[i]);
	free(entries);
	free(counts);
	return rc == -ENOMEM ? repo_err(r, rc, "out of memory") : rc;
}

bool cairn_repo_has_blob(struct cairn_repo *r, const cairn_id *blob)
{
	pthread_rwlock_rdlock(&r->idx_lock);
	const struct idx_entry *e = idx_lookup(&r->idx, blob);
	bool has = e && e->pack != PACK_PENDING && !e->condemned;
	pthread_rwlock_unlock(&r->idx_lock);
	return has;
}

int cairn_repo_verify_object(struct cairn_repo *r, const char *dir, const cairn_id *id)
{
	char hex[65], name[160];
	struct buf b = { 0 };
	hex_encode(id->b, CAIRN_ID_LEN, hex);
	object_name(dir, id, name, sizeof(name));
	int rc = get_hashed(r, dir, hex, &b);
	buf_free(&b);
	if (rc == -EBADMSG)
		return repo_err(r, rc, "%s in %s does not match its name (damaged in transit "
				       "or at rest)", name, r->be->location);
	return rc < 0 ? repo_err(r, rc, "cannot read %s from %s: %s", name, r->be->location,
				 strerror(-rc))
		      : 0;
}
