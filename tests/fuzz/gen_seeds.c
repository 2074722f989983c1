/* Seeds for the fuzz targets whose inputs are not whole repository
 * objects (tests/fuzz/gen_corpus.sh copies those): run on a plain
 * repository this cairn made, it writes
 *   OUT/blob/      stored blobs cut from its packs (blob.c's input form),
 *   OUT/chunkmap/  the chunk maps of its snapshots (chunkmap.c's form),
 *   OUT/lock/      the lock it takes (locks live only while a command runs),
 * and saves verification records and a condemned list of its packs into
 * the repository, which the script then copies like any object
 * (verify-boot needs a VM; a gc run removes its list when done).
 * Usage: gen_seeds REPO OUT. Exit 0, or 1 with a line on stderr. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "repo/gc_internal.h"
#include "repo/internal.h"

#define MAX_BLOBS 16 /* per pack: a few of each kind are enough */

/* OUT/TARGET/NAME-MODE: the mode byte, then b (no mode byte when mode < 0) */
static int write_seed(const char *out, const char *target, const char *name, int mode,
		      const struct buf *b)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s/%s-%d", out, target, name, mode);
	FILE *f = fopen(path, "we");
	uint8_t m = (uint8_t)mode;
	if (!f || (mode >= 0 && fwrite(&m, 1, 1, f) != 1) ||
	    fwrite(b->p, 1, b->len, f) != b->len) {
		if (f)
			fclose(f);
		return -EIO;
	}
	return fclose(f) ? -EIO : 0;
}

/* blob.c's form after the mode byte: flags, raw length, stored bytes;
 * mode 1 seals the same bytes under the test key */
static int blob_seeds(const char *out, const char *pack, const uint8_t *p,
		      const struct idx_entry *e)
{
	struct buf b = { 0 };
	uint8_t hdr[5] = { (uint8_t)(e->flags & BLOB_F_ZSTD) };
	put_le32(hdr + 1, e->raw_len);
	char name[128];
	snprintf(name, sizeof(name), "%.16s-%u", pack, e->offset);
	int rc = buf_append(&b, hdr, sizeof(hdr));
	if (rc == 0)
		rc = buf_append(&b, p + e->offset, e->stored_len);
	for (int mode = 0; rc == 0 && mode < 2; mode++)
		rc = write_seed(out, "blob", name, mode, &b);
	buf_free(&b);
	return rc;
}

struct pack_walk {
	struct cairn_repo *r;
	const char *out;
	cairn_id packs[8]; /* the first few, for the condemned list */
	size_t npacks;
};

static int one_pack(void *opaque, const char *hex, uint64_t size)
{
	struct pack_walk *w = opaque;
	cairn_id id;
	char path[128];
	if (hex_decode(hex, id.b, CAIRN_ID_LEN) < 0)
		return 0; /* a temporary */
	pack_name(&id, path, sizeof(path));
	struct buf b = { 0 };
	struct idx_entry *e = NULL;
	size_t n = 0;
	int rc = w->r->be->ops->get(w->r->be, path, &b);
	if (rc == 0 && b.len == size)
		rc = pack_parse_directory(w->r, b.p, b.len, &e, &n);
	for (size_t i = 0; rc == 0 && i < n && i < MAX_BLOBS; i++)
		if ((uint64_t)e[i].offset + e[i].stored_len <= b.len)
			rc = blob_seeds(w->out, hex, b.p, &e[i]);
	free(e);
	buf_free(&b);
	if (w->npacks < ARRAY_SIZE(w->packs))
		w->packs[w->npacks++] = id;
	return rc;
}

/* The shortest repeating unit of a page: one id for a page of equal ids
 * (a thin disk's zeros), else the page; at most what a u16 holds. */
static size_t page_pattern(const uint8_t *p, size_t len)
{
	size_t unit = CAIRN_ID_LEN;
	for (size_t i = unit; i < len; i++)
		if (p[i] != p[i % unit])
			return MIN(len, (size_t)UINT16_MAX);
	return MIN(len, unit);
}

/* chunkmap.c's form after the mode byte: the chunk count, then per page
 * a flag (the page before again), its length, the pattern */
