/* check, repair index and stats: whole-repository walks. */
#include <errno.h>
#include <stdio.h>

#include "internal.h"
#include "base/pipeline.h"

struct pack_file {
	cairn_id id;
	uint64_t size;
};

struct pack_list {
	struct pack_file *v;
	size_t n, cap;
};

static int collect_pack(void *opaque, const char *name, uint64_t size)
{
	struct pack_list *l = opaque;
	cairn_id id;
	if (hex_decode(name, id.b, CAIRN_ID_LEN) < 0)
		return 0; /* not a pack name: ignore stray files */
	if (array_grow(&l->v, &l->cap, l->n, sizeof(*l->v)) < 0)
		return -ENOMEM;
	l->v[l->n++] = (struct pack_file){ id, size };
	return 0;
}

static int cmp_pack(const void *a, const void *b)
{
	return memcmp(a, b, CAIRN_ID_LEN);
}

static int list_packs(struct cairn_repo *r, struct pack_list *l)
{
	memset(l, 0, sizeof(*l));
	int rc = r->be->ops->list(r->be, "data", collect_pack, l);
	if (rc < 0) {
		free(l->v);
		return repo_err(r, rc, "cannot list packs: %s", strerror(-rc));
	}
	if (l->n)
		qsort(l->v, l->n, sizeof(*l->v), cmp_pack);
	return 0;
}

static const struct pack_file *find_pack(const struct pack_list *l, const cairn_id *id)
{
	return l->n ? bsearch(id, l->v, l->n, sizeof(*l->v), cmp_pack) : NULL;
}

/* Per-pack verification result, filled by a worker. */
struct pack_verdict {
	char problem[300];
	bool damaged; /* every blob of the pack is suspect */
	cairn_id *bad; /* individual bad blobs */
	size_t nbad;
};

struct check_ctx {
	struct cairn_repo *r;
	struct pack_list *packs;
	bool read_data;
	bool *read_pack; /* per pack list position: read in full this time */
	cairn_id *read_ok; /* packs read in full without a problem */
	size_t nread_ok, read_ok_cap;
	struct damage_list damage;
	struct pack_verdict *verdicts; /* per slot */
	struct idx_table bad; /* ids of blobs found damaged or missing */
	bool *pack_bad; /* per index pack number */
	uint32_t *pack_num; /* pack list position -> index pack number or -1 */
	cairn_report_fn report;
	void *opaque;
	int problems;
};

static int add_bad(struct pack_verdict *v, const cairn_id *id)
{
	cairn_id *n = realloc(v->bad, (v->nbad + 1) * sizeof(*n));
	if (!n)
		return -ENOMEM;
	v->bad = n;
	v->bad[v->nbad++] = *id;
	return 0;
}

static int verify_pack_data(struct cairn_repo *r, const struct pack_file *pf,
			    struct pack_verdict *v)
{
	char hex[65];
	struct buf data = { 0 };
	hex_encode(pf->id.b, CAIRN_ID_LEN, hex);
	int rc = get_hashed(r, "data", hex, &data);
	if (rc == -EBADMSG)
		snprintf(v->problem, sizeof(v->problem),
			 "pack %s: content does not match its name (damaged)", hex);
	else if (rc < 0)
		snprintf(v->problem, sizeof(v->problem), "pack %s: cannot read: %s", hex,
			 strerror(-rc));
	/* go on with a damaged pack to find which blobs are still good */
	struct idx_entry *ents = NULL;
	size_t n = 0;
	int drc = rc == 0 || rc == -EBADMSG
			  ? pack_parse_directory(r, data.p, data.len, &ents, &n)
			  : rc;
	if (drc < 0) {
		if (!v->problem[0])
			snprintf(v->problem, sizeof(v->problem),
				 "pack %s: directory is damaged", hex);
		v->damaged = true;
		buf_free(&data);
		return drc == -ENOMEM ? drc : 0;
	}
	uint8_t *plain = NULL;
	size_t plain_cap = 0;
	struct scratch *sc = scratch_get(r);
	if (!sc)
		drc = -ENOMEM;
	for (size_t i = 0; sc && i < n; i++) {
		if (ents[i].raw_len > plain_cap) {
			free(plain);
			plain_cap = ents[i].raw_len;
			if (!(plain = malloc(plain_cap))) {
				drc = -ENOMEM;
				break;
			}
		}
		if (blob_decode(r, sc, &ents[i], data.p + ents[i].offset, plain, true) < 0) {
			if (!v->problem[0]) {
				char bh[65];
				hex_encode(ents[i].id.b, CAIRN_ID_LEN, bh);
				snprintf(v->problem, sizeof(v->problem),
					 "pack %s: blob %.16s is damaged", hex, bh);
			}
			if ((drc = add_bad(v, &ents[i].id)) < 0)
				break;
		}
	}
	/* a bad pack hash with all blobs fine means damage in padding or the
	 * directory; the blobs themselves are usable */
	if (sc)
		scratch_put(r, sc);
	free(plain);
	free(ents);
	buf_free(&data);
	return drc;
}

