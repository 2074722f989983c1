/* Envelopes (docs/design.md section 8): the wrapper of index files,
 * manifests, pack directories and verification records.
 * Input: mode byte (fuzz_helpers.h), kind byte, envelope. */
#include "fuzz_helpers.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	uint8_t mode = fuzz_u8(&in);
	enum envelope_kind kind = (enum envelope_kind)(fuzz_u8(&in) % 4 + 1);
	struct cairn_repo *r = fuzz_repo(mode & FUZZ_ENCRYPTED);
	struct buf env = { 0 }, plain = { 0 };
	fuzz_envelope(r, in.p, in.n, mode & FUZZ_RAW, &env);
	envelope_open(r, kind, env.p, env.len, &plain);
	buf_free(&env);
	buf_free(&plain);
	cairn_repo_close(r);
	return 0;
}
