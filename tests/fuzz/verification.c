/* Verification records (verify-boot results, docs/design.md), read the
 * way `cairn snapshots` and `cairn verify-boot --list` read them.
 * Input: mode byte, record envelope. */
#include "fuzz_helpers.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cairn_repo *r = fuzz_repo_with_envelope(data, size, "verifications");
	struct cairn_verification *v = NULL;
	size_t n = 0;
	if (cairn_verification_list(r, &v, &n) == 0)
		cairn_verification_list_free(v, n);
	cairn_repo_close(r);
	return 0;
}
