/* Damage records (docs/design.md section 18): written by check, read by
 * every reader that must avoid or name damaged packs and blobs.
 * Input: the record's bytes. */
#include "fuzz_helpers.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cairn_repo *r = fuzz_repo(false);
	fuzz_put_hashed(r, "damaged", data, size);
	damage_load(r);
	cairn_repo_close(r);
	return 0;
}
