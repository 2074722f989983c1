/* One run of an agent job: back up its VMs into its repository (several at
 * once when asked), apply its retention, replicate to its targets (each
 * with its own retention), with pre/post hooks around it. A VM that another
 * job is backing up at that moment is skipped with a message (a per-VM
 * lock under RUN_DIR). One VM failing does not stop the others; each VM
 * gets a run record (daemon/state.h).
 *
 * Returns 0 when the job could run (the records say how each VM did), or a
 * negative errno with a one-line reason in err when it could not start
 * (repository unreachable, pre-hook failed, no VM matched). */
#ifndef CAIRN_DAEMON_JOB_H
#define CAIRN_DAEMON_JOB_H

#include <stdbool.h>
#include <stddef.h>

#include <syslog.h> /* LOG_ERR ... LOG_DEBUG, the priorities of log lines */

#include "agent/agent.h"
#include "repo/retention.h"
#include "state.h"

/* One log line of a job at a syslog priority (LOG_ERR, LOG_WARNING,
 * LOG_NOTICE, LOG_INFO or LOG_DEBUG). */
typedef void (*cairn_job_log_fn)(void *opaque, int priority, const char *line);

struct cairn_job_target {
	const char *url;
	const char *password; /* NULL: unencrypted */
	struct cairn_backend_opts backend; /* S3 credentials file, connections, limits */
	bool has_keep;
	struct cairn_keep_policy keep;
};

struct cairn_job_spec {
	const char *name;
	const char *repo_url;
	const char *password; /* NULL: unencrypted */
	struct cairn_backend_opts backend; /* S3 credentials file, connections, limits */
	const char *uri; /* libvirt; NULL: qemu:///system */
	const char *const *domains; /* names or globs; "all" or none with all */
	size_t ndomains;
	bool all;
	const char *const *exclude; /* globs */
	size_t nexclude;
	enum cairn_quiesce quiesce;
	unsigned parallel; /* 0 or 1: one VM at a time */
	const char *scratch_dir;
	bool has_keep;
	struct cairn_keep_policy keep;
	const struct cairn_job_target *targets;
	size_t ntargets;
	const char *pre_hook, *post_hook; /* sh -c, with CAIRN_JOB set */
	struct cairn_guard_opts guard; /* the anomaly guard of every backup */
	const char *run_dir; /* per-VM locks; NULL: /run/cairn */
	const volatile int *cancel;
	cairn_job_log_fn log; /* one line per event, "job J vm V: ..." */
	void *log_opaque;
};

/* *runs (one per VM) is freed with free(). */
int cairn_job_run(const struct cairn_job_spec *j, struct cairn_run_record **runs, size_t *n,
		  char *err, size_t errlen);

#endif
