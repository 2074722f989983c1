/* Index files (docs/design.md section 7), loaded the way every command
 * loads them: listed, hash-checked, opened, walked into the table.
 * Input: mode byte, index envelope. */
#include "fuzz_helpers.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cairn_repo *r = fuzz_repo_with_envelope(data, size, "index");
	cairn_repo_load_index(r);
	cairn_repo_close(r);
	return 0;
}
