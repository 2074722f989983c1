/* Snapshot manifests (docs/design.md section 9), read the way `cairn
 * snapshots` and every command that picks a snapshot read them.
 * Input: mode byte, manifest envelope. */
#include "fuzz_helpers.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cairn_repo *r = fuzz_repo_with_envelope(data, size, "snapshots");
	struct cairn_snapshot **v = NULL;
	size_t n = 0;
	if (cairn_snapshot_list(r, &v, &n) == 0)
		cairn_snapshot_list_free(v, n);
	cairn_repo_close(r);
	return 0;
}
