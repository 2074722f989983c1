/* One run of an agent job (see job.h). */
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/fleet.h"
#include "job.h"
#include "replicate/replicate.h"

struct vm_notice {
	const struct cairn_job_spec *j;
	const char *vm;
};

struct job_run {
	const struct cairn_job_spec *j;
	struct cairn_repo *r;
	char **vms;
	size_t nvms;
	struct cairn_run_record *runs; /* one per VM */
	struct vm_notice *notices; /* one per VM */
	int *lock_fds; /* one per VM, while it is backed up */
};

static void logf_(const struct cairn_job_spec *j, int priority, const char *vm, const char *fmt,
		  ...) __attribute__((format(printf, 4, 5)));
static void logf_(const struct cairn_job_spec *j, int priority, const char *vm, const char *fmt,
		  ...)
{
	if (!j->log)
		return;
	char msg[700], line[1000];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (vm)
		snprintf(line, sizeof(line), "job %s vm %s: %s", j->name, vm, msg);
	else
		snprintf(line, sizeof(line), "job %s: %s", j->name, msg);
	j->log(j->log_opaque, priority, line);
}

static int run_hook(const struct cairn_job_spec *j, const char *hook, const char *result,
		    char *err, size_t errlen)
{
	pid_t pid = fork();
	if (pid < 0)
		return set_err(err, errlen, -errno, "fork: %s", strerror(errno));
	if (pid == 0) {
		setenv("CAIRN_JOB", j->name, 1);
		if (result)
			setenv("CAIRN_JOB_RESULT", result, 1);
		execl("/bin/sh", "sh", "-c", hook, (char *)NULL);
		_exit(127);
	}
	int status;
	if (waitpid(pid, &status, 0) < 0)
		return set_err(err, errlen, -errno, "waitpid: %s", strerror(errno));
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		return set_err(err, errlen, -EIO, "hook failed (%s %d): %s",
			       WIFEXITED(status) ? "exit" : "signal",
			       WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), hook);
	return 0;
}

static bool selected(const struct cairn_job_spec *j, const char *name)
{
	if (j->all)
		return true;
	for (size_t i = 0; i < j->ndomains; i++)
		if (!strcmp(j->domains[i], "all") || fnmatch(j->domains[i], name, 0) == 0)
			return true;
	return false;
}

static int resolve_vms(struct job_run *x, char *err, size_t errlen)
{
	char **all;
	size_t n;
	int rc = cairn_list_domains(x->j->uri, x->j->exclude, x->j->nexclude, &all, &n, err,
				    errlen);
	if (rc < 0)
		return rc;
	x->vms = calloc(n + 1, sizeof(*x->vms));
	for (size_t i = 0; i < n; i++) {
		if (x->vms && selected(x->j, all[i]))
			x->vms[x->nvms++] = all[i];
		else
			free(all[i]);
	}
	free(all);
	if (!x->vms)
		return set_err(err, errlen, -ENOMEM, "out of memory");
	if (!x->nvms)
		return set_err(err, errlen, -ENOENT, "no domain on this host matches the job");
	return 0;
}

/* Two jobs must not back up one VM at once (libvirt allows one backup job
 * per domain anyway): a lock file per VM, held for the backup. */
static int lock_vm(const struct cairn_job_spec *j, const char *vm)
{
	char dir[512], path[1024];
	snprintf(dir, sizeof(dir), "%s", j->run_dir ? j->run_dir : "/run/cairn");
	mkdir(dir, 0755);
	snprintf(path, sizeof(path), "%s/vm-", dir);
	size_t at = strlen(path);
	for (const char *p = vm; *p && at + 4 < sizeof(path); p++)
		at += (size_t)snprintf(path + at, sizeof(path) - at,
				       (*p == '/' || *p == '%') ? "%%%02X" : "%c", (unsigned char)*p);
	snprintf(path + at, sizeof(path) - at, ".lock");
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int e = errno;
		close(fd);
		return e == EWOULDBLOCK ? -EBUSY : -e;
	}
	return fd;
}

/* The backup's own notices (why a disk was read in full, a foreign
 * checkpoint left alone...) belong in the job's log too. */
static void on_backup_notice(void *opaque, const char *line)
{
	const struct vm_notice *n = opaque;
	logf_(n->j, LOG_NOTICE, n->vm, "%s", line);
}

