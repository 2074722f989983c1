/* The agent daemon's memory across runs and reboots: per job, when it last
 * ran (for catch-up of a run missed while the host was down), and per job
 * and VM the outcome of the last run, for `cairn status` and the metrics.
 *
 * Files under STATE_DIR (default /var/lib/cairn/agent):
 *   jobs/<job>.json            {"version":1,"last_run","last_run_ns"}
 *   runs/<job>/<vm>.json       one struct cairn_run_record as JSON
 * Every write is atomic (temporary file, fsync, rename, fsync of the
 * directory), so a crash leaves the old or the new record. Names are
 * stored escaped so that any VM name is a safe file name.
 *
 * Functions return 0 or a negative errno with a one-line reason in err. */
#ifndef CAIRN_DAEMON_STATE_H
#define CAIRN_DAEMON_STATE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cairn_run_record {
	char job[128];
	char vm[256];
	int64_t start_ns, end_ns;
	bool ok;
	char message[512]; /* the one line of a failure, or a summary */
	char snapshot[65]; /* id of the snapshot written, or "" */
	uint64_t bytes_read, bytes_stored;
	bool anomaly; /* the anomaly guard marked the snapshot suspicious */
	int64_t next_run_ns; /* 0 = unknown */
};

/* DIR/NAME replaced atomically by text (temporary ".NAME.tmp-PID" in DIR,
 * fsync, rename, fsync of DIR); DIR must exist. */
int cairn_write_file_atomic(const char *dir, const char *name, const char *text, char *err,
			    size_t errlen);

/* A run record as JSON (the runs/ file's form, also each line of the job
 * history), or NULL when out of memory; and back (absent fields stay 0 or
 * empty, so older records read). */
json_t *cairn_run_record_to_json(const struct cairn_run_record *r);
void cairn_run_record_from_json(json_t *j, struct cairn_run_record *r);

int cairn_state_record_run(const char *state_dir, const struct cairn_run_record *r,
			   char *err, size_t errlen);
/* Every record, sorted by job then VM; *out freed with free(). */
int cairn_state_load_runs(const char *state_dir, struct cairn_run_record **out, size_t *n,
			  char *err, size_t errlen);

int cairn_state_mark_job(const char *state_dir, const char *job, int64_t run_ns, char *err,
			 size_t errlen);
/* The last run of a job, 0 when it never ran. */
int cairn_state_job_last(const char *state_dir, const char *job, int64_t *run_ns, char *err,
			 size_t errlen);

#endif
