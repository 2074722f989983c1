/* A repository's config object (docs/design.md section 2), read by
 * opening the repository (a local directory made once per process; with
 * no key files, an encrypted config stops before the key derivation).
 * Input: the config's bytes. */
#include <stdio.h>
#include <stdlib.h>

#include "fuzz_helpers.h"

static const char *repo_dir(void)
{
	static char dir[64];
	if (!dir[0]) {
		snprintf(dir, sizeof(dir), "/tmp/cairn-fuzz-config-XXXXXX");
		if (!mkdtemp(dir))
			abort();
	}
	return dir;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/config", repo_dir());
	FILE *f = fopen(path, "we");
	if (!f || fwrite(data, 1, size, f) != size || fclose(f))
		abort();
	struct cairn_repo *r = NULL;
	char err[512];
	if (cairn_repo_open(repo_dir(), "fuzz", &r, err, sizeof(err)) == 0)
		cairn_repo_close(r);
	return 0;
}
