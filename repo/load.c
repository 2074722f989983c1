/* Loading the in-memory index from the index files, with every copy that
 * writers must not reuse (in a pack gc condemned, or damaged) marked so.
 * Above the records it consults: gc's condemned lists and check's damage
 * records are loaded first, by their owners, then only looked up. */
#include <errno.h>
#include <stdio.h>

#include "base/pipeline.h"
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

/* gc's condemned lists and check's damage records load beside the
 * index's listing: over a WAN three listings cost one round trip, not
 * three. */
struct side_load {
	struct cairn_repo *r;
	int (*load)(struct cairn_repo *r);
	int rc;
};

static void side_load_run(void *arg)
{
	struct side_load *s = arg;
	s->rc = s->load(s->r);
}

/* The index files are fetched and decoded several at once (ahead of the
 * parse, up to the store's connections) and parsed in name order. */
struct index_fetch {
	struct cairn_repo *r;
	const struct name_list *names;
	struct buf *raw, *plain; /* per slot */
	int *rc; /* per slot */
};

static int index_work(void *ctx, uint64_t seq, unsigned slot)
{
	struct index_fetch *x = ctx;
	int rc = get_hashed(x->r, "index", x->names->v[seq], &x->raw[slot]);
	if (rc == 0)
		rc = envelope_open(x->r, ENV_INDEX, x->raw[slot].p, x->raw[slot].len,
				   &x->plain[slot]);
	x->rc[slot] = rc;
	return rc == -ENOMEM ? rc : 0;
}

static int index_consume(void *ctx, uint64_t seq, unsigned slot)
{
	struct index_fetch *x = ctx;
	int rc = x->rc[slot];
	if (rc == 0)
		rc = index_parse(x->r, x->plain[slot].p, x->plain[slot].len);
	if (rc == -ENOMEM)
		return rc;
	if (rc < 0)
		repo_warn(x->r, "index file index/%s is damaged (%s); skipped "
			  "(cairn repair index %s rebuilds the index from the packs)",
			  x->names->v[seq], rc == -EBADMSG ? "bad checksum or format" : strerror(-rc),
			  x->r->be->location);
	return 0;
}

static int load_index_files(struct cairn_repo *r, const struct name_list *names)
{
	unsigned workers = (unsigned)MAX(1, MIN((size_t)cairn_repo_read_workers(r), names->n));
	unsigned slots = workers * 2;
	struct index_fetch x = { .r = r, .names = names, .raw = calloc(slots, sizeof(struct buf)),
				 .plain = calloc(slots, sizeof(struct buf)),
				 .rc = calloc(slots, sizeof(int)) };
	static const struct cairn_pipeline_ops ops = { .work = index_work,
						       .consume = index_consume };
	int rc = x.raw && x.plain && x.rc ? cairn_pipeline_run(&ops, &x, names->n, workers, slots)
					  : -ENOMEM;
	for (unsigned i = 0; x.raw && x.plain && i < slots; i++) {
		buf_free(&x.raw[i]);
		buf_free(&x.plain[i]);
	}
	free(x.raw);
	free(x.plain);
	free(x.rc);
	return rc;
}

int cairn_repo_load_index(struct cairn_repo *r)
{
	struct sized_names sized = { 0 };
	/* first, so that copies outside condemned packs win in the table */
	struct side_load condemned = { .r = r, .load = gc_load_condemned };
	struct side_load damage = { .r = r, .load = damage_load };
	struct cairn_beside c_task, d_task;
	cairn_beside_start(&c_task, side_load_run, &condemned);
	cairn_beside_start(&d_task, side_load_run, &damage);
	int rc = r->be->ops->list(r->be, "index", collect_sized, &sized);
	cairn_beside_join(&c_task);
	cairn_beside_join(&d_task);
	int crc = condemned.rc, drc = damage.rc;
	struct name_list names = sized.names;
	if (rc < 0) {
		name_list_free(&names);
		return repo_err(r, rc, "cannot list index/ in %s: %s", r->be->location,
				strerror(-rc));
	}
	rc = crc < 0 ? crc : drc;
	idx_table_free(&r->idx);
	/* sized for what the files hold (entries barely compress), so the
	 * table never doubles while loading */
	if (rc == 0)
		rc = idx_table_init(&r->idx, (size_t)(sized.bytes / ENTRY_LEN) + 4096);
	if (rc == 0)
		rc = load_index_files(r, &names);
	name_list_free(&names);
	if (rc < 0)
		return repo_err(r, rc, "cannot load index: %s", strerror(-rc));
	r->index_loaded = true;
	return 0;
}