static int check_work(void *opaque, uint64_t seq, unsigned slot)
{
	struct check_ctx *c = opaque;
	struct pack_verdict *v = &c->verdicts[slot];
	const struct pack_file *pf = &c->packs->v[seq];
	free(v->bad);
	memset(v, 0, sizeof(*v));
	if (c->read_data && c->read_pack[seq])
		return verify_pack_data(c->r, pf, v);
	char hex[65];
	struct idx_entry *ents = NULL;
	size_t n;
	hex_encode(pf->id.b, CAIRN_ID_LEN, hex);
	int rc = pack_read_directory(c->r, hex, pf->size, &ents, &n);
	free(ents);
	if (rc == -ENOMEM)
		return rc;
	if (rc < 0) {
		snprintf(v->problem, sizeof(v->problem),
			 "pack %s: truncated or damaged (cannot read its directory)", hex);
		v->damaged = true;
	}
	return 0;
}

static int check_noop(void *opaque, uint64_t seq, unsigned slot)
{
	(void)opaque;
	(void)seq;
	(void)slot;
	return 0;
}

static int check_consume(void *opaque, uint64_t seq, unsigned slot)
{
	struct check_ctx *c = opaque;
	struct pack_verdict *v = &c->verdicts[slot];
	if (v->problem[0]) {
		reportf(c->report, c->opaque, "%s", v->problem);
		c->problems++;
	}
	const cairn_id *pack = &c->packs->v[seq].id;
	if (v->damaged && c->pack_num[seq] != UINT32_MAX)
		c->pack_bad[c->pack_num[seq]] = true;
	if (v->damaged && damage_add(&c->damage, pack, NULL) < 0)
		return -ENOMEM;
	for (size_t i = 0; i < v->nbad; i++) {
		/* the damaged copy: another pack may hold a good one */
		struct idx_entry e = { .id = v->bad[i], .pack = c->pack_num[seq] };
		int rc = idx_insert(&c->bad, &e, NULL);
		if (rc < 0 || damage_add(&c->damage, pack, &v->bad[i]) < 0)
			return -ENOMEM;
	}
	if (c->read_data && c->read_pack[seq] && !v->problem[0] && !v->damaged && !v->nbad) {
		if (array_grow(&c->read_ok, &c->read_ok_cap, c->nread_ok, sizeof(cairn_id)) < 0)
			return -ENOMEM;
		c->read_ok[c->nread_ok++] = *pack;
	}
	return 0;
}

/* Every indexed blob must lie inside an existing pack. */
static int check_index_entries(struct check_ctx *c)
{
	struct cairn_repo *r = c->r;
	bool *reported = calloc(r->idx.npacks + 1, sizeof(bool));
	if (!reported)
		return -ENOMEM;
	for (size_t i = 0; i < r->idx.cap; i++) {
		struct idx_entry *e = &r->idx.slots[i];
		if (!memcmp(&e->id, &cairn_zero_id, sizeof(e->id)) || e->pack == PACK_PENDING)
			continue;
		const struct pack_file *pf = find_pack(c->packs, &r->idx.packs[e->pack]);
		if (pf && (uint64_t)e->offset + e->stored_len <= pf->size)
			continue;
		c->pack_bad[e->pack] = true;
		if (!reported[e->pack]) {
			char hex[65];
			hex_encode(r->idx.packs[e->pack].b, CAIRN_ID_LEN, hex);
			reportf(c->report, c->opaque, "pack %s: %s", hex,
			       pf ? "shorter than the index says (truncated)"
				  : "in the index but missing");
			c->problems++;
			reported[e->pack] = true;
		}
	}
	free(reported);
	return 0;
}

