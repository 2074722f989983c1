/* SFTP directory listings (repo/transport/backend_sftp.c): the server's
 * `ls -l` text, cut into lines as the backend cuts it, each line parsed
 * with its modification time (what the sweep of old temporaries reads).
 * Input: the listing's text. */
#include <stdlib.h>

#include "fuzz_helpers.h"
#include "repo/transport/sftp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fuzz_strdup(data, size);
	char *save = NULL;
	for (char *line = strtok_r(text, "\r\n", &save); line; line = strtok_r(NULL, "\r\n", &save)) {
		char type;
		uint64_t bytes;
		const char *name;
		int64_t mtime;
		if (sftp_parse_entry(line, &type, &bytes, &name, &mtime) && strlen(name) > 4096)
			abort(); /* a name outlives its line: impossible */
	}
	free(text);
	return 0;
}
