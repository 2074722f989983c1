/* The in-memory index (hash table of blob locations) and index files
 * (docs/design.md section 7). */
#include <errno.h>
#include <stdio.h>

#include "internal.h"

#define INDEX_MAGIC "CAIRNIX1"

static size_t slot_of(const struct idx_table *t, const cairn_id *id)
{
	uint64_t h;
	memcpy(&h, id->b, sizeof(h)); /* ids are uniformly distributed */
	return (size_t)(((unsigned __int128)h * t->cap) >> 64);
}

static size_t next_slot(const struct idx_table *t, size_t i)
{
	return i + 1 == t->cap ? 0 : i + 1;
}

static size_t cap_for(size_t count)
{
	size_t cap = count * 100 / (IDX_MAX_LOAD_PCT - 5) + 64;
	return cap < 1024 ? 1024 : cap;
}

static bool slot_free(const struct idx_entry *e)
{
	return !memcmp(&e->id, &cairn_zero_id, sizeof(e->id));
}

int idx_table_init(struct idx_table *t, size_t expect)
{
	size_t cap = cap_for(expect);
	memset(t, 0, sizeof(*t));
	t->slots = calloc(cap, sizeof(*t->slots));
	if (!t->slots)
		return -ENOMEM;
	t->cap = cap;
	return 0;
}

void idx_table_free(struct idx_table *t)
{
	free(t->slots);
	free(t->packs);
	memset(t, 0, sizeof(*t));
}

struct idx_entry *idx_lookup(const struct idx_table *t, const cairn_id *id)
{
	if (!t->cap)
		return NULL;
	for (size_t i = slot_of(t, id);; i = next_slot(t, i)) {
		struct idx_entry *e = &t->slots[i];
		if (slot_free(e))
			return NULL;
		if (!memcmp(&e->id, id, sizeof(*id)))
			return e;
	}
}

static int idx_grow(struct idx_table *t, size_t want)
{
	struct idx_table n = *t;
	n.cap = cap_for(want);
	n.slots = calloc(n.cap, sizeof(*n.slots));
	if (!n.slots)
		return -ENOMEM;
	for (size_t i = 0; i < t->cap; i++) {
		if (slot_free(&t->slots[i]))
			continue;
		size_t j = slot_of(&n, &t->slots[i].id);
		while (!slot_free(&n.slots[j]))
			j = next_slot(&n, j);
		n.slots[j] = t->slots[i];
	}
	free(t->slots);
	t->slots = n.slots;
	t->cap = n.cap;
	return 0;
}

int idx_insert(struct idx_table *t, const struct idx_entry *e,
	       struct idx_entry **out)
{
	if (!memcmp(&e->id, &cairn_zero_id, sizeof(e->id)))
		return -EINVAL;
	if ((t->count + 1) * 100 > t->cap * IDX_MAX_LOAD_PCT) {
		int rc = idx_grow(t, t->count + t->count / 2);
		if (rc < 0)
			return rc;
	}
	size_t i = slot_of(t, &e->id);
	for (;; i = next_slot(t, i)) {
		struct idx_entry *s = &t->slots[i];
		if (slot_free(s))
			break;
		if (!memcmp(&s->id, &e->id, sizeof(e->id))) {
			/* a new write replaces a copy that gc condemned: the
			 * writer stores the blob again rather than reuse it */
			if (s->condemned && !e->condemned && e->pack == PACK_PENDING) {
				*s = *e;
				if (out)
					*out = s;
				return 1;
			}
			/* a committed copy beats a pending or condemned one */
			if ((s->pack == PACK_PENDING && e->pack != PACK_PENDING) ||
			    (s->condemned && !e->condemned))
				*s = *e;
			if (out)
				*out = s;
			return 0;
		}
	}
	t->slots[i] = *e;
	t->count++;
	if (out)
		*out = &t->slots[i];
	return 1;
}

int idx_add_pack(struct idx_table *t, const cairn_id *pack, uint32_t *num)
{
	if (array_grow(&t->packs, &t->packs_cap, t->npacks, sizeof(*t->packs)) < 0)
		return -ENOMEM;
	t->packs[t->npacks] = *pack;
	*num = (uint32_t)t->npacks++;
	return 0;
}

void entry_pack(uint8_t out[ENTRY_LEN], const struct idx_entry *e)
{
	memcpy(out, e->id.b, CAIRN_ID_LEN);
	out[32] = e->type;
	out[33] = e->flags;
	out[34] = out[35] = 0;
	put_le32(out + 36, e->offset);
	put_le32(out + 40, e->stored_len);
	put_le32(out + 44, e->raw_len);
}

void entry_unpack(struct idx_entry *e, const uint8_t in[ENTRY_LEN])
{
	memcpy(e->id.b, in, CAIRN_ID_LEN);
	e->type = in[32];
	e->flags = in[33];
	e->offset = get_le32(in + 36);
	uint32_t stored = get_le32(in + 40);
	/* a length no writer produces: kept out of range so reading it fails */
	e->stored_len = stored > IDX_MAX_STORED ? IDX_MAX_STORED : stored;
	e->raw_len = get_le32(in + 44);
	e->pack = PACK_PENDING;
	e->condemned = false;
}

