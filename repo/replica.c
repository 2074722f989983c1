/* What replication needs from a repository (docs/design.md section 19):
 * objects copied byte for byte between repositories that share keys and
 * chunk parameters, so that nothing is re-hashed, re-compressed or
 * re-encrypted, and copied packs indexed at the destination (replica.h). */
#include <errno.h>
#include <stdio.h>

#include "internal.h"
#include "replica.h"

struct cairn_pack_dir {
	cairn_id id;
	struct idx_entry *entries;
	size_t n;
};

bool cairn_repo_is_replica_of(const struct cairn_repo *a, const struct cairn_repo *b)
{
	/* sealed disk data copies as it is only to the same public key */
	return a->encrypted == b->encrypted && a->chunk_size == b->chunk_size &&
	       !memcmp(a->k_enc, b->k_enc, KEY_LEN) && !memcmp(a->k_id, b->k_id, KEY_LEN) &&
	       a->host_keys == b->host_keys &&
	       (!a->host_keys || !memcmp(a->data_pub, b->data_pub, X25519_LEN));
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

/* Reads dir/<id> of src and checks it against its name. Errors in src. */
static int get_checked(struct cairn_repo *src, const char *dir, const cairn_id *id,
		       struct buf *b)
{
	char hex[65], name[160];
	hex_encode(id->b, CAIRN_ID_LEN, hex);
	object_name(dir, id, name, sizeof(name));
	int rc = get_hashed(src, dir, hex, b);
	if (rc == -EBADMSG)
		return repo_err(src, rc, "%s in %s is damaged; not copied", name, src->be->location);
	if (rc < 0)
		return repo_err(src, rc, "cannot read %s from %s: %s", name, src->be->location,
				strerror(-rc));
	return 0;
}

/* The name is already proven to be the hash of b: no second hash. Errors
 * in src, where the caller looks. */
static int put_checked(struct cairn_repo *src, struct cairn_repo *dst, const char *dir,
		       const cairn_id *id, const struct buf *b)
{
	char name[160];
	object_name(dir, id, name, sizeof(name));
	int rc = dst->be->ops->put(dst->be, name, b->p, b->len);
	if (rc < 0) {
		repo_err(dst, rc, "cannot write %s in %s: %s", name, dst->be->location,
			 strerror(-rc));
		return repo_err(src, rc, "%s", dst->err);
	}
	return 0;
}

int cairn_repo_copy_object(struct cairn_repo *src, struct cairn_repo *dst, const char *dir,
			   const cairn_id *id, uint64_t *bytes)
{
	struct buf b = { 0 };
	int rc = get_checked(src, dir, id, &b);
	if (rc == 0)
		rc = put_checked(src, dst, dir, id, &b);
	if (rc == 0 && bytes)
		*bytes = b.len;
	buf_free(&b);
	return rc;
}

void cairn_pack_dir_free(struct cairn_pack_dir *d)
{
	if (d) {
		free(d->entries);
		free(d);
	}
}

int cairn_repo_copy_pack(struct cairn_repo *src, struct cairn_repo *dst, const cairn_id *id,
			 struct buf *b, uint64_t *bytes, struct cairn_pack_dir **dir)
{
	struct cairn_pack_dir *d = calloc(1, sizeof(*d));
	int rc = d ? get_checked(src, "data", id, b) : repo_err(src, -ENOMEM, "out of memory");
	if (rc == 0) {
		d->id = *id;
		/* dst's keys are src's: what dst's index needs, read on the way */
		if ((rc = pack_parse_directory(dst, b->p, b->len, &d->entries, &d->n)) < 0) {
			char name[160];
			object_name("data", id, name, sizeof(name));
			rc = repo_err(src, rc, "%s in %s: unreadable directory; not copied", name,
				      src->be->location);
		}
	}
	if (rc == 0)
		rc = put_checked(src, dst, "data", id, b);
	if (rc == 0) {
		*bytes = b->len;
		*dir = TAKE_PTR(d);
	}
	cairn_pack_dir_free(d);
	return rc;
}

int cairn_repo_read_pack_dir(struct cairn_repo *r, const cairn_id *id, uint64_t size,
			     struct cairn_pack_dir **dir)
{
	char hex[65];
	hex_encode(id->b, CAIRN_ID_LEN, hex);
	struct cairn_pack_dir *d = calloc(1, sizeof(*d));
	if (!d)
		return repo_err(r, -ENOMEM, "out of memory");
	d->id = *id;
	int rc = pack_read_directory(r, hex, size, &d->entries, &d->n);
	if (rc < 0) {
		cairn_pack_dir_free(d);
		return repo_err(r, rc, "pack %.12s in %s: unreadable directory: %s", hex,
				r->be->location, strerror(-rc));
	}
	*dir = d;
	return 0;
}

int cairn_repo_index_pack_dirs(struct cairn_repo *r, struct cairn_pack_dir *const *dirs,
			       size_t n)
{
	if (!n)
		return 0;
	cairn_id *packs = calloc(n, sizeof(*packs));
	struct idx_entry **entries = calloc(n, sizeof(*entries));
	size_t *counts = calloc(n, sizeof(*counts));
	int rc = packs && entries && counts ? 0 : -ENOMEM;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		packs[i] = dirs[i]->id;
		entries[i] = dirs[i]->entries;
		counts[i] = dirs[i]->n;
	}
	struct buf plain = { 0 };
	cairn_id id;
	if (rc == 0 && (rc = index_encode(r, packs, entries, counts, n, &plain)) == 0)
		rc = index_write(r, &plain, &id);
	/* the table learns the packs only once an index file names them */
	pthread_rwlock_wrlock(&r->idx_lock);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		uint32_t num;
		rc = idx_add_pack(&r->idx, &packs[i], &num);
		for (size_t j = 0; rc >= 0 && j < counts[i]; j++) {
			struct idx_entry e = entries[i][j];
			e.pack = num;
			rc = idx_insert(&r->idx, &e, NULL);
		}
		rc = rc < 0 ? rc : 0;
	}
	pthread_rwlock_unlock(&r->idx_lock);
	buf_free(&plain);
	free(packs);
	free(entries);
	free(counts);
	return rc == -ENOMEM ? repo_err(r, rc, "out of memory") : rc;
}