static bool blob_ok(const struct check_ctx *c, const cairn_id *id)
{
	const struct idx_entry *e = idx_lookup(&c->r->idx, id);
	if (!e || e->pack == PACK_PENDING || c->pack_bad[e->pack])
		return false;
	const struct idx_entry *bad = idx_lookup(&c->bad, id);
	return !bad || bad->pack != e->pack;
}

/* The firmware state files of a snapshot whose chunks are missing or
 * damaged. */
static void check_firmware(struct check_ctx *c, const struct cairn_snapshot *s, const char *id)
{
	for (size_t f = 0; f < s->nfirmware; f++) {
		const struct cairn_firmware_file *fw = &s->firmware[f];
		size_t bad = 0;
		for (size_t ch = 0; ch < fw->nchunks; ch++)
			if (memcmp(&fw->chunks[ch], &cairn_zero_id, sizeof(cairn_id)) &&
			    !blob_ok(c, &fw->chunks[ch]))
				bad++;
		if (bad) {
			reportf(c->report, c->opaque,
			       "snapshot %.12s (%s) %s state %s: %zu of %zu chunks missing or damaged",
			       id, s->name, fw->kind, fw->path, bad, fw->nchunks);
			c->problems++;
		}
	}
}

/* Lists the damage as affected snapshots, disks and firmware state. */
static int check_snapshots(struct check_ctx *c)
{
	struct cairn_repo *r = c->r;
	struct cairn_snapshot **v;
	size_t n;
	size_t warn_before = r->nwarnings;
	int rc = cairn_snapshot_list(r, &v, &n);
	if (rc < 0)
		return rc;
	for (size_t i = warn_before; i < r->nwarnings; i++) {
		reportf(c->report, c->opaque, "%s", r->warnings[i]);
		c->problems++;
	}
	for (size_t i = 0; rc == 0 && i < n; i++) {
		char id[65];
		hex_encode(v[i]->id.b, CAIRN_ID_LEN, id);
		check_firmware(c, v[i], id);
		for (size_t k = 0; k < v[i]->ndisks; k++) {
			struct cairn_disk *d = &v[i]->disks[k];
			bool pages_ok = true;
			for (size_t p = 0; p < d->npages; p++)
				pages_ok &= blob_ok(c, &d->pages[p]);
			int lrc = pages_ok ? cairn_snapshot_load_map(r, d) : -EBADMSG;
			if (lrc == -ENOMEM) {
				rc = lrc;
				break;
			}
			if (lrc < 0) {
				reportf(c->report, c->opaque,
				       "snapshot %.12s (%s) disk %s: chunk map unreadable", id,
				       v[i]->name, d->name);
				c->problems++;
				continue;
			}
			uint64_t bad = 0;
			for (uint64_t ch = 0; ch < d->nchunks; ch++)
				if (memcmp(&d->map[ch], &cairn_zero_id, sizeof(cairn_id)) &&
				    !blob_ok(c, &d->map[ch]))
					bad++;
			if (bad) {
				reportf(c->report, c->opaque,
				       "snapshot %.12s (%s) disk %s: %llu of %llu chunks missing or damaged",
				       id, v[i]->name, d->name, (unsigned long long)bad,
				       (unsigned long long)d->nchunks);
				c->problems++;
			}
			free(d->map);
			d->map = NULL;
		}
	}
	cairn_snapshot_list_free(v, n);
	return rc;
}

/* Which packs this run reads in full: all, one part of n by the first byte
 * of the pack id, or the given share of those read longest ago. */
static int choose_packs(struct check_ctx *c, const struct cairn_check_opts *o)
{
	size_t n = c->packs->n;
	if (!(c->read_pack = calloc(n + 1, sizeof(bool))))
		return -ENOMEM;
	if (!o->read_data)
		return 0;
	if (o->nparts) {
		for (size_t i = 0; i < n; i++)
			c->read_pack[i] = c->packs->v[i].id.b[0] % o->nparts == o->part - 1;
		return 0;
	}
	if (!o->subset_pct || o->subset_pct >= 100) {
		for (size_t i = 0; i < n; i++)
			c->read_pack[i] = true;
		return 0;
	}
	struct check_age *ages = NULL;
	int rc = check_ages(c->r, c->packs->v, n, sizeof(*c->packs->v), &ages);
	if (rc < 0)
		return rc;
	size_t want = (n * o->subset_pct + 99) / 100;
	for (size_t i = 0; i < want && i < n; i++)
		c->read_pack[ages[i].pos] = true;
	free(ages);
	return 0;
}

