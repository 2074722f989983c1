/* Snapshot manifests (docs/design.md section 9), read the way `cairn
 * snapshots` and every command that picks a snapshot read them.
 * Input: mode byte, manifest envelope. */
#include "fuzz_helpers.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	uint8_t mode = fuzz_u8(&in);
	struct cairn_repo *r = fuzz_repo(mode & FUZZ_ENCRYPTED);
	struct buf env = { 0 };
	fuzz_envelope(r, in.p, in.n, mode & FUZZ_RAW, &env);
	fuzz_put_hashed(r, "snapshots", env.p, env.len);
	buf_free(&env);
	struct cairn_snapshot **v = NULL;
	size_t n = 0;
	if (cairn_snapshot_list(r, &v, &n) == 0)
		cairn_snapshot_list_free(v, n);
	cairn_repo_close(r);
	return 0;
}