int cairn_repo_index_packs(struct cairn_repo *r, const cairn_id *packs, size_t n)
{
	struct cairn_pack_dir **dirs = calloc(n ? n : 1, sizeof(*dirs));
	int rc = dirs ? 0 : repo_err(r, -ENOMEM, "out of memory");
	for (size_t i = 0; rc == 0 && i < n; i++) {
		char hex[65];
		uint64_t size;
		hex_encode(packs[i].b, CAIRN_ID_LEN, hex);
		if ((rc = cairn_repo_has_object(r, "data", &packs[i], &size)) == 0)
			rc = repo_err(r, -ENOENT, "pack %.12s is not in %s", hex, r->be->location);
		else if (rc > 0)
			rc = cairn_repo_read_pack_dir(r, &packs[i], size, &dirs[i]);
	}
	if (rc == 0)
		rc = cairn_repo_index_pack_dirs(r, dirs, n);
	for (size_t i = 0; dirs && i < n; i++)
		cairn_pack_dir_free(dirs[i]);
	free(dirs);
	return rc;
}

static int cmp_object(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(cairn_id));
}

static int add_object(void *opaque, const char *name, uint64_t size)
{
	struct cairn_object_set *s = opaque;
	cairn_id id;
	if (strlen(name) != 2 * CAIRN_ID_LEN || hex_decode(name, id.b, CAIRN_ID_LEN) < 0)
		return 0; /* not an object of this format (a stray file) */
	if (array_grow(&s->v, &s->cap, s->n, sizeof(*s->v)) < 0)
		return -ENOMEM;
	s->v[s->n++] = (struct cairn_object){ .id = id, .size = size };
	return 0;
}

int cairn_repo_list_objects(struct cairn_repo *r, const char *dir, struct cairn_object_set *out)
{
	memset(out, 0, sizeof(*out));
	int rc = r->be->ops->list(r->be, dir, add_object, out);
	if (rc < 0) {
		cairn_object_set_free(out);
		return repo_err(r, rc, "cannot list %s/ in %s: %s", dir, r->be->location,
				strerror(-rc));
	}
	if (out->n)
		qsort(out->v, out->n, sizeof(*out->v), cmp_object);
	return 0;
}

bool cairn_object_set_has(const struct cairn_object_set *s, const cairn_id *id, uint64_t *size)
{
	const struct cairn_object *o =
		s->n ? bsearch(id, s->v, s->n, sizeof(*s->v), cmp_object) : NULL;
	if (o && size)
		*size = o->size;
	return o != NULL;
}

void cairn_object_set_free(struct cairn_object_set *s)
{
	free(s->v);
	memset(s, 0, sizeof(*s));
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
