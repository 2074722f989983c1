/* Pack trailers and directories (docs/design.md section 6), both ways a
 * reader gets them: from a whole pack in memory, and from the backend by
 * ranged reads of the tail (repair index, check).
 * Input: mode byte, then a pack whose directory envelope is in plain form
 * (sealed here with the test key in an encrypted mode). */
#include <stdio.h>
#include <stdlib.h>

#include "fuzz_helpers.h"

#define TRAILER_LEN 12

/* The pack with its directory sealed, when the trailer can be found. */
static void seal_directory(const struct cairn_repo *r, const uint8_t *p, size_t n, bool raw,
			   struct buf *out)
{
	out->len = 0;
	uint32_t dlen = n >= 8 + TRAILER_LEN ? get_le32(p + n - TRAILER_LEN) : UINT32_MAX;
	if (!r->encrypted || raw || (uint64_t)dlen + 8 + TRAILER_LEN > n) {
		if (buf_append(out, p, n) < 0)
			abort();
		return;
	}
	size_t dstart = n - TRAILER_LEN - dlen;
	struct buf dir = { 0 };
	fuzz_envelope(r, p + dstart, dlen, false, &dir);
	uint8_t len[4];
	put_le32(len, (uint32_t)dir.len);
	if (buf_append(out, p, dstart) < 0 || buf_append(out, dir.p, dir.len) < 0 ||
	    buf_append(out, len, 4) < 0 || buf_append(out, p + n - 8, 8) < 0)
		abort();
	buf_free(&dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	uint8_t mode = fuzz_u8(&in);
	struct cairn_repo *r = fuzz_repo(mode & FUZZ_ENCRYPTED);
	struct buf pack = { 0 };
	seal_directory(r, in.p, in.n, mode & FUZZ_RAW, &pack);
	struct idx_entry *e = NULL;
	size_t n = 0;
	if (pack_parse_directory(r, pack.p, pack.len, &e, &n) == 0)
		free(e);
	const char *hex = "abababababababababababababababababababababababababababababababab";
	char name[128];
	snprintf(name, sizeof(name), "data/ab/%s", hex);
	fuzz_put(r, name, pack.p, pack.len);
	e = NULL;
	if (pack_read_directory(r, hex, pack.len, &e, &n) == 0)
		free(e);
	buf_free(&pack);
	cairn_repo_close(r);
	return 0;
}