/* Before VM i: its record starts, its lock is taken (else it is skipped). */
static int begin_vm(void *opaque, size_t i, struct cairn_domain_opts *o)
{
	struct job_run *x = opaque;
	const struct cairn_job_spec *j = x->j;
	struct cairn_run_record *rec = &x->runs[i];
	snprintf(rec->job, sizeof(rec->job), "%s", j->name);
	snprintf(rec->vm, sizeof(rec->vm), "%s", x->vms[i]);
	rec->start_ns = now_ns();
	x->notices[i] = (struct vm_notice){ j, x->vms[i] };
	o->backup.notice_opaque = &x->notices[i];
	int fd = lock_vm(j, x->vms[i]);
	if (fd < 0) {
		snprintf(rec->message, sizeof(rec->message),
			 fd == -EBUSY ? "skipped: another job is backing it up"
				      : "cannot take the VM's lock: %s",
			 strerror(-fd));
		rec->end_ns = now_ns();
		logf_(j, LOG_WARNING, x->vms[i], "%s", rec->message);
		return fd;
	}
	x->lock_fds[i] = fd;
	logf_(j, LOG_INFO, x->vms[i], "backup started");
	return 0;
}

static void done_vm(void *opaque, size_t i, int rc, const struct cairn_backup_result *res,
		    const char *err)
{
	struct job_run *x = opaque;
	struct cairn_run_record *rec = &x->runs[i];
	close(x->lock_fds[i]);
	rec->end_ns = now_ns();
	rec->ok = rc == 0;
	if (rc == 0) {
		hex_encode(res->snapshot.b, CAIRN_ID_LEN, rec->snapshot);
		rec->bytes_read = res->bytes_read;
		rec->bytes_stored = res->new_bytes;
		rec->anomaly = res->suspicious;
		snprintf(rec->message, sizeof(rec->message), "snapshot %.12s%s%s", rec->snapshot,
			 res->suspicious ? ": " : "", res->suspicious ? res->alarm : "");
	} else {
		snprintf(rec->message, sizeof(rec->message), "%s", err);
	}
	logf_(x->j, rc < 0 ? LOG_ERR : rec->anomaly ? LOG_WARNING : LOG_INFO, x->vms[i], "%s (%.1fs)",
	      rc == 0 ? rec->message : err, (double)(rec->end_ns - rec->start_ns) / 1e9);
}

static int backup_all(struct job_run *x, char *err, size_t errlen)
{
	const struct cairn_job_spec *j = x->j;
	struct cairn_fleet_opts o = {
		.domains = (const char *const *)x->vms, .ndomains = x->nvms,
		.parallel = j->parallel,
		.domain = { .uri = j->uri, .quiesce = j->quiesce, .scratch_dir = j->scratch_dir,
			    .backup = { .cancel = j->cancel, .notice = on_backup_notice,
					.guard = j->guard } },
		.begin = begin_vm, .done = done_vm, .opaque = x,
	};
	return cairn_backup_fleet(x->r, &o, err, errlen);
}

/* A failure after the backups (retention, replication) shows on every VM's
 * record: the admin must see that the offsite copy is missing. */
static void fail_all(struct job_run *x, const char *what, const char *why)
{
	for (size_t i = 0; i < x->nvms; i++) {
		struct cairn_run_record *rec = &x->runs[i];
		size_t at = strlen(rec->message);
		snprintf(rec->message + at, sizeof(rec->message) - at, "%s%s: %s",
			 at ? "; " : "", what, why);
		rec->ok = false;
	}
	logf_(x->j, LOG_ERR, NULL, "%s: %s", what, why);
}

static void apply_keep(struct job_run *x, struct cairn_repo *r, const struct cairn_keep_policy *p,
		       const char *where)
{
	int rc = cairn_forget_by_policy(r, p, (const char *const *)x->vms, x->nvms, false, NULL,
					NULL);
	if (rc < 0) {
		char what[300];
		snprintf(what, sizeof(what), "retention in %s", where);
		fail_all(x, what, cairn_repo_error(r));
	}
}

