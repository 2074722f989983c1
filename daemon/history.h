/* The agent's job history: every run record (daemon/state.h), one JSON
 * line each, appended to STATE_DIR/history.jsonl, for the console's job
 * history with failures and their messages (the runs/ files keep only the
 * last run of each job and VM).
 *
 * The file stays bounded: past CAIRN_HISTORY_MAX_BYTES the newer half is
 * kept (rewritten atomically). A torn last line (a crash mid-append) is
 * skipped by readers. Functions return 0 or a negative errno with a
 * one-line reason in err. */
#ifndef CAIRN_DAEMON_HISTORY_H
#define CAIRN_DAEMON_HISTORY_H

#include <stddef.h>

#include "state.h"

#define CAIRN_HISTORY_MAX_BYTES (1u << 20)

int cairn_history_append(const char *state_dir, const struct cairn_run_record *r, char *err,
			 size_t errlen);
/* The newest max records, newest first; *out freed with free(). No file:
 * none. */
int cairn_history_load(const char *state_dir, size_t max, struct cairn_run_record **out,
		       size_t *n, char *err, size_t errlen);

#endif
