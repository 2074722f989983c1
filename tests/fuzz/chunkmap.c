/* Chunk-map pages (docs/design.md section 9): a disk's map read back
 * through the index, the pack and the blob decoder, as restore and serve
 * read it. The pages are real blobs made here from the input (their ids
 * are hashes the fuzzer could not forge), so the checks on their length
 * and count against the manifest's chunk count see every mutation.
 * Input: mode byte, chunk count (u32), then pages: a byte (bit 0: the
 * page before again, as a thin disk stores zeros), a length (u32), the
 * page's bytes. */
#include <stdlib.h>

#include "fuzz_helpers.h"

#define MAX_PAGES 8

static void store_page(struct cairn_repo *r, struct scratch *sc, const uint8_t *p, size_t len,
		       cairn_id *id)
{
	cairn_repo_chunk_id(r, p, len, id);
	uint8_t flags;
	if (blob_encode(r, sc, CAIRN_BLOB_PAGE, id, p, len, &flags) < 0)
		abort();
	cairn_id pack = *id;
	pack.b[0] ^= 0xff; /* one pack per page, named apart from the blob */
	char name[128];
	pack_name(&pack, name, sizeof(name));
	fuzz_put(r, name, sc->a.p, sc->a.len);
	uint32_t num;
	struct idx_entry e = { .id = *id, .stored_len = (uint32_t)sc->a.len,
			       .type = CAIRN_BLOB_PAGE, .flags = flags, .raw_len = (uint32_t)len };
	if (idx_add_pack(&r->idx, &pack, &num) < 0)
		abort();
	e.pack = num;
	if (idx_insert(&r->idx, &e, NULL) < 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	uint8_t mode = fuzz_u8(&in);
	struct cairn_repo *r = fuzz_repo(mode & FUZZ_ENCRYPTED);
	struct scratch *sc = scratch_get(r);
	if (!sc || idx_table_init(&r->idx, 16) < 0)
		abort();
	r->index_loaded = true;
	cairn_id pages[MAX_PAGES];
	struct cairn_disk d = { .name = "vda", .nchunks = fuzz_u32(&in), .pages = pages };
	d.chunk_size = r->chunk_size;
	d.size = d.nchunks * d.chunk_size;
	while (in.n && d.npages < MAX_PAGES) {
		bool again = fuzz_u8(&in) & 1;
		if (again && d.npages) {
			pages[d.npages] = pages[d.npages - 1];
			d.npages++;
			continue;
		}
		size_t len;
		const uint8_t *p = fuzz_bytes(&in, fuzz_u32(&in) % (PAGE_IDS * CAIRN_ID_LEN + 64), &len);
		store_page(r, sc, p, len, &pages[d.npages++]);
	}
	scratch_put(r, sc);
	cairn_snapshot_load_map(r, &d);
	free(d.map);
	cairn_repo_close(r);
	return 0;
}
