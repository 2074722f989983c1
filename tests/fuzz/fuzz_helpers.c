/* See fuzz_helpers.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "fuzz_helpers.h"

uint8_t fuzz_u8(struct fuzz_in *in)
{
	if (!in->n)
		return 0;
	in->n--;
	return *in->p++;
}

uint32_t fuzz_u32(struct fuzz_in *in)
{
	uint32_t v = 0;
	for (int i = 0; i < 4; i++)
		v |= (uint32_t)fuzz_u8(in) << (8 * i);
	return v;
}

const uint8_t *fuzz_bytes(struct fuzz_in *in, size_t len, size_t *got)
{
	const uint8_t *p = in->p;
	*got = MIN(len, in->n);
	in->p += *got;
	in->n -= *got;
	return p;
}

static void *must(void *p)
{
	if (!p)
		abort();
	return p;
}

char *fuzz_strdup(const uint8_t *data, size_t len)
{
	char *s = must(malloc(len + 1));
	memcpy(s, data, len);
	s[len] = '\0';
	return s;
}

/* ---- a backend holding its objects in memory ---- */

struct mem_object {
	char *name;
	struct buf data;
};

struct mem_backend {
	struct cairn_backend base;
	struct mem_object *v;
	size_t n;
};

static struct mem_backend *to_mem(struct cairn_backend *b) { return (struct mem_backend *)b; }

static struct mem_object *mem_find(struct cairn_backend *b, const char *name)
{
	struct mem_backend *m = to_mem(b);
	for (size_t i = 0; i < m->n; i++)
		if (!strcmp(m->v[i].name, name))
			return &m->v[i];
	return NULL;
}

static int mem_put(struct cairn_backend *b, const char *name, const void *data, size_t len)
{
	struct mem_object *o = mem_find(b, name);
	if (!o) {
		struct mem_backend *m = to_mem(b);
		m->v = must(realloc(m->v, (m->n + 1) * sizeof(*m->v)));
		o = &m->v[m->n++];
		*o = (struct mem_object){ .name = must(strdup(name)) };
	}
	o->data.len = 0;
	return buf_append(&o->data, data, len);
}

static int mem_get(struct cairn_backend *b, const char *name, struct buf *out)
{
	const struct mem_object *o = mem_find(b, name);
	if (!o)
		return -ENOENT;
	out->len = 0;
	return buf_append(out, o->data.p, o->data.len);
}

static int mem_get_range(struct cairn_backend *b, const char *name, uint64_t off, size_t len,
			 void *out)
{
	const struct mem_object *o = mem_find(b, name);
	if (!o)
		return -ENOENT;
	if (off > o->data.len || len > o->data.len - off)
		return -EIO;
	if (len) /* an empty object has no buffer */
		memcpy(out, o->data.p + off, len);
	return 0;
}

static int mem_stat(struct cairn_backend *b, const char *name, uint64_t *size)
{
	const struct mem_object *o = mem_find(b, name);
	if (!o)
		return -ENOENT;
	*size = o->data.len;
	return 0;
}

/* like the local backend: "dir/NAME", and "data/xx/NAME" for data */
static int mem_list(struct cairn_backend *b, const char *dir, cairn_list_fn fn, void *opaque)
{
	struct mem_backend *m = to_mem(b);
	size_t dl = strlen(dir);
	for (size_t i = 0; i < m->n; i++) {
		const char *name = m->v[i].name;
		if (strncmp(name, dir, dl) || name[dl] != '/')
			continue;
		const char *last = strrchr(name, '/') + 1;
		int rc = fn(opaque, last, m->v[i].data.len);
		if (rc)
			return rc;
	}
	return 0;
}

static int mem_remove(struct cairn_backend *b, const char *name)
{
	struct mem_object *o = mem_find(b, name);
	if (!o)
		return -ENOENT;
	struct mem_backend *m = to_mem(b);
	free(o->name);
	buf_free(&o->data);
	*o = m->v[--m->n];
	return 0;
}

static void mem_free(struct cairn_backend *b)
{
	struct mem_backend *m = to_mem(b);
	for (size_t i = 0; i < m->n; i++) {
		free(m->v[i].name);
		buf_free(&m->v[i].data);
	}
	free(m->v);
	free(m->base.location);
	free(m);
}

static const struct cairn_backend_ops mem_ops = {
	.put = mem_put,
	.get = mem_get,
	.get_range = mem_get_range,
	.stat = mem_stat,
	.list = mem_list,
	.remove = mem_remove,
	.free = mem_free,
};

/* ---- the repository ---- */

struct cairn_repo *fuzz_repo(bool encrypted)
{
	struct cairn_repo *r = must(calloc(1, sizeof(*r)));
	pthread_mutex_init(&r->lock, NULL);
	pthread_rwlock_init(&r->idx_lock, NULL);
	pthread_cond_init(&r->lock_cond, NULL);
	struct mem_backend *m = must(calloc(1, sizeof(*m)));
	m->base.ops = &mem_ops;
	m->base.location = must(strdup("mem:fuzz"));
	r->be = &m->base;
	memset(r->id, 'f', 64);
	r->chunk_size = CAIRN_MIN_CHUNK;
	r->pack_size = CAIRN_DEFAULT_PACK;
	r->level = CAIRN_DEFAULT_LEVEL;
	r->encrypted = encrypted;
	/* the fixed test key: inputs stay reproducible */
	memset(r->k_enc, 0x5a, KEY_LEN);
	memset(r->k_id, 0xa5, KEY_LEN);
	return r;
}

void fuzz_put(struct cairn_repo *r, const char *name, const void *data, size_t len)
{
	if (mem_put(r->be, name, data, len) < 0)
		abort();
}

void fuzz_put_hashed(struct cairn_repo *r, const char *dir, const void *data, size_t len)
{
	uint8_t id[CAIRN_ID_LEN];
	char hex[65], name[128];
	sha256(data, len, id);
	hex_encode(id, sizeof(id), hex);
	if (!strcmp(dir, "data"))
		snprintf(name, sizeof(name), "data/%.2s/%s", hex, hex);
	else
		snprintf(name, sizeof(name), "%s/%s", dir, hex);
	fuzz_put(r, name, data, len);
}

void fuzz_envelope(const struct cairn_repo *r, const uint8_t *in, size_t len, bool raw,
		   struct buf *out)
{
	out->len = 0;
	if (!r->encrypted || raw || len < 4) {
		if (buf_append(out, in, len) < 0)
			abort();
		return;
	}
	uint8_t hdr[4] = { in[0], in[1], in[2], in[3] | BLOB_F_AES };
	if (buf_reserve(out, len + NONCE_LEN + TAG_LEN) < 0 ||
	    aead_seal(r->k_enc, hdr, sizeof(hdr), in + 4, len - 4, out->p + 4) < 0)
		abort();
	memcpy(out->p, hdr, 4);
	out->len = len + NONCE_LEN + TAG_LEN;
}

struct cairn_repo *fuzz_repo_with_envelope(const uint8_t *data, size_t size, const char *dir)
{
	struct fuzz_in in = { data, size };
	uint8_t mode = fuzz_u8(&in);
	struct cairn_repo *r = fuzz_repo(mode & FUZZ_ENCRYPTED);
	struct buf env = { 0 };
	fuzz_envelope(r, in.p, in.n, mode & FUZZ_RAW, &env);
	fuzz_put_hashed(r, dir, env.p, env.len);
	buf_free(&env);
	return r;
}
