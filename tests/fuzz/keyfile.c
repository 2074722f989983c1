/* Key files (docs/design.md section 3): everything before the key
 * derivation, which a damaged or hostile file must not reach with absurd
 * parameters, and the listing of `cairn key list`. Input: the key file's
 * bytes. */
#include <stdlib.h>

#include "fuzz_helpers.h"
#include "repo/keys.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct key_file kf;
	key_file_parse(data, size, &kf);
	struct cairn_repo *r = fuzz_repo(true);
	fuzz_put_hashed(r, "keys", data, size);
	struct cairn_key_info *v = NULL;
	size_t n = 0;
	if (cairn_key_list(r, &v, &n) == 0)
		free(v);
	cairn_repo_close(r);
	return 0;
}