static void replicate_to(struct job_run *x, const struct cairn_job_target *t)
{
	struct cairn_repo *dst = NULL;
	char err[512] = "", what[600];
	snprintf(what, sizeof(what), "replication to %s", t->url);
	int rc = cairn_repo_open_with(t->url, t->password, &t->backend, &dst, err, sizeof(err));
	if (rc == 0 && (rc = cairn_repo_lock(dst, false)) < 0)
		snprintf(err, sizeof(err), "%s", cairn_repo_error(dst));
	struct cairn_replicate_opts o = { .names = (const char *const *)x->vms,
					  .nnames = x->nvms, .cancel = x->j->cancel };
	struct cairn_replicate_result res;
	if (rc == 0)
		rc = cairn_replicate(x->r, dst, &o, &res, err, sizeof(err));
	if (rc < 0)
		fail_all(x, what, err);
	else {
		logf_(x->j, LOG_INFO, NULL, "replicated %zu snapshots to %s", res.snapshots_copied, t->url);
		if (t->has_keep)
			apply_keep(x, dst, &t->keep, t->url);
	}
	if (dst)
		cairn_repo_close(dst);
}

/* A repository warning that names damage (a damaged or unreadable
 * manifest, index file, key file or record), not a note such as a stale
 * lock removed or a forget that waits for an Object Lock. */
static bool names_damage(const char *w)
{
	return strstr(w, " is damaged") || strstr(w, "unreadable");
}

/* Damage the run met in the repository fails every VM's record: the
 * backups are stored, but the admin must learn that an older snapshot
 * cannot be restored. Every warning is logged. */
static void report_damage(struct job_run *x)
{
	size_t n = x->r ? cairn_repo_warning_count(x->r) : 0, ndamage = 0;
	const char *first = NULL;
	for (size_t i = 0; i < n; i++) {
		const char *w = cairn_repo_warning(x->r, i);
		logf_(x->j, LOG_WARNING, NULL, "%s", w);
		if (names_damage(w) && !ndamage++)
			first = w;
	}
	if (!ndamage)
		return;
	char why[600];
	snprintf(why, sizeof(why), "%s%s", first, ndamage > 1 ? " (and more: see the log)" : "");
	fail_all(x, "repository damage", why);
}

static int open_repo(struct job_run *x, char *err, size_t errlen)
{
	int rc = cairn_repo_open_with(x->j->repo_url, x->j->password, &x->j->backend, &x->r, err, errlen);
	if (rc == 0 && (rc = cairn_repo_lock(x->r, false)) < 0)
		set_err(err, errlen, rc, "%s", cairn_repo_error(x->r));
	return rc;
}

static bool all_ok(const struct job_run *x)
{
	for (size_t i = 0; i < x->nvms; i++)
		if (!x->runs[i].ok)
			return false;
	return true;
}

int cairn_job_run(const struct cairn_job_spec *j, struct cairn_run_record **runs, size_t *n,
		  char *err, size_t errlen)
{
	struct job_run x = { .j = j };
	*runs = NULL;
	*n = 0;
	int rc = resolve_vms(&x, err, errlen);
	if (rc == 0 && (!(x.runs = calloc(x.nvms, sizeof(*x.runs))) ||
			!(x.notices = calloc(x.nvms, sizeof(*x.notices))) ||
			!(x.lock_fds = calloc(x.nvms, sizeof(*x.lock_fds)))))
		rc = set_err(err, errlen, -ENOMEM, "out of memory");
	if (rc == 0 && j->pre_hook && (rc = run_hook(j, j->pre_hook, NULL, err, errlen)) < 0)
		logf_(j, LOG_ERR, NULL, "pre-hook: %s", err);
	if (rc == 0)
		rc = open_repo(&x, err, errlen);
	if (rc == 0) {
		logf_(j, LOG_INFO, NULL, "backing up %zu VM(s) into %s", x.nvms, j->repo_url);
		rc = backup_all(&x, err, errlen);
	}
	if (rc == 0 && j->has_keep && !(j->cancel && *j->cancel))
		apply_keep(&x, x.r, &j->keep, j->repo_url);
	for (size_t t = 0; rc == 0 && t < j->ntargets && !(j->cancel && *j->cancel); t++)
		replicate_to(&x, &j->targets[t]);
	if (rc == 0)
		report_damage(&x);
	if (rc == 0 && j->post_hook) {
		char herr[300];
		if (run_hook(j, j->post_hook, all_ok(&x) ? "ok" : "failed", herr, sizeof(herr)) < 0)
			fail_all(&x, "post-hook", herr);
	}
	if (x.r)
		cairn_repo_close(x.r);
	for (size_t i = 0; i < x.nvms; i++)
		free(x.vms[i]);
	free(x.vms);
	free(x.notices);
	free(x.lock_fds);
	if (rc < 0) {
		free(x.runs);
		return rc;
	}
	*runs = x.runs;
	*n = x.nvms;
	return 0;
}
