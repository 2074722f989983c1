/* The agent's configuration file (daemon/config.c, docs/cairn.conf.5):
 * written by an administrator, but a typo must give a line, not a crash.
 * Input: the file's bytes. */
#include <stdio.h>
#include <stdlib.h>

#include "daemon/config.h"
#include "fuzz_helpers.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	FILE *f = fmemopen((void *)data, size ? size : 1, "r");
	if (!f)
		abort();
	if (!size)
		fseek(f, 0, SEEK_END);
	struct cairn_conf c;
	char err[512];
	if (cairn_conf_read(f, "fuzz.conf", &c, err, sizeof(err)) == 0)
		cairn_conf_free(&c);
	fclose(f);
	return 0;
}
