/* Loading the in-memory index from the index files, with every copy that
 * writers must not reuse (in a pack gc condemned, or damaged) marked so.
 * Above the records it consults: gc's condemned lists and check's damage
 * records are loaded first, by their owners, then only looked up. */
#include <errno.h>
#include <stdio.h>

#include "internal.h"

struct table_fill {
	struct idx_table *t;
	const struct cairn_repo *r;
};

static int add_to_table(void *opaque, const cairn_id *pack, struct idx_entry *e, size_t n)
{
	struct table_fill *f = opaque;
	uint32_t num;
	int rc = idx_add_pack(f->t, pack, &num);
	bool condemned = pack_condemned(f->r, pack);
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
			repo_warn(r, "index file index/%s is damaged (%s); skipped "
				  "(cairn repair index %s rebuilds the index from the packs)",
				  names.v[i], lrc == -EBADMSG ? "bad checksum or format" : strerror(-lrc),
				  r->be->location);
	}
	name_list_free(&names);
	buf_free(&raw);
	buf_free(&plain);
	if (rc < 0)
		return repo_err(r, rc, "cannot load index: %s", strerror(-rc));
	r->index_loaded = true;
	return 0;
}
