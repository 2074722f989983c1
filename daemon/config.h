/* The agent daemon's configuration: an INI file read with inih, documented
 * for admins in cairn.conf(5) and docs/cairn.conf.example.
 *
 *   [global]            state-dir, metrics-dir, run-dir, connect, log-level
 *   [repository NAME]   url, password-file or key-file (a host key),
 *                       s3-credentials-file,
 *                       sftp-identity, sftp-known-hosts,
 *                       connections, limit-upload, limit-download,
 *                       keep-* (the retention used when NAME is a
 *                       replication target)
 *   [job NAME]          domains, exclude, schedule, randomized-delay,
 *                       repository, keep-last/hourly/daily/weekly/monthly/
 *                       yearly, keep-within, keep-tag, gc-schedule,
 *                       replicate-to, quiesce, parallel, scratch-dir,
 *                       pre-hook, post-hook, webhook, notify-success,
 *                       email-command, anomaly-guard
 *   [http]              listen, token-file, tls-cert, tls-key, www-dir
 *                       (the console, daemon/http.h)
 *   [peer NAME]         url, token-file (other hosts' agents the console
 *                       shows beside this one)
 *
 * Loading is all or nothing: the first problem ends it with -EINVAL and one
 * line "FILE:LINE: message (hint)" in err, and *out is left empty. Refused:
 * unknown sections and keys (with the closest known key, or the section a
 * key belongs in), bad values, a key given twice in one section (the list
 * keys domains, exclude, replicate-to and keep-tag add up instead), lines
 * longer than CAIRN_CONF_MAX_LINE, duplicate section names, names other
 * than letters, digits and . _ - @ +, a [repository] without url, a [job]
 * without domains, schedule or repository, references to unknown
 * repositories, keep-* rules that keep nothing. Problems of a whole
 * section (a missing key, an unknown repository) name its [header] line.
 *
 * Defaults (a key left out):
 *   state-dir /var/lib/cairn/agent, run-dir /run/cairn, metrics-dir none,
 *   connect qemu:///system (NULL here), log-level info;
 *   connections 0 (the backend's own), limits 0 (none);
 *   randomized-delay 0, no retention (has_keep false), no gc, no
 *   replication, quiesce auto, parallel 1, scratch-dir none (the backup's
 *   own), no hooks, no webhook, notify-success no, no email-command,
 *   anomaly-guard on with its default thresholds.
 *   No [http]: no console. In [http]: listen 127.0.0.1:8440, www-dir
 *   CAIRN_WWW_DIR; token-file is required, tls-cert and tls-key go
 *   together.
 *
 * The model is plain data owned by struct cairn_conf: every string and
 * array in it is freed by cairn_conf_free, and nothing points outside it.
 * Walk jobs and repositories as arrays (c->jobs[0..njobs), in file order);
 * a job's next run comes from cairn_calendar_plan(&job->calendar, ...). */
#ifndef CAIRN_DAEMON_CONFIG_H
#define CAIRN_DAEMON_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "agent/agent.h"
#include "calendar.h"
#include "repo/retention.h"

#define CAIRN_CONF_DEFAULT_PATH "/etc/cairn/cairn.conf"
/* inih's line buffer (Debian builds it with INI_MAX_LINE 200), less "\n" */
#define CAIRN_CONF_MAX_LINE 198

enum cairn_log_level {
	CAIRN_LOG_ERROR,
	CAIRN_LOG_WARNING,
	CAIRN_LOG_INFO,
	CAIRN_LOG_DEBUG,
};

/* Words of a list key, NULL-terminated (v[n] == NULL) when n > 0. */
struct cairn_conf_list {
	char **v;
	size_t n;
};

struct cairn_conf_repo {
	char *name, *url;
	char *password_file; /* NULL: unencrypted repository, or key_file */
	char *key_file; /* a host key file instead of the password; NULL: none */
	char *s3_credentials_file; /* NULL: none */
	char *sftp_identity, *sftp_known_hosts; /* NULL: the backend's defaults */
	unsigned connections; /* 1..64; 0: not set */
	uint64_t limit_upload, limit_download; /* bytes per second; 0: no limit */
	bool has_keep; /* some keep-* key was given */
	struct cairn_keep_policy keep; /* keep.tags points into keep_tags */
	struct cairn_conf_list keep_tags;
	int line; /* of the [repository] header */
};

struct cairn_conf_job {
	char *name;
	struct cairn_conf_list domains; /* names and globs */
	bool all; /* domains = all */
	struct cairn_conf_list exclude; /* globs */
	char *schedule; /* as written, for messages */
	struct cairn_calendar calendar;
	int64_t randomized_delay_s;
	char *repository; /* the name of a [repository] in the same file */
	bool has_keep;
	struct cairn_keep_policy keep; /* keep.tags points into keep_tags */
	struct cairn_conf_list keep_tags;
	char *gc_schedule; /* NULL: no gc from this job */
	struct cairn_calendar gc_calendar;
	struct cairn_conf_list replicate_to; /* [repository] names */
	enum cairn_quiesce quiesce;
	unsigned parallel; /* 1..64 */
	char *scratch_dir; /* NULL: the default */
	char *pre_hook, *post_hook; /* sh -c commands, or NULL */
	char *webhook; /* http(s) URL, or NULL */
	char *email_command; /* gets the report on stdin, or NULL */
	bool notify_success;
	/* anomaly-guard = on | off | KEY=VALUE ... (repo/anomaly.h); zero
	 * fields: the defaults */
	struct cairn_guard_opts guard;
	int line; /* of the [job] header */
};

#ifndef CAIRN_WWW_DIR
#define CAIRN_WWW_DIR "/usr/local/share/cairn/www"
#endif

struct cairn_conf_http {
	bool on; /* the file has an [http] section */
	char *listen; /* ADDRESS:PORT */
	char *token_file;
	char *tls_cert, *tls_key; /* PEM files, or NULL: plain HTTP */
	char *www_dir; /* the page's files */
	int line;
};

struct cairn_conf_peer {
	char *name, *url, *token_file;
	int line;
};

struct cairn_conf {
	char *path; /* as given to cairn_conf_load */
	char *state_dir;
	char *metrics_dir; /* NULL: no metrics file */
	char *run_dir;
	char *connect; /* libvirt URI; NULL: qemu:///system */
	enum cairn_log_level log_level;
	struct cairn_conf_repo *repos;
	size_t nrepos;
	struct cairn_conf_job *jobs;
	size_t njobs;
	struct cairn_conf_http http;
	struct cairn_conf_peer *peers;
	size_t npeers;
};

/* 0, or -EINVAL (the file is wrong), -ENOENT/-EACCES/... (it cannot be
 * read), -ENOMEM; the reason in err. On failure *out needs no freeing. */
int cairn_conf_load(const char *path, struct cairn_conf *out, char *err, size_t errlen);
/* The same from an open stream; path only names it in messages. */
int cairn_conf_read(FILE *f, const char *path, struct cairn_conf *out, char *err, size_t errlen);
/* Frees everything *c owns and zeroes it; safe on a zeroed struct. */
void cairn_conf_free(struct cairn_conf *c);
/* Lookups by section name; NULL when there is none. */
const struct cairn_conf_repo *cairn_conf_repo(const struct cairn_conf *c, const char *name);
const struct cairn_conf_job *cairn_conf_job(const struct cairn_conf *c, const char *name);
/* "error", "warning", "info", "debug" */
const char *cairn_log_level_name(enum cairn_log_level level);

#endif
