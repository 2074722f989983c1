/* The in-memory index: an open-addressing hash table of blob locations,
 * and the 48-byte entry both packs and index files store (docs/design.md
 * sections 6 and 7). */
#include <errno.h>

#include "internal.h"

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

int id_cmp(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(cairn_id));
}