int cairn_repo_check(struct cairn_repo *r, const struct cairn_check_opts *o)
{
	cairn_report_fn fn = o->report;
	void *opaque = o->opaque;
	struct check_ctx c = { .r = r, .read_data = o->read_data, .report = fn,
			       .opaque = opaque };
	struct pack_list packs;
	size_t warn_before = r->nwarnings;
	/* a host key cannot open disk data: only the structure is its to
	 * check (putting back an overwritten object only adds its own bytes) */
	int rc = o->read_data ? cairn_repo_need_full(r) : 0;
	if (rc < 0)
		return rc;
	/* before the index and damage records are loaded: what it puts back
	 * is then read as it was written */
	struct cairn_overwrite_opts ow = { .repair = o->repair, .report = fn,
					   .repaired = o->repaired, .notice = o->notice,
					   .opaque = opaque };
	struct cairn_overwrite_result owr;
	rc = cairn_repo_overwrite_scan(r, &ow, &owr);
	if (rc < 0)
		return rc;
	/* counted even when put back: an overwrite means a writer's
	 * credentials were misused, which the exit status must say */
	c.problems += (int)owr.found;
	if (o->restored)
		*o->restored = owr.restored;
	rc = cairn_repo_load_index(r);
	if (rc < 0)
		return rc;
	for (size_t i = warn_before; i < r->nwarnings; i++) {
		reportf(fn, opaque, "%s", r->warnings[i]);
		c.problems++;
	}
	if ((rc = list_packs(r, &packs)) < 0)
		return rc;
	c.packs = &packs;
	unsigned workers = o->threads > 0 ? (unsigned)o->threads : cairn_repo_read_workers(r);
	unsigned slots = workers * 2;
	c.verdicts = calloc(slots, sizeof(*c.verdicts));
	c.pack_bad = calloc(r->idx.npacks + 1, sizeof(bool));
	c.pack_num = malloc((packs.n + 1) * sizeof(uint32_t));
	rc = c.verdicts && c.pack_bad && c.pack_num ? idx_table_init(&c.bad, 64) : -ENOMEM;
	if (rc == 0)
		rc = choose_packs(&c, o);
	for (size_t i = 0; rc == 0 && i < packs.n; i++)
		c.pack_num[i] = UINT32_MAX;
	for (size_t i = 0; rc == 0 && i < r->idx.npacks; i++) {
		const struct pack_file *pf = find_pack(&packs, &r->idx.packs[i]);
		if (pf)
			c.pack_num[pf - packs.v] = (uint32_t)i;
	}
	if (rc == 0)
		rc = check_index_entries(&c);
	if (rc == 0) {
		const struct cairn_pipeline_ops ops = {
			.produce = check_noop, .work = check_work, .consume = check_consume };
		rc = cairn_pipeline_run(&ops, &c, packs.n, workers, slots);
	}
	if (rc == 0)
		rc = check_snapshots(&c);
	/* what was read and what was found, for the next runs and backups */
	if (rc == 0 && o->read_data && !o->dry_records)
		rc = check_record(r, c.read_ok, c.nread_ok);
	if (rc == 0 && !o->dry_records)
		rc = damage_record(r, &c.damage);
	if (o->packs_read)
		for (size_t i = 0; i < packs.n; i++)
			*o->packs_read += c.read_pack && c.read_pack[i];
	for (unsigned i = 0; c.verdicts && i < slots; i++)
		free(c.verdicts[i].bad);
	free(c.verdicts);
	free(c.pack_bad);
	free(c.pack_num);
	free(c.read_pack);
	free(c.read_ok);
	damage_list_free(&c.damage);
	idx_table_free(&c.bad);
	free(packs.v);
	if (rc < 0)
		return repo_err(r, rc, "check stopped: %s", strerror(-rc));
	return c.problems;
}

