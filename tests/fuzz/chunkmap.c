/* Chunk-map pages (docs/design.md section 9): a disk's map read back
 * through the index, the pack and the blob decoder, as restore and serve
 * read it. The pages are real blobs made here from the input (their ids
 * are hashes the fuzzer could not forge), so the checks on their length
 * and count against the manifest's chunk count see every mutation.
 * Input: mode byte (bit 2: the chunk count as given, else one that
 * agrees with the page count), chunk count (u32), then pages: a byte
 * (bit 0: the page before again, as a thin disk stores zeros), a length
 * (u32), a pattern length (u16) and the pattern, repeated to the length
 * (a full page is 128 KiB, more than a fuzzer input holds). */
#include <stdlib.h>

#include "fuzz_helpers.h"

#define MAX_PAGES 8

static void store_page(struct cairn_repo *r, struct scratch *sc, const uint8_t *p, size_t len,
		       cairn_id *id)
{
	cairn_repo_chunk_id(r, p, len, id);
	uint8_t flags;
	if (blob_encode(r, sc, CAIRN_BLOB_PAGE, id, p, len, NULL, &flags) < 0)
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
	static uint8_t page[PAGE_IDS * CAIRN_ID_LEN + 64];
	struct cairn_disk d = { .name = "vda", .pages = pages, .chunk_size = r->chunk_size };
	uint32_t count = fuzz_u32(&in);
	while (in.n && d.npages < MAX_PAGES) {
		bool again = fuzz_u8(&in) & 1;
		if (again && d.npages) {
			pages[d.npages] = pages[d.npages - 1];
			d.npages++;
			continue;
		}
		size_t len = fuzz_u32(&in) % (PAGE_IDS * CAIRN_ID_LEN + 64), plen;
		uint16_t want = (uint16_t)(fuzz_u8(&in) | fuzz_u8(&in) << 8);
		const uint8_t *pattern = fuzz_bytes(&in, want, &plen);
		for (size_t i = 0; i < len; i++)
			page[i] = plen ? pattern[i % plen] : 0;
		store_page(r, sc, page, len, &pages[d.npages++]);
	}
	d.nchunks = mode & 4 || !d.npages ? count
					  : (d.npages - 1) * PAGE_IDS + count % PAGE_IDS + 1;
	d.size = d.nchunks * d.chunk_size;
	scratch_put(r, sc);
	cairn_snapshot_load_map(r, &d);
	free(d.map);
	cairn_repo_close(r);
	return 0;
}
