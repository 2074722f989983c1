/* The agent daemon's configuration: an INI file (parsed with inih),
 * documented for admins in cairn.conf(5) and docs/cairn.conf.example.
 *
 *   [global]            state-dir, metrics-dir, run-dir, connect
 *   [repository NAME]   url, password-file, s3-credentials-file,
 *                       connections, limit-upload, limit-download,
 *                       keep-* (the retention used when NAME is a
 *                       replication target)
 *   [job NAME]          domains, exclude, schedule, randomized-delay,
 *                       repository, keep-last/hourly/daily/weekly/monthly/
 *                       yearly, keep-within, keep-tag, gc-schedule,
 *                       replicate-to, quiesce, parallel, scratch-dir,
 *                       pre-hook, post-hook, webhook, notify-success,
 *                       email-command
 *
 * Loading refuses unknown sections and keys (with the closest known key as
 * a hint), bad values, duplicate names, jobs without domains or schedule
 * and references to unknown repositories; every error is one line
 * "FILE:LINE: message". */
#ifndef CAIRN_DAEMON_CONFIG_H
#define CAIRN_DAEMON_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/agent.h"
#include "calendar.h"
#include "repo/retention.h"

#define CAIRN_CONF_DEFAULT_PATH "/etc/cairn/cairn.conf"

struct cairn_conf_list {
	char **v;
	size_t n;
};

struct cairn_conf_repo {
	char *name, *url, *password_file, *s3_credentials_file;
	unsigned connections; /* 0: the default */
	char *limit_upload, *limit_download; /* as given ("10M"), or NULL */
	bool has_keep;
	struct cairn_keep_policy keep;
	struct cairn_conf_list keep_tags;
	int line;
};

struct cairn_conf_job {
	char *name;
	struct cairn_conf_list domains; /* names and globs; "all" */
	bool all;
	struct cairn_conf_list exclude;
	char *schedule;
	struct cairn_calendar calendar;
	int64_t randomized_delay_s;
	char *repository; /* a [repository] name */
	bool has_keep;
	struct cairn_keep_policy keep;
	struct cairn_conf_list keep_tags;
	char *gc_schedule; /* NULL: no gc from this job */
	struct cairn_calendar gc_calendar;
	struct cairn_conf_list replicate_to; /* [repository] names */
	enum cairn_quiesce quiesce; /* default: auto */
	unsigned parallel; /* default 1 */
	char *scratch_dir, *pre_hook, *post_hook, *webhook, *email_command;
	bool notify_success;
	int line;
};

struct cairn_conf {
	char *path;
	char *state_dir; /* default /var/lib/cairn/agent */
	char *metrics_dir; /* NULL: no metrics file */
	char *run_dir; /* default /run/cairn */
	char *connect; /* libvirt URI; NULL: qemu:///system */
	struct cairn_conf_repo *repos;
	size_t nrepos;
	struct cairn_conf_job *jobs;
	size_t njobs;
};

int cairn_conf_load(const char *path, struct cairn_conf *out, char *err, size_t errlen);
void cairn_conf_free(struct cairn_conf *c);
const struct cairn_conf_repo *cairn_conf_repo(const struct cairn_conf *c, const char *name);
const struct cairn_conf_job *cairn_conf_job(const struct cairn_conf *c, const char *name);

#endif