static int map_seed(const char *out, const struct cairn_snapshot *s, const struct cairn_disk *d)
{
	struct buf b = { 0 };
	uint8_t u32[4];
	put_le32(u32, (uint32_t)((d->nchunks - 1) % PAGE_IDS));
	int rc = buf_append(&b, u32, 4);
	for (size_t i = 0; rc == 0 && i < d->npages; i++) {
		uint64_t first = (uint64_t)i * PAGE_IDS;
		size_t len = (size_t)MIN((uint64_t)PAGE_IDS, d->nchunks - first) * CAIRN_ID_LEN;
		const uint8_t *page = (const uint8_t *)(d->map + first);
		bool again = i && !memcmp(&d->pages[i], &d->pages[i - 1], sizeof(cairn_id));
		size_t plen = page_pattern(page, len);
		uint8_t hdr[7] = { again };
		put_le32(hdr + 1, (uint32_t)len);
		hdr[5] = (uint8_t)plen;
		hdr[6] = (uint8_t)(plen >> 8);
		rc = buf_append(&b, hdr, again ? 1 : sizeof(hdr));
		if (rc == 0 && !again)
			rc = buf_append(&b, page, plen);
	}
	char hex[65], name[128];
	hex_encode(s->id.b, CAIRN_ID_LEN, hex);
	snprintf(name, sizeof(name), "%.16s-%s", hex, d->name);
	for (int mode = 0; rc == 0 && mode < 2; mode++)
		rc = write_seed(out, "chunkmap", name, mode, &b);
	buf_free(&b);
	return rc;
}

static int snapshot_seeds(struct cairn_repo *r, const char *out)
{
	struct cairn_snapshot **v = NULL;
	size_t n = 0;
	int rc = cairn_snapshot_list(r, &v, &n);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		for (size_t k = 0; rc == 0 && k < v[i]->ndisks; k++) {
			rc = cairn_snapshot_load_map(r, &v[i]->disks[k]);
			if (rc == 0)
				rc = map_seed(out, v[i], &v[i]->disks[k]);
		}
		struct cairn_verification rec = {
			.snapshot = v[i]->id, .time_ns = v[i]->time_ns + 1000000000,
			.host = "fuzz-seed", .ok = i % 2 == 0, .method = i % 2 ? "console" : "agent",
			.boot_seconds = 4.5, .detail = i % 2 ? "no match in 300 s" : "guest-ping answered",
		};
		if (rc == 0)
			rc = cairn_verification_save(r, &rec);
	}
	cairn_snapshot_list_free(v, n);
	return rc;
}

static int copy_lock(void *opaque, const char *name, uint64_t size)
{
	void **ctx = opaque;
	struct cairn_repo *r = ctx[0];
	char path[128];
	struct buf b = { 0 };
	(void)size;
	snprintf(path, sizeof(path), "locks/%s", name);
	int rc = r->be->ops->get(r->be, path, &b);
	if (rc == 0)
		rc = write_seed(ctx[1], "lock", name, -1, &b);
	buf_free(&b);
	return rc;
}

/* the lock object as written */
static int lock_seed(struct cairn_repo *r, const char *out)
{
	int rc = cairn_repo_lock(r, true);
	if (rc < 0)
		return rc;
	void *ctx[2] = { r, (void *)out };
	rc = r->be->ops->list(r->be, "locks", copy_lock, ctx);
	cairn_repo_unlock(r);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: gen_seeds REPO OUT\n");
		return 1;
	}
	struct cairn_repo *r = NULL;
	char err[512];
	int rc = cairn_repo_open(argv[1], NULL, &r, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "gen_seeds: %s\n", err);
		return 1;
	}
	struct pack_walk w = { .r = r, .out = argv[2] };
	rc = cairn_repo_load_index(r);
	if (rc == 0)
		rc = snapshot_seeds(r, argv[2]);
	if (rc == 0)
		rc = r->be->ops->list(r->be, "data", one_pack, &w);
	if (rc == 0)
		rc = lock_seed(r, argv[2]);
	if (rc == 0)
		rc = gc_write_condemned(r, w.packs, w.npacks);
	if (rc < 0)
		fprintf(stderr, "gen_seeds: %s: %s\n", argv[1],
			cairn_repo_error(r) ? cairn_repo_error(r) : strerror(-rc));
	cairn_repo_close(r);
	return rc < 0;
}
