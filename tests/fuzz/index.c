/* Index files (docs/design.md section 7), loaded the way every command
 * loads them: listed, hash-checked, opened, walked into the table.
 * Input: mode byte, index envelope. */
#include "fuzz_helpers.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	uint8_t mode = fuzz_u8(&in);
	struct cairn_repo *r = fuzz_repo(mode & FUZZ_ENCRYPTED);
	struct buf env = { 0 };
	fuzz_envelope(r, in.p, in.n, mode & FUZZ_RAW, &env);
	fuzz_put_hashed(r, "index", env.p, env.len);
	buf_free(&env);
	cairn_repo_load_index(r);
	cairn_repo_close(r);
	return 0;
}
