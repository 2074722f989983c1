/* The agent's scheduler: runs every job of a configuration at its schedule
 * (catching up a run missed while the host was down, with the job's
 * randomized delay), one job after the other, and each job's gc at its
 * gc-schedule. Each run is recorded (daemon/state.h), metrics are written
 * (daemon/metrics.h) and failures notified (daemon/notify.h).
 *
 * Contract of cairn_scheduler_loop(): plans, then wakes once a second to
 * run what is due, until *stop becomes non-zero (a backup running then ends
 * cleanly through the same flag, the jobs' cancel). When *reload is
 * non-zero it clears it and loads the configuration file again: a bad one
 * is refused and logged, the old one kept. Everything goes to log, one
 * line at a time, filtered by the configuration's log-level; nothing is
 * printed here. Every run is also appended to the state directory's history
 * (daemon/history.h). */
#ifndef CAIRN_DAEMON_SCHEDULER_H
#define CAIRN_DAEMON_SCHEDULER_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "job.h"
#include "live.h"

#define CAIRN_SCHEDULER_MAX_JOBS 256

struct cairn_scheduler {
	struct cairn_conf *conf; /* the caller's; replaced in place on reload */
	const char *path; /* the configuration file, for reloads */
	const volatile int *stop;
	volatile sig_atomic_t *reload; /* may be NULL: no reloads */
	cairn_job_log_fn log;
	void *log_opaque;
	/* may be NULL; else the job running is shown there, and jobs asked
	 * for there (cairn_live_request) run between scheduled ones */
	struct cairn_live *live;
};

/* Runs one job now; true when every VM succeeded. */
bool cairn_scheduler_run_job(const struct cairn_scheduler *s, const struct cairn_conf_job *j);
/* Runs every job once, in order, until *stop; true when all succeeded. */
bool cairn_scheduler_run_all(const struct cairn_scheduler *s);
/* The loop above. 0 when stopped, or a negative errno with err set when
 * it cannot start (-E2BIG: more than CAIRN_SCHEDULER_MAX_JOBS jobs). */
int cairn_scheduler_loop(struct cairn_scheduler *s, char *err, size_t errlen);

/* A job's next run after after_s (Unix seconds), or 0 for none. */
int64_t cairn_scheduler_next_run(const struct cairn_conf_job *j, int64_t after_s);

#endif
