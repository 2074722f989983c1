/* Lock objects (docs/design.md section 10): read by every writer that
 * looks for conflicting locks and by gc waiting for old ones, which
 * removes a stale lock (its heartbeat too old, or its process gone on
 * this host). Input: the lock's bytes. */
#include "fuzz_helpers.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cairn_repo *r = fuzz_repo(false);
	fuzz_put(r, "locks/fuzz", data, size);
	bool gone;
	lock_gone(r, "fuzz", &gone);
	cairn_repo_close(r);
	return 0;
}
