/* Key files (docs/design.md section 3): everything before the key
 * derivation, which a damaged or hostile file must not reach with absurd
 * parameters. Input: the key file's bytes. */
#include "fuzz_helpers.h"
#include "repo/keys.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct key_file kf;
	key_file_parse(data, size, &kf);
	return 0;
}