int index_encode(const struct cairn_repo *r, const cairn_id *packs,
		 struct idx_entry **entries, const size_t *counts,
		 size_t npacks, struct buf *out)
{
	(void)r;
	uint8_t tmp[ENTRY_LEN];
	out->len = 0;
	int rc = buf_append(out, INDEX_MAGIC, 8);
	put_le32(tmp, (uint32_t)npacks);
	if (rc == 0)
		rc = buf_append(out, tmp, 4);
	for (size_t i = 0; rc == 0 && i < npacks; i++) {
		rc = buf_append(out, packs[i].b, CAIRN_ID_LEN);
		put_le32(tmp, (uint32_t)counts[i]);
		if (rc == 0)
			rc = buf_append(out, tmp, 4);
		for (size_t j = 0; rc == 0 && j < counts[i]; j++) {
			entry_pack(tmp, &entries[i][j]);
			rc = buf_append(out, tmp, ENTRY_LEN);
		}
	}
	return rc;
}

int index_write(struct cairn_repo *r, const struct buf *plain, cairn_id *id)
{
	struct buf sealed = { 0 };
	int rc = envelope_seal(r, ENV_INDEX, plain->p, plain->len, &sealed);
	if (rc == 0)
		rc = put_hashed(r, "index", &sealed, id);
	buf_free(&sealed);
	return rc;
}

int index_walk(const uint8_t *p, size_t len, index_pack_fn fn, void *opaque)
{
	if (len < 12 || memcmp(p, INDEX_MAGIC, 8))
		return -EBADMSG;
	uint32_t npacks = get_le32(p + 8);
	size_t off = 12;
	struct idx_entry *entries = NULL;
	size_t cap = 0;
	int rc = 0;
	for (uint32_t i = 0; rc == 0 && i < npacks; i++) {
		if (len - off < CAIRN_ID_LEN + 4) {
			rc = -EBADMSG;
			break;
		}
		cairn_id pack;
		memcpy(pack.b, p + off, CAIRN_ID_LEN);
		uint32_t n = get_le32(p + off + CAIRN_ID_LEN);
		off += CAIRN_ID_LEN + 4;
		if ((len - off) / ENTRY_LEN < n) {
			rc = -EBADMSG;
			break;
		}
		if (n > cap) {
			free(entries);
			cap = n;
			if (!(entries = malloc(cap * sizeof(*entries)))) {
				rc = -ENOMEM;
				break;
			}
		}
		for (uint32_t j = 0; j < n; j++, off += ENTRY_LEN)
			entry_unpack(&entries[j], p + off);
		rc = fn(opaque, &pack, entries, n);
	}
	free(entries);
	if (rc == 0 && off != len)
		rc = -EBADMSG;
	return rc;
}

struct table_fill {
	struct idx_table *t;
	const struct cairn_repo *r;
};

static int add_to_table(void *opaque, const cairn_id *pack, struct idx_entry *e, size_t n)
{
	struct table_fill *f = opaque;
	uint32_t num;
	int rc = idx_add_pack(f->t, pack, &num);
	bool condemned = gc_pack_condemned(f->r, pack);
	for (size_t j = 0; rc >= 0 && j < n; j++) {
		e[j].pack = num;
		e[j].condemned = condemned || damage_known(f->r, pack, &e[j].id);
		rc = idx_insert(f->t, &e[j], NULL);
	}
	return rc < 0 ? rc : 0;
}

/* Parses one decoded index file into the table. */
static int index_parse(struct cairn_repo *r, const uint8_t *p, size_t len)
{
	struct table_fill f = { &r->idx, r };
	return index_walk(p, len, add_to_table, &f);
}

struct sized_names {
	struct name_list names;
	uint64_t bytes;
};

static int collect_sized(void *opaque, const char *name, uint64_t size)
{
	struct sized_names *s = opaque;
	s->bytes += size;
	return collect_name(&s->names, name, size);
}

int cairn_repo_load_index(struct cairn_repo *r)
{
	struct sized_names sized = { 0 };
	struct name_list names;
	struct buf raw = { 0 }, plain = { 0 };
	int rc = r->be->ops->list(r->be, "index", collect_sized, &sized);
	names = sized.names;
	if (rc < 0) {
		name_list_free(&names);
		return repo_err(r, rc, "cannot list index/ in %s: %s", r->be->location,
				strerror(-rc));
	}
	idx_table_free(&r->idx);
	/* sized for what the files hold (entries barely compress), so the
	 * table never doubles while loading */
	rc = idx_table_init(&r->idx, (size_t)(sized.bytes / ENTRY_LEN) + 4096);
	/* first, so that copies outside condemned packs win in the table */
	if (rc == 0)
		rc = gc_load_condemned(r);
	if (rc == 0)
		rc = damage_load(r);
	for (size_t i = 0; rc == 0 && i < names.n; i++) {
		int lrc = get_hashed(r, "index", names.v[i], &raw);
		if (lrc == 0)
			lrc = envelope_open(r, ENV_INDEX, raw.p, raw.len, &plain);
		if (lrc == 0)
			lrc = index_parse(r, plain.p, plain.len);
		if (lrc == -ENOMEM)
			rc = lrc;
		else if (lrc < 0)
			repo_warn(r, "index file index/%s is damaged (%s); skipped",
				  names.v[i], lrc == -EBADMSG ? "bad checksum or format" : strerror(-lrc));
	}
	name_list_free(&names);
	buf_free(&raw);
	buf_free(&plain);
	if (rc < 0)
		return repo_err(r, rc, "cannot load index: %s", strerror(-rc));
	r->index_loaded = true;
	return 0;
}
