/* Stored blobs (docs/design.md section 5): the decoder of every chunk a
 * restore reads (zstd frames, AES-GCM, the length the index promises).
 * Input: mode byte, flags byte (bit 0 zstd), raw length (u32), stored
 * bytes (in an encrypted mode their plaintext, sealed here). */
#include <stdlib.h>

#include "fuzz_helpers.h"

/* blob.c's associated data: id, type, flags */
static void seal(const struct cairn_repo *r, const struct idx_entry *e, const uint8_t *p,
		 size_t len, struct buf *out)
{
	uint8_t aad[CAIRN_ID_LEN + 2];
	memcpy(aad, e->id.b, CAIRN_ID_LEN);
	aad[CAIRN_ID_LEN] = (uint8_t)e->type;
	aad[CAIRN_ID_LEN + 1] = (uint8_t)e->flags;
	out->len = 0;
	if (buf_reserve(out, len + NONCE_LEN + TAG_LEN) < 0 ||
	    aead_seal(r->k_enc, aad, sizeof(aad), p, len, out->p) < 0)
		abort();
	out->len = len + NONCE_LEN + TAG_LEN;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	uint8_t mode = fuzz_u8(&in);
	uint8_t flags = fuzz_u8(&in) & BLOB_F_ZSTD;
	uint32_t raw_len = fuzz_u32(&in) % (CAIRN_MAX_CHUNK + 1);
	struct cairn_repo *r = fuzz_repo(mode & FUZZ_ENCRYPTED);
	struct idx_entry e = { .type = CAIRN_BLOB_DATA, .flags = flags, .raw_len = raw_len };
	memset(e.id.b, 0x42, CAIRN_ID_LEN);
	struct buf stored = { 0 };
	if (buf_reserve(&stored, 1) < 0) /* stored bytes lie in a pack: never NULL */
		abort();
	if (r->encrypted)
		e.flags |= BLOB_F_AES;
	if (r->encrypted && !(mode & FUZZ_RAW)) {
		seal(r, &e, in.p, in.n, &stored);
	} else if (buf_append(&stored, in.p, in.n) < 0) {
		abort();
	}
	if (stored.len <= IDX_MAX_STORED) {
		e.stored_len = (uint32_t)stored.len;
		uint8_t *out = malloc(raw_len ? raw_len : 1);
		if (!out)
			abort();
		repo_decode_stored(r, &e, stored.p, out, !r->encrypted);
		free(out);
	}
	buf_free(&stored);
	cairn_repo_close(r);
	return 0;
}