int cairn_repo_repair_index(struct cairn_repo *r, cairn_report_fn fn, void *opaque)
{
	struct pack_list packs;
	struct name_list old;
	int rc = cairn_repo_need_full(r);
	if (rc < 0)
		return rc;
	rc = list_names(r, "index", &old);
	if (rc < 0)
		return rc;
	if ((rc = list_packs(r, &packs)) < 0) {
		name_list_free(&old);
		return rc;
	}
	cairn_id *ids = calloc(packs.n + 1, sizeof(*ids));
	struct idx_entry **ents = calloc(packs.n + 1, sizeof(*ents));
	size_t *counts = calloc(packs.n + 1, sizeof(*counts));
	size_t good = 0;
	rc = ids && ents && counts ? 0 : -ENOMEM;
	for (size_t i = 0; rc == 0 && i < packs.n; i++) {
		char hex[65];
		hex_encode(packs.v[i].id.b, CAIRN_ID_LEN, hex);
		int prc = pack_read_directory(r, hex, packs.v[i].size, &ents[good], &counts[good]);
		if (prc == -ENOMEM)
			rc = prc;
		else if (prc < 0)
			reportf(fn, opaque, "pack %s: directory unreadable, not indexed", hex);
		else
			ids[good++] = packs.v[i].id;
	}
	struct buf plain = { 0 };
	cairn_id new_id;
	char new_hex[65] = "";
	if (rc == 0)
		rc = index_encode(r, ids, ents, counts, good, &plain);
	if (rc == 0 && (rc = index_write(r, &plain, &new_id)) == 0)
		hex_encode(new_id.b, CAIRN_ID_LEN, new_hex);
	/* the new index covers every readable pack: old files are redundant
	 * (an identical old file has the new one's name: keep it) */
	for (size_t i = 0; rc == 0 && i < old.n; i++) {
		char name[128];
		if (!strcmp(old.v[i], new_hex))
			continue;
		snprintf(name, sizeof(name), "index/%s", old.v[i]);
		int drc = r->be->ops->remove(r->be, name);
		if (drc < 0 && drc != -ENOENT)
			rc = repo_err(r, drc, "cannot remove %s: %s", name, strerror(-drc));
	}
	buf_free(&plain);
	for (size_t i = 0; i < good; i++)
		free(ents[i]);
	free(ids);
	free(ents);
	free(counts);
	free(packs.v);
	name_list_free(&old);
	if (rc < 0)
		return r->err[0] ? rc : repo_err(r, rc, "repair failed: %s", strerror(-rc));
	r->index_loaded = false;
	return (int)good;
}

static int add_pack_size(void *opaque, const char *name, uint64_t size)
{
	struct cairn_stats *st = opaque;
	(void)name;
	st->stored_bytes += size;
	st->packs++;
	return 0;
}

static int count_file(void *opaque, const char *name, uint64_t size)
{
	(void)name;
	(void)size;
	(*(uint64_t *)opaque)++;
	return 0;
}

int cairn_repo_stats(struct cairn_repo *r, struct cairn_stats *st)
{
	memset(st, 0, sizeof(*st));
	int rc = r->index_loaded ? 0 : cairn_repo_load_index(r);
	if (rc == 0)
		rc = r->be->ops->list(r->be, "data", add_pack_size, st);
	if (rc == 0)
		rc = r->be->ops->list(r->be, "index", count_file, &st->index_files);
	if (rc < 0)
		return repo_err(r, rc, "cannot list %s: %s", r->be->location, strerror(-rc));
	for (size_t i = 0; i < r->idx.cap; i++) {
		const struct idx_entry *e = &r->idx.slots[i];
		if (memcmp(&e->id, &cairn_zero_id, sizeof(e->id)) && e->type == CAIRN_BLOB_DATA) {
			st->unique_chunks++;
			st->unique_raw_bytes += e->raw_len;
		}
	}
	struct cairn_snapshot **v;
	size_t n;
	if ((rc = cairn_snapshot_list(r, &v, &n)) < 0)
		return rc;
	st->snapshots = n;
	for (size_t i = 0; rc == 0 && i < n; i++)
		for (size_t k = 0; rc == 0 && k < v[i]->ndisks; k++) {
			struct cairn_disk *d = &v[i]->disks[k];
			st->logical_bytes += d->size;
			if ((rc = cairn_snapshot_load_map(r, d)) < 0)
				break;
			for (uint64_t ch = 0; ch < d->nchunks; ch++)
				if (memcmp(&d->map[ch], &cairn_zero_id, sizeof(cairn_id)))
					st->referenced_bytes +=
						MIN((uint64_t)d->chunk_size, d->size - ch * d->chunk_size);
			free(d->map);
			d->map = NULL;
		}
	cairn_snapshot_list_free(v, n);
	return rc;
}
